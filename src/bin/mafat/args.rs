//! Arguments shared by several subcommands (flattened into each), and parsers of option values.

use mafat::plan::{Mode, Residency};
use mafat::{Error, Network, Precision, Result, Session, SessionOptions, model, units};
use std::path::PathBuf;

/// `--model M [--size WxH]`.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Built-in name (yolov2, yolov2-16, yolov2-tiny, yolov3-tiny), a Darknet .cfg path or an
    /// ONNX .onnx path.
    #[arg(long)]
    pub model: String,
    /// Input size WxH (overrides the model's width/height; required for an ONNX model whose
    /// input leaves them free).
    #[arg(long)]
    pub size: Option<String>,
}

/// A loaded model: the network and, for an ONNX model, its graph outputs.
pub struct Loaded {
    /// The network.
    pub net: Network,
    /// An ONNX model's outputs (names and dimensions), in the order of the network's outputs.
    pub onnx_outputs: Option<Vec<model::onnx::GraphOutput>>,
}

impl ModelArgs {
    /// The network, at the size asked for.
    pub fn load(&self) -> Result<Network> {
        Ok(self.load_model()?.net)
    }

    /// The network with what an ONNX model says of its outputs.
    pub fn load_model(&self) -> Result<Loaded> {
        let size = self.size.as_deref().map(model::parse_size).transpose()?;
        let path = std::path::Path::new(&self.model);
        if model::onnx::is_onnx_path(&self.model) && path.exists() {
            let im = model::onnx::load(path, size)?;
            return Ok(Loaded {
                net: im.network,
                onnx_outputs: Some(im.outputs),
            });
        }
        Ok(Loaded {
            net: model::load(&self.model, size)?,
            onnx_outputs: None,
        })
    }

    /// Whether the model is an ONNX file.
    pub fn is_onnx(&self) -> bool {
        model::onnx::is_onnx_path(&self.model)
    }
}

/// `--adapter NAME`.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Adapter whose name contains this text (default: WGPU_ADAPTER_NAME, else the best GPU).
    #[arg(long)]
    pub adapter: Option<String>,
    /// How maps and weights are stored on the device: f32, or f16 (half the memory; arithmetic
    /// stays f32; needs the adapter's shader-f16).
    #[arg(long, value_parser = precision, default_value = "f32")]
    pub precision: Precision,
}

impl DeviceArgs {
    /// A session on the adapter asked for, at the precision asked for.
    pub fn session(&self) -> Result<Session> {
        Session::new(&SessionOptions {
            adapter: self.adapter.clone(),
            precision: self.precision,
            ..SessionOptions::default()
        })
    }
}

/// `--precision f32|f16`.
pub fn precision(s: &str) -> Result<Precision> {
    s.parse()
}

/// `--calibration FILE`.
#[derive(clap::Args, Debug, Clone)]
pub struct CalibrationArgs {
    /// Latency calibration file to use (calibrated and written there if it does not exist;
    /// default: the user's cache directory).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
}

impl CalibrationArgs {
    /// The latency model of `net` on `session`'s adapter: from the pinned file, the cache, or
    /// calibrated now (with the progress display).
    pub fn cost_model(
        &self,
        session: &Session,
        net: &Network,
        kernels: &KernelArgs,
    ) -> Result<(mafat::plan::CostModel, mafat::tune::CalibrationSource)> {
        let mut progress = crate::progress::calibration(net, session);
        let policy = kernels.policy()?;
        let path = self.calibration.as_deref();
        mafat::tune::load_or_calibrate(session, net, policy, path, &mut progress)
    }
}

/// `--kernel tuned|default|NAME`.
#[derive(clap::Args, Debug, Clone)]
pub struct KernelArgs {
    /// Each layer's kernel: `tuned` (the default: the fastest of its candidates, measured once on
    /// the adapter and cached), `default` (the registry's first, nothing measured), or a kernel's
    /// name, pinned on every layer it supports (the others on their default). `mafat layers
    /// --json` names each layer's candidates.
    #[arg(long)]
    pub kernel: Option<String>,
}

impl KernelArgs {
    /// The policy (`tuned` when not given).
    pub fn policy(&self) -> Result<mafat::tune::KernelPolicy> {
        match &self.kernel {
            Some(s) => mafat::tune::KernelPolicy::parse(s),
            None => Ok(mafat::tune::KernelPolicy::Tuned),
        }
    }

    /// The kernels of a run that is not searched (measuring the tuned choice when it is not cached
    /// yet, with a progress bar).
    pub fn ops(&self, session: &Session, net: &Network) -> Result<Vec<mafat::kernel::Op>> {
        let mut progress = crate::progress::calibration(net, session);
        self.policy()?.resolve(session, net, &mut progress)
    }

    /// The kernels where memory matters most (`--min-budget`): as given, else the defaults (no
    /// workspace, the smallest weights).
    pub fn lean_ops(&self, session: &Session, net: &Network) -> Result<Vec<mafat::kernel::Op>> {
        match &self.kernel {
            Some(_) => self.ops(session, net),
            None => mafat::kernel::select_all(net),
        }
    }
}

/// `--mode layerwise|naive`.
pub fn mode(s: &str) -> Result<Mode> {
    s.parse()
}

/// `--residency resident|per-group`.
pub fn residency(s: &str) -> Result<Residency> {
    s.parse()
}

/// Most timed runs `mafat run` makes.
pub const MAX_RUNS: usize = 100_000;

/// Most timed runs per configuration in `sweep` and `regret` (each is run at several budgets).
pub const MAX_RUNS_PER_CONFIG: usize = 1000;

/// `--runs`: 1 to `max`, refused before any work.
pub fn check_runs(runs: usize, max: usize) -> Result<usize> {
    if runs == 0 || runs > max {
        return Err(Error::Usage(format!(
            "--runs {runs}: give 1 to {max} timed runs"
        )));
    }
    Ok(runs)
}

/// Most budgets one `--budgets` range may make.
pub const MAX_BUDGET_STEPS: usize = 1000;

/// One end of a `--budgets` range.
#[derive(Debug, Clone, Copy)]
enum BudgetEnd {
    Bytes(u64),
    /// The smallest peak mafat reaches.
    Min,
    /// The untiled layerwise peak.
    Untiled,
}

/// A `--budgets LO..HI[:STEPS]` range, checked for syntax and bounds before any work; the keyword
/// ends are resolved once their figures are known ([`BudgetRange::resolve`]).
#[derive(Debug, Clone, Copy)]
pub struct BudgetRange {
    lo: BudgetEnd,
    hi: BudgetEnd,
    steps: usize,
}

impl BudgetRange {
    /// Parse `LO..HI[:STEPS]` (`LO` may be `min`, `HI` `untiled`).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            Error::Usage(format!(
                "--budgets `{}`: expected LO..HI[:STEPS] with 1 ≤ STEPS ≤ {MAX_BUDGET_STEPS}, e.g. 8MiB..96MiB:12 or min..untiled:6",
                units::prefix(text)
            ))
        };
        let (range, steps) = match text.rsplit_once(':') {
            Some((r, s)) => (r, s.trim().parse::<usize>().map_err(|_| bad())?),
            None => (text, 6),
        };
        if steps == 0 || steps > MAX_BUDGET_STEPS {
            return Err(bad());
        }
        let (lo, hi) = range.split_once("..").ok_or_else(bad)?;
        let end = |s: &str| match s.trim() {
            "min" => Ok(BudgetEnd::Min),
            "untiled" => Ok(BudgetEnd::Untiled),
            v => units::parse_bytes(v).map(BudgetEnd::Bytes).map_err(|e| {
                Error::Usage(format!(
                    "--budgets `{}`: {e}; or `min` / `untiled`",
                    units::prefix(text)
                ))
            }),
        };
        let (lo, hi) = (end(lo)?, end(hi)?);
        match (lo, hi) {
            (BudgetEnd::Bytes(0), _) => Err(bad()),
            (BudgetEnd::Bytes(l), BudgetEnd::Bytes(h)) if h < l => Err(bad()),
            _ => Ok(BudgetRange { lo, hi, steps }),
        }
    }

    /// The budgets, in geometric steps, with `min` and `untiled` standing for the given bytes.
    pub fn resolve(&self, min: u64, untiled: u64) -> Result<Vec<u64>> {
        let value = |e: BudgetEnd| match e {
            BudgetEnd::Bytes(b) => b,
            BudgetEnd::Min => min,
            BudgetEnd::Untiled => untiled,
        };
        let (lo, hi) = (value(self.lo), value(self.hi));
        if lo == 0 || hi < lo {
            return Err(Error::Usage(format!(
                "--budgets: the range runs from {} to {}, downwards: give LO ≤ HI (min = {}, untiled = {})",
                units::human(lo),
                units::human(hi),
                units::human(min),
                units::human(untiled)
            )));
        }
        let steps = self.steps;
        if steps == 1 || lo == hi {
            return Ok(vec![lo]);
        }
        let mut v: Vec<u64> = (0..steps)
            .map(|k| {
                (lo as f64 * (hi as f64 / lo as f64).powf(k as f64 / (steps - 1) as f64)) as u64
            })
            .collect();
        v[0] = lo;
        v[steps - 1] = hi;
        v.dedup();
        Ok(v)
    }
}
