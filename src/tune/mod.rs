//! Tuning, apart from the engine: measuring configurations in turns ([`measure`]), choosing each
//! layer's kernel on the adapter ([`choice`]), calibrating the latency model on it
//! ([`mod@calibrate`]) and caching both ([`cache`]). One [`Progress`] type reports every long job
//! (kernel choice, calibration, the regret harness, the sweep).

pub mod cache;
pub mod calibrate;
pub mod choice;
pub mod measure;

pub use cache::{CalibrationSource, load_or_calibrate};
pub use calibrate::{adapter_id, calibrate, calibration_key};
pub use choice::{KernelChoice, tuned_kernels};
pub use measure::{Measured, Measurer, Trial, in_turns, median};

use crate::error::Result;
use crate::kernel::{self, KernelRef, Op};
use crate::network::Network;

/// How each layer's kernel is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelPolicy {
    /// The fastest of the layer's candidates, measured on the adapter (once, then cached:
    /// [`choice`]).
    #[default]
    Tuned,
    /// The first kernel of [`kernel::REGISTRY`] that supports the layer.
    Default,
    /// This kernel on every layer it supports, the default elsewhere (`--kernel NAME`).
    Pinned(KernelRef),
}

impl KernelPolicy {
    /// `tuned`, `default` or `pinned:NAME`.
    pub fn describe(&self) -> String {
        match self {
            KernelPolicy::Tuned => "tuned".into(),
            KernelPolicy::Default => "default".into(),
            KernelPolicy::Pinned(k) => format!("pinned:{}", k.name()),
        }
    }

    /// `tuned`, `default`, or a kernel's name (pinned).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "tuned" => KernelPolicy::Tuned,
            "default" => KernelPolicy::Default,
            name => KernelPolicy::Pinned(kernel::named(name).map_err(|e| {
                crate::error::Error::Usage(format!("{e}; or `tuned`, or `default`"))
            })?),
        })
    }

    /// The ops of `net` this policy gives without measuring (`Tuned`: the defaults, before a
    /// choice is measured).
    pub fn ops(&self, net: &Network) -> Result<Vec<Op>> {
        match self {
            KernelPolicy::Pinned(k) => kernel::pinned(net, *k),
            _ => kernel::select_all(net),
        }
    }

    /// The ops of `net` on `session`'s adapter: `Tuned` reads the cached choice of the fastest
    /// kernels, or measures it now (reported through `progress`).
    pub fn resolve(
        &self,
        session: &crate::Session,
        net: &Network,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Vec<Op>> {
        match self {
            KernelPolicy::Tuned => tuned_kernels(session, net, progress)?.ops(net),
            _ => self.ops(net),
        }
    }
}

/// Progress of a long job: `done` of `total` steps, and what runs now.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Steps finished.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// What runs now (`done` = `total`: what finished).
    pub what: &'a str,
}

/// Counts the steps of a job toward its total and reports each one.
pub struct Steps<'p> {
    done: usize,
    total: usize,
    report: &'p mut dyn FnMut(Progress<'_>),
}

impl<'p> Steps<'p> {
    /// A job of `total` steps reported to `report`.
    pub fn new(total: usize, report: &'p mut dyn FnMut(Progress<'_>)) -> Self {
        Steps {
            done: 0,
            total: total.max(1),
            report,
        }
    }

    /// Report that `what` starts now (then count it as done).
    pub fn step(&mut self, what: &str) {
        (self.report)(Progress {
            done: self.done.min(self.total - 1),
            total: self.total,
            what,
        });
        self.done += 1;
    }

    /// Report that `what` runs with `done` steps finished (for jobs reported in strides).
    pub fn step_to(&mut self, done: usize, what: &str) {
        self.done = done.min(self.total);
        (self.report)(Progress {
            done: self.done.min(self.total - 1),
            total: self.total,
            what,
        });
    }

    /// Report the end of the job.
    pub fn finish(&mut self) {
        self.done = self.total;
        (self.report)(Progress {
            done: self.total,
            total: self.total,
            what: "done",
        });
    }
}
