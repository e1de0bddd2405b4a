//! `mafat` command-line interface. Every library error is reported in one line.

use clap::{Parser, Subcommand, ValueEnum};
use mafat::gpu::calibrate::{CalibrationSource, Progress, calibration_key, load_or_calibrate};
use mafat::gpu::{BufferPool, Executor, GpuContext, Pipelines};
use mafat::input::InputSource;
use mafat::model::weights::WeightSource;
use mafat::plan::file::{AdapterId, PlanFile};
use mafat::plan::memory::{Residency, plan_with};
use mafat::plan::{Choice, Config, CostModel, DeviceLimits, MemoryPlan, Mode, plan};
use mafat::{Error, Result, Tensor, model, reference, units};
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "mafat",
    version,
    about = "Memory-aware fusing and tiling of CNNs on the GPU (wgpu)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Device {
    Cpu,
    Gpu,
}

#[derive(Subcommand)]
enum Command {
    /// List GPU adapters and the limits that matter to mafat.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Print the layer table of a model: shapes, weight bytes, multiply-accumulates.
    Layers {
        /// Built-in name (yolov2, yolov2-16, yolov2-tiny, yolov3-tiny) or a Darknet .cfg path.
        #[arg(long)]
        model: String,
        /// Input size WxH (overrides the cfg's width/height).
        #[arg(long)]
        size: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Plan without running: the fastest configuration that fits --budget (predicted peak, its
    /// breakdown and predicted latency), or the smallest budget any configuration needs (--min-budget).
    Plan {
        /// Built-in name (yolov2, yolov2-16, yolov2-tiny, yolov3-tiny) or a Darknet .cfg path.
        #[arg(long)]
        model: String,
        /// Input size WxH (overrides the cfg's width/height).
        #[arg(long)]
        size: Option<String>,
        /// Device-memory budget (e.g. 16MiB) the plan's predicted peak must fit.
        #[arg(long, conflicts_with = "min_budget")]
        budget: Option<String>,
        /// Report the smallest predicted peak in the search space and the config that reaches it.
        #[arg(long)]
        min_budget: bool,
        /// Adapter to plan for (default: WGPU_ADAPTER_NAME, else the best GPU).
        #[arg(long)]
        adapter: Option<String>,
        /// Latency calibration file to use (calibrated and written there if it does not exist;
        /// default: the user's cache directory).
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// Save the plan (for mafat run --plan).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The search's regret: for each budget, the measured latency of its pick against the best
    /// measured configuration of a reference grid (at most --max-cuts cuts, square grids up to
    /// --grids, both residencies).
    Regret {
        /// Built-in name (yolov2, yolov2-16, yolov2-tiny, yolov3-tiny) or a Darknet .cfg path.
        #[arg(long)]
        model: String,
        /// Input size WxH (overrides the cfg's width/height).
        #[arg(long)]
        size: Option<String>,
        /// LO..HI[:STEPS], geometric steps; LO may be `min` (the smallest peak in the reference
        /// grid) and HI `untiled` (the untiled layerwise peak).
        #[arg(long, default_value = "min..untiled:6")]
        budgets: String,
        /// Cut positions of the reference grid: `all`, or a list like 2,4,8,12.
        #[arg(long, default_value = "all")]
        cuts: String,
        #[arg(long, default_value_t = 2)]
        max_cuts: usize,
        /// Largest square grid side of the reference grid.
        #[arg(long, default_value_t = 6)]
        grids: usize,
        /// Timed runs per whole configuration, taken in turns (median).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Reference configurations run whole per budget (the best by composed latency).
        #[arg(long, default_value_t = 3)]
        top: usize,
        #[arg(long)]
        adapter: Option<String>,
        /// Latency calibration file (see mafat plan --calibration).
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// Also write every number as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Latency against memory: mafat's pick and every baseline (naive, layerwise, single-group FTP,
    /// whole-network halo tiling) at each budget, each at its own best fitting configuration,
    /// measured on the adapter; writes CSV and an SVG plot.
    Sweep(SweepArgs),
    /// Run a model once and report the time and output shapes.
    Run {
        /// Built-in name (yolov2, yolov2-16, yolov2-tiny, yolov3-tiny) or a Darknet .cfg path.
        #[arg(long)]
        model: String,
        /// Input size WxH (overrides the cfg's width/height).
        #[arg(long)]
        size: Option<String>,
        /// A Darknet .weights file, random[:SEED] or int[:SEED].
        #[arg(long, default_value = "random:0")]
        weights: String,
        /// A PNG/JPEG image (letterboxed as Darknet does), random[:SEED] or int[:SEED].
        #[arg(long, default_value = "random:0")]
        input: String,
        /// Where to run: the GPU (wgpu) or the CPU reference.
        #[arg(long, value_enum, default_value = "gpu")]
        device: Device,
        /// Untiled GPU mode: layerwise (liveness reuse) or naive (every map alive).
        #[arg(long, value_enum, default_value = "layerwise")]
        mode: Mode,
        /// Fused tile groups, e.g. 0..8:3x3,8..16:2x2 (layers FIRST..END, half-open, and a
        /// ROWSxCOLS grid); other layers run untiled.
        #[arg(long, conflicts_with = "plan")]
        groups: Option<String>,
        /// Run a plan saved by mafat plan --out (refused for another model, size or adapter).
        #[arg(long)]
        plan: Option<PathBuf>,
        /// Conv weights resident for the whole run, or uploaded per group when it starts
        /// (default: resident; under --budget without --groups the search chooses unless given).
        #[arg(long, value_enum, conflicts_with = "plan")]
        residency: Option<Residency>,
        /// Adapter whose name contains this text (default: WGPU_ADAPTER_NAME, else the best GPU).
        #[arg(long)]
        adapter: Option<String>,
        /// Device-memory budget (e.g. 64MiB). Alone: plan the fastest configuration that fits, then
        /// run it; with --groups or --plan: refuse before allocating if that needs more.
        #[arg(long)]
        budget: Option<String>,
        /// Latency calibration file for planning under --budget (see mafat plan --calibration).
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// Timed GPU runs after one warm-up run (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Compare the GPU output with the CPU reference.
        #[arg(long)]
        verify: bool,
        /// Write the output tensor as .npy (several heads: FILE.L<layer>.npy each).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away (`mafat ... | head`)
    // instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The planning limits of an adapter.
fn adapter_limits(adapter: Option<&str>) -> Result<DeviceLimits> {
    let ctx = GpuContext::new(adapter)?;
    Ok(DeviceLimits::from_wgpu(&ctx.limits, ctx.timestamps))
}

fn load_model(model: &str, size: Option<&str>) -> Result<mafat::Network> {
    let size = size.map(model::parse_size).transpose()?;
    model::load(model, size)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info { json } => info(json),
        Command::Layers { model, size, json } => {
            let net = load_model(&model, size.as_deref())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&layers_json(&net)).expect("json")
                );
            } else {
                print!("{}", net.table());
            }
            Ok(())
        }
        Command::Plan {
            model,
            size,
            budget,
            min_budget,
            adapter,
            calibration,
            out,
            json,
        } => {
            let net = load_model(&model, size.as_deref())?;
            if min_budget {
                if out.is_some() || calibration.is_some() {
                    return Err(Error::Usage(
                        "--out and --calibration go with --budget, not --min-budget".into(),
                    ));
                }
                return plan_min_budget(&net, adapter.as_deref(), json);
            }
            let Some(budget) = budget else {
                return Err(Error::Usage(
                    "mafat plan needs --budget BYTES (the fastest plan that fits) or --min-budget (the smallest budget any plan fits)".into(),
                ));
            };
            let budget = units::parse_bytes(&budget)?;
            let ctx = GpuContext::new(adapter.as_deref())?;
            // Shaders are compiled only if a calibration has to run.
            let planned = plan_budget(&ctx, None, &net, budget, calibration.as_deref(), None)?;
            let file = planned.file(&net, budget);
            if let Some(path) = &out {
                file.write(path)?;
            }
            if json {
                let mut v = serde_json::to_value(&file).expect("json");
                v["search_ms"] = json!(planned.search_ms);
                v["calibration"] = json!(planned.calibration_text());
                v["dispatches"] = json!(planned.plan.dispatches().count());
                v["untiled_peak_bytes"] = json!(planned.untiled_peak);
                v["untiled_latency_ms"] = json!(planned.untiled_ms);
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                let c = &planned.choice;
                println!(
                    "{}: input {} on {}, budget {} ({budget} B):",
                    net.name,
                    net.input,
                    ctx.adapter_name(),
                    units::human(budget)
                );
                println!(
                    "  config:            --groups {} --residency {}",
                    c.config,
                    c.residency.as_str()
                );
                let b = planned.plan.breakdown();
                println!(
                    "  predicted peak:    {} ({} B): weights {}, maps {}, tiles {}, params {}, staging {}, padding {}",
                    units::human(c.peak_bytes),
                    c.peak_bytes,
                    units::human(b.weights),
                    units::human(b.maps),
                    units::human(b.tiles),
                    units::human(b.params),
                    units::human(b.staging),
                    units::human(b.alignment_padding + b.arena_slack)
                );
                println!(
                    "  predicted latency: {:.1} ms ({} dispatches, mac_ratio {:.3})",
                    c.predicted_ms,
                    planned.plan.dispatches().count(),
                    planned.plan.mac_ratio(&net)
                );
                if let (Some(up), Some(ums)) = (planned.untiled_peak, planned.untiled_ms) {
                    println!(
                        "  untiled layerwise: {} ({up} B), predicted {ums:.1} ms",
                        units::human(up)
                    );
                }
                println!(
                    "  searched in {:.0} ms; calibration: {}",
                    planned.search_ms,
                    planned.calibration_text()
                );
                if let Some(path) = &out {
                    println!("  wrote {}", path.display());
                }
            }
            Ok(())
        }
        Command::Sweep(o) => {
            let net = load_model(&o.model, o.size.as_deref())?;
            run_sweep(&net, &o)
        }
        Command::Regret {
            model,
            size,
            budgets,
            cuts,
            max_cuts,
            grids,
            runs,
            top,
            adapter,
            calibration,
            out,
            json,
        } => {
            let net = load_model(&model, size.as_deref())?;
            let o = RegretArgs {
                budgets,
                cuts,
                max_cuts,
                grids,
                runs,
                top,
                adapter,
                calibration,
                out,
                json,
            };
            run_regret(&net, &o)
        }
        Command::Run {
            model,
            size,
            weights,
            input,
            device,
            mode,
            groups,
            plan,
            residency,
            adapter,
            budget,
            calibration,
            runs,
            verify,
            out,
            json,
        } => {
            let net = load_model(&model, size.as_deref())?;
            let budget = budget.as_deref().map(units::parse_bytes).transpose()?;
            let weights = WeightSource::parse(&weights)?.load(&net)?;
            let x = InputSource::parse(&input)?.load(net.input)?;
            match device {
                Device::Cpu => run_cpu(&net, &weights, &x, out.as_deref(), json),
                Device::Gpu => {
                    let choose = if let Some(path) = plan {
                        ConfigChoice::PlanFile(path)
                    } else if let Some(g) = groups.as_deref() {
                        ConfigChoice::Given(
                            Config::parse(g)?,
                            residency.unwrap_or(Residency::Resident),
                        )
                    } else if budget.is_some() && mode == Mode::Layerwise {
                        ConfigChoice::Search(residency)
                    } else {
                        ConfigChoice::Given(
                            Config::untiled(),
                            residency.unwrap_or(Residency::Resident),
                        )
                    };
                    let naive_ok = matches!(&choose, ConfigChoice::Given(c, _) if c.is_untiled());
                    if mode == Mode::Naive && !naive_ok {
                        return Err(Error::Usage(
                            "--mode naive is the untiled baseline (every map alive); leave it out with --groups or --plan"
                                .into(),
                        ));
                    }
                    if calibration.is_some() && !matches!(choose, ConfigChoice::Search(_)) {
                        return Err(Error::Usage(
                            "--calibration is for planning under --budget; leave it out with --groups or --plan".into(),
                        ));
                    }
                    let opts = GpuRun {
                        mode,
                        choose,
                        calibration: calibration.as_deref(),
                        adapter: adapter.as_deref(),
                        budget,
                        runs: runs.max(1),
                        verify,
                        out: out.as_deref(),
                        json,
                    };
                    run_gpu(&net, &weights, &x, &opts)
                }
            }
        }
    }
}

/// `mafat plan --min-budget`.
fn plan_min_budget(net: &mafat::Network, adapter: Option<&str>, json: bool) -> Result<()> {
    let limits = adapter_limits(adapter)?;
    let t0 = Instant::now();
    let (peak, config, residency) = mafat::plan::search::min_peak(net, &limits)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let p = plan_with(net, &config, Mode::Layerwise, residency, &limits)?;
    let untiled = plan(net, &Config::untiled(), Mode::Layerwise, &limits)
        .map(|p| p.peak_bytes())
        .ok();
    if json {
        let v = json!({
            "model": net.name,
            "input": [net.input.c, net.input.h, net.input.w],
            "min_budget_bytes": peak,
            "config": config.to_string(),
            "residency": residency,
            "predicted_peak_bytes": peak,
            "breakdown": p.breakdown(),
            "mac_ratio": p.mac_ratio(net),
            "untiled_peak_bytes": untiled,
            "search_ms": ms,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        println!(
            "{}: input {}: smallest predicted peak {} ({peak} B) with --groups {config} --residency {} (mac_ratio {:.3}; found in {ms:.0} ms)",
            net.name,
            net.input,
            units::human(peak),
            residency.as_str(),
            p.mac_ratio(net)
        );
        if let Some(u) = untiled {
            println!("  untiled layerwise peak: {} ({u} B)", units::human(u));
        }
    }
    Ok(())
}

/// Calibration progress: a bar on a terminal, plain lines otherwise.
fn calibration_progress(net: &mafat::Network, adapter: String) -> impl FnMut(Progress<'_>) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(1);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "calibrating {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        b.set_prefix(format!("{} {}x{}", net.name, net.input.w, net.input.h));
        b
    });
    let name = format!("{} {}x{}", net.name, net.input.w, net.input.h);
    move |p: Progress<'_>| match &bar {
        Some(b) => {
            b.set_length(p.total as u64);
            b.set_position(p.done as u64);
            b.set_message(p.what.to_string());
            if p.done == p.total {
                b.finish_and_clear();
            }
        }
        None => {
            if p.done < p.total {
                eprintln!(
                    "calibrating {name} on {adapter}: {} ({}/{})",
                    p.what,
                    p.done + 1,
                    p.total
                );
            }
        }
    }
}

/// What planning for a budget produced.
struct Planned {
    choice: Choice,
    plan: MemoryPlan,
    cost: CostModel,
    source: CalibrationSource,
    search_ms: f64,
    untiled_peak: Option<u64>,
    untiled_ms: Option<f64>,
}

impl Planned {
    fn calibration_text(&self) -> String {
        match &self.source {
            CalibrationSource::File(p) => format!("read from {}", p.display()),
            CalibrationSource::Measured(Some(p)) => {
                format!("measured now, saved to {}", p.display())
            }
            CalibrationSource::Measured(None) => "measured now (not saved)".into(),
        }
    }

    fn file(&self, net: &mafat::Network, budget: u64) -> PlanFile {
        PlanFile {
            mafat: env!("CARGO_PKG_VERSION").into(),
            model: net.name.clone(),
            network_hash: self.cost.key.network_hash.clone(),
            input: [net.input.c, net.input.h, net.input.w],
            adapter: AdapterId::of(&self.cost.key),
            config: self.choice.config.to_string(),
            residency: self.choice.residency,
            budget_bytes: budget,
            predicted_peak_bytes: self.choice.peak_bytes,
            predicted_latency_ms: self.choice.predicted_ms,
            mac_ratio: self.plan.mac_ratio(net),
            breakdown: Some(self.plan.breakdown()),
        }
    }
}

/// Calibrate (or load the calibration) and search for the fastest plan that fits `budget`.
fn plan_budget(
    ctx: &GpuContext,
    pipelines: Option<&Pipelines>,
    net: &mafat::Network,
    budget: u64,
    calibration: Option<&Path>,
    only: Option<Residency>,
) -> Result<Planned> {
    let limits = DeviceLimits::from_wgpu(&ctx.limits, ctx.timestamps);
    let residencies: Vec<Residency> = match only {
        Some(r) => vec![r],
        None => vec![Residency::Resident, Residency::PerGroup],
    };
    // Nothing fits: say so before spending time on a calibration.
    let mut smallest: Option<(u64, Config, Residency)> = None;
    for &r in &residencies {
        let (m, c) = mafat::plan::search::min_peak_for(net, r, &limits)?;
        if smallest.as_ref().is_none_or(|s| m < s.0) {
            smallest = Some((m, c, r));
        }
    }
    if let Some((minimum, config, residency)) = smallest
        && minimum > budget
    {
        return Err(Error::NoFit {
            model: net.name.clone(),
            budget,
            minimum,
            config: config.to_string(),
            residency: residency.as_str().into(),
        });
    }
    let mut progress = calibration_progress(net, ctx.adapter_name());
    let (cost, source) = load_or_calibrate(ctx, pipelines, net, calibration, &mut progress)?;
    let t0 = Instant::now();
    let choice = mafat::plan::search::fastest_with(
        net,
        budget,
        &cost,
        &limits,
        mafat::plan::search::MAX_GRID,
        &residencies,
    )?;
    let search_ms = t0.elapsed().as_secs_f64() * 1e3;
    let plan = plan_with(
        net,
        &choice.config,
        Mode::Layerwise,
        choice.residency,
        &limits,
    )?;
    let untiled = plan_with(
        net,
        &Config::untiled(),
        Mode::Layerwise,
        Residency::Resident,
        &limits,
    )
    .ok();
    Ok(Planned {
        choice,
        plan,
        search_ms,
        untiled_peak: untiled.as_ref().map(|p| p.peak_bytes()),
        untiled_ms: untiled.as_ref().map(|p| cost.plan_ms(net, p)),
        cost,
        source,
    })
}

#[derive(clap::Args, Debug)]
struct SweepArgs {
    /// Built-in name (yolov2, yolov2-16, yolov2-tiny, yolov3-tiny) or a Darknet .cfg path.
    #[arg(long)]
    model: String,
    /// Input size WxH (overrides the cfg's width/height).
    #[arg(long)]
    size: Option<String>,
    /// LO..HI[:STEPS], geometric steps; LO may be `min` (the smallest peak mafat reaches) and HI
    /// `untiled` (the untiled layerwise peak).
    #[arg(long, default_value = "8MiB..96MiB:12")]
    budgets: String,
    /// Timed runs per distinct configuration, taken in turns with the others (median, quartiles).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Write every number here as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write the latency-against-memory plot here as SVG.
    #[arg(long)]
    svg: Option<PathBuf>,
    #[arg(long)]
    adapter: Option<String>,
    /// Latency calibration file (see mafat plan --calibration).
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

struct RegretArgs {
    budgets: String,
    cuts: String,
    max_cuts: usize,
    grids: usize,
    runs: usize,
    top: usize,
    adapter: Option<String>,
    calibration: Option<PathBuf>,
    out: Option<PathBuf>,
    json: bool,
}

/// Parse `LO..HI[:STEPS]` into geometric steps; `min`/`untiled` stand for the given bytes.
fn parse_budgets(text: &str, min: u64, untiled: u64) -> Result<Vec<u64>> {
    let bad = || {
        Error::Usage(format!(
            "--budgets `{text}`: expected LO..HI[:STEPS], e.g. 8MiB..96MiB:12 or min..untiled:6"
        ))
    };
    let (range, steps) = match text.rsplit_once(':') {
        Some((r, s)) => (r, s.trim().parse::<usize>().map_err(|_| bad())?),
        None => (text, 6),
    };
    let (lo, hi) = range.split_once("..").ok_or_else(bad)?;
    let value = |s: &str| match s.trim() {
        "min" => Ok(min),
        "untiled" => Ok(untiled),
        v => units::parse_bytes(v),
    };
    let (lo, hi) = (value(lo)?, value(hi)?);
    if lo == 0 || hi < lo || steps == 0 {
        return Err(bad());
    }
    if steps == 1 || lo == hi {
        return Ok(vec![lo]);
    }
    let mut v: Vec<u64> = (0..steps)
        .map(|k| (lo as f64 * (hi as f64 / lo as f64).powf(k as f64 / (steps - 1) as f64)) as u64)
        .collect();
    v[0] = lo;
    v[steps - 1] = hi;
    v.dedup();
    Ok(v)
}

/// Progress of timed runs (sweep, regret): a bar on a terminal, otherwise a line on stderr at the
/// start, the end and at most every ten seconds between.
fn measuring_progress(what: &'static str) -> impl FnMut(mafat::gpu::regret::Step<'_>) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(1);
        b.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{what} [{{bar:30}}] {{pos}}/{{len}} runs {{msg}} ({{elapsed}}, eta {{eta}})"
            ))
            .expect("template")
            .progress_chars("=> "),
        );
        b
    });
    let t0 = Instant::now();
    let mut last_line: Option<Instant> = None;
    move |s| match &bar {
        Some(b) => {
            b.set_length(s.total as u64);
            b.set_position(s.done as u64);
            b.set_message(s.what.to_string());
            if s.done == s.total {
                b.finish_and_clear();
            }
        }
        None => {
            if s.done == s.total || last_line.is_none_or(|t| t.elapsed().as_secs() >= 10) {
                last_line = Some(Instant::now());
                eprintln!(
                    "{what} [{}/{} runs] {:.0} s: {}",
                    s.done,
                    s.total,
                    t0.elapsed().as_secs_f64(),
                    s.what
                );
            }
        }
    }
}

fn run_sweep(net: &mafat::Network, o: &SweepArgs) -> Result<()> {
    use mafat::gpu::sweep::{METHODS, sweep};
    let ctx = GpuContext::new(o.adapter.as_deref())?;
    let pipelines = Pipelines::new(&ctx)?;
    let limits = DeviceLimits::from_wgpu(&ctx.limits, ctx.timestamps);
    let (min, min_config, min_residency) = mafat::plan::search::min_peak(net, &limits)?;
    let untiled = plan_with(
        net,
        &Config::untiled(),
        Mode::Layerwise,
        Residency::Resident,
        &limits,
    )?
    .peak_bytes();
    let budgets = parse_budgets(&o.budgets, min, untiled)?;
    // mafat needs the least of all methods: when it fits no budget, say so before calibrating.
    let most = budgets.iter().copied().max().unwrap_or(0);
    if most < min {
        return Err(Error::NoFit {
            model: net.name.clone(),
            budget: most,
            minimum: min,
            config: min_config.to_string(),
            residency: min_residency.as_str().into(),
        });
    }
    let mut progress = calibration_progress(net, ctx.adapter_name());
    let (cost, _) = load_or_calibrate(
        &ctx,
        Some(&pipelines),
        net,
        o.calibration.as_deref(),
        &mut progress,
    )?;
    let measurer = mafat::gpu::measure::Measurer::new(&ctx, &pipelines, net)?;
    let t0 = Instant::now();
    let mut step = measuring_progress("sweep");
    let rows = sweep(&measurer, net, &cost, &budgets, o.runs.max(1), &mut step)?;
    let title = format!(
        "{} {}x{} on {}: latency against device memory",
        net.name,
        net.input.w,
        net.input.h,
        ctx.adapter_name()
    );
    if let Some(p) = &o.csv {
        mafat::report::write_csv(p, &rows)?;
    }
    if let Some(p) = &o.svg {
        mafat::report::write_svg(p, &title, &rows)?;
    }
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "model": net.name,
                "input": [net.input.c, net.input.h, net.input.w],
                "adapter": ctx.adapter_name(),
                "runs": o.runs.max(1),
                "rows": rows,
                "seconds": t0.elapsed().as_secs_f64(),
            }))
            .expect("json")
        );
        return Ok(());
    }
    println!(
        "{title} (median ms of {} runs @ measured peak MiB)",
        o.runs.max(1)
    );
    print!("{:>10}", "budget");
    for m in METHODS {
        print!(" {m:>19}");
    }
    println!(" {:>10}", "vs best");
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    for &b in &budgets {
        print!("{:>6.2} MiB", mib(b));
        let of = |m: &str| rows.iter().find(|r| r.budget_bytes == b && r.method == m);
        for m in METHODS {
            match of(m) {
                Some(r) if r.fits => print!(
                    " {:>8.0} ms @{:>6.2}",
                    r.latency_ms,
                    mib(r.measured_peak_bytes)
                ),
                Some(r) => print!(" {:>19}", format!("needs {:.2}", mib(r.method_min_bytes))),
                None => print!(" {:>19}", ""),
            }
        }
        // mafat against the fastest baseline that fits.
        let best = METHODS[1..]
            .iter()
            .filter_map(|m| of(m).filter(|r| r.fits).map(|r| r.latency_ms))
            .fold(f64::INFINITY, f64::min);
        match of("mafat").filter(|r| r.fits) {
            Some(r) if best.is_finite() => println!(" {:>9.2}x", best / r.latency_ms),
            Some(_) => println!(" {:>10}", "only mafat"),
            None => println!(),
        }
    }
    for p in [&o.csv, &o.svg].into_iter().flatten() {
        println!("wrote {}", p.display());
    }
    println!("{:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}

fn run_regret(net: &mafat::Network, o: &RegretArgs) -> Result<()> {
    use mafat::gpu::regret::{RegretOptions, reference_configs, regret};
    let n = net.layers.len();
    let cuts: Vec<usize> = if o.cuts.trim() == "all" {
        (1..n).collect()
    } else {
        o.cuts
            .split(',')
            .map(|c| {
                c.trim().parse::<usize>().ok().filter(|&k| k > 0 && k < n).ok_or_else(|| {
                    Error::Usage(format!(
                        "--cuts: `{c}` is not a cut position (1..{}); give `all` or a list like 2,4,8,12",
                        n - 1
                    ))
                })
            })
            .collect::<Result<_>>()?
    };
    let ctx = GpuContext::new(o.adapter.as_deref())?;
    let pipelines = Pipelines::new(&ctx)?;
    let limits = DeviceLimits::from_wgpu(&ctx.limits, ctx.timestamps);
    let mut progress = calibration_progress(net, ctx.adapter_name());
    let (cost, source) = load_or_calibrate(
        &ctx,
        Some(&pipelines),
        net,
        o.calibration.as_deref(),
        &mut progress,
    )?;
    // Budget keywords: the smallest reference peak and the untiled layerwise peak.
    let min = reference_configs(net, &cuts, o.max_cuts, o.grids)
        .iter()
        .flat_map(|c| {
            [Residency::Resident, Residency::PerGroup].map(|r| {
                plan_with(net, c, Mode::Layerwise, r, &limits)
                    .map(|p| p.peak_bytes())
                    .unwrap_or(u64::MAX)
            })
        })
        .min()
        .unwrap_or(u64::MAX);
    let untiled = plan_with(
        net,
        &Config::untiled(),
        Mode::Layerwise,
        Residency::Resident,
        &limits,
    )
    .map(|p| p.peak_bytes())
    .unwrap_or(u64::MAX);
    let budgets = parse_budgets(&o.budgets, min, untiled)?;
    let opts = RegretOptions {
        budgets,
        cuts,
        max_cuts: o.max_cuts,
        grids: o.grids,
        runs: o.runs.max(1),
        top: o.top.max(1),
    };
    let measurer = mafat::gpu::measure::Measurer::new(&ctx, &pipelines, net)?;
    let t0 = Instant::now();
    let mut step = measuring_progress("regret");
    let (rows, refs) = regret(&measurer, net, &cost, &opts, &mut step)?;
    let calibration = match &source {
        CalibrationSource::File(p) => p.display().to_string(),
        CalibrationSource::Measured(p) => p
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    };
    let v = json!({
        "model": net.name,
        "input": [net.input.c, net.input.h, net.input.w],
        "adapter": ctx.adapter_name(),
        "calibration": calibration,
        "reference_grid": {
            "cuts": opts.cuts, "max_cuts": opts.max_cuts, "grids": opts.grids,
            "configurations": refs.len(),
        },
        "runs": opts.runs,
        "budgets": rows,
        "max_regret_pct": rows.iter().map(|r| r.regret_pct).fold(f64::NEG_INFINITY, f64::max),
        "seconds": t0.elapsed().as_secs_f64(),
    });
    if let Some(path) = &o.out {
        std::fs::write(path, serde_json::to_string_pretty(&v).expect("json") + "\n").map_err(
            |e| Error::Io {
                path: path.clone(),
                source: e,
            },
        )?;
    }
    if o.json {
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    println!(
        "{}: input {} on {}: search pick vs best of {} reference configurations (<= {} cuts at {}, grids 1x1..{g}x{g}, both residencies); median of {} runs",
        net.name,
        net.input,
        ctx.adapter_name(),
        refs.len(),
        opts.max_cuts,
        o.cuts,
        opts.runs,
        g = opts.grids
    );
    println!(
        "{:>10} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>17}  pick / best reference",
        "budget",
        "fits",
        "untiled",
        "pick",
        "predicted",
        "best ref",
        "composed",
        "regret",
        "quartiles"
    );
    for r in &rows {
        println!(
            "{:>10} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7.2}% {:>17}  {} {} / {} {}",
            units::human(r.budget_bytes),
            r.fitting,
            r.untiled_ms,
            r.pick.measured_ms,
            r.pick.estimate_ms,
            r.best.measured_ms,
            r.best.estimate_ms,
            r.regret_pct,
            format!("{:+.1}%..{:+.1}%", r.regret_iqr_pct.0, r.regret_iqr_pct.1),
            r.pick.config,
            r.pick.residency.as_str(),
            r.best.config,
            r.best.residency.as_str()
        );
    }
    println!(
        "(ms: untiled, pick and best ref are medians of whole runs taken in turns; predicted = cost model; composed = sum of measured group times; regret = median over rounds of pick/best − 1, with its quartiles)"
    );
    if let Some(path) = &o.out {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn run_cpu(
    net: &mafat::Network,
    weights: &mafat::model::weights::Weights,
    x: &Tensor,
    out: Option<&Path>,
    json: bool,
) -> Result<()> {
    let heads = net.outputs();
    let t0 = Instant::now();
    let outputs = reference::forward(net, weights, x, &heads)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let files = match out {
        Some(path) => write_outputs(path, &heads, &outputs)?,
        None => Vec::new(),
    };
    if json {
        let v = json!({
            "model": net.name,
            "input": [net.input.c, net.input.h, net.input.w],
            "device": "cpu",
            "latency_ms": ms,
            "timing": "wall clock, one run of the CPU reference",
            "macs": net.macs(),
            "outputs": heads.iter().zip(&outputs).map(|(l, t)| json!({
                "layer": l, "shape": [t.shape.c, t.shape.h, t.shape.w]
            })).collect::<Vec<_>>(),
            "files": files,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        println!(
            "{}: input {} on the CPU reference: {ms:.1} ms ({:.2} G MACs, {:.2} GMAC/s)",
            net.name,
            net.input,
            net.macs() as f64 / 1e9,
            net.macs() as f64 / 1e6 / ms
        );
        for (l, t) in heads.iter().zip(&outputs) {
            println!("  output of layer {l}: {}", t.shape);
        }
        for f in files {
            println!("  wrote {f}");
        }
    }
    Ok(())
}

/// Where `mafat run` gets its configuration.
enum ConfigChoice {
    /// --groups (or untiled) and --residency.
    Given(Config, Residency),
    /// --plan FILE.
    PlanFile(PathBuf),
    /// --budget without --groups or --plan: the search picks (among one residency if given).
    Search(Option<Residency>),
}

struct GpuRun<'a> {
    mode: Mode,
    choose: ConfigChoice,
    calibration: Option<&'a Path>,
    adapter: Option<&'a str>,
    budget: Option<u64>,
    runs: usize,
    verify: bool,
    out: Option<&'a Path>,
    json: bool,
}

/// Peak resident set size of this process (VmHWM), in bytes.
fn rss_peak_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn run_gpu(
    net: &mafat::Network,
    weights: &mafat::model::weights::Weights,
    x: &Tensor,
    o: &GpuRun<'_>,
) -> Result<()> {
    let ctx = GpuContext::new(o.adapter)?;
    let limits = DeviceLimits::from_wgpu(&ctx.limits, ctx.timestamps);
    let pipelines = Pipelines::new(&ctx)?;
    // The configuration: given, saved, or chosen by the search for the budget.
    let mut predicted_ms = None;
    let mut planned_by = None;
    let (config, residency) = match &o.choose {
        ConfigChoice::Given(c, r) => (c.clone(), *r),
        ConfigChoice::PlanFile(path) => {
            let f = PlanFile::read(path)?;
            f.check(path, net, &AdapterId::of(&calibration_key(&ctx, net)))?;
            predicted_ms = Some(f.predicted_latency_ms);
            planned_by = Some(format!("plan {}", path.display()));
            (f.config()?, f.residency)
        }
        ConfigChoice::Search(only) => {
            let budget = o.budget.expect("search needs a budget");
            let p = plan_budget(&ctx, Some(&pipelines), net, budget, o.calibration, *only)?;
            predicted_ms = Some(p.choice.predicted_ms);
            planned_by = Some(format!(
                "search in {:.0} ms; calibration {}",
                p.search_ms,
                p.calibration_text()
            ));
            (p.choice.config, p.choice.residency)
        }
    };
    let plan = plan_with(net, &config, o.mode, residency, &limits)?;
    let predicted = plan.peak_bytes();
    if let Some(budget) = o.budget
        && predicted > budget
    {
        let biggest = plan
            .buffers
            .iter()
            .max_by_key(|b| b.size)
            .expect("a plan has buffers");
        let minimum = match mafat::plan::search::min_peak(net, &limits) {
            Ok((m, c, r)) if m > budget => format!(
                "; no configuration fits it: the smallest is {m} bytes (--groups {c} --residency {})",
                serde_json::to_value(r)
                    .expect("json")
                    .as_str()
                    .unwrap_or("")
            ),
            Ok((m, c, r)) => format!(
                "; the smallest configuration needs {m} bytes (--groups {c} --residency {})",
                serde_json::to_value(r)
                    .expect("json")
                    .as_str()
                    .unwrap_or("")
            ),
            Err(_) => String::new(),
        };
        return Err(Error::Usage(format!(
            "config {config} needs {predicted} bytes of device memory, over the budget of {budget} bytes (largest item: {} of {} bytes){minimum}",
            biggest.label, biggest.size
        )));
    }
    let mut pool = BufferPool::new(o.budget);
    let ex = Executor::new(&ctx, &pipelines, net, weights, plan, &mut pool)?;
    let mut alloc_peak = ctx.allocator_bytes().unwrap_or((0, 0));
    let sample = |peak: &mut (u64, u64)| {
        if let Some((a, r)) = ctx.allocator_bytes() {
            *peak = (peak.0.max(a), peak.1.max(r));
        }
    };
    let result = (|| {
        let mut last = ex.run(&ctx, &pipelines, x)?; // warm-up (first dispatches compile shaders)
        let mut times = Vec::with_capacity(o.runs);
        for _ in 0..o.runs {
            last = ex.run(&ctx, &pipelines, x)?;
            times.push(last.compute_ms);
            sample(&mut alloc_peak);
        }
        times.sort_by(f64::total_cmp);
        Ok::<_, Error>((last, times[times.len() / 2]))
    })();
    let plan = ex.plan.clone();
    ex.release(&mut pool);
    let (last, median_ms) = result?;
    let stats = pool.stats();

    let heads = net.outputs();
    // The untiled layerwise run on the same adapter, for `bit_exact_untiled`.
    let untiled = if o.verify
        && !(config.is_untiled() && o.mode == Mode::Layerwise && residency == Residency::Resident)
    {
        Some(untiled_outputs(&ctx, &pipelines, net, weights, x, &limits))
    } else {
        None
    };
    let bit_exact_untiled: Option<Result<bool>> = match untiled {
        Some(Ok(u)) => Some(Ok(u.iter().zip(&last.outputs).all(|(a, b)| {
            a.shape == b.shape
                && a.data
                    .iter()
                    .zip(&b.data)
                    .all(|(x, y)| x.to_bits() == y.to_bits())
        }))),
        Some(Err(e)) => Some(Err(e)),
        // This is the untiled layerwise run.
        None => o.verify.then_some(Ok(true)),
    };
    let max_abs_diff = if o.verify {
        let cpu = reference::forward(net, weights, x, &heads)?;
        Some(
            last.outputs
                .iter()
                .zip(&cpu)
                .map(|(g, c)| g.max_abs_diff(c))
                .fold(0.0f32, |m, d| {
                    if d.is_nan() || m.is_nan() {
                        f32::NAN
                    } else {
                        m.max(d)
                    }
                }),
        )
    } else {
        None
    };
    let files = match o.out {
        Some(path) => write_outputs(path, &heads, &last.outputs)?,
        None => Vec::new(),
    };
    let timing = match last.timing {
        mafat::gpu::Timing::GpuTimestamps => "gpu-timestamps",
        mafat::gpu::Timing::WallClock => "wall-clock",
    };
    if o.json {
        let mut v = json!({
            "model": net.name,
            "input": [net.input.c, net.input.h, net.input.w],
            "device": "gpu",
            "mode": o.mode,
            "config": config.to_string(),
            "latency_ms": median_ms,
            "predicted_latency_ms": predicted_ms,
            "planned_by": planned_by,
            "runs": o.runs,
            "timing": timing,
            "predicted_peak_bytes": plan.peak_bytes(),
            "measured_peak_bytes": stats.peak,
            "allocator_reserved_peak_bytes": alloc_peak.1,
            "allocator_allocated_peak_bytes": alloc_peak.0,
            "rss_peak_bytes": rss_peak_bytes(),
            "budget_bytes": o.budget,
            "residency": plan.residency,
            "breakdown": plan.breakdown(),
            "arena_bytes": plan.bytes_of(mafat::plan::memory::BufferKind::Arena),
            "macs": plan.macs,
            "untiled_macs": net.macs(),
            "mac_ratio": plan.mac_ratio(net),
            "dispatches": plan.dispatches().count(),
            "group_ms": last.group_ms.iter().map(|(r, ms)| json!({
                "layers": format!("{}..{}", r.start, r.end), "ms": ms
            })).collect::<Vec<_>>(),
            "adapter": ctx.adapter_name(),
            "outputs": heads.iter().zip(&last.outputs).map(|(l, t)| json!({
                "layer": l, "shape": [t.shape.c, t.shape.h, t.shape.w]
            })).collect::<Vec<_>>(),
            "files": files,
        });
        if let Some(d) = max_abs_diff {
            v["max_abs_diff_cpu"] = json!(d);
        }
        match &bit_exact_untiled {
            Some(Ok(b)) => v["bit_exact_untiled"] = json!(b),
            Some(Err(e)) => {
                v["bit_exact_untiled"] = json!(null);
                v["untiled_error"] = json!(e.to_string());
            }
            None => {}
        }
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        let how = if config.is_untiled() {
            format!("untiled, {:?}", o.mode).to_lowercase()
        } else {
            format!("config {config}, {}", residency.as_str())
        };
        println!(
            "{}: input {} on {} ({how}): {median_ms:.2} ms median of {} ({timing}), {:.2} GMAC/s",
            net.name,
            net.input,
            ctx.adapter_name(),
            o.runs,
            plan.macs as f64 / 1e6 / median_ms
        );
        println!(
            "  work: {} dispatches, {:.3} G MACs computed = {:.4} × untiled",
            plan.dispatches().count(),
            plan.macs as f64 / 1e9,
            plan.mac_ratio(net)
        );
        println!(
            "  device memory: predicted {} ({} B), pool peak {} ({} B); allocator peak {} allocated, {} reserved",
            units::human(plan.peak_bytes()),
            plan.peak_bytes(),
            units::human(stats.peak),
            stats.peak,
            units::human(alloc_peak.0),
            units::human(alloc_peak.1)
        );
        if let Some(rss) = rss_peak_bytes() {
            println!("  process peak RSS: {}", units::human(rss));
        }
        if let (Some(p), Some(by)) = (predicted_ms, &planned_by) {
            println!("  predicted latency {p:.1} ms ({by})");
        }
        if let Some(d) = max_abs_diff {
            println!("  max |GPU − CPU reference| = {d:e}");
        }
        match &bit_exact_untiled {
            Some(Ok(true)) => println!("  bit-exact with the untiled run: yes"),
            Some(Ok(false)) => println!("  bit-exact with the untiled run: NO"),
            Some(Err(e)) => println!("  bit-exact with the untiled run: not checked ({e})"),
            None => {}
        }
        for (l, t) in heads.iter().zip(&last.outputs) {
            println!("  output of layer {l}: {}", t.shape);
        }
        for f in files {
            println!("  wrote {f}");
        }
    }
    Ok(())
}

/// Outputs of the untiled layerwise run (its own pool; no budget).
fn untiled_outputs(
    ctx: &GpuContext,
    pipelines: &Pipelines,
    net: &mafat::Network,
    weights: &mafat::model::weights::Weights,
    x: &Tensor,
    limits: &DeviceLimits,
) -> Result<Vec<Tensor>> {
    let plan: MemoryPlan = plan(net, &Config::untiled(), Mode::Layerwise, limits)?;
    let mut pool = BufferPool::new(None);
    let ex = Executor::new(ctx, pipelines, net, weights, plan, &mut pool)?;
    let out = ex.run(ctx, pipelines, x);
    ex.release(&mut pool);
    Ok(out?.outputs)
}

fn write_outputs(path: &Path, heads: &[usize], outputs: &[mafat::Tensor]) -> Result<Vec<String>> {
    if outputs.len() == 1 {
        outputs[0].write_npy(path)?;
        return Ok(vec![path.display().to_string()]);
    }
    let stem = path.with_extension("");
    heads
        .iter()
        .zip(outputs)
        .map(|(l, t)| {
            let p = PathBuf::from(format!("{}.L{l}.npy", stem.display()));
            t.write_npy(&p)?;
            Ok(p.display().to_string())
        })
        .collect()
}

fn layers_json(net: &mafat::Network) -> serde_json::Value {
    json!({
        "model": net.name,
        "input": [net.input.c, net.input.h, net.input.w],
        "layers": net.layers.iter().map(|l| json!({
            "index": l.index,
            "type": l.kind.name(),
            "params": l.kind,
            "input": [l.input.c, l.input.h, l.input.w],
            "output": [l.output.c, l.output.h, l.output.w],
            "weight_bytes": l.weight_bytes(),
            "macs": l.macs(),
        })).collect::<Vec<_>>(),
        "weight_bytes": net.weight_bytes(),
        "macs": net.macs(),
    })
}

fn info(json: bool) -> Result<()> {
    let adapters = mafat::gpu::info::list_adapters()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&adapters).expect("json"));
        return Ok(());
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("adapter {i}: {}", a.name);
        println!("  backend:      {}", a.backend);
        println!("  device type:  {}", a.device_type);
        println!("  driver:       {} ({})", a.driver, a.driver_info);
        println!(
            "  timestamps:   {}",
            if a.timestamp_query { "yes" } else { "no" }
        );
        println!(
            "  subgroups:    {}",
            if a.subgroups {
                format!(
                    "yes, {}..={} lanes",
                    a.subgroup_sizes[0], a.subgroup_sizes[1]
                )
            } else {
                "no".into()
            }
        );
        let l = &a.limits;
        println!(
            "  max_buffer_size:                       {}",
            l.max_buffer_size
        );
        println!(
            "  max_storage_buffer_binding_size:       {}",
            l.max_storage_buffer_binding_size
        );
        println!(
            "  max_compute_workgroups_per_dimension:  {}",
            l.max_compute_workgroups_per_dimension
        );
        println!(
            "  max_compute_invocations_per_workgroup: {}",
            l.max_compute_invocations_per_workgroup
        );
        println!(
            "  max_compute_workgroup_storage_size:    {}",
            l.max_compute_workgroup_storage_size
        );
    }
    Ok(())
}
