//! The memory plan: every device buffer an execution needs, what lives where in the arena and when,
//! and every dispatch in order — the planner's output ([`crate::plan::Planner::plan`]), computed
//! without touching the GPU.
//!
//! The executor allocates exactly the buffers listed here, once, and keeps them for every run; the
//! pool's peak equals [`MemoryPlan::peak_bytes`] by construction. (That equality is bookkeeping, not a
//! check: the arena checker in the tests, wgpu's allocator report and the process's RSS are the
//! independent ones.)
//!
//! Buffers: the weights (one buffer per conv layer when all weights stay resident), one **arena** that
//! holds every feature map, tile buffer and (with per-group residency) the current group's weights at
//! offsets, the uniform parameter buffer, and the upload, readback and timestamp buffers.

use crate::kernel::{KernelRef, Op, View, Work};
use crate::network::{Network, Source};
use crate::plan::config::{Config, Group};
use crate::region::Region;
use serde::{Deserialize, Serialize};

/// How arena bytes are shared between items (the untiled baselines use both; mafat's own plans use
/// [`Mode::Layerwise`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Liveness reuse: an item's arena bytes are reused once its last reader has run.
    Layerwise,
    /// No two arena items share bytes: every map (and tile buffer) keeps its own for the whole run.
    Naive,
}

impl Mode {
    /// The name the CLI and JSON use (`layerwise`, `naive`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Layerwise => "layerwise",
            Mode::Naive => "naive",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "layerwise" => Ok(Mode::Layerwise),
            "naive" => Ok(Mode::Naive),
            _ => Err(crate::Error::Usage(format!(
                "mode `{}`: expected layerwise or naive",
                crate::units::prefix(s)
            ))),
        }
    }
}

/// Where conv weights live during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Residency {
    /// Every layer's weights in its own buffer, uploaded once, resident for every run.
    Resident,
    /// Each group's weights uploaded into the arena when the group starts; the space is reused after
    /// it (smaller peaks, one weight upload per group per inference).
    PerGroup,
}

impl Residency {
    /// Both residencies, resident first.
    pub const BOTH: [Residency; 2] = [Residency::Resident, Residency::PerGroup];

    /// The name the CLI and JSON use (`resident`, `per-group`).
    pub fn as_str(self) -> &'static str {
        match self {
            Residency::Resident => "resident",
            Residency::PerGroup => "per-group",
        }
    }
}

impl std::str::FromStr for Residency {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "resident" => Ok(Residency::Resident),
            "per-group" => Ok(Residency::PerGroup),
            _ => Err(crate::Error::Usage(format!(
                "residency `{}`: expected resident or per-group",
                crate::units::prefix(s)
            ))),
        }
    }
}

/// What a device buffer is for (the executor derives its usages from this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BufferKind {
    /// One conv layer's resident weights and biases.
    Weights,
    /// The arena of maps, tile buffers and per-group weights.
    Arena,
    /// The uniform buffer of every dispatch's parameters.
    Params,
    /// Staging for uploads (weights, parameters, the input), written by the host.
    Upload,
    /// Staging for readback (outputs), read by the host.
    Readback,
    /// Where timestamp queries are resolved.
    TimestampResolve,
    /// Staging for reading the resolved timestamps.
    TimestampReadback,
}

impl BufferKind {
    /// Upload, readback and timestamp buffers: what the breakdown counts as staging.
    pub fn is_staging(self) -> bool {
        matches!(
            self,
            BufferKind::Upload
                | BufferKind::Readback
                | BufferKind::TimestampResolve
                | BufferKind::TimestampReadback
        )
    }
}

/// What an arena item holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// A full feature map (the network input, group outputs).
    Map,
    /// A tile buffer of a fused group.
    Tile,
    /// A group's weights under per-group residency.
    Weights,
    /// Scratch space of a group's kernels ([`crate::kernel::Kernel::workspace`]).
    Workspace,
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
    /// Bytes of one stored element: the plan's precision for maps and tiles, 4 for workspace.
    pub element_bytes: u64,
}

impl Operand {
    /// What the binding holds, as a kernel sees it.
    pub fn view(&self) -> View {
        View {
            holds: self.holds,
            channels: self.channels,
        }
    }
    /// Bytes of the map region the binding holds.
    pub fn bytes(&self) -> u64 {
        self.view().elements() as u64 * self.element_bytes
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
    /// Bytes of the packed weights and biases (the kernel's [`crate::kernel::Kernel::weight_bytes`]).
    pub bytes: u64,
}

/// One kernel dispatch: layer `layer` computes `region` of its output map (a route's copy: the whole
/// source into `dst_element` of the output).
#[derive(Debug, Clone, Serialize)]
pub struct Dispatch {
    /// The layer it computes (an index into `Network::layers`).
    pub layer: usize,
    /// The kernel it runs.
    pub kernel: KernelRef,
    /// Which of the kernel's stages (0 for single-stage kernels): a work is dispatched once per
    /// stage, in order.
    pub stage: usize,
    /// The primary input: inside a fused group, the previous layer's tile buffer for every layer but
    /// the first; else a full map (a route copy: the source copied).
    pub input: Operand,
    /// The shortcut's second input.
    pub second: Option<Operand>,
    /// The kernel's workspace buffers, in its order.
    pub workspace: Vec<Operand>,
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
    /// Multiply-accumulates of this dispatch's region, as a direct convolution counts them (on the
    /// first stage of a work only).
    pub macs: u64,
}

impl Dispatch {
    /// The dispatch as its kernel sees it.
    pub fn work<'a>(&self, net: &'a Network) -> Work<'a> {
        Work {
            net,
            layer: self.layer,
            input: self.input.view(),
            second: self.second.map(|s| s.view()),
            output: self.output.view(),
            region: self.region,
            dst_element: self.dst_element,
        }
    }

    /// Working invocations of the work it belongs to (the cost model's measure of its size),
    /// counted on its first stage only (0 for the others).
    pub fn invocations(&self, net: &Network) -> u64 {
        match self.stage {
            0 => self.kernel.invocations(&self.work(net)),
            _ => 0,
        }
    }
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
    /// What it holds.
    pub kind: ItemKind,
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
    /// Whether it is alive at step `t`.
    pub fn alive_at(&self, t: usize) -> bool {
        self.created <= t && t <= self.last_use
    }
    /// Whether its lifetime overlaps `o`'s.
    pub fn overlaps(&self, o: &ArenaItem) -> bool {
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
    /// How each layer runs: its kernel, or the CPU for a detection head.
    pub ops: Vec<Op>,
    /// How maps and weights are stored.
    pub precision: crate::precision::Precision,
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
    /// Bytes between two parameter blocks: [`crate::kernel::PARAMS_BYTES`] rounded up to the uniform
    /// offset alignment.
    pub params_stride: u64,
    /// Every dispatch, in execution order.
    pub steps: Vec<Dispatch>,
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

    /// The arena operand of a source map (`None` for a map that exists only inside a fused group).
    pub fn map_of(&self, s: Source) -> Option<Operand> {
        match s {
            Source::Input => Some(self.input),
            Source::Layer(l) => self.maps[l],
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
        self.steps.iter()
    }

    /// Works (a layer over one tile, or a route's copy of one source): the first stage of each.
    pub fn works(&self) -> impl Iterator<Item = &Dispatch> {
        self.steps.iter().filter(|d| d.stage == 0)
    }

    /// Groups that dispatch kernels (each is one compute pass, timed as one).
    pub fn timed_groups(&self) -> usize {
        self.groups.iter().filter(|g| !g.steps.is_empty()).count()
    }

    /// What the peak is made of, at the moment the arena is fullest.
    pub fn breakdown(&self) -> MemoryBreakdown {
        let t = self.live_peak_step;
        let live: Vec<&ArenaItem> = self.items.iter().filter(|i| i.alive_at(t)).collect();
        let sum =
            |k: ItemKind| -> u64 { live.iter().filter(|i| i.kind == k).map(|i| i.bytes).sum() };
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
            weights: self.bytes_of(BufferKind::Weights) + sum(ItemKind::Weights),
            maps: sum(ItemKind::Map),
            tiles: sum(ItemKind::Tile),
            params: self.bytes_of(BufferKind::Params),
            staging: self
                .buffers
                .iter()
                .filter(|b| b.kind.is_staging())
                .map(|b| b.size)
                .sum(),
            alignment_padding: live.iter().map(|i| i.aligned - i.bytes).sum(),
            arena_slack: arena.saturating_sub(self.live_peak),
            biggest,
        }
    }
}

/// Multiply-accumulates of layer `i` computing `region` of its output.
pub fn region_macs(net: &Network, i: usize, region: Region) -> u64 {
    let l = &net.layers[i];
    let pixels = (l.output.h * l.output.w) as u64;
    // Layer::macs is a per-pixel constant × pixels.
    l.macs() / pixels.max(1) * (region.height() * region.width()) as u64
}
