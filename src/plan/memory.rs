//! Every device buffer an execution needs, computed without touching the GPU.
//!
//! The executor allocates exactly the buffers listed here, once, through the pool, and keeps them for
//! every run; so the pool's peak equals [`MemoryPlan::peak_bytes`] by construction, and the tests check
//! that it does.
//!
//! Untiled modes:
//! - **naive**: every layer's output map has its own buffer, all alive (what Darknet does);
//! - **layerwise**: maps share buffers ("slots") by liveness: a slot is reused once the last consumer of
//!   its previous map has run. Maps are placed in creation order into the smallest free slot that is
//!   large enough, else the largest free slot (grown to fit), else a new slot.

use crate::error::{Error, Result};
use crate::gpu::conv_kernel::CONV_QUADS;
use crate::gpu::kernels::{Kernel, PARAMS_BYTES};
use crate::network::{LayerKind, Network, Source};
use crate::plan::config::{Config, Group};
use crate::plan::geometry::{Region, tiles, trace};
use serde::Serialize;

/// Workgroups along x before the register-tiled conv spills over into y (WebGPU's guaranteed
/// minimum of max_compute_workgroups_per_dimension).
const MAX_GROUPS_X: usize = 65535;

/// Bytes moved per staging round trip (uploads of weights and input, readback of outputs).
pub const STAGING_CHUNK: u64 = 1 << 20;

/// The adapter limits the plan must respect (copied from `wgpu::Limits` so plans need no GPU).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceLimits {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub min_uniform_buffer_offset_alignment: u64,
    pub max_compute_workgroups_per_dimension: u32,
    /// The device records GPU timestamps (two queries per dispatch, resolved into buffers).
    pub timestamps: bool,
}

impl DeviceLimits {
    pub fn from_wgpu(l: &wgpu::Limits, timestamps: bool) -> Self {
        DeviceLimits {
            max_buffer_size: l.max_buffer_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            min_uniform_buffer_offset_alignment: l.min_uniform_buffer_offset_alignment as u64,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            timestamps,
        }
    }
}

/// Untiled execution modes (the baselines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Liveness reuse: a map's buffer is reused once its last consumer has run.
    Layerwise,
    /// One buffer per layer output, all alive.
    Naive,
}

/// What a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BufferKind {
    Weights,
    /// A buffer that holds full feature maps (group inputs and outputs) at some point of the run.
    Map,
    /// A buffer that only ever holds tiles of maps inside fused groups.
    Tile,
    Params,
    Staging,
}

#[derive(Debug, Clone, Serialize)]
pub struct BufferSpec {
    pub label: String,
    pub kind: BufferKind,
    pub size: u64,
}

/// How a layer runs on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuOp {
    /// One dispatch of a kernel.
    Dispatch(Kernel),
    /// Buffer copies into a channel offset (route).
    Copy,
    /// Runs on the CPU after readback (region/yolo heads).
    CpuHead,
}

/// How each layer runs on the GPU.
pub fn gpu_op(kind: &LayerKind) -> GpuOp {
    match kind {
        LayerKind::Conv(c) => {
            if c.groups == 1 || (c.filters / c.groups).is_multiple_of(4 * CONV_QUADS) {
                GpuOp::Dispatch(Kernel::Conv)
            } else {
                GpuOp::Dispatch(Kernel::ConvGrouped)
            }
        }
        LayerKind::MaxPool(_) => GpuOp::Dispatch(Kernel::MaxPool),
        LayerKind::AvgPool => GpuOp::Dispatch(Kernel::AvgPool),
        LayerKind::Softmax { .. } => GpuOp::Dispatch(Kernel::Softmax),
        LayerKind::Route { .. } => GpuOp::Copy,
        LayerKind::Upsample { .. } => GpuOp::Dispatch(Kernel::Upsample),
        LayerKind::Reorg { .. } => GpuOp::Dispatch(Kernel::Reorg),
        LayerKind::Shortcut { .. } => GpuOp::Dispatch(Kernel::Shortcut),
        LayerKind::Region(_) | LayerKind::Yolo(_) => GpuOp::CpuHead,
    }
}

/// Bytes of a conv layer's packed weight buffer (weights then biases; the register-tiled kernel pads
/// the filter count to a multiple of 4).
pub fn conv_weight_bytes(net: &Network, i: usize) -> u64 {
    let l = &net.layers[i];
    let LayerKind::Conv(c) = &l.kind else {
        return 0;
    };
    let per = ((l.input.c / c.groups) * c.size * c.size) as u64;
    match gpu_op(&l.kind) {
        GpuOp::Dispatch(Kernel::Conv) => {
            let nq = (c.filters as u64).div_ceil(4);
            16 * (nq * per + nq)
        }
        _ => 4 * (c.filters as u64 * per + c.filters as u64),
    }
}

/// Workgroup counts of layer `i`'s dispatch computing `region` of its output.
pub fn workgroups(net: &Network, i: usize, kernel: Kernel, region: Region) -> [u32; 3] {
    let l = &net.layers[i];
    let (o, x) = (l.output, l.input);
    let (rh, rw) = (region.height(), region.width());
    let wg = kernel.workgroup();
    let ppi = kernel.pixels_per_invocation() as usize;
    let d = |n: usize, by: u32| n.div_ceil(by as usize) as u32;
    match kernel {
        Kernel::Conv => {
            // Pixel runs are numbered linearly over x and y (the kernel reads `num_workgroups.x`),
            // so no dimension passes the 65,535-workgroup limit.
            let groups = rw.div_ceil(ppi) * rh;
            let total = groups.div_ceil(wg[0] as usize);
            let y = total.div_ceil(MAX_GROUPS_X);
            [
                total.div_ceil(y) as u32,
                y as u32,
                d(o.c, 4 * CONV_QUADS as u32),
            ]
        }
        Kernel::ConvGrouped => [d(rw.div_ceil(ppi), wg[0]), d(rh, wg[1]), o.c as u32],
        Kernel::MaxPool | Kernel::Upsample => [d(rw, wg[0]), d(rh, wg[1]), o.c as u32],
        Kernel::Reorg | Kernel::Shortcut => [d(x.w, wg[0]), d(x.h, wg[1]), x.c as u32],
        Kernel::AvgPool => [d(x.c, wg[0]), 1, 1],
        Kernel::Softmax => match &l.kind {
            LayerKind::Softmax { groups, .. } => [d(*groups, wg[0]), 1, 1],
            _ => [1, 1, 1],
        },
    }
}

/// A buffer operand of a dispatch: which buffer, and which region of its map (all channels) it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Operand {
    pub buffer: usize,
    pub holds: Region,
    pub channels: usize,
}

impl Operand {
    /// Bytes of the map region the buffer holds (what is bound).
    pub fn bytes(&self) -> u64 {
        4 * self.holds.len(self.channels) as u64
    }
}

/// One kernel dispatch: layer `layer` computes `region` of its output map.
#[derive(Debug, Clone, Serialize)]
pub struct Dispatch {
    pub layer: usize,
    #[serde(skip)]
    pub kernel: Kernel,
    pub input: Operand,
    /// The shortcut's second input.
    pub second: Option<Operand>,
    pub output: Operand,
    pub region: Region,
    pub workgroups: [u32; 3],
    /// Multiply-accumulates of this dispatch (its region only).
    pub macs: u64,
}

/// One step of an execution, in order.
#[derive(Debug, Clone, Serialize)]
pub enum Step {
    Dispatch(Dispatch),
    /// Copy a whole map into a channel offset of another (route).
    Copy {
        src: usize,
        dst: usize,
        dst_offset: u64,
        size: u64,
    },
}

/// A group of the resolved configuration and its steps.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedGroup {
    pub group: Group,
    /// Range of [`MemoryPlan::steps`].
    pub steps: std::ops::Range<usize>,
    /// The group's ping-pong tile buffers (fused groups of more than one layer).
    pub tile_buffers: Vec<usize>,
}

/// The buffers of one execution, what lives where, and every step in order.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryPlan {
    pub mode: Mode,
    /// The configuration as given.
    pub config: Config,
    pub groups: Vec<PlannedGroup>,
    pub buffers: Vec<BufferSpec>,
    /// Per layer: its weight buffer.
    pub weights: Vec<Option<usize>>,
    /// Per layer: the buffer holding its full output map (None for CPU heads and layers inside a
    /// fused group other than its last).
    pub maps: Vec<Option<usize>>,
    /// Buffer of the network input map.
    pub input: usize,
    /// The uniform buffer of every dispatch's parameters (one block per dispatch, in step order),
    /// and the stride between blocks.
    pub params: Option<usize>,
    pub params_stride: u64,
    pub steps: Vec<Step>,
    pub upload: usize,
    pub readback: usize,
    /// Timestamp resolve and readback buffers (when the device records timestamps): two per group
    /// with dispatches.
    pub timestamps: Option<(usize, usize)>,
    /// Maps read back at the end (sources of the network outputs; heads run on the CPU).
    pub read_back: Vec<Source>,
    /// The most bytes of maps and tile buffers alive at once (a lower bound for their buffers).
    pub live_map_peak: u64,
    /// Multiply-accumulates computed over every dispatch (with tiling: halo work included).
    pub macs: u64,
}

impl MemoryPlan {
    /// Device bytes the execution holds: the sum of every buffer.
    pub fn peak_bytes(&self) -> u64 {
        self.buffers.iter().map(|b| b.size).sum()
    }

    /// Bytes of one kind of buffer.
    pub fn bytes_of(&self, kind: BufferKind) -> u64 {
        self.buffers
            .iter()
            .filter(|b| b.kind == kind)
            .map(|b| b.size)
            .sum()
    }

    /// Buffer index of a source map.
    pub fn map_of(&self, s: Source) -> usize {
        match s {
            Source::Input => self.input,
            Source::Layer(l) => self.maps[l].expect("group outputs have maps"),
        }
    }

    /// Computed multiply-accumulates over the untiled network's (≥ 1: the halo's redundant work).
    pub fn mac_ratio(&self, net: &Network) -> f64 {
        let untiled = net.macs();
        if untiled == 0 {
            1.0
        } else {
            self.macs as f64 / untiled as f64
        }
    }

    /// The dispatches, in order.
    pub fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.steps.iter().filter_map(|s| match s {
            Step::Dispatch(d) => Some(d),
            Step::Copy { .. } => None,
        })
    }

    /// Groups that dispatch kernels (each is one compute pass, timed as one).
    pub fn timed_groups(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| {
                self.steps[g.steps.clone()]
                    .iter()
                    .any(|s| matches!(s, Step::Dispatch(_)))
            })
            .count()
    }
}

/// Where the GPU reads network outputs: a head's input, or the output layer itself.
pub fn read_back_sources(net: &Network) -> Vec<Source> {
    let mut v = Vec::new();
    for o in net.outputs() {
        let s = match gpu_op(&net.layers[o].kind) {
            GpuOp::CpuHead => net.sources(o)[0],
            _ => Source::Layer(o),
        };
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

fn add_buffer(buffers: &mut Vec<BufferSpec>, label: &str, kind: BufferKind, size: u64) -> usize {
    buffers.push(BufferSpec {
        label: label.to_string(),
        kind,
        size,
    });
    buffers.len() - 1
}

/// Multiply-accumulates of layer `i` computing `region` of its output.
pub fn region_macs(net: &Network, i: usize, region: Region) -> u64 {
    let l = &net.layers[i];
    let pixels = (l.output.h * l.output.w) as u64;
    // Layer::macs is per-pixel constant × pixels.
    l.macs() / pixels.max(1) * (region.height() * region.width()) as u64
}

/// Something that lives in a map slot: a full map or a tile buffer, alive from step `created` to
/// step `last_use` (steps: 0 = the input upload, g + 1 = group g).
struct Item {
    what: String,
    bytes: u64,
    created: usize,
    last_use: usize,
    tile: bool,
}

/// Plan an untiled execution of `net` in `mode` (every layer its own group).
pub fn plan_untiled(net: &Network, mode: Mode, limits: &DeviceLimits) -> Result<MemoryPlan> {
    plan(net, &Config::untiled(), mode, limits)
}

/// Plan the execution of `net` under `config`. With [`Mode::Layerwise`] buffers are shared by
/// liveness; with [`Mode::Naive`] every map and tile buffer has its own.
pub fn plan(
    net: &Network,
    config: &Config,
    mode: Mode,
    limits: &DeviceLimits,
) -> Result<MemoryPlan> {
    let n = net.layers.len();
    let groups = config.resolve(net)?;
    // GPU support: a CPU head's output must not feed another layer.
    for i in 0..n {
        for s in net.sources(i) {
            if let Source::Layer(l) = s
                && gpu_op(&net.layers[l].kind) == GpuOp::CpuHead
            {
                return Err(Error::Unsupported(format!(
                    "layer {i} reads the output of detection head {l}, which runs on the CPU; mafat runs heads only as network outputs"
                )));
            }
        }
    }
    let mut buffers: Vec<BufferSpec> = Vec::new();

    // Weights.
    let mut weights = vec![None; n];
    for (i, w) in weights.iter_mut().enumerate() {
        if let LayerKind::Conv(_) = net.layers[i].kind {
            *w = Some(add_buffer(
                &mut buffers,
                &format!("layer {i} weights"),
                BufferKind::Weights,
                conv_weight_bytes(net, i),
            ));
        }
    }

    // Per fused group and tile: the region every layer produces (traced back from the tile).
    let mut traces: Vec<Vec<Vec<Region>>> = Vec::with_capacity(groups.len());
    for g in &groups {
        let o = net.layers[g.last()].output;
        let per_tile = if g.is_fused() {
            tiles(o.h, o.w, g.grid)?
                .into_iter()
                .map(|t| trace(net, g.start, g.last(), t).map(|(produced, _)| produced))
                .collect::<Result<Vec<_>>>()?
        } else {
            vec![vec![Region::full(o.h, o.w)]]
        };
        traces.push(per_tile);
    }

    // Items in creation order: the input, then per group its output map and its tile buffers.
    let read_back = read_back_sources(net);
    let group_of = |l: usize| groups.iter().position(|g| g.start <= l && l < g.end);
    let mut items: Vec<Item> = Vec::new();
    let mut item_of_map = std::collections::HashMap::new();
    let mut tile_items: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    item_of_map.insert(Source::Input, 0);
    items.push(Item {
        what: "the input".into(),
        bytes: net.input.bytes(),
        created: 0,
        last_use: 0,
        tile: false,
    });
    for (gi, g) in groups.iter().enumerate() {
        let last = g.last();
        if gpu_op(&net.layers[last].kind) != GpuOp::CpuHead {
            item_of_map.insert(Source::Layer(last), items.len());
            items.push(Item {
                what: format!("layer {last}'s output"),
                bytes: net.layers[last].output.bytes(),
                created: gi + 1,
                last_use: gi + 1,
                tile: false,
            });
        }
        // Ping-pong: layers start, start+2, … write buffer A; start+1, … buffer B (the last layer
        // writes the group's output map).
        for parity in 0..2 {
            let bytes = (g.start..last)
                .filter(|i| (i - g.start) % 2 == parity)
                .flat_map(|i| {
                    let c = net.layers[i].output.c;
                    traces[gi]
                        .iter()
                        .map(move |t| 4 * t[i - g.start].len(c) as u64)
                })
                .max();
            if let Some(bytes) = bytes {
                tile_items[gi].push(items.len());
                items.push(Item {
                    what: format!("group {g} tile buffer {}", ["A", "B"][parity]),
                    bytes,
                    created: gi + 1,
                    last_use: gi + 1,
                    tile: true,
                });
            }
        }
    }
    for (gi, g) in groups.iter().enumerate() {
        for i in g.start..g.end {
            for s in net.sources(i) {
                let inside = matches!(s, Source::Layer(l) if l >= g.start);
                if !inside && let Some(&it) = item_of_map.get(&s) {
                    items[it].last_use = items[it].last_use.max(gi + 1);
                }
            }
        }
        debug_assert!(group_of(g.start) == Some(gi));
    }
    for s in &read_back {
        items[item_of_map[s]].last_use = usize::MAX;
    }

    for it in &items {
        if it.bytes > limits.max_storage_buffer_binding_size {
            let fix = if it.tile {
                "use a finer grid for that group"
            } else {
                "end a tiled group elsewhere so this map stays inside it, or use a smaller --size"
            };
            return Err(Error::DeviceLimit(format!(
                "{} needs {} bytes, past the adapter's max_storage_buffer_binding_size of {} bytes; {fix}",
                it.what, it.bytes, limits.max_storage_buffer_binding_size
            )));
        }
    }
    let mut live_map_peak = 0u64;
    for t in 0..=groups.len() {
        let live: u64 = items
            .iter()
            .filter(|it| it.created <= t && it.last_use >= t)
            .map(|it| it.bytes)
            .sum();
        live_map_peak = live_map_peak.max(live);
    }

    // Slots, items in creation order: the smallest free slot that is large enough, else the
    // largest free slot (grown to fit), else a new slot. Slot: (size, occupant's last use, tiles only).
    let mut slots: Vec<(u64, usize, bool)> = Vec::new();
    let mut slot_of_item = Vec::with_capacity(items.len());
    for it in &items {
        let t = it.created;
        let free: Vec<usize> = match mode {
            Mode::Naive => Vec::new(),
            Mode::Layerwise => (0..slots.len()).filter(|&s| slots[s].1 < t).collect(),
        };
        let fit = free
            .iter()
            .copied()
            .filter(|&s| slots[s].0 >= it.bytes)
            .min_by_key(|&s| (slots[s].0, s));
        let s = match fit {
            Some(s) => s,
            None => match free
                .iter()
                .copied()
                .max_by_key(|&s| (slots[s].0, usize::MAX - s))
            {
                Some(s) => {
                    slots[s].0 = it.bytes;
                    s
                }
                None => {
                    slots.push((it.bytes, 0, true));
                    slots.len() - 1
                }
            },
        };
        slots[s].1 = it.last_use;
        slots[s].2 &= it.tile;
        slot_of_item.push(s);
    }
    let slot_base = buffers.len();
    for (s, (size, _, tile_only)) in slots.iter().enumerate() {
        if *size > limits.max_buffer_size {
            return Err(Error::DeviceLimit(format!(
                "map slot {s} needs {size} bytes, past the adapter's max_buffer_size of {} bytes",
                limits.max_buffer_size
            )));
        }
        let (label, kind) = if *tile_only {
            (format!("tile slot {s}"), BufferKind::Tile)
        } else {
            (format!("map slot {s}"), BufferKind::Map)
        };
        add_buffer(&mut buffers, &label, kind, *size);
    }
    let buffer_of_item = |it: usize| slot_base + slot_of_item[it];
    let mut maps = vec![None; n];
    for (s, &it) in &item_of_map {
        if let Source::Layer(l) = s {
            maps[*l] = Some(buffer_of_item(it));
        }
    }
    let input = buffer_of_item(0);
    let map_operand = |s: Source| {
        let shape = net.shape_of(s);
        Operand {
            buffer: match s {
                Source::Input => input,
                Source::Layer(l) => maps[l].expect("group outputs have maps"),
            },
            holds: Region::full(shape.h, shape.w),
            channels: shape.c,
        }
    };

    // Steps, group by group (and tile by tile inside fused groups).
    let mut steps: Vec<Step> = Vec::new();
    let mut planned = Vec::with_capacity(groups.len());
    for (gi, g) in groups.iter().enumerate() {
        let first_step = steps.len();
        let tile_buffers: Vec<usize> = tile_items[gi]
            .iter()
            .map(|&it| buffer_of_item(it))
            .collect();
        if g.is_fused()
            || matches!(
                net.layers[g.start].kind,
                LayerKind::Conv(_) | LayerKind::MaxPool(_)
            )
        {
            for produced in &traces[gi] {
                for i in g.start..g.end {
                    let k = i - g.start;
                    let l = &net.layers[i];
                    let GpuOp::Dispatch(kernel) = gpu_op(&l.kind) else {
                        unreachable!("fused groups hold convs and max pools")
                    };
                    let input = if k == 0 {
                        map_operand(net.sources(i)[0])
                    } else {
                        Operand {
                            buffer: tile_buffers[(k - 1) % 2],
                            holds: produced[k - 1],
                            channels: l.input.c,
                        }
                    };
                    let output = if i == g.last() {
                        map_operand(Source::Layer(i))
                    } else {
                        Operand {
                            buffer: tile_buffers[k % 2],
                            holds: produced[k],
                            channels: l.output.c,
                        }
                    };
                    let region = produced[k];
                    steps.push(Step::Dispatch(Dispatch {
                        layer: i,
                        kernel,
                        input,
                        second: None,
                        output,
                        region,
                        workgroups: workgroups(net, i, kernel, region),
                        macs: region_macs(net, i, region),
                    }));
                }
            }
        } else {
            let i = g.start;
            let l = &net.layers[i];
            match gpu_op(&l.kind) {
                GpuOp::CpuHead => {}
                GpuOp::Copy => {
                    let dst = maps[i].expect("route has a map");
                    let mut off = 0;
                    for s in net.sources(i) {
                        let size = net.shape_of(s).bytes();
                        steps.push(Step::Copy {
                            src: map_operand(s).buffer,
                            dst,
                            dst_offset: off,
                            size,
                        });
                        off += size;
                    }
                }
                GpuOp::Dispatch(kernel) => {
                    let srcs = net.sources(i);
                    let region = Region::full(l.output.h, l.output.w);
                    steps.push(Step::Dispatch(Dispatch {
                        layer: i,
                        kernel,
                        input: map_operand(srcs[0]),
                        second: (kernel == Kernel::Shortcut).then(|| map_operand(srcs[1])),
                        output: map_operand(Source::Layer(i)),
                        region,
                        workgroups: workgroups(net, i, kernel, region),
                        macs: region_macs(net, i, region),
                    }));
                }
            }
        }
        planned.push(PlannedGroup {
            group: *g,
            steps: first_step..steps.len(),
            tile_buffers,
        });
    }
    let mut n_dispatch = 0u64;
    let mut macs = 0u64;
    for s in &steps {
        if let Step::Dispatch(d) = s {
            if let Some(dim) = d
                .workgroups
                .iter()
                .find(|&&dim| dim > limits.max_compute_workgroups_per_dimension)
            {
                return Err(Error::DeviceLimit(format!(
                    "layer {} needs {dim} workgroups in one dimension for {}, past the adapter's max_compute_workgroups_per_dimension of {}",
                    d.layer, d.region, limits.max_compute_workgroups_per_dimension
                )));
            }
            n_dispatch += 1;
            macs += d.macs;
        }
    }

    // Parameters: one block per dispatch in one uniform buffer.
    let params_stride =
        PARAMS_BYTES.next_multiple_of(limits.min_uniform_buffer_offset_alignment.max(4));
    let params = (n_dispatch > 0).then(|| {
        add_buffer(
            &mut buffers,
            "parameters",
            BufferKind::Params,
            params_stride * n_dispatch,
        )
    });
    if let Some(p) = params
        && buffers[p].size > limits.max_buffer_size
    {
        return Err(Error::DeviceLimit(format!(
            "{n_dispatch} dispatches need {} bytes of parameters, past the adapter's max_buffer_size of {} bytes; use coarser grids",
            buffers[p].size, limits.max_buffer_size
        )));
    }

    // Staging: uploads (weights, parameters, input) and readback, in chunks.
    let largest_upload = buffers
        .iter()
        .filter(|b| b.kind == BufferKind::Weights || b.kind == BufferKind::Params)
        .map(|b| b.size)
        .chain(std::iter::once(net.input.bytes()))
        .max()
        .unwrap_or(4);
    let largest_readback = read_back
        .iter()
        .map(|&s| net.shape_of(s).bytes())
        .max()
        .unwrap_or(4);
    let upload = add_buffer(
        &mut buffers,
        "upload staging",
        BufferKind::Staging,
        largest_upload.min(STAGING_CHUNK),
    );
    let readback = add_buffer(
        &mut buffers,
        "readback staging",
        BufferKind::Staging,
        largest_readback.min(STAGING_CHUNK),
    );
    let mut plan = MemoryPlan {
        mode,
        config: config.clone(),
        groups: planned,
        buffers,
        weights,
        maps,
        input,
        params,
        params_stride,
        steps,
        upload,
        readback,
        timestamps: None,
        read_back,
        live_map_peak,
        macs,
    };
    let timed = plan.timed_groups() as u64;
    if limits.timestamps && timed > 0 {
        let bytes = 8 * 2 * timed;
        let resolve = add_buffer(
            &mut plan.buffers,
            "timestamp resolve",
            BufferKind::Staging,
            bytes,
        );
        let readback = add_buffer(
            &mut plan.buffers,
            "timestamp readback",
            BufferKind::Staging,
            bytes,
        );
        plan.timestamps = Some((resolve, readback));
    }
    Ok(plan)
}
