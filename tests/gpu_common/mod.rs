//! Shared GPU set-up for the GPU tests: one session (device and compiled pipelines) per test binary.
//! A test binary that uses it declares `mod common;` too (the skip log).
#![allow(dead_code)]

use mafat::gpu::{GpuContext, PoolStats};
use mafat::kernel::{KernelRef, Op, REGISTRY};
use mafat::model::weights::Weights;
use mafat::plan::{Config, DeviceLimits, MemoryPlan, Mode, Planner, Residency};
use mafat::{Network, Precision, Session, SessionOptions, Tensor};
use std::sync::OnceLock;

pub use super::common::log_skip;

/// A device the caller opens itself (as an app that renders with wgpu would): the first adapter of
/// the environment, every limit, and the features in `wanted` the adapter has.
pub fn callers_device(wanted: wgpu::Features) -> Option<(wgpu::Device, wgpu::Queue)> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .ok()?;
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("caller's device"),
        required_features: adapter.features() & wanted,
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .ok()
}

pub struct Gpu {
    pub session: Session,
}

/// The shared device, or `None` after reporting a skip (a failure under MAFAT_REQUIRE_TEST_DATA=1).
pub fn gpu(test: &str) -> Option<&'static Gpu> {
    static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();
    open(test, &GPU, true)
}

/// A second device that never uses subgroup operations (the portable kernels).
pub fn gpu_without_subgroups(test: &str) -> Option<&'static Gpu> {
    static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();
    open(test, &GPU, false)
}

/// A device storing maps and weights as f16, or `None` after reporting a skip (the adapter lacks
/// shader-f16; a failure under MAFAT_REQUIRE_TEST_DATA=1, as CI's lavapipe has it).
pub fn gpu_f16(test: &str) -> Option<&'static Gpu> {
    static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();
    open_with(test, &GPU, true, Precision::F16)
}

fn open(
    test: &str,
    cell: &'static OnceLock<Result<Gpu, String>>,
    subgroups: bool,
) -> Option<&'static Gpu> {
    open_with(test, cell, subgroups, Precision::F32)
}

fn open_with(
    test: &str,
    cell: &'static OnceLock<Result<Gpu, String>>,
    subgroups: bool,
    precision: Precision,
) -> Option<&'static Gpu> {
    let g = cell.get_or_init(|| {
        let options = SessionOptions {
            subgroups,
            precision,
            ..SessionOptions::default()
        };
        let session = Session::new(&options).map_err(|e| e.to_string())?;
        Ok(Gpu { session })
    });
    match g {
        Ok(g) => Some(g),
        Err(why) => {
            if std::env::var("MAFAT_REQUIRE_TEST_DATA").is_ok_and(|v| v == "1") {
                panic!(
                    "{test}: no GPU adapter for {precision} and MAFAT_REQUIRE_TEST_DATA=1: {why}"
                );
            }
            eprintln!("SKIPPED {test}: no GPU adapter for {precision}: {why}");
            log_skip(test, &format!("no GPU adapter for {precision}"));
            None
        }
    }
}

impl Gpu {
    pub fn ctx(&self) -> &GpuContext {
        self.session.context()
    }

    pub fn limits(&self) -> DeviceLimits {
        self.session.limits()
    }

    pub fn planner<'n>(&self, net: &'n Network) -> Planner<'n> {
        self.session
            .planner(net)
            .expect("a planner for the network")
    }

    /// Plan, prepare and run once; return outputs, the plan and the pool's figures.
    pub fn run(
        &self,
        net: &Network,
        weights: &Weights,
        input: &Tensor,
        mode: Mode,
        budget: Option<u64>,
    ) -> mafat::Result<(Vec<Tensor>, MemoryPlan, PoolStats)> {
        self.run_config(net, weights, input, &Config::untiled(), mode, budget)
    }

    /// Like [`Gpu::run`] under a fusing/tiling configuration (weights resident).
    pub fn run_config(
        &self,
        net: &Network,
        weights: &Weights,
        input: &Tensor,
        config: &Config,
        mode: Mode,
        budget: Option<u64>,
    ) -> mafat::Result<(Vec<Tensor>, MemoryPlan, PoolStats)> {
        let plan = self.session.plan(net, config, mode, Residency::Resident)?;
        self.run_plan(net, weights, input, plan, budget)
    }

    /// Like [`Gpu::run_config`] with the layers on `ops`.
    pub fn run_ops(
        &self,
        net: &Network,
        weights: &Weights,
        input: &Tensor,
        ops: &[Op],
        config: &Config,
        mode: Mode,
    ) -> mafat::Result<(Vec<Tensor>, MemoryPlan, PoolStats)> {
        let planner = self.session.planner_on(net, ops.to_vec())?;
        let plan = planner.plan(config, mode, Residency::Resident)?;
        self.run_plan(net, weights, input, plan, None)
    }

    /// Prepare and run a plan once (its buffers are returned when the prepared network drops).
    pub fn run_plan(
        &self,
        net: &Network,
        weights: &Weights,
        input: &Tensor,
        plan: MemoryPlan,
        budget: Option<u64>,
    ) -> mafat::Result<(Vec<Tensor>, MemoryPlan, PoolStats)> {
        let prepared = self.session.prepare(net, weights, plan.clone(), budget)?;
        let out = prepared.run(input)?;
        Ok((out.outputs, plan, prepared.pool_stats()))
    }
}

/// The kernel assignments every variant test covers: the defaults, then, for every kernel of the
/// registry that is not already the default wherever it applies, that kernel pinned.
pub fn assignments(net: &Network) -> Vec<(String, Vec<Op>)> {
    let default = mafat::kernel::select_all(net).unwrap();
    let mut out = vec![("default kernels".to_string(), default.clone())];
    for &k in REGISTRY {
        let k = KernelRef(k);
        let Ok(ops) = mafat::kernel::pinned(net, k) else {
            continue;
        };
        if ops != default {
            out.push((format!("on {}", k.name()), ops));
        }
    }
    out
}

/// A kernel per layer, each drawn from the layer's candidates by `pick(n)` (an index below `n`).
pub fn random_ops(net: &Network, pick: &mut dyn FnMut(usize) -> usize) -> Vec<Op> {
    (0..net.layers.len())
        .map(|i| {
            let c = mafat::kernel::candidates(net, i);
            match c.len() {
                0 => mafat::kernel::select(net, i).unwrap(),
                n => Op::Dispatch(c[pick(n)]),
            }
        })
        .collect()
}

/// Whether every layer of `ops` whose kernel reorders the arithmetic
/// ([`mafat::kernel::Kernel::reference_order`] false) is exact on these weights and input: it reads
/// only integers (by the CPU reference) and its weights are integer multiples of the kernel's
/// [`mafat::kernel::Kernel::exact_weight_multiple`]; true when no layer's kernel reorders.
pub fn reordering_sees_integers(net: &Network, weights: &Weights, x: &Tensor, ops: &[Op]) -> bool {
    let mut keep = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let Some(k) = op.kernel().filter(|k| !k.reference_order()) else {
            continue;
        };
        let m = k.exact_weight_multiple() as f32;
        if weights
            .conv(i)
            .weights
            .iter()
            .any(|w| (w / m).fract() != 0.0)
        {
            return false;
        }
        match net.sources(i)[0] {
            mafat::network::Source::Layer(l) => keep.push(l),
            mafat::network::Source::Input => {
                if x.data.iter().any(|v| v.fract() != 0.0) {
                    return false;
                }
            }
        }
    }
    keep.is_empty()
        || mafat::reference::forward(net, weights, x, &keep)
            .unwrap()
            .iter()
            .all(|t| t.data.iter().all(|v| v.fract() == 0.0))
}

/// `weights` with every conv weight (not the biases) multiplied by `by`.
pub fn scaled_weights(weights: &Weights, by: f32) -> Weights {
    let mut w = weights.clone();
    for p in w.layers.iter_mut().flatten() {
        for v in p.weights.iter_mut() {
            *v *= by;
        }
    }
    w
}

/// Same bits everywhere (−0 and +0 differ; NaNs must match bit for bit too).
pub fn assert_bit_exact(what: &str, gpu: &Tensor, cpu: &Tensor) {
    assert_eq!(gpu.shape, cpu.shape, "{what}");
    assert_eq!(gpu.data.len(), cpu.data.len(), "{what}: element counts");
    for (i, (a, b)) in gpu.data.iter().zip(&cpu.data).enumerate() {
        if a.to_bits() != b.to_bits() {
            panic!(
                "{what}: element {i} differs: GPU {a} ({:#x}) vs CPU {b} ({:#x}); {} of {} differ",
                a.to_bits(),
                b.to_bits(),
                gpu.data
                    .iter()
                    .zip(&cpu.data)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count(),
                gpu.data.len()
            );
        }
    }
}

/// Largest |gpu − cpu| over the largest |cpu| (the output's absmax): the measure a kernel that
/// reorders the arithmetic is held to.
pub fn max_diff_over_absmax(gpu: &Tensor, cpu: &Tensor) -> f32 {
    assert_eq!(gpu.data.len(), cpu.data.len(), "element counts");
    let absmax = cpu.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = gpu
        .data
        .iter()
        .zip(&cpu.data)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    if absmax == 0.0 { diff } else { diff / absmax }
}

/// Largest |gpu − cpu| / max(1, |cpu|).
pub fn max_rel_diff(gpu: &Tensor, cpu: &Tensor) -> f32 {
    assert_eq!(gpu.data.len(), cpu.data.len(), "element counts");
    gpu.data
        .iter()
        .zip(&cpu.data)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f32::max)
}

/// Whether the adapter fuses `a * b + c` into one rounding (an FMA), probed with inputs where the two
/// differ: (1 + 2⁻¹²)² − (1 + 2⁻¹¹) is 0 with two roundings and 2⁻²⁴ with one. GPU compilers may do
/// this (WGSL allows it); lavapipe does not.
pub fn contracts_multiply_add(g: &Gpu) -> bool {
    let ctx = g.ctx();
    let src = "@group(0) @binding(0) var<storage, read_write> v: array<f32>;
@compute @workgroup_size(1)
fn main() { v[3] = v[0] * v[1] + v[2]; }";
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("fma probe"),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
    let pipe = ctx
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("fma probe"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    let x = 1.0f32 + 2f32.powi(-12);
    let input = [x, x, -(1.0f32 + 2f32.powi(-11)), 0.0];
    let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("fma probe"),
        size: 16,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let read = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("fma probe readback"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue
        .write_buffer(&buf, 0, bytemuck::cast_slice(&input));
    let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipe.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: buf.as_entire_binding(),
        }],
    });
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipe);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    enc.copy_buffer_to_buffer(&buf, 0, &read, 0, 16);
    ctx.queue.submit([enc.finish()]);
    read.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    ctx.wait("fma probe").unwrap();
    let out: Vec<f32> = bytemuck::pod_collect_to_vec(&read.slice(..).get_mapped_range().unwrap());
    out[3] != 0.0
}

/// Distance in units in the last place (same-sign finite values; otherwise "far").
pub fn ulps(a: f32, b: f32) -> u32 {
    if a == b {
        return 0;
    }
    if a.is_sign_negative() != b.is_sign_negative() || !a.is_finite() || !b.is_finite() {
        return u32::MAX;
    }
    a.to_bits().abs_diff(b.to_bits())
}
