//! Saved plans (`mafat plan --out plan.json`, `mafat run --plan plan.json`).
//!
//! A plan file records the configuration the search chose with what it was made for — the network
//! (name, structure hash, input size) and the adapter (name, driver, backend) — so that running it on
//! anything else is refused with a clear message instead of silently using a plan whose memory and
//! latency figures do not hold.

use crate::error::{Error, Result};
use crate::network::Network;
use crate::plan::config::Config;
use crate::plan::cost::{CalibrationKey, CostModel, network_hash};
use crate::plan::memory::{MemoryBreakdown, MemoryPlan, Residency};
use crate::plan::search::Choice;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The adapter a plan or calibration was made on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterId {
    /// The adapter's name.
    pub name: String,
    /// The driver's name and details (as in [`CalibrationKey::driver`]).
    pub driver: String,
    /// The wgpu backend, lowercase (e.g. `vulkan`).
    pub backend: String,
}

impl AdapterId {
    /// The adapter a calibration with `key` was made on.
    pub fn of(key: &CalibrationKey) -> Self {
        AdapterId {
            name: key.adapter.clone(),
            driver: key.driver.clone(),
            backend: key.backend.clone(),
        }
    }
}

/// What `mafat plan --out` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanFile {
    /// mafat version that wrote it.
    pub mafat: String,
    /// The network's name (built-in name or cfg path).
    pub model: String,
    /// [`network_hash`] of the network.
    pub network_hash: String,
    /// Network input [C, H, W].
    pub input: [usize; 3],
    /// The adapter it was made on (that of the calibration used).
    pub adapter: AdapterId,
    /// The configuration, in `--groups` syntax.
    pub config: String,
    /// Where conv weights live.
    pub residency: Residency,
    /// The budget the plan was searched for, in bytes.
    pub budget_bytes: u64,
    /// The planner's predicted peak device bytes.
    pub predicted_peak_bytes: u64,
    /// The cost model's predicted latency, in ms.
    pub predicted_latency_ms: f64,
    /// Multiply-accumulates computed over the untiled network's ([`MemoryPlan::mac_ratio`]).
    ///
    /// [`MemoryPlan::mac_ratio`]: crate::plan::memory::MemoryPlan::mac_ratio
    pub mac_ratio: f64,
    /// What the predicted peak is made of (`mafat plan` always writes it).
    pub breakdown: Option<MemoryBreakdown>,
    /// The kernel of every layer (`cpu` for a detection head); empty in a plan from before kernels
    /// were chosen (the default kernels).
    #[serde(default)]
    pub kernels: Vec<String>,
    /// How maps and weights are stored (`f32` in a plan from before precisions).
    #[serde(default)]
    pub precision: crate::precision::Precision,
}

/// Largest plan file read, in bytes.
pub const MAX_PLAN_BYTES: u64 = 1 << 20;

impl PlanFile {
    /// The file of the search's `choice` for `budget`, planned as `plan`, with the cost model `cost`
    /// (whose key names the adapter).
    pub fn of(
        net: &Network,
        choice: &Choice,
        plan: &MemoryPlan,
        cost: &CostModel,
        budget: u64,
    ) -> Self {
        PlanFile {
            mafat: env!("CARGO_PKG_VERSION").into(),
            model: net.name.clone(),
            network_hash: cost.key.network_hash.clone(),
            input: [net.input.c, net.input.h, net.input.w],
            adapter: AdapterId::of(&cost.key),
            config: choice.config.to_string(),
            residency: choice.residency,
            budget_bytes: budget,
            predicted_peak_bytes: choice.peak_bytes,
            predicted_latency_ms: choice.predicted_ms,
            mac_ratio: plan.mac_ratio(net),
            breakdown: Some(plan.breakdown()),
            kernels: plan.ops.iter().map(|o| o.name().to_string()).collect(),
            precision: plan.precision,
        }
    }

    /// The kernel of every layer the plan names (the defaults when it names none); an unknown
    /// kernel, or one that cannot run its layer, is refused.
    pub fn ops(&self, path: &Path, net: &Network) -> Result<Vec<crate::kernel::Op>> {
        use crate::kernel::{self, Op};
        if self.kernels.is_empty() {
            return kernel::select_all(net);
        }
        if self.kernels.len() != net.layers.len() {
            return Err(Error::Usage(format!(
                "plan {}: kernels names {} layers, the network has {}",
                path.display(),
                self.kernels.len(),
                net.layers.len()
            )));
        }
        self.kernels
            .iter()
            .enumerate()
            .map(|(i, name)| match kernel::by_name(name) {
                Some(k) if k.supports(net, i) => Ok(Op::Dispatch(k)),
                None if name == "cpu" && kernel::is_cpu_head(&net.layers[i].kind) => {
                    Ok(Op::CpuHead)
                }
                _ => Err(Error::Usage(format!(
                    "plan {}: kernels: layer {i} cannot run on `{}`; make the plan again",
                    path.display(),
                    crate::units::prefix(name)
                ))),
            })
            .collect()
    }

    /// Read a plan file (an I/O failure is [`Error::Io`], anything but a plan [`Error::Usage`]).
    pub fn read(path: &Path) -> Result<Self> {
        let text = crate::model::read_text_capped(path, MAX_PLAN_BYTES, "a mafat plan")?;
        serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{}: not a mafat plan ({e}); write one with mafat plan --budget B --out FILE",
                path.display()
            ))
        })
    }

    /// Write the plan as pretty-printed JSON.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
    }

    /// The configuration, parsed.
    pub fn config(&self) -> Result<Config> {
        Config::parse(&self.config)
    }

    /// Refuse to run this plan for another network, input size, adapter or storage precision.
    pub fn check(
        &self,
        path: &Path,
        net: &Network,
        adapter: &AdapterId,
        precision: crate::precision::Precision,
    ) -> Result<()> {
        let this = [net.input.c, net.input.h, net.input.w];
        let replan = format!(
            "make a new one with: mafat plan --model {} --size {}x{} --budget {} --out {}",
            net.name,
            net.input.w,
            net.input.h,
            self.budget_bytes,
            path.display()
        );
        if self.model != net.name || self.network_hash != network_hash(net) || self.input != this {
            return Err(Error::Usage(format!(
                "plan {} was made for {} at {}x{}, not {} at {}x{}; {replan}",
                path.display(),
                self.model,
                self.input[2],
                self.input[1],
                net.name,
                net.input.w,
                net.input.h
            )));
        }
        if &self.adapter != adapter {
            return Err(Error::Usage(format!(
                "plan {} was made for adapter {} ({}, {}), not {} ({}, {}); pick that adapter with --adapter, or {replan}",
                path.display(),
                self.adapter.name,
                self.adapter.driver,
                self.adapter.backend,
                adapter.name,
                adapter.driver,
                adapter.backend
            )));
        }
        if self.precision != precision {
            return Err(Error::Usage(format!(
                "plan {} stores maps and weights as {}, this run as {precision}; run it with --precision {}, or {replan} --precision {precision}",
                path.display(),
                self.precision,
                self.precision
            )));
        }
        Ok(())
    }

    /// Refuse a plan whose recorded figures do not hold for `plan`, the configuration it names
    /// planned again: its peak must be the recorded one and within its budget (an edited file
    /// would otherwise run with figures that are not its own).
    pub fn check_figures(&self, path: &Path, plan: &MemoryPlan) -> Result<()> {
        let peak = plan.peak_bytes();
        if peak != self.predicted_peak_bytes {
            return Err(Error::Usage(format!(
                "plan {}: predicted_peak_bytes says {} but config {} with residency {} plans to {peak} bytes; the file was edited or made by another mafat: make it again with mafat plan --out",
                path.display(),
                self.predicted_peak_bytes,
                self.config,
                self.residency.as_str()
            )));
        }
        if peak > self.budget_bytes {
            return Err(Error::Usage(format!(
                "plan {}: budget_bytes {} is below the plan's own peak of {peak} bytes; make it again with mafat plan --out",
                path.display(),
                self.budget_bytes
            )));
        }
        Ok(())
    }
}
