//! `cargo bench --bench gpu_layers [-- SIZE] [--model NAME] [--kernel NAME]...`: per-layer GPU
//! time and GFLOP/s of a model (default yolov2-16) on the current adapter (GPU timestamps where the
//! adapter has them), median over runs taken in turns, for the default kernels and each kernel named
//! (pinned on every layer it supports; `tuned`: the fastest per layer measured on the adapter), plus
//! the whole network in naive mode. SIZE defaults to 608
//! (e.g. `-- 160`).

use mafat::gpu::Timing;
use mafat::input::InputSource;
use mafat::kernel::{named, pinned, select_all};
use mafat::model::{self, weights::WeightSource};
use mafat::plan::{Config, Mode, Residency};
use mafat::tune::median;
use mafat::{Session, SessionOptions};

fn main() -> mafat::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size: usize = args
        .iter()
        .find(|a| a.parse::<usize>().is_ok())
        .and_then(|a| a.parse().ok())
        .unwrap_or(608);
    let flag = |name: &str| -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == name)
            .map(|w| w[1].clone())
            .collect()
    };
    let pins = flag("--kernel");
    let model_name = flag("--model").pop().unwrap_or_else(|| "yolov2-16".into());
    let runs = 5;
    let session = Session::new(&SessionOptions::default())?;
    let net = model::load(&model_name, Some((size, size)))?;
    let weights = WeightSource::Random(1).load(&net)?;
    let x = InputSource::Random(1).load(net.input)?;
    println!("adapter: {}", session.adapter_name());
    let mut cases = vec![(
        "default kernels".to_string(),
        Mode::Layerwise,
        select_all(&net)?,
    )];
    for name in &pins {
        let ops = match name.as_str() {
            // The fastest kernel per layer measured on this adapter (cached, else measured now).
            "tuned" => mafat::tune::KernelPolicy::Tuned.resolve(&session, &net, &mut |_| {})?,
            _ => pinned(&net, named(name)?)?,
        };
        cases.push((format!("on {name}"), Mode::Layerwise, ops));
    }
    cases.push(("default kernels".into(), Mode::Naive, select_all(&net)?));
    // Every case prepared at once and run in turns (one run of each per round), so that the
    // machine's drift hits them alike; medians per case and per layer.
    let mut prepared = Vec::with_capacity(cases.len());
    for (what, mode, ops) in cases {
        let planner = session.planner_on(&net, ops)?;
        let plan = planner.plan(&Config::untiled(), mode, Residency::Resident)?;
        let ex = session.prepare(&net, &weights, plan, None)?;
        ex.run(&x)?; // warm-up: first dispatches compile the shaders
        prepared.push((what, mode, ex));
    }
    let mut totals: Vec<Vec<f64>> = vec![Vec::new(); prepared.len()];
    let mut per_layer: Vec<Vec<Vec<f64>>> =
        vec![vec![Vec::new(); net.layers.len()]; prepared.len()];
    let mut timing = Timing::WallClock;
    for _ in 0..runs {
        for (c, (_, _, ex)) in prepared.iter().enumerate() {
            let r = ex.run(&x)?;
            totals[c].push(r.compute_ms);
            timing = r.timing;
            // Untiled: every group is one layer.
            for (layers, ms) in r.group_ms {
                per_layer[c][layers.start].push(ms);
            }
        }
    }
    for (c, (what, mode, ex)) in prepared.iter().enumerate() {
        let total = median(&mut totals[c]);
        println!(
            "\n{model_name} {size}x{size} {mode:?}, {what}: {total:.2} ms median of {runs} in turns ({timing:?}), {:.2} GFLOP/s, pool peak {} B",
            2.0 * net.macs() as f64 / 1e6 / total,
            ex.pool_stats().peak
        );
        if *mode == Mode::Layerwise && !per_layer[c].iter().all(Vec::is_empty) {
            println!(
                "{:>5} {:<6} {:>10} {:>10} {:>10}  kernel",
                "layer", "type", "ms", "GFLOP", "GFLOP/s"
            );
            for (i, v) in per_layer[c].iter_mut().enumerate() {
                if v.is_empty() {
                    continue;
                }
                let ms = median(v);
                let gflop = 2.0 * net.layers[i].macs() as f64 / 1e9;
                println!(
                    "{i:>5} {:<6} {ms:>10.3} {gflop:>10.3} {:>10.2}  {}",
                    net.layers[i].kind.name(),
                    if gflop > 0.0 { gflop / ms * 1e3 } else { 0.0 },
                    ex.plan().ops[i].name()
                );
            }
        }
    }
    Ok(())
}
