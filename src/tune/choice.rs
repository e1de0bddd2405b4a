//! Choosing each layer's kernel by measurement: every kernel that can run a layer is timed on it,
//! untiled, in turns with the others (assignment `v` runs each layer on its `v`-th candidate), and
//! the fastest is kept — per adapter, network and input size, cached beside the calibrations (one
//! small JSON file), so that a plain run, a plan and a calibration of the same network share it.
//! The choice is per layer, never per tile: tiled and untiled runs do the same arithmetic.

use crate::error::{Error, Result};
use crate::kernel::{self, KernelRef, Op, ShaderCaps};
use crate::network::Network;
use crate::plan::cost::{CalibrationKey, KernelTime};
use crate::plan::{Config, Mode, Residency};
use crate::session::Session;
use crate::tune::cache::{MAX_CALIBRATION_BYTES, cached_file};
use crate::tune::calibrate::calibration_key;
use crate::tune::measure::{Measured, Measurer, Trial, in_turns};
use crate::tune::{KernelPolicy, Progress, Steps};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Rounds of untiled runs timed when choosing (median).
pub const CHOICE_RUNS: usize = 3;

/// The measured choice of kernels for one network on one adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelChoice {
    /// What it holds for (adapter, network, input, the registry's kernels).
    pub key: CalibrationKey,
    /// `gpu-timestamps` or `wall-clock` (`none` where the network could not run untiled to be
    /// timed: the default kernels).
    pub timing: String,
    /// Per layer, the kernel chosen (`cpu` for a detection head) and every candidate's untiled
    /// time (empty where the layer had one candidate).
    pub layers: Vec<ChosenKernel>,
}

/// One layer's choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChosenKernel {
    /// Layer index.
    pub layer: usize,
    /// The layer's type, for people reading the file.
    pub kind: String,
    /// The kernel chosen.
    pub kernel: String,
    /// Every candidate's median untiled time, in ms.
    pub candidates: Vec<KernelTime>,
}

impl KernelChoice {
    /// The kernels chosen, validated against `net` (a kernel that cannot run its layer, or a choice
    /// for another number of layers, is refused).
    pub fn ops(&self, net: &Network) -> Result<Vec<Op>> {
        if self.layers.len() != net.layers.len() {
            return Err(Error::Usage(format!(
                "a kernel choice for {} layers does not fit {} ({} layers)",
                self.layers.len(),
                net.name,
                net.layers.len()
            )));
        }
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| match kernel::by_name(&l.kernel) {
                Some(k) if k.supports(net, i) => Ok(Op::Dispatch(k)),
                None if l.kernel == "cpu" && kernel::is_cpu_head(&net.layers[i].kind) => {
                    Ok(Op::CpuHead)
                }
                _ => Err(Error::Usage(format!(
                    "the kernel choice names `{}` for layer {i}, which cannot run it",
                    crate::units::prefix(&l.kernel)
                ))),
            })
            .collect()
    }

    /// Per layer, the candidates' times.
    pub fn times(&self) -> Vec<Vec<KernelTime>> {
        self.layers.iter().map(|l| l.candidates.clone()).collect()
    }
}

/// The kernel assignments timed: assignment `v` runs each layer on its `v`-th candidate (its last
/// when it has fewer) — the kernels that support the layer, suit an adapter with `caps` and whose
/// weights fit one binding of the adapter (`max_binding` bytes) when stored at `precision`. One
/// assignment when no layer has a choice.
pub fn assignments(
    net: &Network,
    max_binding: u64,
    caps: ShaderCaps,
    precision: crate::precision::Precision,
) -> Result<Vec<Vec<Op>>> {
    let cands: Vec<Vec<KernelRef>> = (0..net.layers.len())
        .map(|i| {
            let mut c = kernel::candidates(net, i);
            c.retain(|k| k.suits(caps) && k.stored_weight_bytes(net, i, precision) <= max_binding);
            c
        })
        .collect();
    let most = cands.iter().map(Vec::len).max().unwrap_or(0);
    if most <= 1 {
        return Ok(vec![kernel::select_all(net)?]);
    }
    Ok((0..most)
        .map(|v| {
            cands
                .iter()
                .map(|c| match c.len() {
                    0 => Op::CpuHead,
                    n => Op::Dispatch(c[v.min(n - 1)]),
                })
                .collect()
        })
        .collect())
}

/// Measure the choice now: every assignment prepared, run untiled [`CHOICE_RUNS`] times in turns;
/// per layer the fastest kernel of the medians.
pub fn measure_choice(
    session: &Session,
    net: &Network,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<KernelChoice> {
    let all = assignments(
        net,
        session.limits().max_storage_buffer_binding_size,
        session.context().shader_caps(),
        session.precision(),
    )?;
    let mut steps = Steps::new(all.len() * CHOICE_RUNS + 1, progress);
    steps.step("choosing kernels: preparing");
    let m = Measurer::new(session, net)?;
    let mut trials = Vec::with_capacity(all.len());
    for ops in &all {
        match m.prepare_ops(
            ops,
            &Config::untiled(),
            Mode::Layerwise,
            Residency::Resident,
        ) {
            Ok(t) => trials.push(t),
            // The network cannot run untiled on this adapter (a map past its binding limit):
            // nothing to time the kernels on; the defaults.
            Err(e @ Error::DeviceLimit(_)) => {
                log::warn!("kernels not chosen by measurement ({e}): the default kernels");
                steps.finish();
                return Ok(default_choice(session, net, &all[0]));
            }
            Err(e) => return Err(e),
        }
    }
    in_turns(&mut trials, CHOICE_RUNS, &mut |t, round| {
        steps.step(&format!(
            "choosing kernels, round {}/{CHOICE_RUNS}: {}",
            round + 1,
            t.label
        ));
    })?;
    steps.finish();
    let measured: Vec<Measured> = trials.into_iter().map(Trial::finish).collect();
    let layers = (0..net.layers.len())
        .map(|i| {
            let mut seen: Vec<KernelTime> = Vec::new();
            for (a, meas) in all.iter().zip(&measured) {
                let (Op::Dispatch(k), Some(g)) =
                    (a[i], meas.groups.iter().find(|g| g.0.start == i))
                else {
                    continue;
                };
                if !seen.iter().any(|t| t.kernel == k.name()) {
                    seen.push(KernelTime {
                        kernel: k.name().into(),
                        ms: g.1,
                    });
                }
            }
            let chosen = match seen.iter().min_by(|a, b| a.ms.total_cmp(&b.ms)) {
                Some(best) => best.kernel.clone(),
                None => all[0][i].name().to_string(),
            };
            if seen.len() <= 1 {
                seen.clear();
            }
            ChosenKernel {
                layer: i,
                kind: net.layers[i].kind.name().into(),
                kernel: chosen,
                candidates: seen,
            }
        })
        .collect();
    let ctx = session.context();
    Ok(KernelChoice {
        key: calibration_key(ctx, net, KernelPolicy::Tuned, session.precision()),
        timing: crate::tune::calibrate::timing_label(ctx).into(),
        layers,
    })
}

/// The choice that measures nothing: `ops` (each layer's first candidate).
fn default_choice(session: &Session, net: &Network, ops: &[Op]) -> KernelChoice {
    let ctx = session.context();
    KernelChoice {
        key: calibration_key(ctx, net, KernelPolicy::Tuned, session.precision()),
        timing: "none".into(),
        layers: ops
            .iter()
            .enumerate()
            .map(|(i, op)| ChosenKernel {
                layer: i,
                kind: net.layers[i].kind.name().into(),
                kernel: op.name().into(),
                candidates: Vec::new(),
            })
            .collect(),
    }
}

fn read_choice(path: &Path) -> Result<KernelChoice> {
    let text = crate::model::read_text_capped(path, MAX_CALIBRATION_BYTES, "a kernel choice")?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{}: not a mafat kernel choice ({e}); delete it",
            path.display()
        ))
    })
}

/// The fastest kernel per layer of `net` on `session`'s adapter: from the cache, else measured now
/// (reported through `progress`) and cached.
pub fn tuned_kernels(
    session: &Session,
    net: &Network,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<KernelChoice> {
    let key = calibration_key(
        session.context(),
        net,
        KernelPolicy::Tuned,
        session.precision(),
    );
    let path = cached_file("kernels", &key);
    if let Some(path) = &path
        && path.exists()
    {
        match read_choice(path) {
            Ok(c) if c.key == key && c.ops(net).is_ok() => return Ok(c),
            _ => log::warn!(
                "ignoring the stale or unreadable kernel choice {}",
                path.display()
            ),
        }
    }
    let choice = measure_choice(session, net, progress)?;
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(&choice).expect("choices serialize");
        if let Err(e) = crate::tune::cache::write_atomically(&path, &text) {
            log::warn!("could not cache the kernel choice: {e}");
        }
    }
    Ok(choice)
}
