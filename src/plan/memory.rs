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
    Map,
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

/// Workgroup counts of a layer's dispatch over its whole output (untiled).
pub fn workgroups(net: &Network, i: usize, kernel: Kernel) -> [u32; 3] {
    let l = &net.layers[i];
    let (o, x) = (l.output, l.input);
    let wg = kernel.workgroup();
    let ppi = kernel.pixels_per_invocation() as usize;
    let d = |n: usize, by: u32| n.div_ceil(by as usize) as u32;
    match kernel {
        Kernel::Conv => {
            // Pixel runs are numbered linearly over x and y (the kernel reads `num_workgroups.x`),
            // so no dimension passes the 65,535-workgroup limit.
            let groups = o.w.div_ceil(ppi) * o.h;
            let total = groups.div_ceil(wg[0] as usize);
            let y = total.div_ceil(MAX_GROUPS_X);
            [
                total.div_ceil(y) as u32,
                y as u32,
                d(o.c, 4 * CONV_QUADS as u32),
            ]
        }
        Kernel::ConvGrouped => [d(o.w.div_ceil(ppi), wg[0]), d(o.h, wg[1]), o.c as u32],
        Kernel::MaxPool | Kernel::Upsample => [d(o.w, wg[0]), d(o.h, wg[1]), o.c as u32],
        Kernel::Reorg | Kernel::Shortcut => [d(x.w, wg[0]), d(x.h, wg[1]), x.c as u32],
        Kernel::AvgPool => [d(x.c, wg[0]), 1, 1],
        Kernel::Softmax => match &l.kind {
            LayerKind::Softmax { groups, .. } => [d(*groups, wg[0]), 1, 1],
            _ => [1, 1, 1],
        },
    }
}

/// The buffers of one execution and which map lives where.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryPlan {
    pub mode: Mode,
    pub buffers: Vec<BufferSpec>,
    /// Per layer: its weight buffer.
    pub weights: Vec<Option<usize>>,
    /// Per layer: the buffer holding its output map (None for CPU heads).
    pub maps: Vec<Option<usize>>,
    /// Buffer of the network input map.
    pub input: usize,
    /// The uniform buffer of every dispatch's parameters, and the stride between them.
    pub params: Option<usize>,
    pub params_stride: u64,
    /// Per layer: the index of its parameter block in `params`.
    pub param_slot: Vec<Option<u32>>,
    pub upload: usize,
    pub readback: usize,
    /// Timestamp resolve and readback buffers (when the device records timestamps).
    pub timestamps: Option<(usize, usize)>,
    /// Maps read back at the end (sources of the network outputs; heads run on the CPU).
    pub read_back: Vec<Source>,
    /// The most bytes of maps alive at once (a lower bound for the map buffers).
    pub live_map_peak: u64,
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
            Source::Layer(l) => self.maps[l].expect("GPU layers have maps"),
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

/// Plan an untiled execution of `net` in `mode`.
pub fn plan_untiled(net: &Network, mode: Mode, limits: &DeviceLimits) -> Result<MemoryPlan> {
    let n = net.layers.len();
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

    // Map lifetimes: created at step t (input: before layer 0), dead after its last consumer; maps
    // read back stay alive to the end.
    let read_back = read_back_sources(net);
    let maps_in_order: Vec<Source> = std::iter::once(Source::Input)
        .chain(
            (0..n)
                .filter(|&i| gpu_op(&net.layers[i].kind) != GpuOp::CpuHead)
                .map(Source::Layer),
        )
        .collect();
    let created = |s: Source| match s {
        Source::Input => 0usize,
        Source::Layer(l) => l + 1,
    };
    let mut last_use = std::collections::HashMap::new();
    for &m in &maps_in_order {
        last_use.insert(m, created(m));
    }
    for i in 0..n {
        for s in net.sources(i) {
            let e = last_use.entry(s).or_insert(0);
            *e = (*e).max(i + 1);
        }
    }
    for s in &read_back {
        last_use.insert(*s, usize::MAX);
    }

    let mut live_map_peak = 0u64;
    for t in 0..=n {
        let live: u64 = maps_in_order
            .iter()
            .filter(|&&m| created(m) <= t && last_use[&m] >= t)
            .map(|&m| net.shape_of(m).bytes())
            .sum();
        live_map_peak = live_map_peak.max(live);
    }

    // Slots: (size, occupant's last use).
    let mut slots: Vec<(u64, usize)> = Vec::new();
    let mut slot_of = std::collections::HashMap::new();
    for &m in &maps_in_order {
        let bytes = net.shape_of(m).bytes();
        let what = match m {
            Source::Input => "the input".to_string(),
            Source::Layer(l) => format!("layer {l}'s output"),
        };
        if bytes > limits.max_storage_buffer_binding_size {
            return Err(Error::DeviceLimit(format!(
                "{what} ({}, {bytes} bytes) passes the adapter's max_storage_buffer_binding_size of {} bytes; run it tiled or at a smaller --size",
                net.shape_of(m),
                limits.max_storage_buffer_binding_size
            )));
        }
        let t = created(m);
        let free: Vec<usize> = match mode {
            Mode::Naive => Vec::new(),
            Mode::Layerwise => (0..slots.len()).filter(|&s| slots[s].1 < t).collect(),
        };
        let fit = free
            .iter()
            .copied()
            .filter(|&s| slots[s].0 >= bytes)
            .min_by_key(|&s| (slots[s].0, s));
        let s = match fit {
            Some(s) => s,
            None => match free
                .iter()
                .copied()
                .max_by_key(|&s| (slots[s].0, usize::MAX - s))
            {
                Some(s) => {
                    slots[s].0 = bytes;
                    s
                }
                None => {
                    slots.push((bytes, 0));
                    slots.len() - 1
                }
            },
        };
        slots[s].1 = last_use[&m];
        slot_of.insert(m, s);
    }
    let slot_base = buffers.len();
    for (s, (size, _)) in slots.iter().enumerate() {
        if *size > limits.max_buffer_size {
            return Err(Error::DeviceLimit(format!(
                "map slot {s} needs {size} bytes, past the adapter's max_buffer_size of {} bytes",
                limits.max_buffer_size
            )));
        }
        buffers.push(BufferSpec {
            label: format!("map slot {s}"),
            kind: BufferKind::Map,
            size: *size,
        });
    }
    let mut maps = vec![None; n];
    for (i, m) in maps.iter_mut().enumerate() {
        if let Some(s) = slot_of.get(&Source::Layer(i)) {
            *m = Some(slot_base + s);
        }
    }
    let input = slot_base + slot_of[&Source::Input];

    // Parameters: one block per dispatch in one uniform buffer.
    let params_stride =
        PARAMS_BYTES.next_multiple_of(limits.min_uniform_buffer_offset_alignment.max(4));
    let mut param_slot = vec![None; n];
    let mut n_dispatch = 0u32;
    for (i, slot) in param_slot.iter_mut().enumerate() {
        if let GpuOp::Dispatch(k) = gpu_op(&net.layers[i].kind) {
            let wg = workgroups(net, i, k);
            if let Some(d) = wg
                .iter()
                .find(|&&d| d > limits.max_compute_workgroups_per_dimension)
            {
                return Err(Error::DeviceLimit(format!(
                    "layer {i} needs {d} workgroups in one dimension, past the adapter's max_compute_workgroups_per_dimension of {}",
                    limits.max_compute_workgroups_per_dimension
                )));
            }
            *slot = Some(n_dispatch);
            n_dispatch += 1;
        }
    }
    let params = (n_dispatch > 0).then(|| {
        add_buffer(
            &mut buffers,
            "parameters",
            BufferKind::Params,
            params_stride * n_dispatch as u64,
        )
    });

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
    let timestamps = (limits.timestamps && n_dispatch > 0).then(|| {
        let bytes = 8 * 2 * n_dispatch as u64;
        (
            add_buffer(
                &mut buffers,
                "timestamp resolve",
                BufferKind::Staging,
                bytes,
            ),
            add_buffer(
                &mut buffers,
                "timestamp readback",
                BufferKind::Staging,
                bytes,
            ),
        )
    });

    Ok(MemoryPlan {
        mode,
        buffers,
        weights,
        maps,
        input,
        params,
        params_stride,
        param_slot,
        upload,
        readback,
        timestamps,
        read_back,
        live_map_peak,
    })
}
