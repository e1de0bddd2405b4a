//! Measuring configurations on the adapter: median latency over timed runs, per-group times and the
//! gaps before groups (the regret harness and benches use it).

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::executor::Executor;
use crate::gpu::kernels::Pipelines;
use crate::gpu::pool::BufferPool;
use crate::input::InputSource;
use crate::model::weights::{WeightSource, Weights};
use crate::network::Network;
use crate::plan::config::Config;
use crate::plan::memory::{DeviceLimits, Mode, Residency, plan_with};
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

/// A network ready to be measured under many configurations on one adapter (random weights and
/// input: timings do not depend on the values).
pub struct Measurer<'a> {
    ctx: &'a GpuContext,
    pipelines: &'a Pipelines,
    net: &'a Network,
    weights: Weights,
    input: Tensor,
    limits: DeviceLimits,
    warm: std::cell::Cell<bool>,
}

/// The median (upper middle) of `v`, sorting it.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl<'a> Measurer<'a> {
    /// Measure `net` on `ctx`'s adapter with seeded random weights and input (`random:0`).
    pub fn new(ctx: &'a GpuContext, pipelines: &'a Pipelines, net: &'a Network) -> Result<Self> {
        Ok(Measurer {
            ctx,
            pipelines,
            net,
            weights: WeightSource::parse("random:0")?.load(net)?,
            input: InputSource::parse("random:0")?.load(net.input)?,
            limits: DeviceLimits::from_wgpu(&ctx.limits, ctx.timestamps),
            warm: std::cell::Cell::new(false),
        })
    }

    /// The adapter limits every configuration is planned for.
    pub fn limits(&self) -> &DeviceLimits {
        &self.limits
    }

    /// Prepare `config` under `residency` for timed runs (buffers allocated, weights uploaded).
    pub fn prepare(&self, config: &Config, residency: Residency) -> Result<Prepared<'_>> {
        self.prepare_mode(config, Mode::Layerwise, residency)
    }

    /// [`Measurer::prepare`] in either untiled arena mode (naive keeps every map alive).
    pub fn prepare_mode(
        &self,
        config: &Config,
        mode: Mode,
        residency: Residency,
    ) -> Result<Prepared<'_>> {
        let plan = plan_with(self.net, config, mode, residency, &self.limits)?;
        let mut pool = BufferPool::new(None);
        let ex = Executor::new(
            self.ctx,
            self.pipelines,
            self.net,
            &self.weights,
            plan,
            &mut pool,
        )?;
        let p = Prepared {
            m: self,
            ex,
            pool,
            runs: Vec::new(),
        };
        if !self.warm.get() {
            p.ex.run_with(self.ctx, self.pipelines, &self.input, true)?; // compiles the shaders
            self.warm.set(true);
        }
        Ok(p)
    }

    /// Run `config` under `residency` `runs` times (after a warm-up run the first time, which
    /// compiles the shaders) and take medians.
    pub fn measure(&self, config: &Config, residency: Residency, runs: usize) -> Result<Measured> {
        let mut p = self.prepare(config, residency)?;
        let result = (|| {
            for _ in 0..runs.max(1) {
                p.run()?;
            }
            Ok::<_, Error>(())
        })();
        let measured = p.finish();
        result?;
        Ok(measured)
    }
}

/// A configuration ready to run; runs accumulate until [`Prepared::finish`] takes their medians.
/// Several can be alive at once, so that configurations are timed in turns (drift on a shared
/// machine then touches them all alike).
pub struct Prepared<'m> {
    m: &'m Measurer<'m>,
    ex: Executor,
    pool: BufferPool,
    runs: Vec<crate::gpu::executor::RunOutput>,
}

impl Prepared<'_> {
    /// One timed run.
    pub fn run(&mut self) -> Result<()> {
        let out = self
            .ex
            .run_with(self.m.ctx, self.m.pipelines, &self.m.input, true)?;
        self.runs.push(out);
        Ok(())
    }

    /// Release the buffers and take the medians of the runs so far.
    pub fn finish(self) -> Measured {
        let Prepared {
            ex,
            mut pool,
            runs: out,
            ..
        } = self;
        ex.release(&mut pool);
        let peak_bytes = pool.stats().peak;
        if out.is_empty() {
            return Measured {
                latency_ms: f64::NAN,
                groups: Vec::new(),
                peak_bytes,
                runs_ms: Vec::new(),
            };
        }
        let runs_ms: Vec<f64> = out.iter().map(|r| r.compute_ms).collect();
        let latency_ms = median(&mut runs_ms.clone());
        let n = out[0].group_ms.len();
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
