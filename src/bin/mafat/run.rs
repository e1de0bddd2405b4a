//! `mafat run`: run a model on the GPU (untiled, a given configuration, a saved plan, or the
//! search's pick for a budget) or on the CPU reference, and report time, memory and outputs.

use crate::args::{self, CalibrationArgs, DeviceArgs, KernelArgs, ModelArgs};
use crate::output::{Report, emit};
use crate::progress;
use mafat::gpu::RunOutput;
use mafat::input::InputSource;
use mafat::model::onnx::GraphOutput;
use mafat::model::weights::{WeightSource, Weights};
use mafat::plan::file::PlanFile;
use mafat::plan::search::min_peak;
use mafat::plan::{Config, MemoryBreakdown, MemoryPlan, Mode, Residency};
use mafat::tune::adapter_id;
use mafat::{BudgetOptions, Error, Network, Precision, Prepared, Result, Session, Tensor, units};
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Device {
    Cpu,
    Gpu,
}

/// `mafat run --model M ...`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// A Darknet .weights file, the .onnx model, random[:SEED] or int[:SEED] (default: an ONNX
    /// model's own weights; random:0 for a Darknet model).
    #[arg(long)]
    weights: Option<String>,
    /// A PNG/JPEG image (letterboxed as Darknet does), a tensor file (.npy, or an ONNX
    /// TensorProto .pb) holding exactly the input, random[:SEED] or int[:SEED].
    #[arg(long, default_value = "random:0")]
    input: String,
    /// Where to run: the GPU (wgpu) or the CPU reference.
    #[arg(long, value_enum, default_value = "gpu")]
    device: Device,
    /// Untiled GPU mode: layerwise (liveness reuse) or naive (every map alive).
    #[arg(long, value_parser = args::mode, default_value = "layerwise")]
    mode: Mode,
    /// Fused tile groups, e.g. 0..8:3x3,8..16:2x2 (layers FIRST..END, half-open, and a
    /// ROWSxCOLS grid); other layers run untiled.
    #[arg(long, conflicts_with = "plan")]
    groups: Option<String>,
    /// Run a plan saved by mafat plan --out (refused for another model, size or adapter; its
    /// budget is enforced).
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Conv weights resident for the whole run, or uploaded per group when it starts
    /// (default: resident; under --budget without --groups the search chooses unless given).
    #[arg(long, value_parser = args::residency, conflicts_with = "plan")]
    residency: Option<Residency>,
    #[command(flatten)]
    device_args: DeviceArgs,
    /// Device-memory budget (e.g. 64MiB). Alone: plan the fastest configuration that fits, then
    /// run it; with --groups or --plan: refuse before allocating if that needs more.
    #[arg(long)]
    budget: Option<String>,
    #[command(flatten)]
    calibration: CalibrationArgs,
    #[command(flatten)]
    kernels: KernelArgs,
    /// Timed GPU runs after one warm-up run (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Compare the GPU output with the CPU reference (and with the untiled GPU run).
    #[arg(long)]
    verify: bool,
    /// Write the outputs as .npy: an ONNX model's with their ONNX dimensions (several:
    /// FILE.<output name>.npy each), a Darknet model's as C×H×W (several heads: FILE.L<layer>.npy).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// Where the GPU run gets its configuration.
enum ConfigChoice {
    /// --groups (or untiled) and --residency.
    Given(Config, Residency),
    /// --plan FILE.
    PlanFile(PathBuf),
    /// --budget without --groups or --plan: the search picks (among one residency if given).
    Search(Option<Residency>),
}

/// Run `mafat run`.
pub fn main(a: Args) -> Result<()> {
    crate::args::check_runs(a.runs, crate::args::MAX_RUNS)?;
    let budget = a.budget.as_deref().map(units::parse_bytes).transpose()?;
    let choose = choice(&a, budget)?;
    let loaded = a.model.load_model()?;
    let net = loaded.net;
    let onnx_outputs = loaded.onnx_outputs;
    let weights = match (&a.weights, a.model.is_onnx()) {
        (Some(w), _) => WeightSource::parse(w)?,
        (None, true) => WeightSource::File(a.model.model.clone().into()),
        (None, false) => WeightSource::Random(0),
    };
    let input = InputSource::parse(&a.input)?;
    check_host_memory(&net, &a)?;
    if let Some(p) = &a.out {
        crate::output::check_writable(p)?;
    }
    match a.device {
        Device::Cpu => {
            let (weights, x) = (weights.load(&net)?, input.load(net.input)?);
            emit(
                &run_cpu(&net, &weights, &x, &a, onnx_outputs.as_deref())?,
                a.json,
            )
        }
        Device::Gpu => {
            let (report, problem) = run_gpu(
                &net,
                &weights,
                &input,
                &a,
                choose,
                budget,
                onnx_outputs.as_deref(),
            )?;
            // The report is shown either way; a wrong answer then fails the command.
            emit(&report, a.json)?;
            problem.map_or(Ok(()), |p| Err(Error::Verification(p)))
        }
    }
}

/// Refuse, before building anything, a run whose host-side tensors (input, weights and their
/// folded copy, outputs, and the CPU reference's maps where it runs) pass the host's sanity cap.
fn check_host_memory(net: &Network, a: &Args) -> Result<()> {
    let heads = net.outputs();
    let f32s = |len: usize| 4 * len as u64;
    let outputs: u64 = heads
        .iter()
        .map(|&h| f32s(net.layers[h].output.len()))
        .sum();
    let weights = 2 * mafat::model::weights::DarknetWeights::body_bytes(net);
    let reference = match a.device == Device::Cpu || a.verify {
        true => mafat::reference::peak_map_bytes(net, &heads),
        false => 0,
    };
    let need = f32s(net.input.len()) + weights + outputs + reference;
    let cap = mafat::host::memory_cap_bytes();
    if need > cap {
        return Err(Error::Usage(format!(
            "{} at {}x{} needs about {} of host memory ({} for the CPU reference's maps), over the cap of {} (half this machine's memory); use a smaller --size",
            net.name,
            net.input.w,
            net.input.h,
            units::human(need),
            units::human(reference),
            units::human(cap)
        )));
    }
    Ok(())
}

/// The configuration source the options ask for, refusing combinations that make no sense.
fn choice(a: &Args, budget: Option<u64>) -> Result<ConfigChoice> {
    let choose = if let Some(path) = &a.plan {
        ConfigChoice::PlanFile(path.clone())
    } else if let Some(g) = a.groups.as_deref() {
        ConfigChoice::Given(
            Config::parse(g)?,
            a.residency.unwrap_or(Residency::Resident),
        )
    } else if budget.is_some() && a.mode == Mode::Layerwise {
        ConfigChoice::Search(a.residency)
    } else {
        ConfigChoice::Given(
            Config::untiled(),
            a.residency.unwrap_or(Residency::Resident),
        )
    };
    let naive_ok = matches!(&choose, ConfigChoice::Given(c, _) if c.is_untiled());
    if a.mode == Mode::Naive && !naive_ok {
        return Err(Error::Usage(
            "--mode naive is the untiled baseline (every map alive); leave it out with --groups or --plan".into(),
        ));
    }
    if a.kernels.kernel.is_some() && matches!(choose, ConfigChoice::PlanFile(_)) {
        return Err(Error::Usage(
            "--kernel goes with --groups or --budget; a plan file names its own kernels".into(),
        ));
    }
    if a.calibration.calibration.is_some() && !matches!(choose, ConfigChoice::Search(_)) {
        return Err(Error::Usage(
            "--calibration is for planning under --budget; leave it out with --groups or --plan"
                .into(),
        ));
    }
    Ok(choose)
}

#[derive(Serialize)]
struct OutputShape {
    layer: usize,
    shape: [usize; 3],
}

fn output_shapes(net: &Network, outputs: &[Tensor]) -> Vec<OutputShape> {
    net.outputs()
        .iter()
        .zip(outputs)
        .map(|(&layer, t)| OutputShape {
            layer,
            shape: [t.shape.c, t.shape.h, t.shape.w],
        })
        .collect()
}

/// `mafat run --device cpu`.
#[derive(Serialize)]
struct CpuReport {
    model: String,
    input: [usize; 3],
    device: &'static str,
    latency_ms: f64,
    timing: &'static str,
    macs: u64,
    /// Where values are rounded as a device storing this precision rounds them.
    precision: Precision,
    outputs: Vec<OutputShape>,
    files: Vec<String>,
    #[serde(skip)]
    input_text: String,
}

impl Report for CpuReport {
    fn text(&self) -> String {
        let mut s = format!(
            "{}: input {} on the CPU reference ({}): {:.1} ms ({:.2} G MACs, {:.2} GMAC/s)\n",
            self.model,
            self.input_text,
            self.precision,
            self.latency_ms,
            self.macs as f64 / 1e9,
            self.macs as f64 / 1e6 / self.latency_ms
        );
        for o in &self.outputs {
            let [c, h, w] = o.shape;
            let _ = writeln!(s, "  output of layer {}: {w}x{h}x{c}", o.layer);
        }
        for f in &self.files {
            let _ = writeln!(s, "  wrote {f}");
        }
        s
    }
}

/// Refuse outputs holding infinities or NaNs (of heads `heads`, stored at `precision`).
fn check_finite(heads: &[usize], outputs: &[Tensor], precision: Precision) -> Result<()> {
    let count = |t: &Tensor| t.data.iter().filter(|v| !v.is_finite()).count();
    let Some((layer, _)) = heads.iter().zip(outputs).find(|(_, t)| count(t) > 0) else {
        return Ok(());
    };
    Err(Error::NonFinite {
        count: outputs.iter().map(count).sum(),
        layer: *layer,
        precision,
        largest: precision.max_finite(),
        hint: match precision {
            Precision::F32 => "",
            Precision::F16 => ", or run at --precision f32",
        },
    })
}

/// The CPU reference, rounding where a device storing `--precision` would.
fn run_cpu(
    net: &Network,
    weights: &Weights,
    x: &Tensor,
    a: &Args,
    onnx_outputs: Option<&[GraphOutput]>,
) -> Result<CpuReport> {
    let (out, precision) = (a.out.as_deref(), a.device_args.precision);
    let heads = net.outputs();
    let t0 = Instant::now();
    let outputs = mafat::reference::forward_at(net, weights, x, &heads, precision)?;
    check_finite(&heads, &outputs, precision)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    Ok(CpuReport {
        model: net.name.clone(),
        input: [net.input.c, net.input.h, net.input.w],
        device: "cpu",
        latency_ms: ms,
        timing: "wall clock, one run of the CPU reference",
        macs: net.macs(),
        precision,
        files: match out {
            Some(path) => write_outputs(path, &heads, &outputs, onnx_outputs)?,
            None => Vec::new(),
        },
        outputs: output_shapes(net, &outputs),
        input_text: net.input.to_string(),
    })
}

/// The configuration to run, its residency, the budget to enforce, and (when planned) the
/// predicted latency and how it was planned.
struct Chosen {
    config: Config,
    residency: Residency,
    ops: Vec<mafat::kernel::Op>,
    budget: Option<u64>,
    predicted_ms: Option<f64>,
    planned_by: Option<String>,
}

/// The kernels of a given configuration: `--kernel` as given; without it the tuned kernels, unless
/// they need more than the budget where the registry's defaults (no workspace, the smallest
/// weights) fit it, as the search does.
fn given_ops(
    session: &Session,
    net: &Network,
    a: &Args,
    config: &Config,
    residency: Residency,
    budget: Option<u64>,
) -> Result<Vec<mafat::kernel::Op>> {
    // Before measuring any kernel: the configuration must fit the device with the default
    // kernels (the least memory), or nothing will (an impossible --size fails in milliseconds).
    let defaults = mafat::kernel::select_all(net)?;
    session
        .planner_on(net, defaults.clone())?
        .plan(config, a.mode, residency)?;
    let ops = a.kernels.ops(session, net)?;
    let (Some(budget), None) = (budget, &a.kernels.kernel) else {
        return Ok(ops);
    };
    let peak = |ops: Vec<mafat::kernel::Op>| -> Result<u64> {
        Ok(session
            .planner_on(net, ops)?
            .plan(config, a.mode, residency)?
            .peak_bytes())
    };
    if ops != defaults && peak(ops.clone())? > budget && peak(defaults.clone())? <= budget {
        log::info!("the tuned kernels need more than the budget for {config}: the default kernels");
        return Ok(defaults);
    }
    Ok(ops)
}

fn resolve_choice(
    session: &Session,
    net: &Network,
    a: &Args,
    choose: ConfigChoice,
    budget: Option<u64>,
) -> Result<Chosen> {
    Ok(match choose {
        ConfigChoice::Given(config, residency) => Chosen {
            ops: given_ops(session, net, a, &config, residency, budget)?,
            config,
            residency,
            budget,
            predicted_ms: None,
            planned_by: None,
        },
        ConfigChoice::PlanFile(path) => {
            let f = PlanFile::read(&path)?;
            f.check(
                &path,
                net,
                &adapter_id(session.context()),
                session.precision(),
            )?;
            let config = f.config()?;
            let ops = f.ops(&path, net)?;
            let planner = session.planner_on(net, ops.clone())?;
            let plan = planner.plan(&config, Mode::Layerwise, f.residency)?;
            f.check_figures(&path, &plan)?;
            Chosen {
                config,
                residency: f.residency,
                ops,
                // The plan's own budget holds unless a tighter one is given.
                budget: Some(budget.map_or(f.budget_bytes, |b| b.min(f.budget_bytes))),
                predicted_ms: Some(f.predicted_latency_ms),
                planned_by: Some(format!("plan {}", path.display())),
            }
        }
        ConfigChoice::Search(only) => {
            let budget = budget.ok_or_else(|| Error::Usage("the search needs --budget".into()))?;
            let options = BudgetOptions {
                calibration: a.calibration.calibration.as_deref(),
                residencies: only.map_or(Residency::BOTH.to_vec(), |r| vec![r]),
                kernels: a.kernels.policy()?,
                ..BudgetOptions::default()
            };
            let mut progress = progress::calibration(net, session);
            let p = session.plan_for_budget(net, budget, &options, &mut progress)?;
            Chosen {
                config: p.choice.config,
                residency: p.choice.residency,
                ops: p.plan.ops.clone(),
                budget: Some(budget),
                predicted_ms: Some(p.choice.predicted_ms),
                planned_by: Some(format!(
                    "search in {:.0} ms; calibration {}",
                    p.search_ms, p.calibration
                )),
            }
        }
    })
}

/// Refuse, before allocating anything, a plan whose predicted peak passes the budget.
fn check_budget(session: &Session, net: &Network, plan: &MemoryPlan, budget: u64) -> Result<()> {
    let predicted = plan.peak_bytes();
    if predicted <= budget {
        return Ok(());
    }
    let biggest = plan
        .buffers
        .iter()
        .max_by_key(|b| b.size)
        .map(|b| format!(" (largest item: {} of {} bytes)", b.label, b.size))
        .unwrap_or_default();
    let minimum = match session.planner(net).and_then(|p| min_peak(&p)) {
        Ok((m, c, r)) if m > budget => format!(
            "; no configuration fits it: the smallest is {m} bytes (--groups {c} --residency {})",
            r.as_str()
        ),
        Ok((m, c, r)) => format!(
            "; the smallest configuration needs {m} bytes (--groups {c} --residency {})",
            r.as_str()
        ),
        Err(_) => String::new(),
    };
    Err(Error::Usage(format!(
        "config {} needs {predicted} bytes of device memory, over the budget of {budget} bytes{biggest}{minimum}",
        plan.config
    )))
}

/// One warm-up run, then `runs` timed ones: the last output, the median time, and the allocator's
/// peak (allocated, reserved) seen after each run.
fn timed_runs(
    session: &Session,
    prepared: &Prepared,
    x: &Tensor,
    runs: usize,
) -> Result<(RunOutput, f64, (u64, u64))> {
    let ctx = session.context();
    let mut alloc_peak = ctx.allocator_bytes().unwrap_or((0, 0));
    let mut last = prepared.run(x)?; // warm-up (the first dispatches compile shaders)
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        last = prepared.run(x)?;
        times.push(last.compute_ms);
        if let Some((a, r)) = ctx.allocator_bytes() {
            alloc_peak = (alloc_peak.0.max(a), alloc_peak.1.max(r));
        }
    }
    let median = mafat::tune::median(&mut times);
    Ok((last, median, alloc_peak))
}

#[derive(Serialize)]
struct GroupMs {
    layers: String,
    ms: f64,
}

/// `mafat run` on the GPU: the JSON contract of `../shared/design.md`.
#[derive(Serialize)]
struct GpuReport {
    model: String,
    input: [usize; 3],
    device: &'static str,
    mode: Mode,
    /// How maps and weights were stored.
    precision: Precision,
    config: String,
    latency_ms: f64,
    predicted_latency_ms: Option<f64>,
    planned_by: Option<String>,
    runs: usize,
    timing: &'static str,
    predicted_peak_bytes: u64,
    measured_peak_bytes: u64,
    allocator_reserved_peak_bytes: u64,
    allocator_allocated_peak_bytes: u64,
    rss_peak_bytes: Option<u64>,
    budget_bytes: Option<u64>,
    residency: Residency,
    breakdown: MemoryBreakdown,
    arena_bytes: u64,
    macs: u64,
    untiled_macs: u64,
    mac_ratio: f64,
    dispatches: usize,
    group_ms: Vec<GroupMs>,
    adapter: String,
    kernels: Vec<&'static str>,
    outputs: Vec<OutputShape>,
    files: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_abs_diff_cpu: Option<f32>,
    /// `max_abs_diff_cpu` over the CPU output's absmax.
    max_diff_cpu_over_absmax: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bit_exact_untiled: Option<Option<bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    untiled_error: Option<String>,
    #[serde(skip)]
    input_text: String,
    #[serde(skip)]
    untiled: bool,
}

fn run_gpu(
    net: &Network,
    weights: &WeightSource,
    input: &InputSource,
    a: &Args,
    choose: ConfigChoice,
    budget: Option<u64>,
    onnx_outputs: Option<&[GraphOutput]>,
) -> Result<(GpuReport, Option<String>)> {
    let session = a.device_args.session()?;
    let chosen = resolve_choice(&session, net, a, choose, budget)?;
    let planner = session.planner_on(net, chosen.ops.clone())?;
    let plan = planner.plan(&chosen.config, a.mode, chosen.residency)?;
    if let Some(b) = chosen.budget {
        check_budget(&session, net, &plan, b)?;
    }
    // The plan fits the device and the budget: only now build the host tensors.
    let (weights, x) = (&weights.load(net)?, &input.load(net.input)?);
    let prepared = session.prepare(net, weights, plan, chosen.budget)?;
    let (last, median_ms, alloc_peak) = timed_runs(&session, &prepared, x, a.runs)?;
    let stats = prepared.pool_stats();
    let plan = prepared.plan().clone();
    drop(prepared);
    let verification = match a.verify {
        true => Some(session.verify(net, weights, x, &plan, &last.outputs)?),
        false => None,
    };
    let (bit_exact_untiled, untiled_error) = match verification
        .as_ref()
        .and_then(|v| v.bit_exact_untiled.clone())
    {
        Some(Ok(b)) => (Some(Some(b)), None),
        Some(Err(e)) => (Some(None), Some(e)),
        None => (None, None),
    };
    let files = match a.out.as_deref() {
        Some(path) => write_outputs(path, &net.outputs(), &last.outputs, onnx_outputs)?,
        None => Vec::new(),
    };
    check_finite(&net.outputs(), &last.outputs, plan.precision)?;
    let problem = verification
        .as_ref()
        .and_then(|v| v.problem(plan.precision));
    let report = GpuReport {
        model: net.name.clone(),
        input: [net.input.c, net.input.h, net.input.w],
        device: "gpu",
        mode: a.mode,
        precision: plan.precision,
        config: chosen.config.to_string(),
        latency_ms: median_ms,
        predicted_latency_ms: chosen.predicted_ms,
        planned_by: chosen.planned_by,
        runs: a.runs,
        timing: last.timing.as_str(),
        predicted_peak_bytes: plan.peak_bytes(),
        measured_peak_bytes: stats.peak,
        allocator_reserved_peak_bytes: alloc_peak.1,
        allocator_allocated_peak_bytes: alloc_peak.0,
        rss_peak_bytes: mafat::host::rss_peak_bytes(),
        budget_bytes: chosen.budget,
        residency: plan.residency,
        breakdown: plan.breakdown(),
        arena_bytes: plan.bytes_of(mafat::plan::BufferKind::Arena),
        macs: plan.macs,
        untiled_macs: net.macs(),
        mac_ratio: plan.mac_ratio(net),
        dispatches: plan.dispatches().count(),
        group_ms: last
            .group_ms
            .iter()
            .map(|(r, ms)| GroupMs {
                layers: format!("{}..{}", r.start, r.end),
                ms: *ms,
            })
            .collect(),
        adapter: session.adapter_name(),
        kernels: plan.ops.iter().map(|o| o.name()).collect(),
        outputs: output_shapes(net, &last.outputs),
        files,
        max_abs_diff_cpu: verification.as_ref().map(|v| v.max_abs_diff_cpu),
        max_diff_cpu_over_absmax: verification.as_ref().map(|v| v.max_diff_cpu_over_absmax),
        bit_exact_untiled,
        untiled_error,
        input_text: net.input.to_string(),
        untiled: chosen.config.is_untiled(),
    };
    Ok((report, problem))
}

impl Report for GpuReport {
    fn text(&self) -> String {
        let h = units::human;
        let how = if self.untiled {
            format!("untiled, {}, {}", self.mode.as_str(), self.precision)
        } else {
            format!(
                "config {}, {}, {}",
                self.config,
                self.residency.as_str(),
                self.precision
            )
        };
        let mut s = format!(
            "{}: input {} on {} ({how}): {:.2} ms median of {} ({}), {:.2} GMAC/s\n",
            self.model,
            self.input_text,
            self.adapter,
            self.latency_ms,
            self.runs,
            self.timing,
            self.macs as f64 / 1e6 / self.latency_ms
        );
        let _ = writeln!(
            s,
            "  work: {} dispatches, {:.3} G MACs computed = {:.4} × untiled",
            self.dispatches,
            self.macs as f64 / 1e9,
            self.mac_ratio
        );
        let _ = writeln!(
            s,
            "  device memory: predicted {} ({} B), pool peak {} ({} B); allocator peak {} allocated, {} reserved",
            h(self.predicted_peak_bytes),
            self.predicted_peak_bytes,
            h(self.measured_peak_bytes),
            self.measured_peak_bytes,
            h(self.allocator_allocated_peak_bytes),
            h(self.allocator_reserved_peak_bytes)
        );
        if let Some(rss) = self.rss_peak_bytes {
            let _ = writeln!(s, "  process peak RSS: {}", h(rss));
        }
        if let (Some(p), Some(by)) = (self.predicted_latency_ms, &self.planned_by) {
            let _ = writeln!(s, "  predicted latency {p:.1} ms ({by})");
        }
        if let Some(d) = self.max_abs_diff_cpu {
            let _ = write!(s, "  max |GPU − CPU reference| = {d:e}");
            if let Some(r) = self.max_diff_cpu_over_absmax {
                let _ = write!(s, " ({r:e} of the output's absmax)");
            }
            s.push('\n');
        }
        match (&self.bit_exact_untiled, &self.untiled_error) {
            (Some(Some(true)), _) => s.push_str("  bit-exact with the untiled run: yes\n"),
            (Some(Some(false)), _) => s.push_str("  bit-exact with the untiled run: NO\n"),
            (_, Some(e)) => {
                let _ = writeln!(s, "  bit-exact with the untiled run: not checked ({e})");
            }
            _ => {}
        }
        for o in &self.outputs {
            let [c, hh, w] = o.shape;
            let _ = writeln!(s, "  output of layer {}: {w}x{hh}x{c}", o.layer);
        }
        for f in &self.files {
            let _ = writeln!(s, "  wrote {f}");
        }
        s
    }
}

/// Write the outputs as `.npy`: one file, or one per output: `FILE.<name>.npy` for an ONNX
/// model's (with its ONNX dimensions), `FILE.L<layer>.npy` per Darknet head.
fn write_outputs(
    path: &Path,
    heads: &[usize],
    outputs: &[Tensor],
    onnx_outputs: Option<&[GraphOutput]>,
) -> Result<Vec<String>> {
    if let Some(named) = onnx_outputs {
        let stem = path.with_extension("");
        return named
            .iter()
            .zip(outputs)
            .map(|(o, t)| {
                let p = match named.len() {
                    1 => path.to_path_buf(),
                    _ => {
                        let safe: String = o
                            .name
                            .chars()
                            .map(
                                |c| match c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                                    true => c,
                                    false => '_',
                                },
                            )
                            .take(64)
                            .collect();
                        PathBuf::from(format!("{}.{safe}.npy", stem.display()))
                    }
                };
                std::fs::write(&p, mafat::npy::write(&o.dims, &t.data))
                    .map_err(|e| Error::io(&p, e))?;
                Ok(p.display().to_string())
            })
            .collect();
    }
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
