//! The search's quality on the adapter: for each budget, the measured latency of the search's pick
//! against the best measured configuration of a reference grid (`mafat regret`).
//!
//! The reference grid: every configuration with at most `max_cuts` cuts at the allowed cut positions,
//! a square grid `1x1..GxG` per group and either weight residency. Running each of them (thousands)
//! is out of reach, so the harness measures every *group* of the grid once — a group's pass does
//! the same work whatever runs before it — by running few configurations that together contain every
//! (layer range, grid) pair, and the gap before each group under both residencies; a configuration's
//! composed latency is the sum of its groups' passes and gaps. The best few configurations by
//! composed latency at each budget are then run whole, as is the search's pick (and the untiled run,
//! for scale), in turns — one run of each, then the next round — so that drift on a shared machine
//! touches them alike. The best reference is the one with the smallest median; the regret is the
//! median over rounds of `pick / best − 1` for the two runs of the same round (paired, so drift between
//! rounds cancels), with its quartiles as the run-to-run spread.

use crate::error::{Error, Result};
use crate::network::{LayerKind, Network, Source};
use crate::plan::config::{Config, Group};
use crate::plan::cost::CostModel;
use crate::plan::geometry::Grid;
use crate::plan::memory::{Mode, Residency};
use crate::plan::planner::Planner;
use crate::plan::search::{Choice, fastest};
use crate::tune::measure::{Measured, Measurer, Trial, in_turns, quantile};
use crate::tune::{Progress, Steps};
use serde::Serialize;
use std::collections::HashMap;

/// What the harness compares.
#[derive(Debug, Clone)]
pub struct RegretOptions {
    /// Budgets to compare at, in bytes.
    pub budgets: Vec<u64>,
    /// Timed runs of each whole configuration (median).
    pub runs: usize,
    /// Reference configurations run whole per budget (best by composed latency).
    pub top: usize,
}

impl RegretOptions {
    /// Check the counts before any work, naming the limit.
    pub fn validate(&self) -> Result<()> {
        let usage = |m: String| Err(Error::Usage(m));
        if !(1..=MAX_REGRET_RUNS).contains(&self.runs) {
            return usage(format!(
                "--runs {}: give 1 to {MAX_REGRET_RUNS} whole runs per configuration",
                self.runs
            ));
        }
        if !(1..=MAX_REGRET_TOP).contains(&self.top) {
            return usage(format!(
                "--top {}: give 1 to {MAX_REGRET_TOP} reference configurations per budget",
                self.top
            ));
        }
        Ok(())
    }
}

/// One reference configuration with its predicted peak and composed measured latency.
#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    /// The configuration, in `--groups` syntax.
    pub config: String,
    /// Its weight residency.
    pub residency: Residency,
    /// The planner's predicted peak device bytes.
    pub peak_bytes: u64,
    /// Milliseconds: the sum of its groups' measured pass times and the measured mean gaps before
    /// them.
    pub composed_ms: f64,
}

/// A whole-configuration measurement.
#[derive(Debug, Clone, Serialize)]
pub struct WholeRun {
    /// The configuration, in `--groups` syntax.
    pub config: String,
    /// Its weight residency.
    pub residency: Residency,
    /// Measured peak device bytes (the pool's peak).
    pub peak_bytes: u64,
    /// Median latency of its whole runs, in ms.
    pub measured_ms: f64,
    /// Composed latency (reference configurations) or the model's prediction (the pick).
    pub estimate_ms: f64,
}

/// One budget's result.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetRow {
    /// The budget, in bytes.
    pub budget_bytes: u64,
    /// Reference configurations that fit.
    pub fitting: usize,
    /// The search's pick ([`crate::plan::search::fastest`]), run whole.
    pub pick: WholeRun,
    /// The whole-run reference with the least measured median (the pick itself when it is a
    /// reference configuration and wins).
    pub best: WholeRun,
    /// Every reference configuration run whole at this budget.
    pub verified: Vec<WholeRun>,
    /// `pick / best − 1` in percent, the median over rounds of the ratio of the two runs taken in
    /// the same round (negative: the pick beat the whole reference grid).
    pub regret_pct: f64,
    /// Quartiles of those per-round ratios − 1, in percent: the run-to-run spread.
    pub regret_iqr_pct: (f64, f64),
    /// The untiled layerwise run (resident weights), measured in the same turns, for scale.
    pub untiled_ms: f64,
}

/// Paths from 0 to `n` through `points` (sorted, inside 1..n) with at most `max_cuts` cuts: every
/// subset of at most `max_cuts` points, enumerated directly (never all `2^points` subsets).
fn paths(n: usize, points: &[usize], max_cuts: usize) -> Vec<Vec<usize>> {
    fn extend(
        n: usize,
        points: &[usize],
        left: usize,
        path: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        let mut whole = path.clone();
        whole.push(n);
        out.push(whole);
        if left == 0 {
            return;
        }
        for (j, &p) in points.iter().enumerate() {
            path.push(p);
            extend(n, &points[j + 1..], left - 1, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    extend(n, points, max_cuts, &mut vec![0], &mut out);
    out
}

fn config_of(path: &[usize], grids: &[usize]) -> Config {
    Config {
        groups: path
            .windows(2)
            .zip(grids)
            .map(|(w, &g)| Group {
                start: w[0],
                end: w[1],
                grid: Grid { rows: g, cols: g },
            })
            .collect(),
    }
}

/// How many grid assignments the reference grid has: `Σ_k C(points, k) · grids^(k+1)` over
/// `k ≤ max_cuts`; `None` past `u64`.
pub fn reference_count(points: usize, max_cuts: usize, grids: usize) -> Option<u64> {
    let mut total: u64 = 0;
    let mut choose: u64 = 1; // C(points, k)
    for k in 0..=max_cuts.min(points) {
        if k > 0 {
            choose = choose.checked_mul((points - k + 1) as u64)? / k as u64;
        }
        let per = (grids as u64).checked_pow(u32::try_from(k + 1).ok()?)?;
        total = total.checked_add(choose.checked_mul(per)?)?;
    }
    Some(total)
}

/// Largest square grid side of a reference grid.
pub const MAX_REFERENCE_GRID: usize = 32;
/// Most configurations a reference grid may hold (each is planned under both residencies).
pub const MAX_REFERENCE_CONFIGS: u64 = 250_000;
/// Most whole runs per configuration.
pub const MAX_REGRET_RUNS: usize = 1000;
/// Most reference configurations run whole per budget.
pub const MAX_REGRET_TOP: usize = 100;

/// Positions `k` (a cut before layer `k`) where every configuration must cut: next to a layer that
/// cannot be fused (a route, reorg, upsample, shortcut or detection head) and after a layer whose
/// output is read by a later layer than the next.
pub fn forced_cuts(net: &Network) -> Vec<usize> {
    let n = net.layers.len();
    let fusable = |i: usize| {
        matches!(
            net.layers[i].kind,
            LayerKind::Conv(_) | LayerKind::MaxPool(_)
        )
    };
    (1..n)
        .filter(|&k| {
            !fusable(k - 1)
                || !fusable(k)
                || !net.reads_previous(k)
                || (k + 1..n).any(|j| net.sources(j).contains(&Source::Layer(k - 1)))
        })
        .collect()
}

/// Whether `start..end` can be one group of a `g`x`g` grid (a layer that cannot be tiled, a map
/// too small for the grid or an inner map read outside the group rules it out).
fn groupable(net: &Network, start: usize, end: usize, g: usize) -> bool {
    Config {
        groups: vec![Group {
            start,
            end,
            grid: Grid { rows: g, cols: g },
        }],
    }
    .resolve(net)
    .is_ok()
}

/// The reference grid: every configuration with at most `max_cuts` cuts at the allowed positions
/// (besides the cuts the network forces, [`forced_cuts`]) and one square grid `1x1..GxG` per
/// stretch between cuts, taken by every group of the stretch that can have it (1x1 otherwise).
#[derive(Debug, Clone)]
pub struct ReferenceGrid {
    /// Allowed cut positions, sorted, without the forced ones.
    pub cuts: Vec<usize>,
    /// The cuts every configuration makes.
    pub forced: Vec<usize>,
    /// Most cuts in one configuration besides the forced ones.
    pub max_cuts: usize,
    /// Largest square grid side.
    pub grids: usize,
}

impl ReferenceGrid {
    /// The grid for `net`, every number checked before any work (naming the limit): cut positions
    /// outside the network, a grid side of 0 or past [`MAX_REFERENCE_GRID`], or more than
    /// [`MAX_REFERENCE_CONFIGS`] configurations are refused.
    pub fn new(net: &Network, cuts: &[usize], max_cuts: usize, grids: usize) -> Result<Self> {
        let usage = |m: String| Err(Error::Usage(m));
        let n = net.layers.len();
        if !(1..=MAX_REFERENCE_GRID).contains(&grids) {
            return usage(format!(
                "--grids {grids}: give the largest square grid side, 1 to {MAX_REFERENCE_GRID}"
            ));
        }
        if let Some(&c) = cuts.iter().find(|&&c| c == 0 || c >= n) {
            return usage(format!(
                "--cuts: `{c}` is not a cut position of {} (1..{})",
                net.name,
                n.saturating_sub(1)
            ));
        }
        let forced = forced_cuts(net);
        let mut cuts: Vec<usize> = cuts
            .iter()
            .copied()
            .filter(|c| !forced.contains(c))
            .collect();
        cuts.sort();
        cuts.dedup();
        let grid = ReferenceGrid {
            cuts,
            forced,
            max_cuts: max_cuts.min(n),
            grids,
        };
        match grid.count() {
            Some(k) if k <= MAX_REFERENCE_CONFIGS => Ok(grid),
            k => usage(format!(
                "the reference grid has {} configurations (≤ {max_cuts} cuts at {} positions, grids up to {grids}x{grids}), more than {MAX_REFERENCE_CONFIGS}: lower --max-cuts or --grids, or give fewer --cuts",
                k.map_or("too many".to_string(), |k| k.to_string()),
                grid.cuts.len(),
            )),
        }
    }

    /// Grid assignments in the grid (an upper bound on its distinct configurations).
    pub fn count(&self) -> Option<u64> {
        reference_count(self.cuts.len(), self.max_cuts, self.grids)
    }

    /// Every configuration of the grid, once each (both residencies are applied by the caller).
    pub fn configs(&self, net: &Network) -> Vec<Config> {
        let n = net.layers.len();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for path in paths(n, &self.cuts, self.max_cuts) {
            let k = path.len() - 1;
            let mut choice = vec![1usize; k];
            loop {
                let c = self.expand(net, &path, &choice);
                if seen.insert(c.to_string()) && c.resolve(net).is_ok() {
                    out.push(c);
                }
                // Next grid assignment (odometer).
                let mut j = 0;
                while j < k && choice[j] == self.grids {
                    choice[j] = 1;
                    j += 1;
                }
                if j == k {
                    break;
                }
                choice[j] += 1;
            }
        }
        out
    }

    /// The configuration of stretches `path` with grids `choice`: each stretch split at the forced
    /// cuts inside it, every piece at its stretch's grid where it can have it, else 1x1.
    fn expand(&self, net: &Network, path: &[usize], choice: &[usize]) -> Config {
        let mut groups = Vec::new();
        for (w, &g) in path.windows(2).zip(choice) {
            let mut bounds = vec![w[0]];
            bounds.extend(self.forced.iter().filter(|&&f| f > w[0] && f < w[1]));
            bounds.push(w[1]);
            for p in bounds.windows(2) {
                let g = if groupable(net, p[0], p[1], g) { g } else { 1 };
                groups.push(Group {
                    start: p[0],
                    end: p[1],
                    grid: Grid { rows: g, cols: g },
                });
            }
        }
        Config { groups }
    }

    /// Plan every configuration under both residencies (reporting progress): the references with
    /// their predicted peaks; configurations the planner refuses are left out.
    pub fn plan(
        &self,
        planner: &Planner<'_>,
        net: &Network,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Vec<PlannedReference> {
        let configs = self.configs(net);
        let mut steps = Steps::new(configs.len(), progress);
        let mut out = Vec::new();
        for (k, c) in configs.into_iter().enumerate() {
            if k % 1000 == 0 {
                steps.step_to(k, "planning the reference grid");
            }
            for residency in Residency::BOTH {
                if let Ok(plan) = planner.plan(&c, Mode::Layerwise, residency) {
                    out.push(PlannedReference {
                        config: c.clone(),
                        residency,
                        peak_bytes: plan.peak_bytes(),
                    });
                }
            }
        }
        steps.finish();
        out
    }
}

/// A reference configuration with its predicted peak.
#[derive(Debug, Clone)]
pub struct PlannedReference {
    /// The configuration.
    pub config: Config,
    /// Its weight residency.
    pub residency: Residency,
    /// The planner's predicted peak device bytes.
    pub peak_bytes: u64,
}

/// One covering run: a whole path through the cut points, each interval's grid (`g` where a group
/// of that grid is allowed there, else 1x1), and the weight residency.
struct CoveringRun {
    path: Vec<usize>,
    grids: Vec<usize>,
    residency: Residency,
}

/// The covering runs: per square grid `g`, whole paths through the cut points (the allowed and the
/// forced ones) until every interval between two points that can be a group of that grid, with no
/// forced cut inside, is one in some run (grid 1 under both residencies, for the gaps). Each path is
/// the one through the most intervals not yet covered, a longest path over the sorted points (fewest
/// groups among ties), so it stays polynomial in the number of cut points.
fn covering_runs(net: &Network, grid: &ReferenceGrid) -> Vec<CoveringRun> {
    let n = net.layers.len();
    let mut points = vec![0];
    points.extend(&grid.cuts);
    points.extend(&grid.forced);
    points.push(n);
    points.sort();
    points.dedup();
    let k = points.len();
    // An interval may be a group only when no forced cut lies inside it.
    let allowed =
        |i: usize, j: usize| j > i && !grid.forced.iter().any(|&f| f > points[i] && f < points[j]);
    let grids = grid.grids;
    let mut runs = Vec::new();
    for g in 1..=grids {
        let usable: Vec<Vec<bool>> = (0..k)
            .map(|i| {
                (0..k)
                    .map(|j| allowed(i, j) && groupable(net, points[i], points[j], g))
                    .collect()
            })
            .collect();
        let mut left: Vec<Vec<bool>> = usable.clone();
        while left.iter().flatten().any(|&x| x) {
            // best[j] = (intervals covered, -groups) of the best path 0 → points[j]; from[j] its step.
            let mut best = vec![(0usize, 0isize); k];
            let mut from = vec![0usize; k];
            for j in 1..k {
                best[j] = (0, isize::MIN);
                for i in (0..j).filter(|&i| allowed(i, j)) {
                    let cand = (best[i].0 + left[i][j] as usize, best[i].1 - 1);
                    if cand > best[j] {
                        best[j] = cand;
                        from[j] = i;
                    }
                }
            }
            let mut idx = vec![k - 1];
            while *idx.last().expect("a point") != 0 {
                idx.push(from[*idx.last().expect("a point")]);
            }
            idx.reverse();
            for w in idx.windows(2) {
                left[w[0]][w[1]] = false;
            }
            let path: Vec<usize> = idx.iter().map(|&i| points[i]).collect();
            let run_grids: Vec<usize> = idx
                .windows(2)
                .map(|w| if usable[w[0]][w[1]] { g } else { 1 })
                .collect();
            let residencies: &[Residency] = if g == 1 {
                &Residency::BOTH
            } else {
                &[Residency::Resident]
            };
            for &residency in residencies {
                runs.push(CoveringRun {
                    path: path.clone(),
                    grids: run_grids.clone(),
                    residency,
                });
            }
        }
    }
    runs
}

/// Measured group passes per (start, end, grid) and gaps before groups per (start, end, residency).
#[derive(Default)]
struct GroupTimes {
    pass: HashMap<(usize, usize, usize), f64>,
    gap: HashMap<(usize, usize, Residency), Vec<f64>>,
    /// Groups that dispatch nothing (a CPU detection head): no pass, no gap.
    no_dispatch: std::collections::HashSet<(usize, usize)>,
}

impl GroupTimes {
    fn gap_of(&self, a: usize, b: usize, r: Residency) -> Option<f64> {
        let v = self.gap.get(&(a, b, r))?;
        Some(v.iter().sum::<f64>() / v.len() as f64)
    }

    /// A configuration's composed latency: its groups' passes and the gaps before them.
    fn composed(&self, c: &Config, res: Residency) -> Option<f64> {
        c.groups
            .iter()
            .map(|g| {
                if self.no_dispatch.contains(&(g.start, g.end)) {
                    return Some(0.0); // a detection head on the CPU: the same in every configuration
                }
                let p = self.pass.get(&(g.start, g.end, g.grid.rows))?;
                let before = if g.start == 0 {
                    Some(0.0)
                } else {
                    self.gap_of(g.start, g.end, res)
                };
                Some(p + before?)
            })
            .sum()
    }
}

/// Run every covering run once and record its groups' passes and gaps.
fn time_groups(
    m: &Measurer<'_>,
    runs: &[CoveringRun],
    steps: &mut Steps<'_>,
) -> Result<GroupTimes> {
    let mut times = GroupTimes::default();
    for run in runs {
        let config = config_of(&run.path, &run.grids);
        let res = run.residency;
        steps.step(&format!("group times: {config} ({})", res.as_str()));
        let measured = match m.measure(&config, Mode::Layerwise, res, 1) {
            Ok(v) => v,
            Err(e @ Error::DeviceLimit(_)) => {
                log::info!("regret: skipping {config}: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        for g in &config.groups {
            if (g.start..g.end).all(|i| m.planner().op(i) == crate::kernel::Op::CpuHead) {
                times.no_dispatch.insert((g.start, g.end));
            }
        }
        for (range, ms, before) in &measured.groups {
            let grid = config
                .groups
                .iter()
                .find(|g| g.start == range.start && g.end == range.end)
                .map_or(1, |g| g.grid.rows);
            if res == Residency::Resident {
                times.pass.insert((range.start, range.end, grid), *ms);
            }
            if range.start > 0 {
                times
                    .gap
                    .entry((range.start, range.end, res))
                    .or_default()
                    .push(*before);
            }
        }
    }
    Ok(times)
}

/// What one budget runs whole: the pick first, then the best references by composed latency.
struct BudgetSet {
    budget: u64,
    fitting: Vec<Reference>,
    /// (config, residency, estimate): the pick first.
    set: Vec<(String, Residency, f64)>,
}

/// Run the harness over `grid`, whose configurations `references` holds planned
/// ([`ReferenceGrid::plan`]).
pub fn regret(
    m: &Measurer<'_>,
    net: &Network,
    cost: &CostModel,
    opts: &RegretOptions,
    grid: &ReferenceGrid,
    references: &[PlannedReference],
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(Vec<BudgetRow>, Vec<Reference>)> {
    opts.validate()?;
    let runs = covering_runs(net, grid);
    // Every reference configuration's peak is known before measuring, so every budget's set is too.
    let mut refs: Vec<Reference> = Vec::new();
    let candidates = references;
    let picks: Vec<(u64, Choice)> = opts
        .budgets
        .iter()
        .filter(|&&b| candidates.iter().any(|c| c.peak_bytes <= b))
        .map(|&b| Ok((b, fastest(m.planner(), b, cost)?)))
        .collect::<Result<_>>()?;
    let whole_runs = picks.len() * (opts.top + 2) * opts.runs;
    let mut steps = Steps::new(runs.len() + whole_runs, progress);
    let times = time_groups(m, &runs, &mut steps)?;
    for c in candidates {
        if let Some(composed_ms) = times.composed(&c.config, c.residency) {
            refs.push(Reference {
                config: c.config.to_string(),
                residency: c.residency,
                peak_bytes: c.peak_bytes,
                composed_ms,
            });
        }
    }
    let mut rows = Vec::new();
    for (budget, pick) in picks {
        let mut fitting: Vec<Reference> = refs
            .iter()
            .filter(|r| r.peak_bytes <= budget)
            .cloned()
            .collect();
        fitting.sort_by(|a, b| a.composed_ms.total_cmp(&b.composed_ms));
        if fitting.is_empty() {
            log::warn!(
                "regret: no measured reference configuration fits {budget} bytes; skipping it"
            );
            continue;
        }
        let mut set = vec![(pick.config.to_string(), pick.residency, pick.predicted_ms)];
        for r in fitting.iter().take(opts.top) {
            if !set.iter().any(|s| s.0 == r.config && s.1 == r.residency) {
                set.push((r.config.clone(), r.residency, r.composed_ms));
            }
        }
        let b = BudgetSet {
            budget,
            fitting,
            set,
        };
        rows.push(run_budget(m, &b, opts.runs, &mut steps)?);
    }
    steps.finish();
    Ok((rows, refs))
}

/// Run one budget's set and the untiled run whole, in turns, and take the paired regret.
fn run_budget(
    m: &Measurer<'_>,
    b: &BudgetSet,
    rounds: usize,
    steps: &mut Steps<'_>,
) -> Result<BudgetRow> {
    let set = &b.set;
    let mut trials = Vec::with_capacity(set.len() + 1);
    for (c, r, _) in set {
        trials.push(m.prepare(&Config::parse(c)?, Mode::Layerwise, *r)?);
    }
    trials.push(m.prepare(&Config::untiled(), Mode::Layerwise, Residency::Resident)?);
    in_turns(&mut trials, rounds, &mut |t, round| {
        steps.step(&format!(
            "budget {} B, round {}/{rounds}: {}",
            b.budget,
            round + 1,
            t.label
        ));
    })?;
    let measured: Vec<Measured> = trials.into_iter().map(Trial::finish).collect();
    let whole = |k: usize| WholeRun {
        config: set[k].0.clone(),
        residency: set[k].1,
        peak_bytes: measured[k].peak_bytes,
        measured_ms: measured[k].latency_ms,
        estimate_ms: set[k].2,
    };
    // The references (the pick counts as one when it is in the reference grid).
    let verified: Vec<WholeRun> = (0..set.len())
        .filter(|&k| {
            k > 0
                || b.fitting
                    .iter()
                    .any(|r| r.config == set[0].0 && r.residency == set[0].1)
        })
        .map(whole)
        .collect();
    let best = verified
        .iter()
        .min_by(|a, b| a.measured_ms.total_cmp(&b.measured_ms))
        .expect("at least one reference")
        .clone();
    let bk = (0..set.len())
        .find(|&k| set[k].0 == best.config && set[k].1 == best.residency)
        .expect("best is in the set");
    // Paired: the pick's run over the best reference's run of the same round.
    let mut ratios: Vec<f64> = measured[0]
        .runs_ms
        .iter()
        .zip(&measured[bk].runs_ms)
        .map(|(p, b)| (p / b - 1.0) * 100.0)
        .collect();
    Ok(BudgetRow {
        budget_bytes: b.budget,
        fitting: b.fitting.len(),
        regret_pct: quantile(&mut ratios, 0.5),
        regret_iqr_pct: (quantile(&mut ratios, 0.25), quantile(&mut ratios, 0.75)),
        untiled_ms: measured[set.len()].latency_ms,
        pick: whole(0),
        best,
        verified,
    })
}
