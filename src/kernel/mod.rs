//! Kernels, device-free: one file per operation (and, later, per variant), each owning everything
//! specific to it — its WGSL (the file in `shaders/` with the same stem, or its generator), workgroup
//! size, workgroups and working invocations for a dispatch, the parameter block it reads, its
//! bindings, and the layout, packing and bytes of its weights.
//!
//! The planner ([`crate::plan`]) asks a kernel what a dispatch needs; the GPU side
//! ([`crate::gpu`]) compiles its WGSL, fills its parameter block and binds its buffers. Neither knows
//! any kernel by name: adding a variant is one new file here (and its shader) plus one line in
//! [`REGISTRY`].
//!
//! Which kernel runs a layer is [`select`]'s answer: the first kernel of [`REGISTRY`] that supports
//! the layer (the registry is in order of preference). Detection heads run on the CPU after readback.

/// The methods of a kernel that computes one output element per invocation over the work's region,
/// in 8×8 workgroups with z over the channels, binding only its input and output
/// ([`region_grid`], [`region_elements`], [`PLAIN_BINDINGS`]): pools, resizes, slices, pads.
macro_rules! one_per_output_element {
    () => {
        fn workgroup_size(&self, _entry: usize) -> [u32; 3] {
            [8, 8, 1]
        }

        fn workgroups(&self, w: &Work<'_>, _stage: usize) -> [u32; 3] {
            region_grid(w)
        }

        fn invocations(&self, w: &Work<'_>) -> u64 {
            region_elements(w)
        }

        fn bindings(&self, _entry: usize) -> &'static [Binding] {
            PLAIN_BINDINGS
        }
    };
}

mod avgpool;
mod avgpool_window;
pub mod conv2d;
mod conv2d_1x1;
mod conv2d_gemm;
mod conv2d_grouped;
pub mod conv2d_winograd;
mod copy;
mod maxpool;
mod maxpool_2x2;
mod pad;
pub mod params;
mod reorg;
mod scale_channels;
mod shortcut;
mod slice;
mod softmax;
mod transpose;
mod upsample;

use crate::error::{Error, Result};
use crate::model::weights::ConvParams;
use crate::network::{LayerKind, Network, Source};
pub use crate::precision::Precision;
use crate::region::Region;
pub use params::{PARAMS_BYTES, Params, act_code};
use serde::Serialize;
use std::fmt;

/// Every kernel, in order of preference: [`select`] gives a layer the first that supports it.
pub static REGISTRY: &[&dyn Kernel] = &[
    &conv2d::Conv2d {
        name: "conv2d",
        blocking: conv2d::Blocking {
            quads: 8,
            pixels: 8,
        },
    },
    &conv2d::Conv2d {
        name: "conv2d_q4p8",
        blocking: conv2d::Blocking {
            quads: 4,
            pixels: 8,
        },
    },
    &conv2d_gemm::Conv2dGemm,
    &conv2d_1x1::Conv1x1 {
        name: "conv2d_1x1",
        blocking: conv2d::Blocking {
            quads: 8,
            pixels: 8,
        },
    },
    &conv2d_winograd::Conv2dWinograd {
        name: "conv2d_winograd",
        m: 2,
        blocking: conv2d_winograd::Blocking { tiles: 8, quads: 8 },
    },
    &conv2d_winograd::Conv2dWinograd {
        name: "conv2d_winograd4",
        m: 4,
        blocking: conv2d_winograd::Blocking { tiles: 8, quads: 8 },
    },
    &conv2d_grouped::Conv2dGrouped,
    &maxpool_2x2::MaxPool2x2,
    &maxpool::MaxPool,
    &avgpool::AvgPool,
    &avgpool_window::AvgPoolWindow,
    &upsample::Upsample,
    &reorg::Reorg,
    &shortcut::Shortcut,
    &scale_channels::ScaleChannels,
    &slice::Slice,
    &pad::Pad,
    &transpose::Transpose,
    &softmax::Softmax,
    &copy::Copy,
];

/// Revision of the kernels' host side (dispatch geometry, bands, weight layouts): bump it when
/// that changes without a shader changing, so that cached calibrations and kernel choices, keyed
/// by it and by the kernels' WGSL, are measured again.
pub const REVISION: u32 = 1;

/// The WGSL every kernel is prefixed with: the [`Params`] block, activations, `mexp`.
pub const PRELUDE: &str = include_str!("../../shaders/common.wgsl");

/// Workgroups along x before a dispatch numbered linearly spills over into y (WebGPU's guaranteed
/// minimum of `max_compute_workgroups_per_dimension`).
pub const MAX_GROUPS_X: usize = 65535;

/// Subgroups must have at least this many lanes for the kernels' subgroup paths (the register-tiled
/// conv shares one filter quad's weights per lane across up to [`conv2d::MAX_QUADS`] lanes).
pub const MIN_SUBGROUP_LANES: u32 = conv2d::MAX_QUADS as u32;

/// Device features a kernel's WGSL may use (filled by the GPU side from the adapter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ShaderCaps {
    /// Subgroup operations with subgroups of at least 8 lanes.
    pub subgroups: bool,
    /// Workgroup memory is faster than storage buffers (a GPU; not a CPU rasterizer such as
    /// lavapipe, where it costs the same and barriers switch coroutines).
    pub fast_workgroup_memory: bool,
}

/// Pipeline-overridable constants by name (see [`Kernel::constants`]).
pub type Constants = Vec<(&'static str, u32)>;

/// `ACT`, the activation code of work `w`'s layer ([`act_code`]): the constants of a kernel whose
/// WGSL declares `override ACT: u32` and applies `activate(x, ACT)`.
pub fn activation_constant(w: &Work<'_>) -> Constants {
    let act = match &w.net.layers[w.layer].kind {
        LayerKind::Conv(c) => c.activation,
        LayerKind::Shortcut { activation, .. } => *activation,
        _ => return Vec::new(),
    };
    let mut constants = vec![("ACT", act_code(act))];
    // A parameterized activation's parameters, as f32 bits (`bitcast` in `activate`).
    if let [a, b] = params::act_params(act)
        && (a, b) != (0, 0)
    {
        constants.push(("ACT_A", a));
        constants.push(("ACT_B", b));
    }
    constants
}

/// What a binding of a kernel's bind group 0 receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The dispatch's parameter block (a uniform binding).
    Params,
    /// The primary input map (or the region of it the input buffer holds).
    Input,
    /// The second input (a shortcut's `from` map).
    Second,
    /// The layer's packed weights.
    Weights,
    /// The output map (or tile buffer).
    Output,
    /// Workspace buffer `k` of the work ([`Kernel::workspace`]).
    Workspace(u8),
}

/// One binding: its number in `@group(0)` and what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// `@binding(n)` in the shader.
    pub binding: u32,
    /// What is bound there.
    pub slot: Slot,
}

/// Binding `binding` receives `slot`.
pub const fn bind(binding: u32, slot: Slot) -> Binding {
    Binding { binding, slot }
}

/// `[(0, Params), (1, Input), (3, Output)]`: what every kernel without weights or a second input
/// binds.
pub const PLAIN_BINDINGS: &[Binding] = &[
    bind(0, Slot::Params),
    bind(1, Slot::Input),
    bind(3, Slot::Output),
];

/// What part of a map a binding holds: a region, over every channel, stored C×H×W.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct View {
    /// The region of the map held (map coordinates, inclusive).
    pub holds: Region,
    /// Channels of the map (the binding holds all of them).
    pub channels: usize,
}

impl View {
    /// The whole map of `shape`.
    pub fn full(shape: crate::network::Shape) -> Self {
        View {
            holds: Region::full(shape.h, shape.w),
            channels: shape.c,
        }
    }
    /// f32 elements held.
    pub fn elements(&self) -> usize {
        self.holds.len(self.channels)
    }
    /// Bytes held (f32).
    pub fn bytes(&self) -> u64 {
        4 * self.elements() as u64
    }
}

/// One dispatch as its kernel sees it: which layer, the regions its bindings hold and the region of
/// the output it computes.
#[derive(Debug, Clone, Copy)]
pub struct Work<'a> {
    /// The network.
    pub net: &'a Network,
    /// The layer computed.
    pub layer: usize,
    /// What the primary input binding holds.
    pub input: View,
    /// What the second input binding holds (a shortcut's `from`).
    pub second: Option<View>,
    /// What the output binding holds.
    pub output: View,
    /// The region of the layer's output computed (a copy: the whole output).
    pub region: Region,
    /// Kernels that run once per source ([`Kernel::per_source`]): the first output element this
    /// source lands at.
    pub dst_element: u64,
}

impl<'a> Work<'a> {
    /// The dispatches of layer `layer` of `net` run untiled on `kernel`: whole maps in and out; a
    /// per-source kernel gets one dispatch per source, each at its channel offset.
    pub fn untiled(net: &'a Network, layer: usize, kernel: KernelRef) -> Vec<Work<'a>> {
        let l = &net.layers[layer];
        let output = View::full(l.output);
        let region = output.holds;
        let sources = net.sources(layer);
        let view = |s: Source| View::full(net.shape_of(s));
        if kernel.per_source() {
            let mut dst = 0u64;
            return sources
                .into_iter()
                .map(|s| {
                    let input = view(s);
                    let w = Work {
                        net,
                        layer,
                        input,
                        second: None,
                        output,
                        region,
                        dst_element: dst,
                    };
                    dst += input.elements() as u64;
                    w
                })
                .collect();
        }
        vec![Work {
            net,
            layer,
            input: view(sources[0]),
            second: sources.get(1).map(|&s| view(s)),
            output,
            region,
            dst_element: 0,
        }]
    }

    /// A dispatch of a tile of a fused group: it reads `input` (the previous layer's tile buffer, or
    /// the group's input map), computes `region` of the layer's output into `output`.
    pub fn tile(net: &'a Network, layer: usize, input: View, output: View, region: Region) -> Self {
        Work {
            net,
            layer,
            input,
            second: None,
            output,
            region,
            dst_element: 0,
        }
    }
}

/// One kernel: everything a plan and an executor need to know about it (see the module docs).
/// Implementations are unit structs (or constant instances of a parameterized struct) listed in
/// [`REGISTRY`].
///
/// A kernel may run a work in several **stages** (dispatches, in order: e.g. a Winograd
/// convolution's input transform, product and output transform, band after band), each running
/// one of its WGSL module's entry points, and may need **workspace**: scratch buffers that live in
/// the arena while its group runs, bound as [`Slot::Workspace`].
pub trait Kernel: Send + Sync + 'static {
    /// Short name (`conv2d`, `maxpool`, ...): the stem of its shader file, the label of its shader
    /// module and pipeline, and how reports and `--kernel` name it.
    fn name(&self) -> &'static str;

    /// Whether it can compute layer `layer` of `net`.
    fn supports(&self, net: &Network, layer: usize) -> bool;

    /// Its WGSL, without the [`PRELUDE`], for a device with `caps`.
    fn wgsl(&self, caps: ShaderCaps) -> String;

    /// Its entry points (one compute pipeline each); `["main"]` for most kernels.
    fn entry_points(&self) -> &'static [&'static str] {
        &["main"]
    }

    /// Dispatches of work `w`, in order (1 for most kernels).
    fn stages(&self, _w: &Work<'_>) -> usize {
        1
    }

    /// Which of [`Kernel::entry_points`] stage `stage` of work `w` runs (a kernel may keep a
    /// general entry point beside a faster one for the works it suits, such as aligned rows).
    fn entry(&self, _w: &Work<'_>, _stage: usize) -> usize {
        0
    }

    /// `@workgroup_size` of entry point `entry`.
    fn workgroup_size(&self, entry: usize) -> [u32; 3];

    /// Workgroup counts `[x, y, z]` of stage `stage` of work `w`.
    fn workgroups(&self, w: &Work<'_>, stage: usize) -> [u32; 3];

    /// Invocations of work `w` that have work to do (workgroups also hold idle lanes past the
    /// region's edge), over all its stages: the cost model's measure of a work's size.
    fn invocations(&self, w: &Work<'_>) -> u64;

    /// The bind group 0 of entry point `entry`: exactly the bindings it uses.
    fn bindings(&self, entry: usize) -> &'static [Binding];

    /// The parameter block of stage `stage` of work `w` (the fields its WGSL reads).
    fn params(&self, w: &Work<'_>, stage: usize) -> Params;

    /// The region of layer `layer`'s input it reads to produce `out` of its output (the window's
    /// reach, clamped to the map; more for a kernel computing whole blocks).
    fn input_region(&self, net: &Network, layer: usize, out: Region) -> Result<Region> {
        let l = &net.layers[layer];
        crate::region::input_region(&l.kind, l.input, out)
    }

    /// Values of the pipeline-overridable constants (WGSL `override`s) of work `w`'s pipeline: a
    /// kernel specializes its shader for what is fixed per layer (`ACT`, the activation), so that
    /// a compiler folds the branches on it away — a CPU rasterizer such as lavapipe otherwise runs
    /// every branch, masked. Each distinct set is its own pipeline.
    fn constants(&self, _w: &Work<'_>) -> Constants {
        Constants::default()
    }

    /// Bytes of each workspace buffer work `w` needs ([`Slot::Workspace`] `k` is entry `k`); none
    /// for most kernels.
    fn workspace(&self, _w: &Work<'_>) -> Vec<u64> {
        Vec::new()
    }

    /// Bytes of layer `layer`'s packed weights, as [`Kernel::pack_weights`] lays them out (0 for a
    /// kernel without weights).
    fn weight_bytes(&self, _net: &Network, _layer: usize) -> u64 {
        0
    }

    /// Layer `layer`'s folded parameters packed as the kernel reads them ([`Kernel::weight_bytes`]
    /// bytes).
    fn pack_weights(&self, _net: &Network, _layer: usize, _p: &ConvParams) -> Vec<u8> {
        Vec::new()
    }

    /// Whether it is worth measuring on an adapter with `caps` (a kernel built around workgroup
    /// memory is not, where that memory is no faster than storage): the others are not
    /// candidates when kernels are chosen there (they can still be pinned).
    fn suits(&self, _caps: ShaderCaps) -> bool {
        true
    }

    /// Whether it sums in the CPU reference's order, so that it equals the reference bit for bit
    /// on any data; `false` for a kernel that reorders the arithmetic (Winograd's transforms),
    /// which equals it bit for bit only where its inputs and weights are small integers.
    fn reference_order(&self) -> bool {
        true
    }

    /// For a kernel that reorders the arithmetic, the integer its small-integer weights must be
    /// multiples of for its result to be exact (1 for most; 9 for Winograd F(4×4), whose filter
    /// transform has sixths).
    fn exact_weight_multiple(&self) -> u32 {
        1
    }

    /// Run once per source of the layer (a route's copy), each dispatch writing from its
    /// [`Work::dst_element`], instead of once over every source.
    fn per_source(&self) -> bool {
        false
    }
}

/// A kernel of the [`REGISTRY`]: copyable, compared and printed by name.
#[derive(Clone, Copy)]
pub struct KernelRef(pub &'static dyn Kernel);

impl std::ops::Deref for KernelRef {
    type Target = dyn Kernel;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for KernelRef {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for KernelRef {}

impl std::hash::Hash for KernelRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl fmt::Debug for KernelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for KernelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for KernelRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl KernelRef {
    /// Its full WGSL for maps and weights stored at `precision`: the header of the stored types
    /// (`Store`, `Store4` for maps; `Weight`, `Weight4` for weights), the prelude, then the kernel.
    pub fn source(&self, caps: ShaderCaps, precision: Precision) -> String {
        format!("{}{PRELUDE}\n{}", precision.wgsl_header(), self.wgsl(caps))
    }

    /// Bytes of layer `layer`'s packed weights stored at `precision` (before any padding to whole
    /// words).
    pub fn stored_weight_bytes(&self, net: &Network, layer: usize, precision: Precision) -> u64 {
        precision.of_f32_bytes(self.weight_bytes(net, layer))
    }
}

/// How a layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Dispatches of this kernel.
    Dispatch(KernelRef),
    /// On the CPU after readback (`[region]`/`[yolo]` detection heads).
    CpuHead,
}

impl Op {
    /// The kernel, unless the layer runs on the CPU.
    pub fn kernel(self) -> Option<KernelRef> {
        match self {
            Op::Dispatch(k) => Some(k),
            Op::CpuHead => None,
        }
    }

    /// The kernel's name, or `cpu` for a head.
    pub fn name(self) -> &'static str {
        match self {
            Op::Dispatch(k) => k.0.name(),
            Op::CpuHead => "cpu",
        }
    }
}

/// Whether layer kind `kind` is a detection head (run on the CPU after readback).
pub fn is_cpu_head(kind: &LayerKind) -> bool {
    matches!(kind, LayerKind::Region(_) | LayerKind::Yolo(_))
}

/// How layer `layer` of `net` runs: on the CPU for a detection head, else on the first kernel of
/// [`REGISTRY`] that supports it.
pub fn select(net: &Network, layer: usize) -> Result<Op> {
    let kind = &net.layers[layer].kind;
    if is_cpu_head(kind) {
        return Ok(Op::CpuHead);
    }
    REGISTRY
        .iter()
        .find(|k| k.supports(net, layer))
        .map(|&k| Op::Dispatch(KernelRef(k)))
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "layer {layer} ([{}]): no GPU kernel supports it (kernels: {})",
                kind.name(),
                REGISTRY
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Every kernel of [`REGISTRY`] that supports layer `layer` of `net`, in order of preference (none
/// for a detection head).
pub fn candidates(net: &Network, layer: usize) -> Vec<KernelRef> {
    if is_cpu_head(&net.layers[layer].kind) {
        return Vec::new();
    }
    REGISTRY
        .iter()
        .filter(|k| k.supports(net, layer))
        .map(|&k| KernelRef(k))
        .collect()
}

/// Every layer on its default kernel, except where `kernel` supports the layer: there `kernel`.
/// Fails when `kernel` supports no layer of `net`.
pub fn pinned(net: &Network, kernel: KernelRef) -> Result<Vec<Op>> {
    let mut ops = select_all(net)?;
    let mut any = false;
    for (i, op) in ops.iter_mut().enumerate() {
        if *op != Op::CpuHead && kernel.supports(net, i) {
            *op = Op::Dispatch(kernel);
            any = true;
        }
    }
    if !any {
        return Err(Error::Usage(format!(
            "kernel {} supports no layer of {}",
            kernel.name(),
            net.name
        )));
    }
    Ok(ops)
}

/// [`select`] for every layer of `net`.
pub fn select_all(net: &Network) -> Result<Vec<Op>> {
    (0..net.layers.len()).map(|i| select(net, i)).collect()
}

/// The kernel named `name`.
pub fn by_name(name: &str) -> Option<KernelRef> {
    REGISTRY
        .iter()
        .find(|k| k.name() == name)
        .map(|&k| KernelRef(k))
}

/// The kernel named `name`, or an error listing the kernels there are.
pub fn named(name: &str) -> Result<KernelRef> {
    by_name(name).ok_or_else(|| {
        Error::Usage(format!(
            "unknown kernel `{}`; the kernels are: {}",
            crate::units::prefix(name),
            REGISTRY
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// `n.div_ceil(by)` as a workgroup count.
pub(crate) fn groups_of(n: usize, by: u32) -> u32 {
    n.div_ceil(by as usize) as u32
}

/// Workgroups of `items` invocations of 64 lanes along x, numbered linearly and spilling from x into
/// y so that no dimension passes [`MAX_GROUPS_X`].
pub(crate) fn linear_workgroups(items: usize, z: u32) -> [u32; 3] {
    let total = items.div_ceil(64);
    let y = total.div_ceil(MAX_GROUPS_X).max(1);
    [total.div_ceil(y) as u32, y as u32, z]
}

/// Workgroups of 8×8 invocations over the region computed, one per output element, `z` over the
/// output channels (max pool, upsample).
pub(crate) fn region_grid(w: &Work<'_>) -> [u32; 3] {
    let o = w.net.layers[w.layer].output;
    [
        groups_of(w.region.width(), 8),
        groups_of(w.region.height(), 8),
        o.c as u32,
    ]
}

/// Output elements of the region computed.
pub(crate) fn region_elements(w: &Work<'_>) -> u64 {
    w.region.len(w.net.layers[w.layer].output.c) as u64
}

/// Workgroups of 8×8 invocations over the whole input map, one per input element, `z` over its
/// channels (reorg, shortcut).
pub(crate) fn input_grid(w: &Work<'_>) -> [u32; 3] {
    let x = w.net.layers[w.layer].input;
    [groups_of(x.w, 8), groups_of(x.h, 8), x.c as u32]
}

/// Elements of the whole input map.
pub(crate) fn input_elements(w: &Work<'_>) -> u64 {
    w.net.layers[w.layer].input.len() as u64
}

/// The shape parameters every kernel shares: the input and output maps, the regions the bindings
/// hold and the region computed.
pub(crate) fn base_params(w: &Work<'_>) -> Params {
    let l = &w.net.layers[w.layer];
    let (x, o) = (l.input, l.output);
    let (i, out, r) = (w.input.holds, w.output.holds, w.region);
    Params {
        in_c: x.c as u32,
        in_h: i.height() as u32,
        in_w: i.width() as u32,
        cin_g: x.c as u32,
        in_y0: i.y0 as i32,
        in_x0: i.x0 as i32,
        map_h: x.h as i32,
        map_w: x.w as i32,
        out_c: o.c as u32,
        out_h: out.height() as u32,
        out_w: out.width() as u32,
        out_y0: out.y0 as i32,
        out_x0: out.x0 as i32,
        ry0: r.y0 as i32,
        rx0: r.x0 as i32,
        rh: r.height() as u32,
        rw: r.width() as u32,
        alpha: 1.0,
        beta: 1.0,
        ..Params::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    #[test]
    fn every_layer_of_the_builtin_models_has_a_kernel_or_runs_on_the_cpu() {
        for name in model::builtin::NAMES {
            let net = model::load(name, None).unwrap();
            for (i, op) in select_all(&net).unwrap().into_iter().enumerate() {
                let head = is_cpu_head(&net.layers[i].kind);
                assert_eq!(op == Op::CpuHead, head, "{name} layer {i}");
            }
        }
    }

    #[test]
    fn names_are_unique_and_found() {
        let mut names: Vec<&str> = REGISTRY.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
        for n in names {
            assert_eq!(by_name(n).unwrap().name(), n);
        }
        assert!(by_name("nope").is_none());
    }

    #[test]
    fn the_params_block_covers_what_every_binding_list_starts_with() {
        for k in REGISTRY {
            let mut writes = false;
            for e in 0..k.entry_points().len() {
                let b = k.bindings(e);
                assert_eq!(b[0].slot, Slot::Params, "{}", k.name());
                writes |= b.iter().any(|b| b.slot == Slot::Output);
                let mut nums: Vec<u32> = b.iter().map(|b| b.binding).collect();
                nums.sort();
                nums.dedup();
                assert_eq!(nums.len(), b.len(), "{}: duplicate binding", k.name());
            }
            assert!(writes, "{}: no entry point writes the output", k.name());
        }
    }
}
