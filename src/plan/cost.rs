//! The latency cost model: what a configuration will take on one adapter, predicted without running it.
//!
//! A model is *calibrated* on the adapter (see [`mod@crate::tune::calibrate`]) and holds, per layer, the
//! measured time of one dispatch of that layer's kernel at several region sizes, as points
//! `(invocations, ms)` — invocations with work to do ([`crate::kernel::Kernel::invocations`]); a
//! dispatch of any other size is interpolated linearly between the two nearest points (extrapolated
//! from the nearest segment outside them, never below zero). Piecewise-linear fits both a CPU
//! rasterizer (time ∝ work plus a fixed cost) and a large GPU (flat until the machine is full, then
//! ∝ work).
//!
//! On top of the dispatches, each group after the first pays `pass_gap_ms` (ending one compute pass and
//! beginning the next) and, under per-group weight residency, the upload of its weights
//! (`upload_ms + bytes · upload_ms_per_mib / 2²⁰`: a staging round trip that also waits for the work
//! queued before it). The first group's upload happens before the timed work starts, as in the
//! executor, so the model leaves it out too.
//!
//! The predicted latency of a plan is the sum of those terms; it is additive over groups, which is
//! what lets [`crate::plan::search`] find its exact optimum.

use crate::error::{Error, Result};
use crate::kernel::{self, Op};
use crate::network::Network;
use crate::plan::memory::{Dispatch, MemoryPlan, Residency};
use serde::{Deserialize, Serialize};

/// What a calibration was made for; a cached calibration is used only for the same key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalibrationKey {
    /// The adapter's name.
    pub adapter: String,
    /// The driver's name and details, space-separated.
    pub driver: String,
    /// The wgpu backend, lowercase (e.g. `vulkan`).
    pub backend: String,
    /// The network's name (built-in name or cfg path).
    pub model: String,
    /// Network input [C, H, W].
    pub input: [usize; 3],
    /// Hash of the network's layers and shapes (a changed .cfg under the same name is a new model).
    pub network_hash: String,
    /// The mafat version whose kernels were timed.
    pub mafat: String,
    /// The kernels that could be chosen and how (`tuned`, `default`, `pinned:NAME`), with the
    /// shader capabilities they were compiled for: a calibration holds only for the same set.
    pub kernels: String,
    /// How maps and weights were stored when timed (`f32` in files from before precisions).
    #[serde(default)]
    pub precision: crate::precision::Precision,
}

/// One measured point: a dispatch of `invocations` working invocations took `ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostPoint {
    /// Working invocations of the dispatch.
    pub invocations: f64,
    /// Its time, in milliseconds.
    pub ms: f64,
}

/// Measured dispatch times of one layer, sorted by invocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCost {
    /// The layer's index in the network.
    pub layer: usize,
    /// The layer's type, for people reading the file.
    pub kind: String,
    /// The kernel the layer runs on (`cpu` for a detection head): the one these points measure.
    pub kernel: String,
    /// The measured points, sorted by invocations (empty for a layer that dispatches nothing).
    pub points: Vec<CostPoint>,
    /// The untiled time of every kernel that can run the layer, as measured when choosing (empty
    /// when there was no choice to make).
    pub candidates: Vec<KernelTime>,
}

/// One kernel's untiled time on one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelTime {
    /// The kernel.
    pub kernel: String,
    /// Its median untiled time on the layer, in ms.
    pub ms: f64,
}

/// A calibrated latency model for one network on one adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostModel {
    /// What the model was calibrated for.
    pub key: CalibrationKey,
    /// How the calibration runs were timed (`gpu-timestamps` or `wall-clock`).
    pub timing: String,
    /// One entry per layer of the network, in order.
    pub layers: Vec<LayerCost>,
    /// Milliseconds between the end of one group's compute pass and the start of the next.
    pub pass_gap_ms: f64,
    /// Per-group residency: fixed cost of one weight upload, in ms.
    pub upload_ms: f64,
    /// Per-group residency: cost per MiB uploaded, in ms.
    pub upload_ms_per_mib: f64,
}

impl LayerCost {
    /// Predicted time of one dispatch of `invocations` working invocations.
    pub fn dispatch_ms(&self, invocations: f64) -> f64 {
        let p = &self.points;
        match p.len() {
            0 => 0.0,
            1 => {
                // One size measured (an untileable layer): time in proportion, through the origin.
                if p[0].invocations > 0.0 {
                    p[0].ms * invocations / p[0].invocations
                } else {
                    p[0].ms
                }
            }
            _ => {
                let k = p
                    .partition_point(|q| q.invocations < invocations)
                    .clamp(1, p.len() - 1);
                let (a, b) = (p[k - 1], p[k]);
                let t = if b.invocations > a.invocations {
                    a.ms + (b.ms - a.ms) * (invocations - a.invocations)
                        / (b.invocations - a.invocations)
                } else {
                    a.ms.max(b.ms)
                };
                t.max(0.0)
            }
        }
    }
}

/// The size of a planned dispatch in the model's measure (its kernel's working invocations).
pub fn dispatch_size(net: &Network, d: &Dispatch) -> f64 {
    d.invocations(net) as f64
}

impl CostModel {
    /// Check that the model has one entry per layer of `net`, with finite, non-negative numbers.
    pub fn validate(&self, net: &Network) -> Result<()> {
        let bad = |m: String| {
            Error::Usage(format!(
                "calibration: {m}; recalibrate (delete the cached file or drop --calibration)"
            ))
        };
        let hash = network_hash(net);
        if self.key.network_hash != hash {
            return Err(bad(format!(
                "it was made for {} at {}x{} (network {}), not {} at {}x{} (network {hash})",
                self.key.model,
                self.key.input[2],
                self.key.input[1],
                self.key.network_hash,
                net.name,
                net.input.w,
                net.input.h
            )));
        }
        if self.layers.len() != net.layers.len() {
            return Err(bad(format!(
                "it has {} layers but {} has {}",
                self.layers.len(),
                net.name,
                net.layers.len()
            )));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.layer != i {
                return Err(bad(format!("entry {i} is for layer {}", l.layer)));
            }
            if l.points.iter().any(|p| {
                !(p.ms.is_finite()
                    && p.ms >= 0.0
                    && p.invocations.is_finite()
                    && p.invocations >= 0.0)
            }) {
                return Err(bad(format!("layer {i} has a negative or non-finite point")));
            }
            let known = match kernel::by_name(&l.kernel) {
                Some(k) => k.supports(net, i),
                None => l.kernel == "cpu" && kernel::is_cpu_head(&net.layers[i].kind),
            };
            if !known {
                return Err(bad(format!(
                    "layer {i} names kernel `{}`, which cannot run it",
                    crate::units::prefix(&l.kernel)
                )));
            }
            if l.points
                .windows(2)
                .any(|w| w[0].invocations > w[1].invocations)
            {
                return Err(bad(format!(
                    "layer {i}'s points are not sorted by invocations"
                )));
            }
        }
        for (name, v) in [
            ("pass_gap_ms", self.pass_gap_ms),
            ("upload_ms", self.upload_ms),
            ("upload_ms_per_mib", self.upload_ms_per_mib),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(format!("{name} is {v}")));
            }
        }
        Ok(())
    }

    /// How each layer runs: the kernels this model was calibrated with (validated against `net`).
    pub fn ops(&self, net: &Network) -> Result<Vec<Op>> {
        self.validate(net)?;
        Ok(self
            .layers
            .iter()
            .map(|l| kernel::by_name(&l.kernel).map_or(Op::CpuHead, Op::Dispatch))
            .collect())
    }

    /// The model of `net` for other kernels on some layers (`ops`): a layer whose kernel changes
    /// keeps the shape of its measured points, with times scaled by the two kernels' untiled times
    /// (when both were measured) and sizes by their untiled working invocations (kernels count
    /// work in their own units: a Winograd tile, a run of pixels).
    pub fn for_ops(&self, net: &Network, ops: &[Op]) -> CostModel {
        let mut m = self.clone();
        for (i, (l, op)) in m.layers.iter_mut().zip(ops).enumerate() {
            let name = op.name();
            if l.kernel == name {
                continue;
            }
            let time = |k: &str| l.candidates.iter().find(|c| c.kernel == k).map(|c| c.ms);
            if let (Some(from), Some(to)) = (time(&l.kernel), time(name))
                && from > 0.0
            {
                for p in l.points.iter_mut() {
                    p.ms *= to / from;
                }
            }
            let untiled = |k: Option<kernel::KernelRef>| -> f64 {
                k.map_or(0.0, |k| {
                    kernel::Work::untiled(net, i, k)
                        .iter()
                        .map(|w| k.invocations(w) as f64)
                        .sum()
                })
            };
            let (from, to) = (untiled(kernel::by_name(&l.kernel)), untiled(op.kernel()));
            if from > 0.0 && to > 0.0 {
                for p in l.points.iter_mut() {
                    p.invocations *= to / from;
                }
            }
            l.kernel = name.to_string();
        }
        m
    }

    /// Predicted time of one dispatch of layer `layer` with `invocations` working invocations.
    pub fn dispatch_ms(&self, layer: usize, invocations: f64) -> f64 {
        self.layers[layer].dispatch_ms(invocations)
    }

    /// Predicted milliseconds a group starting at layer `start` with `dispatches` dispatches adds before
    /// its pass: nothing for the first group (`start == 0`) or one that dispatches nothing; otherwise
    /// the pass gap and, when it uploads `upload_bytes` (> 0) of weights, the upload.
    pub fn transition_ms(&self, start: usize, dispatches: u64, upload_bytes: u64) -> f64 {
        if start == 0 || dispatches == 0 {
            return 0.0;
        }
        let mut t = self.pass_gap_ms;
        if upload_bytes > 0 {
            t +=
                self.upload_ms + upload_bytes as f64 / (1u64 << 20) as f64 * self.upload_ms_per_mib;
        }
        t
    }

    /// Predicted latency of a plan of `net` (the quantity `mafat run` reports as `latency_ms`).
    pub fn plan_ms(&self, net: &Network, plan: &MemoryPlan) -> f64 {
        plan.groups
            .iter()
            .map(|g| {
                let steps = &plan.steps[g.steps.clone()];
                let work: f64 = steps
                    .iter()
                    .filter(|d| d.stage == 0)
                    .map(|d| self.dispatch_ms(d.layer, dispatch_size(net, d)))
                    .sum();
                let upload = match (plan.residency, g.weights_upload) {
                    (Residency::PerGroup, Some((_, bytes))) => bytes,
                    _ => 0,
                };
                work + self.transition_ms(g.group.start, steps.len() as u64, upload)
            })
            .sum()
    }
}

/// A stable hash of the network's structure (layer kinds and shapes), hex.
pub fn network_hash(net: &Network) -> String {
    let desc = serde_json::to_string(&(
        [net.input.c, net.input.h, net.input.w],
        net.layers
            .iter()
            .map(|l| (&l.kind, [l.output.c, l.output.h, l.output.w]))
            .collect::<Vec<_>>(),
    ))
    .expect("layers serialize");
    format!("{:016x}", fnv1a(&desc))
}

/// FNV-1a, 64 bits: a stable hash for cache keys (not for security).
pub fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
