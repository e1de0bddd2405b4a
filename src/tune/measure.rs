//! Measuring configurations on the adapter: prepared trials timed **in turns** — one run of each,
//! then the next round — so that drift on a shared machine touches them all alike, with medians of
//! latency, per-group times and the gaps before groups. Calibration, the regret harness and the sweep
//! all time through [`in_turns`].

use crate::error::Result;
use crate::gpu::RunOutput;
use crate::input::InputSource;
use crate::kernel::Op;
use crate::model::weights::{WeightSource, Weights};
use crate::network::Network;
use crate::plan::{Config, DeviceLimits, Mode, Planner, Residency};
use crate::session::{Prepared, Session};
use crate::tensor::Tensor;
use std::ops::Range;

/// What one configuration measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Median of the timed runs' `compute_ms` (NaN when no run was made).
    pub latency_ms: f64,
    /// Per group with dispatches: its layers, median ms of its pass, and median gap before it
    /// (0 for the first).
    pub groups: Vec<(Range<usize>, f64, f64)>,
    /// The pool's peak (equals the plan's predicted peak).
    pub peak_bytes: u64,
    /// Every timed run's `compute_ms`, in order.
    pub runs_ms: Vec<f64>,
}

/// The median (upper middle) of `v`, sorting it (NaN for an empty slice).
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `f`-quantile (0 ≤ f ≤ 1, nearest rank) of `v`, sorting it (NaN for an empty slice).
pub fn quantile(v: &mut [f64], f: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * f.clamp(0.0, 1.0)).round() as usize]
}

/// A network ready to be measured under many configurations on one session (seeded random weights
/// and input: timings do not depend on the values).
pub struct Measurer<'a> {
    session: &'a Session,
    planner: Planner<'a>,
    weights: Weights,
    input: Tensor,
    /// Kernels already run once (warmed up).
    warm: std::cell::RefCell<Vec<&'static str>>,
}

impl<'a> Measurer<'a> {
    /// The same measurer with the layers on `ops`.
    pub fn with_ops(self, ops: Vec<Op>) -> Result<Self> {
        let planner = self.planner.with_ops_like(ops)?;
        Ok(Measurer { planner, ..self })
    }

    /// Measure `net` on `session`'s device with `random:0` weights and input.
    pub fn new(session: &'a Session, net: &'a Network) -> Result<Self> {
        Ok(Measurer {
            session,
            planner: session.planner(net)?,
            weights: WeightSource::Random(0).load(net)?,
            input: InputSource::Random(0).load(net.input)?,
            warm: std::cell::RefCell::new(Vec::new()),
        })
    }

    /// The planner every configuration is planned with.
    pub fn planner(&self) -> &Planner<'a> {
        &self.planner
    }

    /// The adapter limits every configuration is planned for.
    pub fn limits(&self) -> &DeviceLimits {
        self.planner.limits()
    }

    /// Prepare `config` in `mode` under `residency` for timed runs (buffers allocated, weights
    /// uploaded; a trial with a kernel that never ran yet runs once untimed first).
    pub fn prepare(&self, config: &Config, mode: Mode, residency: Residency) -> Result<Trial<'_>> {
        let plan = self.planner.plan(config, mode, residency)?;
        self.prepare_plan(plan)
    }

    /// [`Measurer::prepare`] with the layers on `ops` instead of the measurer's own kernels.
    pub fn prepare_ops(
        &self,
        ops: &[Op],
        config: &Config,
        mode: Mode,
        residency: Residency,
    ) -> Result<Trial<'_>> {
        let planner = self.planner.with_ops_like(ops.to_vec())?;
        self.prepare_plan(planner.plan(config, mode, residency)?)
    }

    fn prepare_plan(&self, plan: crate::plan::MemoryPlan) -> Result<Trial<'_>> {
        let (config, mode, residency) = (plan.config.clone(), plan.mode, plan.residency);
        let kernels = distinct_kernels(&plan.ops);
        let prepared = self
            .session
            .prepare(self.planner.net(), &self.weights, plan, None)?;
        // The first run of a kernel compiles and pages in its code: warm each kernel up once.
        let cold: Vec<&'static str> = plan_kernels(prepared.plan())
            .into_iter()
            .filter(|k| !self.warm.borrow().contains(k))
            .collect();
        if !cold.is_empty() {
            prepared.run_timing_groups(&self.input)?;
            self.warm.borrow_mut().extend(cold);
        }
        Ok(Trial {
            label: format!(
                "{config} ({}, {}; {kernels})",
                mode.as_str(),
                residency.as_str()
            ),
            input: &self.input,
            prepared,
            runs: Vec::new(),
        })
    }

    /// `runs` timed runs of one configuration, then their medians.
    pub fn measure(
        &self,
        config: &Config,
        mode: Mode,
        residency: Residency,
        runs: usize,
    ) -> Result<Measured> {
        let mut trial = [self.prepare(config, mode, residency)?];
        in_turns(&mut trial, runs.max(1), &mut |_, _| {})?;
        let [t] = trial;
        Ok(t.finish())
    }
}

/// The kernels a plan dispatches.
fn plan_kernels(plan: &crate::plan::MemoryPlan) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for d in plan.dispatches() {
        if !names.contains(&d.kernel.name()) {
            names.push(d.kernel.name());
        }
    }
    names
}

/// The kernels of `ops`, each named once, in layer order.
fn distinct_kernels(ops: &[Op]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for op in ops {
        if let Some(k) = op.kernel()
            && !names.contains(&k.name())
        {
            names.push(k.name());
        }
    }
    names.join("+")
}

/// A configuration ready to run; runs accumulate until [`Trial::finish`] takes their medians.
pub struct Trial<'m> {
    /// What it is, for progress messages: `CONFIG (mode, residency)`.
    pub label: String,
    input: &'m Tensor,
    prepared: Prepared,
    runs: Vec<RunOutput>,
}

impl Trial<'_> {
    /// One timed run (every group timed on its own).
    pub fn run(&mut self) -> Result<()> {
        let out = self.prepared.run_timing_groups(self.input)?;
        self.runs.push(out);
        Ok(())
    }

    /// Release the buffers and take the medians of the runs so far.
    pub fn finish(self) -> Measured {
        let peak_bytes = self.prepared.pool_stats().peak;
        let out = self.runs;
        let runs_ms: Vec<f64> = out.iter().map(|r| r.compute_ms).collect();
        let latency_ms = median(&mut runs_ms.clone());
        let n = out.first().map_or(0, |r| r.group_ms.len());
        let groups = (0..n)
            .map(|j| {
                let ms = median(&mut out.iter().map(|r| r.group_ms[j].1).collect::<Vec<_>>());
                let gap = if j == 0 {
                    0.0
                } else {
                    median(
                        &mut out
                            .iter()
                            .map(|r| {
                                (r.group_start_ms[j]
                                    - r.group_start_ms[j - 1]
                                    - r.group_ms[j - 1].1)
                                    .max(0.0)
                            })
                            .collect::<Vec<_>>(),
                    )
                };
                (out[0].group_ms[j].0.clone(), ms, gap)
            })
            .collect();
        Measured {
            latency_ms,
            groups,
            peak_bytes,
            runs_ms,
        }
    }
}

/// Time `trials` in turns: `rounds` rounds, each running every trial once in order;
/// `before_run(trial, round)` is called before each run (for progress).
pub fn in_turns(
    trials: &mut [Trial<'_>],
    rounds: usize,
    before_run: &mut dyn FnMut(&Trial<'_>, usize),
) -> Result<()> {
    for round in 0..rounds {
        for t in trials.iter_mut() {
            before_run(t, round);
            t.run()?;
        }
    }
    Ok(())
}
