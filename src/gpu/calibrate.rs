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
//! Calibrations are cached as JSON under the user's cache directory (`MAFAT_CACHE_DIR`, else e.g.
//! `~/.cache/mafat` on Linux), one file per adapter, driver, backend, network and input size.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::executor::upload;
use crate::gpu::kernels::Pipelines;
use crate::gpu::measure::{Measured, Measurer, median};
use crate::gpu::pool::BufferPool;
use crate::network::{LayerKind, Network};
use crate::plan::config::{Config, Group};
use crate::plan::cost::{
    CalibrationKey, CostModel, CostPoint, LayerCost, dispatch_size, fnv1a, network_hash,
};
use crate::plan::geometry::{Grid, tiles};
use crate::plan::memory::{DeviceLimits, MemoryPlan, Mode, Residency, STAGING_CHUNK, plan_with};
use std::path::{Path, PathBuf};

/// Grid sides timed per layer.
pub const GRIDS: [usize; 6] = [1, 2, 3, 4, 6, 8];

/// Rounds of timed runs (after one warm-up run), of which the median is kept.
pub const RUNS: usize = 5;

/// The key a calibration of `net` on `ctx`'s adapter is stored under.
pub fn calibration_key(ctx: &GpuContext, net: &Network) -> CalibrationKey {
    CalibrationKey {
        adapter: ctx.info.name.clone(),
        driver: format!("{} {}", ctx.info.driver, ctx.info.driver_info)
            .trim()
            .to_string(),
        backend: format!("{:?}", ctx.info.backend).to_lowercase(),
        model: net.name.clone(),
        input: [net.input.c, net.input.h, net.input.w],
        network_hash: network_hash(net),
        mafat: env!("CARGO_PKG_VERSION").into(),
    }
}

/// Progress of a calibration: `done` of `total` steps, what runs now.
pub struct Progress<'a> {
    /// Steps finished.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// What runs now.
    pub what: &'a str,
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

/// Time every layer of `net` on `ctx`'s adapter and fit the cost model.
pub fn calibrate(
    ctx: &GpuContext,
    pipelines: &Pipelines,
    net: &Network,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<CostModel> {
    let limits = DeviceLimits::from_wgpu(&ctx.limits, ctx.timestamps);
    let n = net.layers.len();
    let tileable = |i: usize| {
        matches!(
            net.layers[i].kind,
            LayerKind::Conv(_) | LayerKind::MaxPool(_)
        )
    };
    // One configuration per grid side: every tileable layer its own group on g×g tiles.
    let mut configs: Vec<(usize, Config, MemoryPlan)> = Vec::new();
    let mut skipped: Option<Error> = None;
    for &g in &GRIDS {
        let groups: Vec<Group> = (0..n)
            .map(|i| {
                let o = net.layers[i].output;
                Group {
                    start: i,
                    end: i + 1,
                    grid: if tileable(i) {
                        legal_grid(o.h, o.w, g)
                    } else {
                        Grid { rows: 1, cols: 1 }
                    },
                }
            })
            .collect();
        if configs.iter().any(|(_, c, _)| c.groups == groups) {
            continue; // every map too small to cut further
        }
        let config = Config { groups };
        // A map past the adapter's binding limit makes the coarse grids impossible: skip them.
        match plan_with(net, &config, Mode::Layerwise, Residency::Resident, &limits) {
            Ok(p) => configs.push((g, config, p)),
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
    let total = RUNS + 2;
    let m = Measurer::new(ctx, pipelines, net)?;
    let mut measured: Vec<Measured> = Vec::with_capacity(configs.len());
    let together: u64 = configs.iter().map(|(_, _, p)| p.peak_bytes()).sum();
    progress(Progress {
        done: 0,
        total,
        what: "preparing",
    });
    if together <= INTERLEAVE_BYTES {
        let mut prepared = Vec::with_capacity(configs.len());
        for (_, c, _) in &configs {
            prepared.push(m.prepare(c, Residency::Resident)?);
        }
        for round in 0..RUNS {
            let what = format!(
                "timing every layer on {} grids, round {}",
                configs.len(),
                round + 1
            );
            progress(Progress {
                done: round + 1,
                total,
                what: &what,
            });
            for p in prepared.iter_mut() {
                p.run()?;
            }
        }
        measured.extend(prepared.into_iter().map(|p| p.finish()));
    } else {
        for (k, (g, c, _)) in configs.iter().enumerate() {
            let what = format!("timing every layer on {g}x{g} tiles");
            progress(Progress {
                done: 1 + k * RUNS / configs.len(),
                total,
                what: &what,
            });
            measured.push(m.measure(c, Residency::Resident, RUNS)?);
        }
    }
    // Per layer: one point per grid, mean invocations per dispatch → mean ms per dispatch.
    let mut samples: Vec<Vec<CostPoint>> = vec![Vec::new(); n];
    for ((_, _, plan), meas) in configs.iter().zip(&measured) {
        if meas.groups.is_empty() {
            return Err(Error::Unsupported(format!(
                "calibration needs per-group times, and the adapter returned none for {}",
                net.name
            )));
        }
        for (pg, (range, ms, _)) in plan
            .groups
            .iter()
            .filter(|pg| !pg.steps.is_empty())
            .zip(&meas.groups)
        {
            debug_assert_eq!(pg.group.start..pg.group.end, *range);
            let i = pg.group.start;
            let size: f64 = plan.steps[pg.steps.clone()]
                .iter()
                .map(|s| {
                    let crate::plan::memory::Step::Dispatch(d) = s;
                    dispatch_size(net, d)
                })
                .sum();
            let k = pg.steps.len() as f64;
            let p = CostPoint {
                invocations: size / k,
                ms: ms / k,
            };
            if !samples[i].iter().any(|q| q.invocations == p.invocations) {
                samples[i].push(p);
            }
        }
    }
    // The gap between passes: the median over the coarsest configuration's groups.
    let mut gaps: Vec<f64> = measured[0].groups.iter().skip(1).map(|g| g.2).collect();
    let gap_ms = if gaps.is_empty() {
        0.0
    } else {
        median(&mut gaps)
    };
    let timing = if ctx.timestamps {
        "gpu-timestamps"
    } else {
        "wall-clock"
    };
    progress(Progress {
        done: RUNS + 1,
        total,
        what: "timing weight uploads",
    });
    let (upload_ms, upload_ms_per_mib) = time_uploads(ctx)?;
    progress(Progress {
        done: total,
        total,
        what: "done",
    });
    let layers = samples
        .into_iter()
        .enumerate()
        .map(|(i, mut points)| {
            points.sort_by(|a, b| a.invocations.total_cmp(&b.invocations));
            LayerCost {
                layer: i,
                kind: net.layers[i].kind.name().into(),
                points,
            }
        })
        .collect();
    let model = CostModel {
        key: calibration_key(ctx, net),
        timing: timing.into(),
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

/// The cache directory: `MAFAT_CACHE_DIR`, else the platform's user cache directory + `mafat`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("MAFAT_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    dirs::cache_dir().map(|d| d.join("mafat"))
}

/// Where the calibration for `key` is cached.
pub fn cache_path(key: &CalibrationKey) -> Option<PathBuf> {
    let h = fnv1a(&serde_json::to_string(key).expect("keys serialize"));
    let model: String = Path::new(&key.model)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache_dir().map(|d| {
        d.join(format!(
            "calibration-{model}-{}x{}-{h:016x}.json",
            key.input[2], key.input[1]
        ))
    })
}

/// Read a calibration file.
pub fn read_calibration(path: &Path) -> Result<CostModel> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{}: not a mafat calibration ({e}); delete it or point --calibration elsewhere",
            path.display()
        ))
    })
}

/// Write a calibration file (through a temporary file, so a reader never sees half of one).
pub fn write_calibration(path: &Path, model: &CostModel) -> Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let text = serde_json::to_string_pretty(model).expect("models serialize");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Where a cost model came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalibrationSource {
    /// Read from this file (pinned or cached).
    File(PathBuf),
    /// Measured now (and written to this file, when there was one to write).
    Measured(Option<PathBuf>),
}

/// The cost model for `net` on `ctx`'s adapter: from `pinned` when given (calibrated and written
/// there when the file does not exist yet), else from the cache, else calibrated now and cached.
/// A pinned file for another network is refused; one from another adapter is used with a warning.
/// `pipelines` are compiled here when a calibration runs and none are given.
pub fn load_or_calibrate(
    ctx: &GpuContext,
    pipelines: Option<&Pipelines>,
    net: &Network,
    pinned: Option<&Path>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(CostModel, CalibrationSource)> {
    let key = calibration_key(ctx, net);
    if let Some(path) = pinned {
        if path.exists() {
            let model = read_calibration(path)?;
            model
                .validate(net)
                .map_err(|e| Error::Usage(format!("--calibration {}: {e}", path.display())))?;
            if (&model.key.adapter, &model.key.driver, &model.key.backend)
                != (&key.adapter, &key.driver, &key.backend)
            {
                log::warn!(
                    "{} was calibrated on {} ({}, {}), not on this adapter, {} ({}, {})",
                    path.display(),
                    model.key.adapter,
                    model.key.driver,
                    model.key.backend,
                    key.adapter,
                    key.driver,
                    key.backend
                );
            }
            return Ok((model, CalibrationSource::File(path.to_path_buf())));
        }
        let model = calibrate_with(ctx, pipelines, net, progress)?;
        write_calibration(path, &model)?;
        return Ok((model, CalibrationSource::Measured(Some(path.to_path_buf()))));
    }
    let cached = cache_path(&key);
    if let Some(path) = &cached
        && path.exists()
    {
        match read_calibration(path) {
            Ok(model) if model.key == key && model.validate(net).is_ok() => {
                return Ok((model, CalibrationSource::File(path.clone())));
            }
            _ => log::warn!(
                "ignoring the stale or unreadable calibration {}",
                path.display()
            ),
        }
    }
    let model = calibrate_with(ctx, pipelines, net, progress)?;
    let written = cached.and_then(|path| match write_calibration(&path, &model) {
        Ok(()) => Some(path),
        Err(e) => {
            log::warn!("could not cache the calibration: {e}");
            None
        }
    });
    Ok((model, CalibrationSource::Measured(written)))
}

fn calibrate_with(
    ctx: &GpuContext,
    pipelines: Option<&Pipelines>,
    net: &Network,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<CostModel> {
    match pipelines {
        Some(p) => calibrate(ctx, p, net, progress),
        None => calibrate(ctx, &Pipelines::new(ctx)?, net, progress),
    }
}
