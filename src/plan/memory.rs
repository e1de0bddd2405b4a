//! Every device buffer an execution needs, computed without touching the GPU.
//!
//! The executor allocates exactly the buffers listed here, once, through the pool, and keeps them for
//! every run; so the pool's peak equals [`MemoryPlan::peak_bytes`] by construction, and the tests check
//! that it does.
//!
//! Buffers: the weights (one buffer per conv layer when all weights stay resident), one **arena** that
//! holds every feature map, tile buffer and (with per-group residency) the current group's weights at
//! offsets, the uniform parameter buffer, and staging/readback/timestamp buffers.
//!
//! Arena placement is two-ended: an item lives at the bottom or the top of the arena, at the lowest
//! position on its side not used by an item whose lifetime overlaps. A group's output goes to the side
//! opposite its input; its tile buffers and weights go on its input's side. For a chain of groups this
//! makes the arena exactly the largest `input + output + tiles (+ weights)` of any group, with every item
//! rounded up to the storage-binding offset alignment. In **naive** mode no two items share bytes.

use crate::error::{Error, Result};
use crate::gpu::conv_kernel::CONV_QUADS;
use crate::gpu::kernels::{Kernel, PARAMS_BYTES};
use crate::network::{LayerKind, Network, Source};
use crate::plan::config::{Config, Group};
use crate::plan::geometry::{Region, tiles, trace};
use serde::{Deserialize, Serialize};

/// Workgroups along x before the register-tiled conv spills over into y (WebGPU's guaranteed
/// minimum of max_compute_workgroups_per_dimension).
const MAX_GROUPS_X: usize = 65535;

/// Bytes moved per staging round trip (uploads of weights and input, readback of outputs).
pub const STAGING_CHUNK: u64 = 1 << 20;

/// The adapter limits the plan must respect (copied from `wgpu::Limits` so plans need no GPU).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceLimits {
    /// Largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Largest storage-buffer binding, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Alignment of uniform-binding offsets, in bytes (the parameter blocks' stride is a multiple).
    pub min_uniform_buffer_offset_alignment: u64,
    /// Alignment of storage-binding offsets, in bytes (arena items are rounded up to it).
    pub min_storage_buffer_offset_alignment: u64,
    /// Most workgroups along any one dimension of a dispatch.
    pub max_compute_workgroups_per_dimension: u32,
    /// The device records GPU timestamps (two queries per group that dispatches kernels, resolved
    /// into buffers).
    pub timestamps: bool,
}

impl DeviceLimits {
    /// The limits the planner uses, copied from `l`; `timestamps`: the device records GPU timestamps.
    pub fn from_wgpu(l: &wgpu::Limits, timestamps: bool) -> Self {
        DeviceLimits {
            max_buffer_size: l.max_buffer_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            min_uniform_buffer_offset_alignment: l.min_uniform_buffer_offset_alignment as u64,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment as u64,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            timestamps,
        }
    }
}

/// How arena bytes are shared between items (the untiled baselines use both; mafat's own plans use
/// [`Mode::Layerwise`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Liveness reuse: an item's arena bytes are reused once its last reader has run.
    Layerwise,
    /// No two arena items share bytes: every map (and tile buffer) keeps its own for the whole run.
    Naive,
}

/// Where conv weights live during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Residency {
    /// Every layer's weights in its own buffer, uploaded once, resident for every run.
    Resident,
    /// Each group's weights uploaded into the arena when the group starts; the space is reused after
    /// it (smaller peaks, one weight upload per group per inference).
    PerGroup,
}

impl Residency {
    /// The name the CLI and JSON use (`resident`, `per-group`).
    pub fn as_str(self) -> &'static str {
        match self {
            Residency::Resident => "resident",
            Residency::PerGroup => "per-group",
        }
    }
}

/// What a buffer (or an arena item) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BufferKind {
    /// Conv weights and biases: one layer's resident buffer, or a group's weights in the arena.
    Weights,
    /// The arena of maps, tile buffers and per-group weights.
    Arena,
    /// A full feature map (network input, group outputs) inside the arena.
    Map,
    /// A tile buffer of a fused group inside the arena.
    Tile,
    /// The uniform buffer of every dispatch's parameters.
    Params,
    /// Upload and readback staging, and the timestamp resolve and readback buffers.
    Staging,
}

/// One device buffer of an execution.
#[derive(Debug, Clone, Serialize)]
pub struct BufferSpec {
    /// Its label for wgpu and messages (e.g. `layer 3 weights`, `feature-map arena`).
    pub label: String,
    /// What it holds.
    pub kind: BufferKind,
    /// Its size in bytes.
    pub size: u64,
}

/// How a layer runs on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuOp {
    /// One dispatch of a kernel (a route: one copy dispatch per source).
    Dispatch(Kernel),
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
        LayerKind::Route { .. } => GpuOp::Dispatch(Kernel::Copy),
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
        // Copies are sized by the number of elements: see `copy_workgroups`.
        Kernel::Copy => copy_workgroups(x.len()),
        Kernel::Softmax => match &l.kind {
            LayerKind::Softmax { groups, .. } => [d(*groups, wg[0]), 1, 1],
            _ => [1, 1, 1],
        },
    }
}

/// Invocations of layer `i`'s dispatch computing `region` that have work to do (workgroups also
/// hold idle lanes past the region's edge); the cost model's measure of a dispatch's size. A route's
/// copy: one per element copied.
pub fn invocations(net: &Network, i: usize, kernel: Kernel, region: Region) -> u64 {
    let l = &net.layers[i];
    let (o, x) = (l.output, l.input);
    let (rh, rw) = (region.height() as u64, region.width() as u64);
    let ppi = kernel.pixels_per_invocation() as u64;
    match kernel {
        Kernel::Conv => rh * rw.div_ceil(ppi) * (o.c as u64).div_ceil(4 * CONV_QUADS as u64),
        Kernel::ConvGrouped => rh * rw.div_ceil(ppi) * o.c as u64,
        Kernel::MaxPool | Kernel::Upsample => rh * rw * o.c as u64,
        Kernel::Reorg | Kernel::Shortcut => x.len() as u64,
        Kernel::AvgPool => x.c as u64,
        Kernel::Copy => x.len() as u64,
        Kernel::Softmax => match &l.kind {
            LayerKind::Softmax { groups, .. } => *groups as u64,
            _ => 1,
        },
    }
}

/// Workgroups of a copy of `elements` values (64 per workgroup, spilling from x into y).
pub fn copy_workgroups(elements: usize) -> [u32; 3] {
    let total = elements.div_ceil(64);
    let y = total.div_ceil(MAX_GROUPS_X).max(1);
    [total.div_ceil(y) as u32, y as u32, 1]
}

/// A buffer operand of a dispatch: a buffer, the byte offset of the binding, and which region of its
/// map (all channels) the binding holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Operand {
    /// Index into [`MemoryPlan::buffers`].
    pub buffer: usize,
    /// Byte offset of the binding in that buffer.
    pub offset: u64,
    /// The region of the map the binding holds (map coordinates, inclusive), stored C×H×W.
    pub holds: Region,
    /// Channels of the map (the binding holds all of them).
    pub channels: usize,
}

impl Operand {
    /// Bytes of the map region the binding holds.
    pub fn bytes(&self) -> u64 {
        4 * self.holds.len(self.channels) as u64
    }
}

/// Where a conv layer's packed weights are: buffer, byte offset, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WeightsAt {
    /// Index into [`MemoryPlan::buffers`]: the layer's own buffer, or the arena under per-group
    /// residency.
    pub buffer: usize,
    /// Byte offset in that buffer.
    pub offset: u64,
    /// Bytes of the packed weights and biases ([`conv_weight_bytes`]).
    pub bytes: u64,
}

/// One kernel dispatch: layer `layer` computes `region` of its output map (a route's copy: the whole
/// source into `dst_element` of the output).
#[derive(Debug, Clone, Serialize)]
pub struct Dispatch {
    /// The layer it computes (an index into `Network::layers`).
    pub layer: usize,
    /// The kernel it runs.
    #[serde(skip)]
    pub kernel: Kernel,
    /// The primary input: inside a fused group, the previous layer's tile buffer for every layer but
    /// the first; else a full map (a route copy: the source copied).
    pub input: Operand,
    /// The shortcut's second input.
    pub second: Option<Operand>,
    /// Where it writes: inside a fused group, a tile buffer for every layer but the last; else the
    /// layer's full map.
    pub output: Operand,
    /// The region of the layer's output it computes (output-map coordinates, inclusive; a route
    /// copy: the whole output).
    pub region: Region,
    /// Route copies: first element of the output the source lands at.
    pub dst_element: u64,
    /// Workgroup counts `[x, y, z]`.
    pub workgroups: [u32; 3],
    /// Multiply-accumulates of this dispatch (its region only).
    pub macs: u64,
}

/// One step of an execution, in order.
#[derive(Debug, Clone, Serialize)]
pub enum Step {
    /// One kernel dispatch.
    Dispatch(Dispatch),
}

/// A group of the resolved configuration and its steps.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedGroup {
    /// The group, with its grid.
    pub group: Group,
    /// Range of [`MemoryPlan::steps`].
    pub steps: std::ops::Range<usize>,
    /// Per-group residency: where the group's weights are uploaded when it starts, as (arena byte
    /// offset, bytes); `None` with resident weights or for a group without conv layers.
    pub weights_upload: Option<(u64, u64)>,
}

/// Something placed in the arena, alive from step `created` to step `last_use` (steps: 0 = the input
/// upload, g + 1 = group g).
#[derive(Debug, Clone, Serialize)]
pub struct ArenaItem {
    /// What it is, for messages (e.g. `layer 7's output`, `group 0..8:2x2 tile buffer A`).
    pub what: String,
    /// [`BufferKind::Map`], [`BufferKind::Tile`] or [`BufferKind::Weights`].
    pub kind: BufferKind,
    /// Bytes it holds.
    pub bytes: u64,
    /// Bytes it takes: `bytes` rounded up to the storage offset alignment.
    pub aligned: u64,
    /// The step that creates it.
    pub created: usize,
    /// The last step that needs it (`usize::MAX` for a map read back at the end).
    pub last_use: usize,
    /// Placed at the top (true) or the bottom (false) of the arena.
    pub top: bool,
    /// Distance in bytes from its end of the arena to its nearest byte.
    pub position: u64,
    /// Byte offset in the arena.
    pub offset: u64,
}

impl ArenaItem {
    fn overlaps(&self, o: &ArenaItem) -> bool {
        self.created <= o.last_use && o.created <= self.last_use
    }
}

/// The buffers of one execution, what lives where, and every step in order.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryPlan {
    /// How arena bytes are shared.
    pub mode: Mode,
    /// Where conv weights live.
    pub residency: Residency,
    /// The configuration as given.
    pub config: Config,
    /// The resolved groups, covering every layer in order, with their steps.
    pub groups: Vec<PlannedGroup>,
    /// Every device buffer, in allocation order; [`MemoryPlan::peak_bytes`] is their sum.
    pub buffers: Vec<BufferSpec>,
    /// Per layer: where its weights are during its group.
    pub weights: Vec<Option<WeightsAt>>,
    /// Index of the arena buffer in `buffers`.
    pub arena: usize,
    /// Everything placed in the arena, in creation order (the network input first).
    pub items: Vec<ArenaItem>,
    /// Per layer: its full output map in the arena (None for CPU heads and layers inside a fused
    /// group other than its last).
    pub maps: Vec<Option<Operand>>,
    /// The network input map in the arena.
    pub input: Operand,
    /// Index of the uniform buffer of every dispatch's parameters (one block per dispatch, in step
    /// order); `None` when nothing is dispatched.
    pub params: Option<usize>,
    /// Bytes between two parameter blocks: [`PARAMS_BYTES`] rounded up to the uniform offset
    /// alignment.
    pub params_stride: u64,
    /// Every step, in execution order.
    pub steps: Vec<Step>,
    /// Index of the upload staging buffer in `buffers`.
    pub upload: usize,
    /// Index of the readback staging buffer in `buffers`.
    pub readback: usize,
    /// Indices of the timestamp resolve and readback buffers, when the device records timestamps
    /// (each holds two 8-byte timestamps per group with dispatches).
    pub timestamps: Option<(usize, usize)>,
    /// Maps read back at the end (sources of the network outputs; heads run on the CPU).
    pub read_back: Vec<Source>,
    /// The most arena bytes (aligned) alive at once.
    pub live_peak: u64,
    /// The step where `live_peak` is reached (the earliest, on a tie).
    pub live_peak_step: usize,
    /// Multiply-accumulates computed over every dispatch (with tiling: halo work included).
    pub macs: u64,
}

/// The predicted peak and what it is made of at that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryBreakdown {
    /// The predicted peak device bytes: every buffer of the plan ([`MemoryPlan::peak_bytes`]).
    pub peak_bytes: u64,
    /// Conv weights: resident buffers, plus the current group's weights in the arena.
    pub weights: u64,
    /// Full maps alive at the peak (group inputs and outputs).
    pub maps: u64,
    /// Tile buffers of the group running at the peak.
    pub tiles: u64,
    /// The uniform parameter buffer.
    pub params: u64,
    /// Upload/readback staging and timestamp buffers.
    pub staging: u64,
    /// Rounding of arena items up to the storage offset alignment, at the peak.
    pub alignment_padding: u64,
    /// Arena bytes not used at the peak moment (needed at other moments by a non-chain layout).
    pub arena_slack: u64,
    /// The largest single item and its bytes.
    pub biggest: (String, u64),
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

    /// The arena operand of a source map.
    pub fn map_of(&self, s: Source) -> Operand {
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
        self.steps.iter().map(|s| match s {
            Step::Dispatch(d) => d,
        })
    }

    /// Groups that dispatch kernels (each is one compute pass, timed as one).
    pub fn timed_groups(&self) -> usize {
        self.groups.iter().filter(|g| !g.steps.is_empty()).count()
    }

    /// What the peak is made of, at the moment the arena is fullest.
    pub fn breakdown(&self) -> MemoryBreakdown {
        let t = self.live_peak_step;
        let live: Vec<&ArenaItem> = self
            .items
            .iter()
            .filter(|i| i.created <= t && t <= i.last_use)
            .collect();
        let sum =
            |k: BufferKind| -> u64 { live.iter().filter(|i| i.kind == k).map(|i| i.bytes).sum() };
        let arena = self.buffers[self.arena].size;
        let biggest = self
            .buffers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != self.arena)
            .map(|(_, b)| (b.label.clone(), b.size))
            .chain(self.items.iter().map(|i| (i.what.clone(), i.aligned)))
            .max_by_key(|b| b.1)
            .unwrap_or_default();
        MemoryBreakdown {
            peak_bytes: self.peak_bytes(),
            weights: self.bytes_of(BufferKind::Weights) + sum(BufferKind::Weights),
            maps: sum(BufferKind::Map),
            tiles: sum(BufferKind::Tile),
            params: self.bytes_of(BufferKind::Params),
            staging: self.bytes_of(BufferKind::Staging),
            alignment_padding: live.iter().map(|i| i.aligned - i.bytes).sum(),
            arena_slack: arena - self.live_peak,
            biggest,
        }
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
    // Layer::macs is a per-pixel constant × pixels.
    l.macs() / pixels.max(1) * (region.height() * region.width()) as u64
}

/// Plan an untiled execution of `net` in `mode` (every layer its own group, weights resident).
pub fn plan_untiled(net: &Network, mode: Mode, limits: &DeviceLimits) -> Result<MemoryPlan> {
    plan(net, &Config::untiled(), mode, limits)
}

/// Plan the execution of `net` under `config` with all weights resident.
pub fn plan(
    net: &Network,
    config: &Config,
    mode: Mode,
    limits: &DeviceLimits,
) -> Result<MemoryPlan> {
    plan_with(net, config, mode, Residency::Resident, limits)
}

/// Byte alignment of arena items (storage-binding offsets).
pub fn arena_alignment(limits: &DeviceLimits) -> u64 {
    limits.min_storage_buffer_offset_alignment.max(4)
}

/// Plan the execution of `net` under `config`. With [`Mode::Layerwise`] arena space is reused by
/// liveness; with [`Mode::Naive`] no two items share bytes.
pub fn plan_with(
    net: &Network,
    config: &Config,
    mode: Mode,
    residency: Residency,
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
    let align = arena_alignment(limits);
    let up = |b: u64| b.next_multiple_of(align);
    let mut buffers: Vec<BufferSpec> = Vec::new();

    // Resident weights: one buffer per conv layer.
    let mut weights: Vec<Option<WeightsAt>> = vec![None; n];
    if residency == Residency::Resident {
        for (i, w) in weights.iter_mut().enumerate() {
            if let LayerKind::Conv(_) = net.layers[i].kind {
                let bytes = conv_weight_bytes(net, i);
                *w = Some(WeightsAt {
                    buffer: add_buffer(
                        &mut buffers,
                        &format!("layer {i} weights"),
                        BufferKind::Weights,
                        bytes,
                    ),
                    offset: 0,
                    bytes,
                });
            }
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

    // Arena items in creation order: the input, then per group its output map, tile buffers and
    // (per-group residency) weights. Lifetimes first, placement after.
    let read_back = read_back_sources(net);
    let mut items: Vec<ArenaItem> = Vec::new();
    let new_item = |what: String, kind: BufferKind, bytes: u64, t: usize| ArenaItem {
        what,
        kind,
        bytes,
        aligned: up(bytes),
        created: t,
        last_use: t,
        top: false,
        position: 0,
        offset: 0,
    };
    let mut item_of_map = std::collections::HashMap::new();
    item_of_map.insert(Source::Input, 0usize);
    items.push(new_item(
        "the input".into(),
        BufferKind::Map,
        net.input.bytes(),
        0,
    ));
    // Per group: its tile items (A, B) and its weights item; the layers' offsets inside the latter.
    let mut tile_items: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    let mut weight_items: Vec<Option<usize>> = vec![None; groups.len()];
    let mut weight_offsets: Vec<Option<u64>> = vec![None; n];
    // The side each item goes on is decided at placement; remember each group's primary input.
    let mut primary_input: Vec<usize> = Vec::with_capacity(groups.len());
    for (gi, g) in groups.iter().enumerate() {
        let t = gi + 1;
        let first_src = net
            .sources(g.start)
            .first()
            .copied()
            .unwrap_or(Source::Input);
        primary_input.push(*item_of_map.get(&first_src).unwrap_or(&0));
        let last = g.last();
        if gpu_op(&net.layers[last].kind) != GpuOp::CpuHead {
            item_of_map.insert(Source::Layer(last), items.len());
            items.push(new_item(
                format!("layer {last}'s output"),
                BufferKind::Map,
                net.layers[last].output.bytes(),
                t,
            ));
        }
        // Ping-pong: layers start, start+2, … write tile buffer A; start+1, … buffer B (the last
        // layer writes the group's output map).
        for parity in 0..2 {
            let bytes = (g.start..last)
                .filter(|i| (i - g.start) % 2 == parity)
                .flat_map(|i| {
                    let c = net.layers[i].output.c;
                    traces[gi]
                        .iter()
                        .map(move |tr| 4 * tr[i - g.start].len(c) as u64)
                })
                .max();
            if let Some(bytes) = bytes {
                tile_items[gi].push(items.len());
                items.push(new_item(
                    format!("group {g} tile buffer {}", ["A", "B"][parity]),
                    BufferKind::Tile,
                    bytes,
                    t,
                ));
            }
        }
        if residency == Residency::PerGroup {
            let mut off = 0u64;
            for (i, at) in weight_offsets
                .iter_mut()
                .enumerate()
                .take(g.end)
                .skip(g.start)
            {
                if let LayerKind::Conv(_) = net.layers[i].kind {
                    *at = Some(off);
                    off += up(conv_weight_bytes(net, i));
                }
            }
            if off > 0 {
                weight_items[gi] = Some(items.len());
                items.push(new_item(
                    format!("group {g} weights"),
                    BufferKind::Weights,
                    off,
                    t,
                ));
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
    }
    for s in &read_back {
        items[item_of_map[s]].last_use = usize::MAX;
    }
    let binding_limit = limits.max_storage_buffer_binding_size;
    for it in &items {
        if it.bytes > binding_limit {
            let fix = match it.kind {
                BufferKind::Tile => "use a finer grid for that group",
                BufferKind::Weights => "use smaller groups",
                _ => {
                    "end a tiled group elsewhere so this map stays inside it, or use a smaller --size"
                }
            };
            return Err(Error::DeviceLimit(format!(
                "{} needs {} bytes, past the adapter's max_storage_buffer_binding_size of {binding_limit} bytes; {fix}",
                it.what, it.bytes
            )));
        }
    }

    // Two-ended placement, in creation order.
    let mut group_of_item = vec![usize::MAX; items.len()];
    for (gi, g) in groups.iter().enumerate() {
        if let Some(&it) = item_of_map.get(&Source::Layer(g.last())) {
            group_of_item[it] = gi;
        }
        for &it in tile_items[gi].iter().chain(weight_items[gi].iter()) {
            group_of_item[it] = gi;
        }
    }
    for k in 0..items.len() {
        let top = match (k, group_of_item[k]) {
            (0, _) => false,
            (_, gi) if gi == usize::MAX => false,
            (_, gi) => {
                let input_top = items[primary_input[gi]].top;
                if items[k].kind == BufferKind::Map {
                    !input_top
                } else {
                    input_top
                }
            }
        };
        let mut taken: Vec<(u64, u64)> = items[..k]
            .iter()
            .filter(|o| o.top == top && (mode == Mode::Naive || o.overlaps(&items[k])))
            .map(|o| (o.position, o.position + o.aligned))
            .collect();
        taken.sort();
        let mut pos = 0u64;
        for (a, b) in taken {
            if pos + items[k].aligned <= a {
                break;
            }
            pos = pos.max(b);
        }
        items[k].top = top;
        items[k].position = pos;
    }
    // The arena: the largest bottom extent + top extent at any moment.
    let mut moments: Vec<usize> = items.iter().map(|i| i.created).collect();
    moments.sort();
    moments.dedup();
    let extent = |t: usize, top: bool| -> u64 {
        items
            .iter()
            .filter(|i| i.top == top && i.created <= t && t <= i.last_use)
            .map(|i| i.position + i.aligned)
            .max()
            .unwrap_or(0)
    };
    let arena_bytes = match mode {
        // Naive: nothing shares bytes, every item on its own side's stack for good.
        Mode::Naive => {
            items
                .iter()
                .filter(|i| !i.top)
                .map(|i| i.position + i.aligned)
                .max()
                .unwrap_or(0)
                + items
                    .iter()
                    .filter(|i| i.top)
                    .map(|i| i.position + i.aligned)
                    .max()
                    .unwrap_or(0)
        }
        Mode::Layerwise => moments
            .iter()
            .map(|&t| extent(t, false) + extent(t, true))
            .max()
            .unwrap_or(0),
    };
    let (live_peak, live_peak_step) = moments
        .iter()
        .map(|&t| {
            let live: u64 = items
                .iter()
                .filter(|i| i.created <= t && t <= i.last_use)
                .map(|i| i.aligned)
                .sum();
            (live, t)
        })
        .max_by_key(|&(live, t)| (live, std::cmp::Reverse(t)))
        .unwrap_or((0, 0));
    for it in items.iter_mut() {
        it.offset = if it.top {
            arena_bytes - it.position - it.aligned
        } else {
            it.position
        };
    }
    if arena_bytes > limits.max_buffer_size {
        return Err(Error::DeviceLimit(format!(
            "the feature-map arena needs {arena_bytes} bytes, past the adapter's max_buffer_size of {} bytes; tile more finely or use a smaller --size",
            limits.max_buffer_size
        )));
    }
    let arena = add_buffer(
        &mut buffers,
        "feature-map arena",
        BufferKind::Arena,
        arena_bytes.max(4),
    );
    if residency == Residency::PerGroup {
        for (gi, g) in groups.iter().enumerate() {
            if let Some(it) = weight_items[gi] {
                for i in g.start..g.end {
                    if let Some(off) = weight_offsets[i] {
                        weights[i] = Some(WeightsAt {
                            buffer: arena,
                            offset: items[it].offset + off,
                            bytes: conv_weight_bytes(net, i),
                        });
                    }
                }
            }
        }
    }
    let operand_of = |it: usize, shape: crate::network::Shape, holds: Region| Operand {
        buffer: arena,
        offset: items[it].offset,
        holds,
        channels: shape.c,
    };
    let mut maps: Vec<Option<Operand>> = vec![None; n];
    for (s, &it) in &item_of_map {
        if let Source::Layer(l) = s {
            let o = net.layers[*l].output;
            maps[*l] = Some(operand_of(it, o, Region::full(o.h, o.w)));
        }
    }
    let input = operand_of(0, net.input, Region::full(net.input.h, net.input.w));
    let map_operand = |s: Source| match s {
        Source::Input => input,
        Source::Layer(l) => maps[l].expect("group outputs have maps"),
    };

    // Steps, group by group (and tile by tile inside fused groups).
    let mut steps: Vec<Step> = Vec::new();
    let mut planned = Vec::with_capacity(groups.len());
    for (gi, g) in groups.iter().enumerate() {
        let first_step = steps.len();
        let tile_at = |k: usize, holds: Region, c: usize| Operand {
            buffer: arena,
            offset: items[tile_items[gi][k]].offset,
            holds,
            channels: c,
        };
        let l = &net.layers[g.start];
        match gpu_op(&l.kind) {
            GpuOp::CpuHead => {}
            GpuOp::Dispatch(Kernel::Copy) => {
                let i = g.start;
                let out = map_operand(Source::Layer(i));
                let mut dst = 0u64;
                for s in net.sources(i) {
                    let src = map_operand(s);
                    let elements = src.holds.len(src.channels);
                    steps.push(Step::Dispatch(Dispatch {
                        layer: i,
                        kernel: Kernel::Copy,
                        input: src,
                        second: None,
                        output: out,
                        region: out.holds,
                        dst_element: dst,
                        workgroups: copy_workgroups(elements),
                        macs: 0,
                    }));
                    dst += elements as u64;
                }
            }
            GpuOp::Dispatch(kernel)
                if g.is_fused() || matches!(l.kind, LayerKind::Conv(_) | LayerKind::MaxPool(_)) =>
            {
                let _ = kernel;
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
                            tile_at((k - 1) % 2, produced[k - 1], l.input.c)
                        };
                        let output = if i == g.last() {
                            map_operand(Source::Layer(i))
                        } else {
                            tile_at(k % 2, produced[k], l.output.c)
                        };
                        let region = produced[k];
                        steps.push(Step::Dispatch(Dispatch {
                            layer: i,
                            kernel,
                            input,
                            second: None,
                            output,
                            region,
                            dst_element: 0,
                            workgroups: workgroups(net, i, kernel, region),
                            macs: region_macs(net, i, region),
                        }));
                    }
                }
            }
            GpuOp::Dispatch(kernel) => {
                let i = g.start;
                let srcs = net.sources(i);
                let region = Region::full(l.output.h, l.output.w);
                steps.push(Step::Dispatch(Dispatch {
                    layer: i,
                    kernel,
                    input: map_operand(srcs[0]),
                    second: (kernel == Kernel::Shortcut).then(|| map_operand(srcs[1])),
                    output: map_operand(Source::Layer(i)),
                    region,
                    dst_element: 0,
                    workgroups: workgroups(net, i, kernel, region),
                    macs: region_macs(net, i, region),
                }));
            }
        }
        planned.push(PlannedGroup {
            group: *g,
            steps: first_step..steps.len(),
            weights_upload: weight_items[gi].map(|it| (items[it].offset, items[it].bytes)),
        });
    }
    let mut n_dispatch = 0u64;
    let mut macs = 0u64;
    for Step::Dispatch(d) in &steps {
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
    // (The parameter block goes through it in chunks too; it does not size it, so staging does not
    // depend on the configuration.)
    let largest_upload = (0..n)
        .map(|i| conv_weight_bytes(net, i))
        .chain(std::iter::once(net.input.bytes()))
        .max()
        .unwrap_or(4)
        .max(4);
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
        residency,
        config: config.clone(),
        groups: planned,
        buffers,
        weights,
        arena,
        items,
        maps,
        input,
        params,
        params_stride,
        steps,
        upload,
        readback,
        timestamps: None,
        read_back,
        live_peak,
        live_peak_step,
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

/// The memory predictor: the peak device bytes `config` needs on `net` (input size included in the
/// network) under `residency` and the adapter's `limits`, and what that peak is made of — computed
/// without touching the GPU, from the same plan the executor allocates.
pub fn predict(
    net: &Network,
    config: &Config,
    residency: Residency,
    limits: &DeviceLimits,
) -> Result<MemoryBreakdown> {
    Ok(plan_with(net, config, Mode::Layerwise, residency, limits)?.breakdown())
}
