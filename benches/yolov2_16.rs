//! yolov2-16 on the current wgpu adapter, with criterion: untiled against mafat's pick at three
//! device-memory budgets, per-layer GFLOP/s of the untiled run, and the planner's own time.
//!
//! Run it with `cargo bench --bench yolov2_16` (criterion's options follow `--`, e.g.
//! `cargo bench --bench yolov2_16 -- untiled` runs only the benchmarks whose name contains
//! `untiled`). Benchmarks:
//! - `yolov2-16-SIZE/untiled`: `Config::untiled()`, `Mode::Layerwise`, weights resident;
//! - `yolov2-16-SIZE/mafat-16MiB` (and 24 MiB, 48 MiB): the configuration and residency
//!   `mafat::plan::search::fastest_over_kernels` picks for that budget (the tuned kernels, stepping
//!   back to the defaults where they do not fit), run under a `BufferPool` that refuses any
//!   allocation past it (a budget below the smallest that fits is skipped with a note);
//! - `yolov2-16-SIZE-plan/fastest-24MiB` and `yolov2-16-SIZE-plan/min_peak`: the search (over the
//!   kernel steps, as `mafat plan` runs it) and the smallest-peak search, on the CPU.
//!
//! The network cases report **device time**: each sample is the sum of `RunOutput::compute_ms`,
//! taken from GPU timestamp queries around the compute passes (input upload and output readback
//! excluded); on an adapter without timestamp queries it is the wall clock around submit and wait.
//! Their throughput line (`elem/s`) counts FLOPs (2 × multiply-accumulates), so `Gelem/s` reads as
//! GFLOP/s. Random weights and input; one untimed warm-up run per case (the first dispatches compile
//! the shaders). The untiled case also prints a per-layer table (median ms and GFLOP/s per layer) on
//! stdout; each case prints its configuration, residency and pool peak against its budget on stderr.
//!
//! The adapter: `WGPU_BACKEND=vulkan|metal|dx12|gl` picks the backend, `WGPU_ADAPTER_NAME=substring`
//! the first adapter whose name contains it (case-insensitive); otherwise a discrete GPU is
//! preferred, then integrated, virtual, CPU (lavapipe). With no adapter at all the bench prints why
//! and exits 0 (skipped).
//!
//! Environment:
//! - `MAFAT_BENCH_SIZE`: the input size, `608` (default) or `WIDTHxHEIGHT`; `MAFAT_BENCH_SIZE=160`
//!   is a quick smoke run. Under `cargo test --benches` (criterion's test mode: every case runs
//!   once) the default is 160.
//! - `MAFAT_BENCH_BUDGETS`: the budgets, comma-separated (default `16MiB,24MiB,48MiB`).
//! - `MAFAT_BENCH_PRECISION`: `f32` (default) or `f16` (maps and weights stored as half floats;
//!   the groups are then named `yolov2-16-SIZE-f16`, and the budgets hold half the bytes).
//! - `MAFAT_CACHE_DIR`: where the cost-model calibration is cached. The first run for a size and an
//!   adapter calibrates (about 1.5 minutes at 608 on lavapipe); later runs read the cache.
//!
//! On lavapipe one 608x608 run takes seconds, so each network case takes 10 samples of one run
//! each (criterion then warns that it cannot complete 10 samples in the target time: expected).

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use mafat::Network;
use mafat::gpu::Timing;
use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use mafat::plan::search::{fastest_over_kernels, min_peak};
use mafat::plan::{Choice, Config, CostModel, MemoryPlan, Mode, Residency};
use mafat::tensor::Tensor;

/// A budget's pick: the kernels and the configuration.
type Picked = (Vec<mafat::kernel::Op>, Choice);
use mafat::tune::{CalibrationSource, KernelPolicy, load_or_calibrate};
use mafat::units::{human, parse_bytes};
use mafat::{Session, SessionOptions};
use std::hint::black_box;
use std::time::{Duration, Instant};

const MODEL: &str = "yolov2-16";
const SAMPLES: usize = 10;
const DEFAULT_BUDGETS: &str = "16MiB,24MiB,48MiB";
/// Criterion options that take a value (so that value is not mistaken for the name filter).
const VALUE_OPTIONS: &[&str] = &[
    "-c",
    "--color",
    "--colour",
    "--save-baseline",
    "-s",
    "--baseline",
    "-b",
    "--baseline-lenient",
    "--format",
    "--profile-time",
    "--load-baseline",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--plotting-backend",
    "--output-format",
];

fn exit_with(message: &str) -> ! {
    eprintln!("yolov2_16: {message}");
    std::process::exit(2)
}

/// Which benchmarks criterion will run, as far as it matters for the (expensive) preparation of a
/// case: a plain-text filter is a substring test, anything regex-like prepares every case.
struct Filter {
    text: Option<String>,
    exact: bool,
}

impl Filter {
    fn from_args(args: &[String]) -> Self {
        let mut text = None;
        let mut it = args.iter().skip(1);
        while let Some(a) = it.next() {
            if VALUE_OPTIONS.contains(&a.as_str()) {
                it.next();
            } else if !a.starts_with('-') && text.is_none() {
                text = Some(a.clone());
            }
        }
        Filter {
            text,
            exact: args.iter().any(|a| a == "--exact"),
        }
    }

    fn wants(&self, id: &str) -> bool {
        match &self.text {
            None => true,
            Some(t) if self.exact => id == t,
            Some(t)
                if t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_/ ".contains(c)) =>
            {
                id.contains(t.as_str())
            }
            Some(_) => true,
        }
    }
}

/// `16MiB` for whole mebibytes, else the byte count.
fn budget_name(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{}MiB", bytes >> 20)
    } else {
        format!("{bytes}B")
    }
}

use mafat::tune::median;

/// Everything a network case needs, shared by all of them.
struct Gpu<'a> {
    session: &'a Session,
    net: &'a Network,
    weights: &'a model::weights::Weights,
    input: &'a Tensor,
    /// `--measurement-time` was given: leave criterion's setting alone.
    cli_measurement_time: bool,
}

/// One network case: prepare it under its budget, warm up, benchmark its device time, release it.
/// Returns the per-layer times of every timed run (`group_ms`), empty if the case was skipped.
fn bench_network(
    group: &mut BenchmarkGroup<'_, WallTime>,
    g: &Gpu<'_>,
    name: &str,
    plan: MemoryPlan,
    budget: Option<u64>,
    predicted: Option<&Choice>,
) -> Vec<Vec<(std::ops::Range<usize>, f64)>> {
    let id = format!("{}/{name}", group_name(g.net, g.session.precision()));
    let config = plan.config.to_string();
    let residency = plan.residency;
    let planned_peak = plan.peak_bytes();
    let ex = match g.session.prepare(g.net, g.weights, plan, budget) {
        Ok(ex) => ex,
        Err(e) => {
            eprintln!("{id}: SKIPPED, preparing it failed: {e}");
            return Vec::new();
        }
    };
    ex.run(g.input)
        .unwrap_or_else(|e| panic!("{id}: warm-up run failed: {e}"));
    let t = Instant::now();
    let first = ex
        .run(g.input)
        .unwrap_or_else(|e| panic!("{id}: timed run failed: {e}"));
    let wall = t.elapsed();
    let stats = ex.pool_stats();
    eprintln!(
        "{id}: --groups {config} --residency {}; pool peak {} B ({}) of budget {}; planned peak {} B{}; \
         one run: {:.1} ms device ({}), {:.1} ms wall",
        residency.as_str(),
        stats.peak,
        human(stats.peak),
        budget.map_or("none".into(), |b| format!("{b} B ({})", human(b))),
        planned_peak,
        predicted.map_or(String::new(), |c| format!(
            ", search predicted {} B and {:.1} ms",
            c.peak_bytes, c.predicted_ms
        )),
        first.compute_ms,
        match first.timing {
            Timing::GpuTimestamps => "GPU timestamps",
            Timing::WallClock => "wall clock: no timestamp queries",
        },
        wall.as_secs_f64() * 1e3,
    );
    if !g.cli_measurement_time {
        // One run per sample where runs are slow (lavapipe), more where they are fast.
        group.measurement_time(Duration::from_secs(3).max(wall.mul_f64(SAMPLES as f64 * 0.9)));
    }
    let mut layer_ms = vec![first.group_ms];
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut ms = 0.0;
            for _ in 0..iters {
                let out = ex
                    .run(black_box(g.input))
                    .unwrap_or_else(|e| panic!("{id}: run failed: {e}"));
                ms += out.compute_ms;
                layer_ms.push(out.group_ms);
            }
            Duration::from_secs_f64(ms / 1e3)
        })
    });
    layer_ms
}

/// Per layer: median ms over the runs and GFLOP/s (untiled: every group is one layer).
fn print_layer_table(net: &Network, runs: Vec<Vec<(std::ops::Range<usize>, f64)>>) {
    let mut per_layer: Vec<Vec<f64>> = vec![Vec::new(); net.layers.len()];
    for run in runs {
        for (layers, ms) in run {
            per_layer[layers.start].push(ms);
        }
    }
    if per_layer.iter().all(Vec::is_empty) {
        println!("(no per-layer times: the adapter has no timestamp queries)");
        return;
    }
    println!(
        "\n{} {}x{} untiled, per layer (median of {} runs):",
        net.name,
        net.input.w,
        net.input.h,
        per_layer.iter().map(Vec::len).max().unwrap_or(0)
    );
    println!(
        "{:>5} {:<9} {:>10} {:>10} {:>10}",
        "layer", "type", "ms", "GFLOP", "GFLOP/s"
    );
    let (mut total_ms, mut total_gflop) = (0.0, 0.0);
    for (i, v) in per_layer.iter_mut().enumerate() {
        if v.is_empty() {
            continue;
        }
        let ms = median(v);
        let gflop = 2.0 * net.layers[i].macs() as f64 / 1e9;
        total_ms += ms;
        total_gflop += gflop;
        println!(
            "{i:>5} {:<9} {ms:>10.3} {gflop:>10.3} {:>10.2}",
            net.layers[i].kind.name(),
            if gflop > 0.0 { gflop / ms * 1e3 } else { 0.0 }
        );
    }
    println!(
        "{:>5} {:<9} {total_ms:>10.3} {total_gflop:>10.3} {:>10.2}\n",
        "all",
        "",
        total_gflop / total_ms * 1e3
    );
}

fn group_name(net: &Network, precision: mafat::Precision) -> String {
    let size = if net.input.w == net.input.h {
        format!("{MODEL}-{}", net.input.w)
    } else {
        format!("{MODEL}-{}x{}", net.input.w, net.input.h)
    };
    match precision {
        mafat::Precision::F32 => size,
        p => format!("{size}-{p}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Criterion's rule: benchmarks run under `--bench` (cargo bench) unless `--test` is given too;
    // otherwise (cargo test --benches) each case runs once as a test.
    let test_mode = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test");
    let size = match std::env::var("MAFAT_BENCH_SIZE") {
        Ok(s) => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => (n, n),
            _ => model::parse_size(s.trim())
                .unwrap_or_else(|e| exit_with(&format!("MAFAT_BENCH_SIZE: {e}"))),
        },
        Err(_) if test_mode => (160, 160),
        Err(_) => (608, 608),
    };
    let budgets: Vec<u64> = std::env::var("MAFAT_BENCH_BUDGETS")
        .unwrap_or_else(|_| DEFAULT_BUDGETS.into())
        .split(',')
        .map(|s| parse_bytes(s).unwrap_or_else(|e| exit_with(&format!("MAFAT_BENCH_BUDGETS: {e}"))))
        .collect();
    let filter = Filter::from_args(&args);
    let cli_measurement_time = args.iter().any(|a| a == "--measurement-time");

    let precision: mafat::Precision = std::env::var("MAFAT_BENCH_PRECISION")
        .map(|p| p.trim().parse())
        .unwrap_or(Ok(mafat::Precision::F32))
        .unwrap_or_else(|e| exit_with(&format!("MAFAT_BENCH_PRECISION: {e}")));
    let options = SessionOptions {
        precision,
        ..SessionOptions::default()
    };
    let session = match Session::new(&options) {
        Ok(s) => s,
        Err(e @ mafat::Error::NoAdapter(_)) if std::env::var_os("WGPU_ADAPTER_NAME").is_none() => {
            eprintln!("yolov2_16: SKIPPED, no GPU adapter: {e}");
            return;
        }
        Err(e) => exit_with(&format!("cannot open the GPU: {e}")),
    };
    let net = model::load(MODEL, Some(size)).expect("loading the built-in yolov2-16");
    let weights = WeightSource::Random(0)
        .load(&net)
        .expect("generating random weights");
    let input = InputSource::Random(0)
        .load(net.input)
        .expect("generating a random input");
    let flop = 2 * net.macs();
    let name = group_name(&net, precision);
    let plan_name = format!("{name}-plan");
    eprintln!(
        "yolov2_16: {} at {}x{} ({:.2} GFLOP, {precision}) on {}, {}",
        MODEL,
        size.0,
        size.1,
        flop as f64 / 1e9,
        session.adapter_name(),
        if session.context().timestamps {
            "GPU timestamps"
        } else {
            "no timestamp queries: device time is the wall clock around submit and wait"
        }
    );

    // The cost model (and so a GPU calibration, when not cached) only where a mafat case or the
    // planner runs.
    let wants_mafat = budgets
        .iter()
        .any(|&b| filter.wants(&format!("{name}/mafat-{}", budget_name(b))));
    let wants_plan = filter.wants(&format!("{plan_name}/min_peak"))
        || budgets
            .iter()
            .any(|&b| filter.wants(&format!("{plan_name}/fastest-{}", budget_name(b))));
    let cost: Option<CostModel> = (wants_mafat || wants_plan).then(|| {
        eprintln!(
            "yolov2_16: loading the cost model (cached under MAFAT_CACHE_DIR; calibrating it the \
             first time takes minutes on a CPU adapter)"
        );
        let t = Instant::now();
        let (cost, source) =
            load_or_calibrate(&session, &net, KernelPolicy::Tuned, None, &mut |_| {})
                .expect("loading or calibrating the cost model");
        match source {
            CalibrationSource::File(p) => eprintln!("yolov2_16: cost model from {}", p.display()),
            CalibrationSource::Measured(p) => eprintln!(
                "yolov2_16: calibrated in {:.0} s{}",
                t.elapsed().as_secs_f64(),
                p.map_or(String::new(), |p| format!(", cached in {}", p.display()))
            ),
        }
        cost
    });
    // Every case on the kernels the calibration chose per layer (the defaults without one).
    let ops = match &cost {
        Some(c) => c.ops(&net).expect("the calibration's kernels"),
        None => mafat::kernel::select_all(&net).expect("kernels for yolov2-16"),
    };
    let planner = session.planner_on(&net, ops).expect("planning yolov2-16");
    let defaults = mafat::kernel::select_all(&net).expect("kernels for yolov2-16");
    // Each budget as `mafat plan` does it: the tuned kernels, stepping back to the defaults.
    let choices: Vec<(u64, Option<Picked>)> = budgets
        .iter()
        .map(|&b| {
            let choice = cost.as_ref().and_then(|cost| {
                match fastest_over_kernels(
                    &planner,
                    &defaults,
                    b,
                    cost,
                    mafat::plan::search::MAX_GRID,
                    &Residency::BOTH,
                ) {
                    Ok((ops, _, c)) => Some((ops, c)),
                    Err(e @ mafat::Error::NoFit { .. }) => {
                        eprintln!("{name}/mafat-{}: SKIPPED: {e}", budget_name(b));
                        None
                    }
                    Err(e) => panic!("searching the fastest configuration under {b} B: {e}"),
                }
            });
            (b, choice)
        })
        .collect();

    let mut c = Criterion::default()
        .sample_size(SAMPLES)
        .configure_from_args();
    let gpu = Gpu {
        session: &session,
        net: &net,
        weights: &weights,
        input: &input,
        cli_measurement_time,
    };
    {
        let mut group = c.benchmark_group(&name);
        group
            .sample_size(SAMPLES)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(1)) // one call: the case ran its warm-up already
            .throughput(Throughput::Elements(flop));
        if filter.wants(&format!("{name}/untiled")) {
            let plan = planner
                .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)
                .expect("planning the untiled run");
            let runs = bench_network(&mut group, &gpu, "untiled", plan, None, None);
            if !runs.is_empty() {
                print_layer_table(&net, runs);
            }
        }
        for (budget, choice) in &choices {
            let case = format!("mafat-{}", budget_name(*budget));
            let Some((ops, choice)) = choice else {
                continue;
            };
            if !filter.wants(&format!("{name}/{case}")) {
                continue;
            }
            let plan = session
                .planner_on(&net, ops.clone())
                .and_then(|p| p.plan(&choice.config, Mode::Layerwise, choice.residency))
                .unwrap_or_else(|e| panic!("planning {case} ({}): {e}", choice.config));
            bench_network(&mut group, &gpu, &case, plan, Some(*budget), Some(choice));
        }
        group.finish();
    }

    if let Some(cost) = &cost {
        // The planner at the middle budget that fits (else the smallest budget that does).
        let fitting: Vec<u64> = choices
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(b, _)| *b)
            .collect();
        let budget = fitting
            .get(fitting.len() / 2)
            .copied()
            .unwrap_or_else(|| min_peak(&planner).expect("searching the smallest peak").0);
        let mut group = c.benchmark_group(&plan_name);
        group.sample_size(SAMPLES);
        if !cli_measurement_time {
            group.measurement_time(Duration::from_secs(5));
        }
        // The whole search `mafat plan` runs: over the kernel steps from the tuned kernels back to
        // the defaults (one `fastest` per step).
        group.bench_function(format!("fastest-{}", budget_name(budget)), |b| {
            b.iter(|| {
                fastest_over_kernels(
                    black_box(&planner),
                    &defaults,
                    black_box(budget),
                    cost,
                    mafat::plan::search::MAX_GRID,
                    &Residency::BOTH,
                )
                .expect("searching the fastest configuration")
            })
        });
        group.bench_function("min_peak", |b| {
            b.iter(|| min_peak(black_box(&planner)).expect("searching the smallest peak"))
        });
        group.finish();
    }
    c.final_summary();
}
