//! Planner pass: lowering groups to dispatches.
//!
//! A fused group runs tile by tile; inside a tile each layer is one dispatch computing the region the
//! trace says, reading the previous layer's tile buffer (the first layer: the group's input map) and
//! writing the next one (the last layer: the group's output map). An unfused layer is its kernel's
//! untiled dispatches over whole maps ([`Work::untiled`]: a route copies each source). A detection
//! head dispatches nothing.

use crate::error::{Error, Result};
use crate::kernel::{KernelRef, Op, View, Work};
use crate::network::Source;
use crate::plan::config::Group;
use crate::plan::lifetimes::Items;
use crate::plan::memory::{Dispatch, Operand, PlannedGroup, region_macs};
use crate::plan::planner::Planner;
use crate::region::Region;

/// The steps of a plan and the operands of its maps.
pub(crate) struct Lowered {
    /// Every dispatch, in order.
    pub steps: Vec<Dispatch>,
    /// The groups with their step ranges and weight uploads.
    pub groups: Vec<PlannedGroup>,
    /// Per layer: its full output map in the arena, if it has one.
    pub maps: Vec<Option<Operand>>,
    /// The network input in the arena.
    pub input: Operand,
}

/// Group `g`'s dispatches as its kernels see them, in execution order (`traces`: per tile, the
/// region each layer produces): per tile, its layers in order; unfused, the layer's untiled works.
/// Each comes with the layer's kernel.
pub fn group_works<'a>(
    p: &Planner<'a>,
    g: &Group,
    traces: &[Vec<Region>],
) -> Vec<(KernelRef, Work<'a>)> {
    let net = p.net();
    if !g.is_fused() {
        return match p.op(g.start) {
            Op::Dispatch(k) => Work::untiled(net, g.start, k)
                .into_iter()
                .map(|w| (k, w))
                .collect(),
            Op::CpuHead => Vec::new(),
        };
    }
    let mut out = Vec::with_capacity(traces.len() * (g.end - g.start));
    for produced in traces {
        for i in g.start..g.end {
            let Op::Dispatch(kernel) = p.op(i) else {
                continue; // fused groups hold convolutions and max pools only
            };
            let k = i - g.start;
            let l = &net.layers[i];
            let input = if k == 0 {
                View::full(net.shape_of(net.sources(i)[0]))
            } else {
                View {
                    holds: produced[k - 1],
                    channels: l.input.c,
                }
            };
            let output = if i == g.last() {
                View::full(l.output)
            } else {
                View {
                    holds: produced[k],
                    channels: l.output.c,
                }
            };
            out.push((kernel, Work::tile(net, i, input, output, produced[k])));
        }
    }
    out
}

/// Lower every group to dispatches on the arena buffer `arena`, with its items placed.
pub(crate) fn lower(
    p: &Planner<'_>,
    groups: &[Group],
    traces: &[Vec<Vec<Region>>],
    items: &Items,
    arena: usize,
) -> Result<Lowered> {
    let net = p.net();
    let at = |it: usize, view: View| Operand {
        buffer: arena,
        offset: items.list[it].offset,
        holds: view.holds,
        channels: view.channels,
        element_bytes: p.precision().bytes(),
    };
    let map = |s: Source| -> Result<Operand> {
        let it = *items.of_map.get(&s).ok_or_else(|| {
            Error::Unsupported(format!(
                "{s:?} has no full map in the arena (a planner bug)"
            ))
        })?;
        Ok(at(it, View::full(net.shape_of(s))))
    };
    let mut maps = vec![None; net.layers.len()];
    for s in items.of_map.keys() {
        if let Source::Layer(l) = *s {
            maps[l] = Some(map(*s)?);
        }
    }
    let input = map(Source::Input)?;
    let mut steps: Vec<Dispatch> = Vec::new();
    let mut planned = Vec::with_capacity(groups.len());
    for (gi, g) in groups.iter().enumerate() {
        let first = steps.len();
        let works = group_works(p, g, &traces[gi]);
        let layers = g.end - g.start;
        for (j, (kernel, w)) in works.iter().enumerate() {
            let i = w.layer;
            let sources = net.sources(i);
            let (input, second, output) = if g.is_fused() {
                let k = j % layers;
                let input = match k {
                    0 => map(sources[0])?,
                    _ => at(items.tiles[gi][(k - 1) % 2], w.input),
                };
                let output = match i == g.last() {
                    true => map(Source::Layer(i))?,
                    false => at(items.tiles[gi][k % 2], w.output),
                };
                (input, None, output)
            } else {
                // Untiled: one work over every source, or one per source (`Work::untiled`).
                let src = if kernel.per_source() {
                    sources[j]
                } else {
                    sources[0]
                };
                let second = match (kernel.per_source(), sources.get(1)) {
                    (false, Some(&s)) => Some(map(s)?),
                    _ => None,
                };
                (map(src)?, second, map(Source::Layer(i))?)
            };
            let workspace: Vec<Operand> = items.workspace[gi]
                .iter()
                .zip(kernel.workspace(w))
                .map(|(&it, bytes)| Operand {
                    buffer: arena,
                    offset: items.list[it].offset,
                    holds: Region::full(1, bytes.div_ceil(4).max(1) as usize),
                    channels: 1,
                    element_bytes: 4,
                })
                .collect();
            for stage in 0..kernel.stages(w) {
                let workgroups = kernel.workgroups(w, stage);
                let max = p.limits().max_compute_workgroups_per_dimension;
                if let Some(dim) = workgroups.iter().find(|&&d| d > max) {
                    return Err(Error::DeviceLimit(format!(
                        "layer {i} needs {dim} workgroups in one dimension for {}, past the adapter's max_compute_workgroups_per_dimension of {max}",
                        w.region
                    )));
                }
                steps.push(Dispatch {
                    layer: i,
                    kernel: *kernel,
                    stage,
                    input,
                    second,
                    output,
                    workspace: workspace.clone(),
                    region: w.region,
                    dst_element: w.dst_element,
                    workgroups,
                    macs: if stage == 0 {
                        region_macs(net, i, w.region)
                    } else {
                        0
                    },
                });
            }
        }
        planned.push(PlannedGroup {
            group: *g,
            steps: first..steps.len(),
            weights_upload: items.weights[gi]
                .map(|it| (items.list[it].offset, items.list[it].bytes)),
        });
    }
    Ok(Lowered {
        steps,
        groups: planned,
        maps,
        input,
    })
}
