//! Searching the configuration space without a GPU.
//!
//! The space: every partition of the network's layers into groups the rules allow (see
//! [`crate::plan::config`]), every grid up to 8x8 per group (non-square too), and both weight
//! residencies. For a *chain* (every layer reads only the previous one; a detection head may end it)
//! the arena is exactly the largest per-group footprint `m(g)` (group input + output + tile buffers
//! [+ the group's weights]), so a plan's peak is
//! `constant + max_g m(g) + Σ_g a(g)` with `a(g)` the group's parameter blocks and timestamp slots.
//! [`min_peak`] minimizes that exactly: for every threshold M among the `m` values, a shortest path
//! over cut positions using only groups with `m ≤ M` minimizes `Σ a`; the best `M + Σ a` wins.

use crate::error::{Error, Result};
use crate::gpu::kernels::PARAMS_BYTES;
use crate::network::{LayerKind, Network, Source};
use crate::plan::config::{Config, Group};
use crate::plan::geometry::{Grid, Region, tiles, trace};
use crate::plan::memory::{
    DeviceLimits, GpuOp, Mode, Residency, arena_alignment, conv_weight_bytes, gpu_op, plan_with,
};

/// Largest grid side the search tries.
pub const MAX_GRID: usize = 8;

/// One group the search may use, with its footprint and additive costs.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub group: Group,
    /// Aligned arena bytes alive while the group runs.
    pub footprint: u64,
    /// Bytes of parameter blocks and timestamp slots it adds.
    pub additive: u64,
    /// Dispatches it records.
    pub dispatches: u64,
}

/// Whether every layer reads only its predecessor (the first reads the input); a CPU detection head
/// may end the network.
pub fn is_chain(net: &Network) -> bool {
    net.layers.iter().enumerate().all(|(i, l)| {
        let want = if i == 0 {
            Source::Input
        } else {
            Source::Layer(i - 1)
        };
        net.sources(i) == vec![want]
            && (gpu_op(&l.kind) != GpuOp::CpuHead || i + 1 == net.layers.len())
    })
}

/// Every group allowed on `net` with its grids, footprints and costs.
pub fn candidates(
    net: &Network,
    residency: Residency,
    limits: &DeviceLimits,
) -> Result<Vec<Candidate>> {
    let n = net.layers.len();
    let align = arena_alignment(limits);
    let up = |b: u64| b.next_multiple_of(align);
    let stride = PARAMS_BYTES.next_multiple_of(limits.min_uniform_buffer_offset_alignment.max(4));
    let ts = if limits.timestamps { 32 } else { 0 };
    let fusable = |i: usize| {
        matches!(
            net.layers[i].kind,
            LayerKind::Conv(_) | LayerKind::MaxPool(_)
        )
    };
    let mut out = Vec::new();
    for start in 0..n {
        let input = up(net.shape_of(net.sources(start)[0]).bytes());
        for end in start + 1..=n {
            if end - start > 1 && !(start..end).all(fusable) {
                break;
            }
            let last = end - 1;
            let o = net.layers[last].output;
            let head = gpu_op(&net.layers[last].kind) == GpuOp::CpuHead;
            let weights: u64 = match residency {
                Residency::Resident => 0,
                Residency::PerGroup => (start..end).map(|i| up(conv_weight_bytes(net, i))).sum(),
            };
            let grids: Vec<Grid> = if fusable(start) {
                (1..=MAX_GRID.min(o.h))
                    .flat_map(|r| (1..=MAX_GRID.min(o.w)).map(move |c| Grid { rows: r, cols: c }))
                    .filter(|&g| tiles(o.h, o.w, g).is_ok())
                    .collect()
            } else {
                vec![Grid { rows: 1, cols: 1 }]
            };
            for grid in grids {
                let group = Group { start, end, grid };
                let (tile_bytes, dispatches) = if head {
                    (0, 0)
                } else if fusable(start) {
                    let regions: Vec<Vec<Region>> = tiles(o.h, o.w, grid)?
                        .into_iter()
                        .map(|t| trace(net, start, last, t).map(|(p, _)| p))
                        .collect::<Result<_>>()?;
                    let mut tb = 0;
                    for parity in 0..2 {
                        let m = (start..last)
                            .filter(|i| (i - start) % 2 == parity)
                            .flat_map(|i| {
                                let c = net.layers[i].output.c;
                                regions.iter().map(move |r| 4 * r[i - start].len(c) as u64)
                            })
                            .max();
                        if let Some(m) = m {
                            if m > limits.max_storage_buffer_binding_size {
                                tb = u64::MAX;
                                break;
                            }
                            tb += up(m);
                        }
                    }
                    (tb, (regions.len() * (end - start)) as u64)
                } else {
                    // Untiled single layers; a route copies each source.
                    let d = match net.layers[start].kind {
                        LayerKind::Route { .. } => net.sources(start).len(),
                        _ => 1,
                    };
                    (0, d as u64)
                };
                if tile_bytes == u64::MAX {
                    continue;
                }
                let output = if head { 0 } else { up(o.bytes()) };
                out.push(Candidate {
                    group,
                    footprint: input + output + tile_bytes + weights,
                    additive: stride * dispatches + if dispatches > 0 { ts } else { 0 },
                    dispatches,
                });
            }
        }
    }
    Ok(out)
}

/// The smallest predicted peak in the search space and a configuration that reaches it, for one
/// residency (exact for chains; see the module docs).
pub fn min_peak_for(
    net: &Network,
    residency: Residency,
    limits: &DeviceLimits,
) -> Result<(u64, Config)> {
    if !is_chain(net) {
        return Err(Error::Unsupported(format!(
            "the minimum-budget search handles chains of layers (each reading the previous one) so far; {} routes or adds maps across layers",
            net.name
        )));
    }
    let n = net.layers.len();
    let cands = candidates(net, residency, limits)?;
    // Per (start, end): candidates sorted by footprint with prefix minima of the additive cost.
    let mut by_range: Vec<Vec<(u64, u64, usize)>> = vec![Vec::new(); n * (n + 1)];
    for (k, c) in cands.iter().enumerate() {
        by_range[c.group.start * (n + 1) + c.group.end].push((c.footprint, c.additive, k));
    }
    for v in by_range.iter_mut() {
        v.sort();
        let mut best = (u64::MAX, usize::MAX);
        for e in v.iter_mut() {
            if e.1 < best.0 {
                best = (e.1, e.2);
            }
            e.1 = best.0;
            e.2 = best.1;
        }
    }
    let mut thresholds: Vec<u64> = cands.iter().map(|c| c.footprint).collect();
    thresholds.push(net.input.bytes().next_multiple_of(arena_alignment(limits)));
    thresholds.sort();
    thresholds.dedup();
    let mut best: Option<(u64, Vec<usize>)> = None;
    for &m in &thresholds {
        // Shortest path over cut positions using groups with footprint ≤ m.
        let mut cost = vec![u64::MAX; n + 1];
        let mut via = vec![usize::MAX; n + 1];
        cost[0] = 0;
        for j in 1..=n {
            for i in 0..j {
                if cost[i] == u64::MAX {
                    continue;
                }
                let v = &by_range[i * (n + 1) + j];
                let p = v.partition_point(|e| e.0 <= m);
                if p == 0 {
                    continue;
                }
                let (_, a, k) = v[p - 1];
                if cost[i] + a < cost[j] {
                    cost[j] = cost[i] + a;
                    via[j] = k;
                }
            }
        }
        if cost[n] == u64::MAX {
            continue;
        }
        let total = m + cost[n];
        if best.as_ref().is_none_or(|b| total < b.0) {
            let mut path = Vec::new();
            let mut j = n;
            while j > 0 {
                let k = via[j];
                path.push(k);
                j = cands[k].group.start;
            }
            path.reverse();
            best = Some((total, path));
        }
    }
    let (_, path) = best.ok_or_else(|| {
        Error::DeviceLimit(format!(
            "no configuration of {} fits the adapter's limits",
            net.name
        ))
    })?;
    let config = Config {
        groups: path.iter().map(|&k| cands[k].group).collect(),
    };
    // The exact peak of that configuration, from the planner itself.
    let plan = plan_with(net, &config, Mode::Layerwise, residency, limits)?;
    Ok((plan.peak_bytes(), compact(config)))
}

/// The smallest predicted peak over both residencies.
pub fn min_peak(net: &Network, limits: &DeviceLimits) -> Result<(u64, Config, Residency)> {
    let a = min_peak_for(net, Residency::Resident, limits)?;
    let b = min_peak_for(net, Residency::PerGroup, limits)?;
    Ok(if b.0 < a.0 {
        (b.0, b.1, Residency::PerGroup)
    } else {
        (a.0, a.1, Residency::Resident)
    })
}

/// Drop trailing and leading untiled single-layer groups (they are what the config text implies).
fn compact(mut c: Config) -> Config {
    while c.groups.last().is_some_and(|g| !g.is_fused()) {
        c.groups.pop();
    }
    while c.groups.first().is_some_and(|g| !g.is_fused()) {
        c.groups.remove(0);
    }
    c
}
