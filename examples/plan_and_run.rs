//! Plan the fastest configuration that fits a device-memory budget, then run it under that budget.
//! `cargo run --release --example plan_and_run -- yolov2-16 608x608 16MiB` (the first run calibrates
//! the latency model on the adapter and caches it; `WGPU_BACKEND` overrides the native backend).

use mafat::{BudgetOptions, Session, SessionOptions, input::InputSource, model, units};
use model::weights::WeightSource;

fn main() -> mafat::Result<()> {
    let arg = |k: usize, default: &str| std::env::args().nth(k).unwrap_or_else(|| default.into());
    let size = model::parse_size(&arg(2, "608x608"))?;
    let budget = units::parse_bytes(&arg(3, "16MiB"))?;
    let net = model::load(&arg(1, "yolov2-16"), Some(size))?;
    let weights = WeightSource::Random(0).load(&net)?; // or WeightSource::parse("yolov2.weights")
    let input = InputSource::Random(0).load(net.input)?; // or InputSource::parse("dog.jpg")

    let session = Session::new(&SessionOptions::default())?;
    let planned = session.plan_for_budget(&net, budget, &BudgetOptions::default(), &mut |_| {})?;
    let (c, ms) = (&planned.choice, planned.choice.predicted_ms);
    println!(
        "--groups {} --residency {:?}: {} B, {ms:.1} ms",
        c.config, c.residency, c.peak_bytes
    );
    // The pool refuses any allocation past the budget; dropping `prepared` frees everything.
    let prepared = session.prepare(&net, &weights, planned.plan, Some(budget))?;
    prepared.run(&input)?; // the first run compiles the shaders: time the second
    let (out, peak) = (prepared.run(&input)?, prepared.pool_stats().peak);
    println!("{:.1} ms; device memory peak {peak} B", out.compute_ms);
    Ok(())
}
