//! `cargo bench --bench gpu_layers [-- SIZE]`: per-layer GPU time and GFLOP/s of yolov2-16 on the
//! current adapter (GPU timestamps where the adapter has them), median over runs, plus the whole
//! network in both untiled modes. SIZE defaults to 608 (e.g. `-- 160`).

use mafat::gpu::{BufferPool, Executor, GpuContext, Pipelines, Timing};
use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use mafat::plan::{DeviceLimits, Mode, plan_untiled};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> mafat::Result<()> {
    let size: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(608);
    let runs = 5;
    let ctx = GpuContext::new(None)?;
    let pipes = Pipelines::new(&ctx)?;
    let limits = DeviceLimits::from_wgpu(&ctx.limits, ctx.timestamps);
    let net = model::load("yolov2-16", Some((size, size)))?;
    let weights = WeightSource::Random(1).load(&net)?;
    let x = InputSource::Random(1).load(net.input)?;
    println!("adapter: {}", ctx.adapter_name());
    for mode in [Mode::Layerwise, Mode::Naive] {
        let plan = plan_untiled(&net, mode, &limits)?;
        let mut pool = BufferPool::new(None);
        let ex = Executor::new(&ctx, &pipes, &net, &weights, plan, &mut pool)?;
        ex.run(&ctx, &pipes, &x)?; // warm-up: first dispatches compile the shaders
        let mut totals = Vec::new();
        let mut per_layer: Vec<Vec<f64>> = vec![Vec::new(); net.layers.len()];
        let mut timing = Timing::WallClock;
        for _ in 0..runs {
            let r = ex.run(&ctx, &pipes, &x)?;
            totals.push(r.compute_ms);
            timing = r.timing;
            // Untiled: every group is one layer.
            for (layers, ms) in r.group_ms {
                per_layer[layers.start].push(ms);
            }
        }
        ex.release(&mut pool);
        let total = median(&mut totals);
        println!(
            "\nyolov2-16 {size}x{size} {mode:?}: {total:.2} ms median of {runs} ({timing:?}), {:.2} GFLOP/s, pool peak {} B",
            2.0 * net.macs() as f64 / 1e6 / total,
            pool.stats().peak
        );
        if mode == Mode::Layerwise && !per_layer.iter().all(Vec::is_empty) {
            println!(
                "{:>5} {:<6} {:>10} {:>10} {:>10}",
                "layer", "type", "ms", "GFLOP", "GFLOP/s"
            );
            for (i, v) in per_layer.iter_mut().enumerate() {
                if v.is_empty() {
                    continue;
                }
                let ms = median(v);
                let gflop = 2.0 * net.layers[i].macs() as f64 / 1e9;
                println!(
                    "{i:>5} {:<6} {ms:>10.3} {gflop:>10.3} {:>10.2}",
                    net.layers[i].kind.name(),
                    if gflop > 0.0 { gflop / ms * 1e3 } else { 0.0 }
                );
            }
        }
    }
    Ok(())
}
