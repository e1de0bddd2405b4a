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
use crate::network::Network;
use crate::plan::config::{Config, Group};
use crate::plan::cost::CostModel;
use crate::plan::geometry::{Grid, tiles};
use crate::plan::memory::{Mode, Residency};
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
    /// Allowed cut positions (a cut at `k` ends a group before layer `k`).
    pub cuts: Vec<usize>,
    /// Most cuts in one reference configuration.
    pub max_cuts: usize,
    /// Largest square grid side.
    pub grids: usize,
    /// Timed runs of each whole configuration (median).
    pub runs: usize,
    /// Reference configurations run whole per budget (best by composed latency).
    pub top: usize,
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

/// Paths from 0 to `n` through `points` (sorted, inside 1..n) with at most `max_cuts` cuts.
fn paths(n: usize, points: &[usize], max_cuts: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let m = points.len();
    for mask in 0u64..(1u64 << m) {
        if mask.count_ones() as usize > max_cuts {
            continue;
        }
        let mut p = vec![0];
        p.extend((0..m).filter(|&j| mask >> j & 1 == 1).map(|j| points[j]));
        p.push(n);
        out.push(p);
    }
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

/// Every configuration of the reference grid (both residencies are applied by the caller).
pub fn reference_configs(
    net: &Network,
    cuts: &[usize],
    max_cuts: usize,
    grids: usize,
) -> Vec<Config> {
    let n = net.layers.len();
    let mut out = Vec::new();
    for path in paths(n, cuts, max_cuts) {
        let k = path.len() - 1;
        let mut choice = vec![1usize; k];
        loop {
            let c = config_of(&path, &choice);
            if c.resolve(net).is_ok() {
                out.push(c);
            }
            // Next grid assignment (odometer).
            let mut j = 0;
            while j < k && choice[j] == grids {
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

/// The covering runs: per square grid `g`, whole paths through the cut points until every interval
/// between two points is a group of one of them (grid 1 under both residencies, for the gaps).
fn covering_runs(n: usize, cuts: &[usize], grids: usize) -> Vec<(Vec<usize>, usize, Residency)> {
    let mut points = vec![0];
    points.extend(cuts);
    points.push(n);
    let intervals: Vec<(usize, usize)> = points
        .iter()
        .flat_map(|&a| points.iter().filter(move |&&b| b > a).map(move |&b| (a, b)))
        .collect();
    let all_paths = paths(n, cuts, cuts.len());
    let mut runs = Vec::new();
    for g in 1..=grids {
        let mut left: Vec<(usize, usize)> = intervals.clone();
        while !left.is_empty() {
            let covers = |p: &Vec<usize>| {
                p.windows(2)
                    .filter(|w| left.contains(&(w[0], w[1])))
                    .count()
            };
            let best = all_paths.iter().max_by_key(|p| covers(p)).expect("a path");
            for w in best.windows(2) {
                left.retain(|&iv| iv != (w[0], w[1]));
            }
            runs.push((best.clone(), g, Residency::Resident));
            if g == 1 {
                runs.push((best.clone(), g, Residency::PerGroup));
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
    net: &Network,
    runs: &[(Vec<usize>, usize, Residency)],
    steps: &mut Steps<'_>,
) -> Result<GroupTimes> {
    let mut times = GroupTimes::default();
    for (path, g, res) in runs {
        let grids: Vec<usize> = path
            .windows(2)
            .map(|w| {
                let o = net.layers[w[1] - 1].output;
                if tiles(o.h, o.w, Grid { rows: *g, cols: *g }).is_ok() {
                    *g
                } else {
                    0
                }
            })
            .collect();
        let shown: Vec<usize> = grids.iter().map(|&x| x.max(1)).collect();
        steps.step(&format!(
            "group times: {} ({})",
            config_of(path, &shown),
            res.as_str()
        ));
        if grids.contains(&0) {
            continue; // a map too small for this grid: its configurations are not in the grid
        }
        let config = config_of(path, &grids);
        let measured = match m.measure(&config, Mode::Layerwise, *res, 1) {
            Ok(v) => v,
            Err(e @ Error::DeviceLimit(_)) => {
                log::info!("regret: skipping {config}: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        for (range, ms, before) in &measured.groups {
            if *res == Residency::Resident {
                times.pass.insert((range.start, range.end, *g), *ms);
            }
            if range.start > 0 {
                times
                    .gap
                    .entry((range.start, range.end, *res))
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

/// Run the harness.
pub fn regret(
    m: &Measurer<'_>,
    net: &Network,
    cost: &CostModel,
    opts: &RegretOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(Vec<BudgetRow>, Vec<Reference>)> {
    let n = net.layers.len();
    let mut cuts: Vec<usize> = opts
        .cuts
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < n)
        .collect();
    cuts.sort();
    cuts.dedup();
    let runs = covering_runs(n, &cuts, opts.grids);
    // Every reference configuration's peak is known before measuring, so every budget's set is too.
    let mut refs: Vec<Reference> = Vec::new();
    let mut candidates: Vec<(Config, Residency, u64)> = Vec::new();
    for c in reference_configs(net, &cuts, opts.max_cuts, opts.grids) {
        for res in Residency::BOTH {
            if let Ok(plan) = m.planner().plan(&c, Mode::Layerwise, res) {
                candidates.push((c.clone(), res, plan.peak_bytes()));
            }
        }
    }
    let picks: Vec<(u64, Choice)> = opts
        .budgets
        .iter()
        .filter(|&&b| candidates.iter().any(|c| c.2 <= b))
        .map(|&b| Ok((b, fastest(m.planner(), b, cost)?)))
        .collect::<Result<_>>()?;
    let whole_runs = picks.len() * (opts.top.max(1) + 2) * opts.runs.max(1);
    let mut steps = Steps::new(runs.len() + whole_runs, progress);
    let times = time_groups(m, net, &runs, &mut steps)?;
    for (c, res, peak_bytes) in candidates {
        if let Some(composed_ms) = times.composed(&c, res) {
            refs.push(Reference {
                config: c.to_string(),
                residency: res,
                peak_bytes,
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
        for r in fitting.iter().take(opts.top.max(1)) {
            if !set.iter().any(|s| s.0 == r.config && s.1 == r.residency) {
                set.push((r.config.clone(), r.residency, r.composed_ms));
            }
        }
        let b = BudgetSet {
            budget,
            fitting,
            set,
        };
        rows.push(run_budget(m, &b, opts.runs.max(1), &mut steps)?);
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
