//! Shared GPU set-up for the GPU tests: one device and compiled pipelines per test binary.
#![allow(dead_code)]

use mafat::gpu::{BufferPool, Executor, GpuContext, Pipelines, PoolStats};
use mafat::model::weights::Weights;
use mafat::plan::{DeviceLimits, MemoryPlan, Mode, plan_untiled};
use mafat::{Network, Tensor};
use std::sync::OnceLock;

pub struct Gpu {
    pub ctx: GpuContext,
    pub pipes: Pipelines,
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

fn open(
    test: &str,
    cell: &'static OnceLock<Result<Gpu, String>>,
    subgroups: bool,
) -> Option<&'static Gpu> {
    let g = cell.get_or_init(|| {
        let ctx = GpuContext::open(None, subgroups).map_err(|e| e.to_string())?;
        let pipes = Pipelines::new(&ctx).map_err(|e| e.to_string())?;
        Ok(Gpu { ctx, pipes })
    });
    match g {
        Ok(g) => Some(g),
        Err(why) => {
            if std::env::var("MAFAT_REQUIRE_TEST_DATA").is_ok_and(|v| v == "1") {
                panic!("{test}: no GPU adapter and MAFAT_REQUIRE_TEST_DATA=1: {why}");
            }
            eprintln!("SKIPPED {test}: no GPU adapter: {why}");
            None
        }
    }
}

impl Gpu {
    pub fn limits(&self) -> DeviceLimits {
        DeviceLimits::from_wgpu(&self.ctx.limits, self.ctx.timestamps)
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
        let plan = plan_untiled(net, mode, &self.limits())?;
        let mut pool = BufferPool::new(budget);
        let ex = Executor::new(
            &self.ctx,
            &self.pipes,
            net,
            weights,
            plan.clone(),
            &mut pool,
        )?;
        let out = ex.run(&self.ctx, &self.pipes, input);
        ex.release(&mut pool);
        let stats = pool.stats();
        Ok((out?.outputs, plan, stats))
    }
}

/// Same bits everywhere (−0 and +0 differ; NaNs must match bit for bit too).
pub fn assert_bit_exact(what: &str, gpu: &Tensor, cpu: &Tensor) {
    assert_eq!(gpu.shape, cpu.shape, "{what}");
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

/// Largest |gpu − cpu| / max(1, |cpu|).
pub fn max_rel_diff(gpu: &Tensor, cpu: &Tensor) -> f32 {
    gpu.data
        .iter()
        .zip(&cpu.data)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f32::max)
}
