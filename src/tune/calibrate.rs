//! Calibrating the latency cost model ([`crate::plan::cost`]) on an adapter, and caching it.
//!
//! Per grid side `g` in [`GRIDS`], one configuration runs every conv/pool layer as its own group cut
//! into `g`×`g` tiles (the largest legal grid when the map is smaller); the other layers run untiled.
//! The configurations are timed in turns, [`RUNS`] rounds (so drift on a shared machine touches them
//! alike); each group's time is the median over the rounds (GPU timestamps, or the wall clock around
//! a submit per group where the adapter has none), and each layer gets one point per distinct grid:
//! mean working invocations per dispatch → mean ms per dispatch. The coarsest configuration also
//! gives the gap between two groups' passes, and uploads of two sizes through the staging buffer give
//! the per-group weight-upload cost.
//!
//! Calibrations are cached by [`crate::tune::cache`].

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::pool::BufferPool;
use crate::gpu::transfer::upload;
use crate::kernel;
use crate::network::{LayerKind, Network};
use crate::plan::config::{Config, Group};
use crate::plan::cost::{
    CalibrationKey, CostModel, CostPoint, LayerCost, dispatch_size, network_hash,
};
use crate::plan::geometry::{Grid, tiles};
use crate::plan::{MemoryPlan, Mode, Planner, Residency, STAGING_CHUNK};
use crate::session::Session;
use crate::tune::choice::tuned_kernels;
use crate::tune::measure::{Measured, Measurer, Trial, in_turns, median};
use crate::tune::{KernelPolicy, Progress, Steps};

/// Grid sides timed per layer.
pub const GRIDS: [usize; 6] = [1, 2, 3, 4, 6, 8];

/// Rounds of timed runs (after one warm-up run), of which the median is kept.
pub const RUNS: usize = 3;

/// The adapter of `ctx` as plans and calibrations record it.
pub fn adapter_id(ctx: &GpuContext) -> crate::plan::file::AdapterId {
    crate::plan::file::AdapterId {
        name: ctx.info.name.clone(),
        driver: format!("{} {}", ctx.info.driver, ctx.info.driver_info)
            .trim()
            .to_string(),
        backend: format!("{:?}", ctx.info.backend).to_lowercase(),
    }
}

/// The key a calibration of `net` on `ctx`'s adapter with kernels chosen by `policy`, maps and
/// weights stored at `precision`, is stored under.
pub fn calibration_key(
    ctx: &GpuContext,
    net: &Network,
    policy: KernelPolicy,
    precision: crate::precision::Precision,
) -> CalibrationKey {
    let registry: Vec<&str> = kernel::REGISTRY.iter().map(|k| k.name()).collect();
    let caps = match ctx.shader_caps().subgroups {
        true => "subgroups",
        false => "portable",
    };
    let id = adapter_id(ctx);
    CalibrationKey {
        adapter: id.name,
        driver: id.driver,
        backend: id.backend,
        model: net.name.clone(),
        input: [net.input.c, net.input.h, net.input.w],
        network_hash: network_hash(net),
        mafat: env!("CARGO_PKG_VERSION").into(),
        kernels: format!(
            "{}; {caps}; {}; {:016x}",
            policy.describe(),
            registry.join(","),
            kernels_fingerprint(ctx.shader_caps())
        ),
        precision,
    }
}

/// How runs on `ctx` are timed: `gpu-timestamps` or `wall-clock`.
pub fn timing_label(ctx: &GpuContext) -> &'static str {
    match ctx.timestamps {
        true => "gpu-timestamps",
        false => "wall-clock",
    }
}

/// A hash of every kernel's WGSL for `caps` (at both precisions) and of [`kernel::REVISION`]: a
/// calibration or kernel choice made with other kernels is stale.
pub fn kernels_fingerprint(caps: kernel::ShaderCaps) -> u64 {
    let mut text = format!("revision {}\n", kernel::REVISION);
    for &k in kernel::REGISTRY {
        for precision in crate::precision::Precision::BOTH {
            text.push_str(&kernel::KernelRef(k).source(caps, precision));
        }
    }
    crate::plan::cost::fnv1a(&text)
}

/// The largest square grid up to `g` a layer's output map can be cut into.
fn legal_grid(h: usize, w: usize, g: usize) -> Grid {
    (1..=g)
        .rev()
        .map(|s| Grid { rows: s, cols: s })
        .find(|&grid| tiles(h, w, grid).is_ok())
        .unwrap_or(Grid { rows: 1, cols: 1 })
}

/// Keep every grid's configuration prepared at once (and time them in turns) up to this many
/// device bytes in all; past it, one after the other.
const INTERLEAVE_BYTES: u64 = 1 << 30;

/// One configuration per grid side: every tileable layer its own group on g×g tiles (the other
/// layers untiled), each with its plan; grids the adapter's limits rule out are skipped.
fn calibration_configs(p: &Planner<'_>) -> Result<Vec<(usize, Config, MemoryPlan)>> {
    let net = p.net();
    let tileable = |i: usize| {
        matches!(
            net.layers[i].kind,
            LayerKind::Conv(_) | LayerKind::MaxPool(_)
        )
    };
    let mut configs: Vec<(usize, Config, MemoryPlan)> = Vec::new();
    let mut skipped: Option<Error> = None;
    for &g in &GRIDS {
        let groups: Vec<Group> = (0..net.layers.len())
            .map(|i| {
                let o = net.layers[i].output;
                let grid = match tileable(i) {
                    true => legal_grid(o.h, o.w, g),
                    false => Grid { rows: 1, cols: 1 },
                };
                Group {
                    start: i,
                    end: i + 1,
                    grid,
                }
            })
            .collect();
        if configs.iter().any(|(_, c, _)| c.groups == groups) {
            continue; // every map too small to cut further
        }
        let config = Config { groups };
        // A map past the adapter's binding limit makes the coarse grids impossible: skip them.
        match p.plan(&config, Mode::Layerwise, Residency::Resident) {
            Ok(plan) => configs.push((g, config, plan)),
            Err(e @ Error::DeviceLimit(_)) => {
                log::info!("calibration: skipping {g}x{g} tiles: {e}");
                skipped = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    if configs.is_empty() {
        return Err(skipped.unwrap_or_else(|| {
            Error::Unsupported(format!("calibration could not plan {}", net.name))
        }));
    }
    Ok(configs)
}

/// Time every configuration [`RUNS`] times: in turns when they fit on the device together, else
/// one after the other. Each run is one step of `steps`.
fn time_configs(
    m: &Measurer<'_>,
    configs: &[(usize, Config, MemoryPlan)],
    steps: &mut Steps<'_>,
) -> Result<Vec<Measured>> {
    let together: u64 = configs.iter().map(|(_, _, p)| p.peak_bytes()).sum();
    let mut report = |t: &Trial<'_>, round: usize| {
        steps.step(&format!("round {}/{RUNS}: {}", round + 1, t.label));
    };
    if together <= INTERLEAVE_BYTES {
        let mut trials = Vec::with_capacity(configs.len());
        for (_, c, _) in configs {
            trials.push(m.prepare(c, Mode::Layerwise, Residency::Resident)?);
        }
        in_turns(&mut trials, RUNS, &mut report)?;
        return Ok(trials.into_iter().map(Trial::finish).collect());
    }
    let mut measured = Vec::with_capacity(configs.len());
    for (_, c, _) in configs {
        let mut trial = [m.prepare(c, Mode::Layerwise, Residency::Resident)?];
        in_turns(&mut trial, RUNS, &mut report)?;
        let [t] = trial;
        measured.push(t.finish());
    }
    Ok(measured)
}

/// Per layer: one point per grid, mean invocations per dispatch → mean ms per dispatch.
fn layer_points(
    net: &Network,
    configs: &[(usize, Config, MemoryPlan)],
    measured: &[Measured],
) -> Result<Vec<Vec<CostPoint>>> {
    let mut samples: Vec<Vec<CostPoint>> = vec![Vec::new(); net.layers.len()];
    for ((_, _, plan), meas) in configs.iter().zip(measured) {
        let timed: Vec<_> = plan.groups.iter().filter(|g| !g.steps.is_empty()).collect();
        if meas.groups.len() != timed.len() {
            return Err(Error::Unsupported(format!(
                "calibration needs per-group times, and the adapter returned {} for the {} groups of {}",
                meas.groups.len(),
                timed.len(),
                net.name
            )));
        }
        for (pg, (range, ms, _)) in timed.into_iter().zip(&meas.groups) {
            debug_assert_eq!(pg.group.start..pg.group.end, *range);
            let i = pg.group.start;
            let works: Vec<_> = plan.steps[pg.steps.clone()]
                .iter()
                .filter(|d| d.stage == 0)
                .collect();
            let size: f64 = works.iter().map(|d| dispatch_size(net, d)).sum();
            let k = works.len() as f64;
            let p = CostPoint {
                invocations: size / k,
                ms: ms / k,
            };
            if !samples[i].iter().any(|q| q.invocations == p.invocations) {
                samples[i].push(p);
            }
        }
    }
    for points in samples.iter_mut() {
        points.sort_by(|a, b| a.invocations.total_cmp(&b.invocations));
    }
    Ok(samples)
}

/// Time every layer of `net` on `session`'s adapter and fit the cost model, with each layer on the
/// kernel `policy` gives it (`Tuned`: the fastest of its candidates, timed untiled first).
pub fn calibrate(
    session: &Session,
    net: &Network,
    policy: KernelPolicy,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<CostModel> {
    let (ops, times) = match policy {
        KernelPolicy::Tuned => {
            let choice = tuned_kernels(session, net, progress)?;
            (choice.ops(net)?, choice.times())
        }
        _ => (policy.ops(net)?, vec![Vec::new(); net.layers.len()]),
    };
    let m = Measurer::new(session, net)?.with_ops(ops.clone())?;
    let configs = calibration_configs(m.planner())?;
    let mut steps = Steps::new(configs.len() * RUNS + 2, progress);
    steps.step("preparing");
    let measured = time_configs(&m, &configs, &mut steps)?;
    let samples = layer_points(net, &configs, &measured)?;
    // The gap between passes: the median over the coarsest configuration's groups.
    let mut gaps: Vec<f64> = measured[0].groups.iter().skip(1).map(|g| g.2).collect();
    let gap_ms = if gaps.is_empty() {
        0.0
    } else {
        median(&mut gaps)
    };
    let ctx = session.context();
    steps.step("timing weight uploads");
    let (upload_ms, upload_ms_per_mib) = time_uploads(ctx)?;
    steps.finish();
    let layers = samples
        .into_iter()
        .zip(times)
        .enumerate()
        .map(|(i, (points, candidates))| LayerCost {
            layer: i,
            kind: net.layers[i].kind.name().into(),
            kernel: ops[i].name().into(),
            points,
            candidates,
        })
        .collect();
    let model = CostModel {
        key: calibration_key(ctx, net, policy, session.precision()),
        timing: timing_label(ctx).into(),
        layers,
        pass_gap_ms: gap_ms,
        upload_ms,
        upload_ms_per_mib,
    };
    model.validate(net)?;
    Ok(model)
}

/// Fixed and per-MiB cost of a weight upload through a staging buffer of the executor's size.
fn time_uploads(ctx: &GpuContext) -> Result<(f64, f64)> {
    let big = 8 * STAGING_CHUNK;
    let mut pool = BufferPool::new(None);
    let staging = pool.acquire(
        ctx,
        STAGING_CHUNK,
        wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
        "calibration staging",
    )?;
    let dst = pool.acquire(
        ctx,
        big,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        "calibration upload target",
    )?;
    let data = vec![0u8; big as usize];
    let time = |bytes: u64| -> Result<f64> {
        let mut v = Vec::new();
        for _ in 0..5 {
            let t = std::time::Instant::now();
            upload(ctx, &staging, &dst.buffer, 0, &data[..bytes as usize])?;
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok(median(&mut v))
    };
    let result = (|| {
        time(4096)?; // warm-up
        let small = time(4096)?;
        let large = time(big)?;
        Ok::<_, Error>((small, large))
    })();
    pool.release(staging);
    pool.release(dst);
    let (small, large) = result?;
    let mib = (big - 4096) as f64 / (1u64 << 20) as f64;
    Ok((small, ((large - small) / mib).max(0.0)))
}
