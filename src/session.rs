//! The library's front door: a [`Session`] owns (or is given) a wgpu device and queue, plans networks
//! for it — for a budget (calibrating the latency model once per adapter and network) or for a given
//! configuration — prepares them ([`Prepared`]: buffers allocated under the budget, weights uploaded;
//! dropping it returns everything), runs them and checks their outputs.
//!
//! ```no_run
//! use mafat::{BudgetOptions, Session, SessionOptions, model};
//! # fn main() -> mafat::Result<()> {
//! let net = model::load("yolov2-16", None)?;
//! let weights = model::weights::WeightSource::Random(0).load(&net)?;
//! let input = mafat::input::InputSource::Random(0).load(net.input)?;
//! let session = Session::new(&SessionOptions::default())?;
//! let planned = session.plan_for_budget(&net, 16 << 20, &BudgetOptions::default(), &mut |_| {})?;
//! let prepared = session.prepare(&net, &weights, planned.plan, Some(16 << 20))?;
//! let out = prepared.run(&input)?;
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::gpu::{Executor, GpuContext, Pipelines, PoolStats, RunOutput};
use crate::kernel::Op;
use crate::model::weights::Weights;
use crate::network::Network;
use crate::plan::search::{Choice, MAX_GRID, fastest_over_kernels, min_peak_for};
use crate::plan::{Config, CostModel, DeviceLimits, MemoryPlan, Mode, Planner, Residency};
use crate::precision::Precision;
use crate::tensor::Tensor;
use crate::tune::{CalibrationSource, KernelPolicy, Progress, load_or_calibrate};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// How a [`Session`] opens its device.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Use the first adapter whose name contains this text, case-insensitively (default:
    /// `WGPU_ADAPTER_NAME`, else a discrete GPU, then integrated, virtual, CPU).
    pub adapter: Option<String>,
    /// Let kernels use subgroup operations where the device has them (`false`: the portable kernels
    /// only).
    pub subgroups: bool,
    /// How maps and weights are stored on the device (`f16` needs the adapter's shader-f16).
    pub precision: Precision,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            adapter: None,
            subgroups: true,
            precision: Precision::F32,
        }
    }
}

/// A device with its compiled pipelines. Cheap to clone (shared); usable from several threads,
/// each [`Prepared`] network keeping its own budget.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: GpuContext,
    pipelines: Pipelines,
    precision: Precision,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({})", self.adapter_name())
    }
}

/// How [`Session::plan_for_budget`] searches.
#[derive(Debug, Clone)]
pub struct BudgetOptions<'a> {
    /// A calibration file to use (measured and written there if it does not exist); `None`: the
    /// user's cache directory.
    pub calibration: Option<&'a Path>,
    /// The weight residencies the search may choose.
    pub residencies: Vec<Residency>,
    /// Largest grid side the search tries.
    pub max_grid: usize,
    /// How each layer's kernel is chosen (default: the fastest measured on the adapter).
    pub kernels: KernelPolicy,
}

impl Default for BudgetOptions<'_> {
    fn default() -> Self {
        BudgetOptions {
            calibration: None,
            residencies: Residency::BOTH.to_vec(),
            max_grid: MAX_GRID,
            kernels: KernelPolicy::Tuned,
        }
    }
}

/// What planning for a budget produced.
#[derive(Debug, Clone)]
pub struct BudgetPlan {
    /// The search's pick with its predicted peak and latency.
    pub choice: Choice,
    /// The pick, planned (ready for [`Session::prepare`]).
    pub plan: MemoryPlan,
    /// The latency model the search used.
    pub cost: CostModel,
    /// Where that model came from.
    pub calibration: CalibrationSource,
    /// Milliseconds the search took (the calibration excluded).
    pub search_ms: f64,
}

/// A run's outputs checked against the CPU reference and the untiled GPU run.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Largest |GPU − CPU reference| over every output (NaN if any difference is NaN).
    pub max_abs_diff_cpu: f32,
    /// `max_abs_diff_cpu` over the largest |CPU reference| output value: what a kernel that
    /// reorders the arithmetic (Winograd) is judged by on non-integer data.
    pub max_diff_cpu_over_absmax: f32,
    /// Whether the outputs equal the untiled layerwise run's bit for bit (`None` when the run was
    /// that run: nothing to compare); an error when the untiled run could not be made.
    pub bit_exact_untiled: Option<std::result::Result<bool, String>>,
}

/// The largest `max_diff_cpu_over_absmax` a run at `precision` may show and still pass
/// verification: f32 kernels equal the CPU reference bit for bit or (reordered arithmetic,
/// Winograd) within 1e-5 of the absmax, so 1e-3 flags only wrong answers; f16 runs are compared with
/// the f16 reference, where accumulation order moves results by an f16 ulp or a few (2e-3 measured).
pub fn verify_tolerance(precision: Precision) -> f32 {
    match precision {
        Precision::F32 => 1e-3,
        Precision::F16 => 3e-2,
    }
}

impl Verification {
    /// What is wrong, if anything: outputs off the CPU reference past [`verify_tolerance`] (or a
    /// difference that is not a number), or a tiled run different from the untiled one.
    pub fn problem(&self, precision: Precision) -> Option<String> {
        let tolerance = verify_tolerance(precision);
        let diff = self.max_diff_cpu_over_absmax;
        if diff.is_nan() || diff > tolerance {
            return Some(format!(
                "the GPU outputs differ from the CPU reference by {diff:e} of their absmax (max |GPU − CPU| = {:e}), past the {precision} tolerance of {tolerance:e}",
                self.max_abs_diff_cpu
            ));
        }
        match &self.bit_exact_untiled {
            Some(Ok(false)) => Some(
                "the tiled run's outputs differ from the untiled run's on the same kernels (they must be equal bit for bit)".into(),
            ),
            _ => None,
        }
    }
}

impl Session {
    /// Open a device (the instance follows the environment: `WGPU_BACKEND`, ...).
    /// Fails, in one line, where the adapter cannot store `options.precision`.
    pub fn new(options: &SessionOptions) -> Result<Self> {
        let ctx = GpuContext::open(options.adapter.as_deref(), options.subgroups)?;
        ctx.check_precision(options.precision)?;
        Ok(Self::with_context_at(ctx, options.precision))
    }

    /// Share a device the caller opened and keeps using (see [`GpuContext::from_device`]). A
    /// precision the device cannot store fails when a network is prepared.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, options: &SessionOptions) -> Self {
        Self::with_context_at(
            GpuContext::from_device(device, queue, options.subgroups),
            options.precision,
        )
    }

    /// A session on an open context, storing f32.
    pub fn with_context(ctx: GpuContext) -> Self {
        Self::with_context_at(ctx, Precision::F32)
    }

    /// A session on an open context, storing maps and weights at `precision`.
    pub fn with_context_at(ctx: GpuContext, precision: Precision) -> Self {
        Session {
            inner: Arc::new(Inner {
                ctx,
                pipelines: Pipelines::new(),
                precision,
            }),
        }
    }

    /// How this session stores maps and weights.
    pub fn precision(&self) -> Precision {
        self.inner.precision
    }

    /// The device context.
    pub fn context(&self) -> &GpuContext {
        &self.inner.ctx
    }

    /// The compiled pipelines.
    pub fn pipelines(&self) -> &Pipelines {
        &self.inner.pipelines
    }

    /// "name (backend)" of the adapter.
    pub fn adapter_name(&self) -> String {
        self.inner.ctx.adapter_name()
    }

    /// The limits plans for this device respect.
    pub fn limits(&self) -> DeviceLimits {
        self.inner.ctx.device_limits()
    }

    /// A planner for `net` on this device, each layer on its default kernel, at the session's
    /// precision.
    pub fn planner<'n>(&self, net: &'n Network) -> Result<Planner<'n>> {
        self.planner_on(net, crate::kernel::select_all(net)?)
    }

    /// A planner for `net` on this device with the layers on `ops`, at the session's precision.
    pub fn planner_on<'n>(&self, net: &'n Network, ops: Vec<Op>) -> Result<Planner<'n>> {
        Planner::with_ops_at(net, &self.limits(), ops, self.precision())
    }

    /// Plan `net` under `config` on this device.
    pub fn plan(
        &self,
        net: &Network,
        config: &Config,
        mode: Mode,
        residency: Residency,
    ) -> Result<MemoryPlan> {
        self.planner(net)?.plan(config, mode, residency)
    }

    /// The fastest configuration of `net` that fits `budget` bytes: when nothing in the search
    /// space fits, [`Error::NoFit`] names the smallest budget (before any calibration runs);
    /// otherwise the latency model is loaded or calibrated (`progress` reports a calibration) and
    /// searched.
    pub fn plan_for_budget(
        &self,
        net: &Network,
        budget: u64,
        options: &BudgetOptions<'_>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<BudgetPlan> {
        let planner = self.planner(net)?;
        if options.residencies.is_empty() {
            return Err(Error::Usage(
                "the search needs at least one residency".into(),
            ));
        }
        let mut smallest: Option<(u64, Config, Residency)> = None;
        for &r in &options.residencies {
            let (m, c) = min_peak_for(&planner, r)?;
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
        let (cost, calibration) =
            load_or_calibrate(self, net, options.kernels, options.calibration, progress)?;
        // The search runs on the calibrated kernels, then layer by layer back to the defaults;
        // the fastest pick that fits wins.
        let t0 = Instant::now();
        let (ops, cost, choice) = fastest_over_kernels(
            &planner,
            planner.ops(),
            budget,
            &cost,
            options.max_grid,
            &options.residencies,
        )?;
        let planner = self.planner_on(net, ops)?;
        let search_ms = t0.elapsed().as_secs_f64() * 1e3;
        let plan = planner.plan(&choice.config, Mode::Layerwise, choice.residency)?;
        Ok(BudgetPlan {
            choice,
            plan,
            cost,
            calibration,
            search_ms,
        })
    }

    /// Prepare `plan` of `net` with `weights`: its buffers come from a pool that refuses to hold
    /// more than `budget` bytes (no limit with `None`).
    pub fn prepare(
        &self,
        net: &Network,
        weights: &Weights,
        plan: MemoryPlan,
        budget: Option<u64>,
    ) -> Result<Prepared> {
        let exec = Executor::new(
            &self.inner.ctx,
            &self.inner.pipelines,
            net,
            weights,
            plan,
            budget,
        )?;
        Ok(Prepared {
            session: self.clone(),
            exec,
        })
    }

    /// The outputs of the untiled layerwise run of `net` (weights resident, no budget), each
    /// layer on its default kernel.
    pub fn run_untiled(
        &self,
        net: &Network,
        weights: &Weights,
        input: &Tensor,
    ) -> Result<Vec<Tensor>> {
        self.run_untiled_on(net, weights, input, crate::kernel::select_all(net)?)
    }

    /// [`Session::run_untiled`] with the layers on `ops`.
    pub fn run_untiled_on(
        &self,
        net: &Network,
        weights: &Weights,
        input: &Tensor,
        ops: Vec<crate::kernel::Op>,
    ) -> Result<Vec<Tensor>> {
        let planner = self.planner_on(net, ops)?;
        let plan = planner.plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)?;
        Ok(self.prepare(net, weights, plan, None)?.run(input)?.outputs)
    }

    /// Check `outputs` of a run of `plan` against the CPU reference at the plan's precision and,
    /// unless `plan` is the untiled layerwise run itself, against that run bit for bit (on the same
    /// kernels: the choice is per layer, so tiled and untiled runs do the same arithmetic).
    pub fn verify(
        &self,
        net: &Network,
        weights: &Weights,
        input: &Tensor,
        plan: &MemoryPlan,
        outputs: &[Tensor],
    ) -> Result<Verification> {
        let heads = net.outputs();
        let cpu = crate::reference::forward_at(net, weights, input, &heads, plan.precision)?;
        let max_abs_diff_cpu = max_abs_diff(outputs, &cpu);
        let absmax = cpu
            .iter()
            .flat_map(|t| t.data.iter())
            .fold(0.0f32, |m, v| m.max(v.abs()));
        let max_diff_cpu_over_absmax = match absmax > 0.0 {
            true => max_abs_diff_cpu / absmax,
            false => max_abs_diff_cpu,
        };
        let is_untiled = plan.config.is_untiled()
            && plan.mode == Mode::Layerwise
            && plan.residency == Residency::Resident;
        let bit_exact_untiled = (!is_untiled).then(|| {
            self.run_untiled_on(net, weights, input, plan.ops.clone())
                .map(|u| bit_identical(&u, outputs))
                .map_err(|e| e.to_string())
        });
        Ok(Verification {
            max_abs_diff_cpu,
            max_diff_cpu_over_absmax,
            bit_exact_untiled,
        })
    }
}

/// The largest |a − b| over tensors in pairs; NaN when any difference is NaN (or the counts or
/// shapes differ).
pub fn max_abs_diff(a: &[Tensor], b: &[Tensor]) -> f32 {
    if a.len() != b.len() {
        return f32::NAN;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| x.max_abs_diff(y))
        .fold(0.0f32, |m, d| {
            if d.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        })
}

/// Same count, shapes and bits (−0 and +0 differ, NaNs must match bit for bit).
pub fn bit_identical(a: &[Tensor], b: &[Tensor]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.shape == y.shape
                && x.data.len() == y.data.len()
                && x.data
                    .iter()
                    .zip(&y.data)
                    .all(|(p, q)| p.to_bits() == q.to_bits())
        })
}

/// A network prepared on a session's device: run it as often as needed; dropping it returns its
/// buffers.
pub struct Prepared {
    session: Session,
    exec: Executor,
}

impl Prepared {
    /// Run the network on `input`.
    pub fn run(&self, input: &Tensor) -> Result<RunOutput> {
        self.exec.run(self.session.context(), input)
    }

    /// Run the network on `input`, timing every group on its own (on a device without timestamps:
    /// one submit and wait per group).
    pub fn run_timing_groups(&self, input: &Tensor) -> Result<RunOutput> {
        self.exec.run_with(self.session.context(), input, true)
    }

    /// The plan it runs.
    pub fn plan(&self) -> &MemoryPlan {
        self.exec.plan()
    }

    /// The network it runs.
    pub fn network(&self) -> &Network {
        self.exec.network()
    }

    /// Its pool's byte counts: `peak` is the device memory it holds.
    pub fn pool_stats(&self) -> PoolStats {
        self.exec.pool_stats()
    }

    /// The session it belongs to.
    pub fn session(&self) -> &Session {
        &self.session
    }
}
