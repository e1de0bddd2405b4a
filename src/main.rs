//! `mafat` command-line interface. Every library error is reported in one line.

use clap::{Parser, Subcommand, ValueEnum};
use mafat::gpu::{BufferPool, Executor, GpuContext, Pipelines};
use mafat::input::InputSource;
use mafat::model::weights::WeightSource;
use mafat::plan::memory::{Residency, plan_with};
use mafat::plan::{Config, DeviceLimits, MemoryPlan, Mode, plan};
use mafat::{Error, Result, Tensor, model, reference, units};
use serde_json::json;
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
    /// Plan without running: the smallest device memory any configuration needs (--min-budget).
    Plan {
        /// Built-in name (yolov2, yolov2-16, yolov2-tiny, yolov3-tiny) or a Darknet .cfg path.
        #[arg(long)]
        model: String,
        /// Input size WxH (overrides the cfg's width/height).
        #[arg(long)]
        size: Option<String>,
        /// Report the smallest predicted peak in the search space and the config that reaches it.
        #[arg(long)]
        min_budget: bool,
        /// Adapter whose limits to plan for (default: WGPU_ADAPTER_NAME, else the best GPU).
        #[arg(long)]
        adapter: Option<String>,
        #[arg(long)]
        json: bool,
    },
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
        #[arg(long)]
        groups: Option<String>,
        /// Conv weights resident for the whole run, or uploaded per group when it starts.
        #[arg(long, value_enum, default_value = "resident")]
        residency: Residency,
        /// Adapter whose name contains this text (default: WGPU_ADAPTER_NAME, else the best GPU).
        #[arg(long)]
        adapter: Option<String>,
        /// Device-memory budget (e.g. 64MiB): refuse before allocating if the plan needs more.
        #[arg(long)]
        budget: Option<String>,
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
            min_budget,
            adapter,
            json,
        } => {
            let net = load_model(&model, size.as_deref())?;
            if !min_budget {
                return Err(Error::Usage(
                    "mafat plan needs --min-budget (planning for a --budget is not built yet)"
                        .into(),
                ));
            }
            let limits = adapter_limits(adapter.as_deref())?;
            let t0 = Instant::now();
            let (peak, config, residency) = mafat::plan::search::min_peak(&net, &limits)?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let p = plan_with(&net, &config, Mode::Layerwise, residency, &limits)?;
            let untiled = plan(&net, &Config::untiled(), Mode::Layerwise, &limits)
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
                    "mac_ratio": p.mac_ratio(&net),
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
                    serde_json::to_value(residency)
                        .expect("json")
                        .as_str()
                        .unwrap_or(""),
                    p.mac_ratio(&net)
                );
                if let Some(u) = untiled {
                    println!("  untiled layerwise peak: {} ({u} B)", units::human(u));
                }
            }
            Ok(())
        }
        Command::Run {
            model,
            size,
            weights,
            input,
            device,
            mode,
            groups,
            residency,
            adapter,
            budget,
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
                    let config = groups
                        .as_deref()
                        .map(Config::parse)
                        .transpose()?
                        .unwrap_or_default();
                    if mode == Mode::Naive && !config.is_untiled() {
                        return Err(Error::Usage(
                            "--mode naive is the untiled baseline (every map alive); leave it out with --groups"
                                .into(),
                        ));
                    }
                    let opts = GpuRun {
                        mode,
                        config,
                        residency,
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

struct GpuRun<'a> {
    mode: Mode,
    config: Config,
    residency: Residency,
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
    let plan = plan_with(net, &o.config, o.mode, o.residency, &limits)?;
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
            "config {} needs {predicted} bytes of device memory, over the budget of {budget} bytes (largest item: {} of {} bytes){minimum}",
            o.config, biggest.label, biggest.size
        )));
    }
    let pipelines = Pipelines::new(&ctx)?;
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
        && !(o.config.is_untiled()
            && o.mode == Mode::Layerwise
            && o.residency == Residency::Resident)
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
            "config": o.config.to_string(),
            "latency_ms": median_ms,
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
        let how = if o.config.is_untiled() {
            format!("untiled, {:?}", o.mode).to_lowercase()
        } else {
            format!("config {}", o.config)
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
