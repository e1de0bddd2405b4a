//! The latency-versus-memory sweep: for each budget, mafat's pick and every baseline of the design
//! notes at its own best fitting configuration, measured.
//!
//! Kernels: every method chooses them as `mafat run` does — the baselines run a configuration on the
//! tuned kernels (the fastest per layer on the adapter) or, where those do not fit the budget, on
//! the registry's defaults (no workspace, the smallest weights), the faster predicted that fits;
//! mafat's search also walks layer by layer between the two
//! ([`crate::plan::search::fastest_over_kernels`]).
//!
//! Methods (each chooses per budget; a method with nothing that fits records the least it needs):
//! - **mafat**: [`crate::plan::search::fastest_over_kernels`] — every partition, grid, residency and
//!   kernel step;
//! - **naive**: untiled, every map alive and every weight resident (what Darknet does);
//! - **layerwise**: untiled with liveness reuse, weights resident or uploaded per layer, the faster
//!   that fits;
//! - **ftp** (DeepThings' single-group Fused Tile Partitioning): one group over the fused range (the
//!   first 16 layers, as DeepThings and MAFAT fuse YOLOv2, or fewer where the network stops allowing
//!   it), the rest untiled; the fastest grid up to 8x8 and residency that fits;
//! - **halo** (whole-network halo tiling, as apps like waifu2x-ncnn-vulkan do): one group over the
//!   longest fusable stretch from the input, weights resident, the tile size chosen from the budget:
//!   the fewest square tiles (largest tile) that fit.
//!
//! Each distinct configuration is measured once, over `runs` timed runs taken in turns with the others
//! (so drift on a shared machine touches them alike), and its median reported for every budget
//! that picked it.

use crate::error::Result;
use crate::kernel::{self, Op};
use crate::network::LayerKind;
use crate::network::Network;
use crate::plan::Planner;
use crate::plan::config::Config;
use crate::plan::cost::CostModel;
use crate::plan::geometry::Grid;
use crate::plan::memory::{Mode, Residency};
use crate::plan::search::{MAX_GRID, fastest_over_kernels};
use crate::tune::measure::{Measured, Measurer, Trial, in_turns, quantile};
use crate::tune::{Progress, Steps};
use serde::Serialize;

/// The methods a sweep compares, in report order.
pub const METHODS: [&str; 5] = ["mafat", "ftp", "halo", "layerwise", "naive"];

/// Prepared configurations timed in turns together up to this many bytes; more are split in batches.
const BATCH_BYTES: u64 = 1 << 30;

/// One method's choice for a budget, before measuring.
#[derive(Debug, Clone, PartialEq)]
struct Pick {
    config: Config,
    mode: Mode,
    residency: Residency,
    ops: Vec<Op>,
    peak_bytes: u64,
    predicted_ms: f64,
}

/// A set of kernels the baselines run on: a planner on them and the cost model for them.
struct KernelSet<'n> {
    planner: Planner<'n>,
    cost: CostModel,
}

/// One (budget, method) cell of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    /// The budget, in bytes.
    pub budget_bytes: u64,
    /// One of [`METHODS`].
    pub method: String,
    /// Whether anything of this method fits the budget; the rest describes that configuration.
    pub fits: bool,
    /// The least this method needs (its smallest configuration's peak), for a budget it misses.
    pub method_min_bytes: u64,
    /// The configuration (`untiled` or groups like `0..8:4x4,8..16:1x1`); empty when nothing fits.
    pub config: String,
    /// Arena mode: `layerwise` (liveness reuse) or `naive` (every map alive).
    pub mode: String,
    /// Weight residency: `resident` or `per-group`.
    pub residency: String,
    /// The kernels: `tuned` (the fastest per layer on the adapter), `default` (the registry's
    /// first), or `tuned with N on default` (mafat's search moved N layers back).
    pub kernels: String,
    /// How maps and weights were stored: `f32` or `f16` (the same on every row of a sweep).
    pub precision: String,
    /// The planner's peak device bytes for it.
    pub predicted_peak_bytes: u64,
    /// The buffer pool's peak device bytes while it ran.
    pub measured_peak_bytes: u64,
    /// The cost model's latency, in ms.
    pub predicted_ms: f64,
    /// Median of the timed runs (`compute_ms`), in ms.
    pub latency_ms: f64,
    /// First quartile of the timed runs, ms.
    pub latency_q1_ms: f64,
    /// Third quartile of the timed runs, ms.
    pub latency_q3_ms: f64,
    /// Timed runs behind the figures.
    pub runs: usize,
    /// Multiply-accumulates computed over the untiled count (halo recomputation).
    pub mac_ratio: f64,
}

/// The fused range of single-group FTP: layers `0..end` with `end` ≤ 16 as large as the network
/// allows one group to be.
pub fn ftp_range(net: &Network) -> usize {
    fusable_prefix(net, 16)
}

/// The longest stretch `0..end` (`end` ≤ `max`) that one fused group may cover.
fn fusable_prefix(net: &Network, max: usize) -> usize {
    (1..=max.min(net.layers.len()))
        .rev()
        .find(|&end| {
            net.layers[..end]
                .iter()
                .all(|l| matches!(l.kind, LayerKind::Conv(_) | LayerKind::MaxPool(_)))
                && Config::single(0, end, Grid { rows: 1, cols: 1 })
                    .resolve(net)
                    .is_ok()
        })
        .unwrap_or(1)
}

/// Every one-group configuration over `0..end` (grids up to [`MAX_GRID`]) the planner accepts, on
/// every kernel set.
fn one_group(sets: &[KernelSet<'_>], end: usize, residencies: &[Residency]) -> Vec<Pick> {
    let net = sets[0].planner.net();
    let o = net.layers[end - 1].output;
    let mut v = Vec::new();
    for rows in 1..=MAX_GRID.min(o.h) {
        for cols in 1..=MAX_GRID.min(o.w) {
            let config = Config::single(0, end, Grid { rows, cols });
            for set in sets {
                for &residency in residencies {
                    if let Ok(p) = set.planner.plan(&config, Mode::Layerwise, residency) {
                        v.push(Pick {
                            predicted_ms: set.cost.plan_ms(net, &p),
                            peak_bytes: p.peak_bytes(),
                            config: config.clone(),
                            mode: Mode::Layerwise,
                            residency,
                            ops: set.planner.ops().to_vec(),
                        });
                    }
                }
            }
        }
    }
    v
}

/// Every configuration each baseline chooses among (halo by tile count, untiled as layerwise
/// resident, layerwise per-group, naive).
struct Options {
    ftp: Vec<Pick>,
    halo: Vec<Pick>,
    untiled: Vec<Pick>,
}

/// What each method picks for `budget`: `Ok(pick)` or `Err(least bytes the method needs)`.
fn choose(
    sets: &[KernelSet<'_>],
    budget: u64,
    method: &str,
    options: &Options,
) -> Result<std::result::Result<Pick, u64>> {
    let Options { ftp, halo, untiled } = options;
    let least = |v: &[Pick]| v.iter().map(|p| p.peak_bytes).min().unwrap_or(u64::MAX);
    let fastest_of = |v: &[Pick]| {
        v.iter()
            .filter(|p| p.peak_bytes <= budget)
            .min_by(|a, b| {
                a.predicted_ms
                    .total_cmp(&b.predicted_ms)
                    .then(a.peak_bytes.cmp(&b.peak_bytes))
            })
            .cloned()
            .ok_or(least(v))
    };
    let mode_is = |m: Mode, r: Residency| {
        untiled
            .iter()
            .filter(|p| p.mode == m && p.residency == r)
            .cloned()
            .collect::<Vec<_>>()
    };
    Ok(match method {
        "mafat" => {
            let (tuned, defaults) = (&sets[0], sets[1].planner.ops());
            match fastest_over_kernels(
                &tuned.planner,
                defaults,
                budget,
                &tuned.cost,
                MAX_GRID,
                &Residency::BOTH,
            ) {
                Ok((ops, _, c)) => Ok(Pick {
                    config: c.config,
                    mode: Mode::Layerwise,
                    residency: c.residency,
                    ops,
                    peak_bytes: c.peak_bytes,
                    predicted_ms: c.predicted_ms,
                }),
                Err(crate::Error::NoFit { minimum, .. }) => Err(minimum),
                Err(e) => return Err(e),
            }
        }
        "ftp" => fastest_of(ftp),
        "layerwise" => {
            let mut v = mode_is(Mode::Layerwise, Residency::Resident);
            v.extend(mode_is(Mode::Layerwise, Residency::PerGroup));
            fastest_of(&v)
        }
        "naive" => fastest_of(&mode_is(Mode::Naive, Residency::Resident)),
        // The app heuristic: the fewest tiles that fit (halo is sorted by tile count, the tuned
        // kernels first at each count).
        _ => halo
            .iter()
            .find(|p| p.peak_bytes <= budget)
            .cloned()
            .ok_or(least(halo)),
    })
}

/// How a pick's kernels relate to the tuned and default sets.
fn kernels_label(ops: &[Op], sets: &[KernelSet<'_>]) -> String {
    let (tuned, defaults) = (sets[0].planner.ops(), sets[1].planner.ops());
    if ops == tuned {
        return "tuned".into();
    }
    if ops == defaults {
        return "default".into();
    }
    let moved = ops.iter().zip(tuned).filter(|(a, b)| a != b).count();
    format!("tuned with {moved} on default")
}

/// Run the sweep: every method at every budget, measured with `runs` timed runs per distinct
/// configuration. Rows come budget by budget, methods in [`METHODS`] order.
pub fn sweep(
    m: &Measurer<'_>,
    net: &Network,
    cost: &CostModel,
    budgets: &[u64],
    runs: usize,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<SweepRow>> {
    cost.validate(net)?;
    let runs = runs.max(1);
    let defaults = kernel::select_all(net)?;
    let sets = [
        KernelSet {
            planner: m.planner().with_ops_like(cost.ops(net)?)?,
            cost: cost.clone(),
        },
        KernelSet {
            planner: m.planner().with_ops_like(defaults.clone())?,
            cost: cost.for_ops(net, &defaults),
        },
    ];
    // mafat reaches the least memory of all methods: if it fits no budget, nothing does.
    if let Some(&most) = budgets.iter().max() {
        fastest_over_kernels(
            &sets[0].planner,
            &defaults,
            most,
            cost,
            MAX_GRID,
            &Residency::BOTH,
        )?;
    }
    let both = [Residency::Resident, Residency::PerGroup];
    let ftp = one_group(&sets, ftp_range(net), &both);
    let mut halo = one_group(&sets, fusable_prefix(net, net.layers.len()), &both[..1]);
    halo.retain(|p| p.config.groups[0].grid.rows == p.config.groups[0].grid.cols);
    // Stable: at each tile count the tuned kernels stay first.
    halo.sort_by_key(|p| p.config.groups[0].grid.rows);
    let mut untiled = Vec::new();
    for set in &sets {
        for (mode, residency) in [
            (Mode::Layerwise, Residency::Resident),
            (Mode::Layerwise, Residency::PerGroup),
            (Mode::Naive, Residency::Resident),
        ] {
            let p = set.planner.plan(&Config::untiled(), mode, residency)?;
            untiled.push(Pick {
                config: Config::untiled(),
                mode,
                residency,
                ops: set.planner.ops().to_vec(),
                peak_bytes: p.peak_bytes(),
                predicted_ms: set.cost.plan_ms(net, &p),
            });
        }
    }

    let options = Options { ftp, halo, untiled };
    // Every cell's pick, then the distinct picks to measure.
    let mut cells: Vec<(u64, &str, std::result::Result<Pick, u64>)> = Vec::new();
    for &b in budgets {
        for method in METHODS {
            cells.push((b, method, choose(&sets, b, method, &options)?));
        }
    }
    let mut distinct: Vec<Pick> = Vec::new();
    for (_, _, c) in &cells {
        if let Ok(p) = c
            && !distinct.contains(p)
        {
            distinct.push(p.clone());
        }
    }
    let measured = measure_all(m, &distinct, runs, progress)?;

    cells
        .into_iter()
        .map(|(budget, method, c)| match c {
            Ok(p) => {
                let k = distinct.iter().position(|d| *d == p).expect("measured");
                let label = kernels_label(&p.ops, &sets);
                fitting_row(m, budget, method, &p, &measured[k], label)
            }
            Err(least) => Ok(missing_row(budget, method, least, m.planner().precision())),
        })
        .collect()
}

/// The row of a method whose pick `p` fits `budget`, measured as `r`.
fn fitting_row(
    m: &Measurer<'_>,
    budget: u64,
    method: &str,
    p: &Pick,
    r: &Measured,
    kernels: String,
) -> Result<SweepRow> {
    let net = m.planner().net();
    let plan = m
        .planner()
        .with_ops_like(p.ops.clone())?
        .plan(&p.config, p.mode, p.residency)?;
    let mut runs = r.runs_ms.clone();
    Ok(SweepRow {
        budget_bytes: budget,
        method: method.into(),
        fits: true,
        method_min_bytes: 0,
        config: p.config.to_string(),
        mode: p.mode.as_str().into(),
        residency: p.residency.as_str().into(),
        kernels,
        precision: plan.precision.as_str().into(),
        predicted_peak_bytes: p.peak_bytes,
        measured_peak_bytes: r.peak_bytes,
        predicted_ms: p.predicted_ms,
        latency_ms: r.latency_ms,
        latency_q1_ms: quantile(&mut runs, 0.25),
        latency_q3_ms: quantile(&mut runs, 0.75),
        runs: runs.len(),
        mac_ratio: plan.mac_ratio(net),
    })
}

/// The row of a method that fits nothing at `budget`: the least it needs.
fn missing_row(
    budget: u64,
    method: &str,
    least: u64,
    precision: crate::precision::Precision,
) -> SweepRow {
    SweepRow {
        budget_bytes: budget,
        method: method.into(),
        fits: false,
        method_min_bytes: least,
        config: String::new(),
        mode: String::new(),
        residency: String::new(),
        kernels: String::new(),
        precision: precision.as_str().into(),
        predicted_peak_bytes: 0,
        measured_peak_bytes: 0,
        predicted_ms: f64::NAN,
        latency_ms: f64::NAN,
        latency_q1_ms: f64::NAN,
        latency_q3_ms: f64::NAN,
        runs: 0,
        mac_ratio: f64::NAN,
    }
}

/// Measure every pick over `runs` rounds, taking them in turns within batches of at most
/// [`BATCH_BYTES`] prepared at once.
fn measure_all(
    m: &Measurer<'_>,
    picks: &[Pick],
    runs: usize,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<Measured>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut bytes = u64::MAX;
    for (k, p) in picks.iter().enumerate() {
        if bytes.saturating_add(p.peak_bytes) > BATCH_BYTES {
            batches.push(Vec::new());
            bytes = 0;
        }
        batches.last_mut().expect("a batch").push(k);
        bytes += p.peak_bytes;
    }
    let mut steps = Steps::new(picks.len() * runs, progress);
    let mut out: Vec<Option<Measured>> = vec![None; picks.len()];
    for batch in batches {
        let mut trials = Vec::with_capacity(batch.len());
        for &k in &batch {
            let p = &picks[k];
            trials.push(m.prepare_ops(&p.ops, &p.config, p.mode, p.residency)?);
        }
        in_turns(&mut trials, runs, &mut |t, round| {
            steps.step(&format!("round {}/{runs}: {}", round + 1, t.label));
        })?;
        for (j, t) in trials.into_iter().enumerate() {
            out[batch[j]] = Some(Trial::finish(t));
        }
    }
    steps.finish();
    Ok(out.into_iter().flatten().collect())
}
