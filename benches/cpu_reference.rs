//! `cargo bench --bench cpu_reference`: throughput of the CPU reference (the oracle every GPU test runs
//! against). Median of several runs per network; prints ms and GMAC/s.

use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use std::time::Instant;

fn main() {
    // `cargo bench` passes `--bench`; a name filter may follow.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let cases = [
        ("yolov2-16", (160, 160), 7),
        ("yolov2-16", (608, 608), 3),
        ("yolov2-tiny", (416, 416), 5),
        ("yolov3-tiny", (416, 416), 5),
    ];
    println!(
        "{:<14} {:>9} {:>5} {:>11} {:>9}",
        "model", "size", "runs", "median ms", "GMAC/s"
    );
    for (name, size, runs) in cases {
        let label = format!("{name}@{}x{}", size.0, size.1);
        if filter.as_ref().is_some_and(|f| !label.contains(f.as_str())) {
            continue;
        }
        let net = model::load(name, Some(size)).expect("built-in model");
        let w = WeightSource::Random(1).load(&net).expect("weights");
        let x = InputSource::Random(1).load(net.input).expect("input");
        let heads = net.outputs();
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let out = mafat::reference::forward(&net, &w, &x, &heads).expect("forward");
                std::hint::black_box(out);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "{:<14} {:>9} {:>5} {:>11.1} {:>9.2}",
            name,
            format!("{}x{}", size.0, size.1),
            runs,
            median,
            net.macs() as f64 / 1e6 / median
        );
    }
}
