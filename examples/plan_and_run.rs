//! The shortest useful use of mafat: plan the fastest configuration that fits a device-memory budget,
//! then run it on the GPU under that budget.
//!
//! `cargo run --release --example plan_and_run -- yolov2-16 608x608 16MiB`
//! (the first run calibrates the latency model on the adapter and caches it; the backend is the
//! platform's native one — Vulkan, Metal, DX12 — overridable with `WGPU_BACKEND`).

use mafat::gpu::calibrate::load_or_calibrate;
use mafat::gpu::{BufferPool, Executor, GpuContext, Pipelines};
use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use mafat::plan::memory::plan_with;
use mafat::plan::{DeviceLimits, Mode, fastest};

fn main() -> mafat::Result<()> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "yolov2-16".into());
    let size = args.next().map(|s| model::parse_size(&s)).transpose()?;
    let budget = mafat::units::parse_bytes(&args.next().unwrap_or_else(|| "16MiB".into()))?;

    let net = model::load(&name, size)?;
    let weights = WeightSource::Random(0).load(&net)?; // or WeightSource::parse("yolov2.weights")
    let input = InputSource::Random(0).load(net.input)?; // or InputSource::parse("dog.jpg")

    let ctx = GpuContext::new(None)?;
    let pipelines = Pipelines::new(&ctx)?;
    let limits = DeviceLimits::from_wgpu(&ctx.limits, ctx.timestamps);
    let (cost, _) = load_or_calibrate(&ctx, Some(&pipelines), &net, None, &mut |_| {})?;
    let choice = fastest(&net, budget, &cost, &limits)?;
    println!(
        "{} under {budget} B: --groups {} --residency {}, predicted {} B, {:.1} ms",
        net.name,
        choice.config,
        choice.residency.as_str(),
        choice.peak_bytes,
        choice.predicted_ms
    );

    let plan = plan_with(
        &net,
        &choice.config,
        Mode::Layerwise,
        choice.residency,
        &limits,
    )?;
    let mut pool = BufferPool::new(Some(budget)); // refuses any allocation past the budget
    let ex = Executor::new(&ctx, &pipelines, &net, &weights, plan, &mut pool)?;
    // The first run compiles the shaders; time the second.
    let out = ex
        .run(&ctx, &pipelines, &input)
        .and_then(|_| ex.run(&ctx, &pipelines, &input));
    ex.release(&mut pool);
    let out = out?;
    println!(
        "ran in {:.1} ms; device memory peak {} B; output {}",
        out.compute_ms,
        pool.stats().peak,
        out.outputs[0].shape
    );
    Ok(())
}
