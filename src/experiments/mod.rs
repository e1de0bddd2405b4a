//! Experiments on top of the engine and the tuning: the search's regret against a measured
//! reference grid ([`regret`]), the latency-against-memory sweep against the baselines ([`sweep`]),
//! and their reports ([`report`]: CSV, and with the `plot` feature an SVG plot).

#[cfg(feature = "plot")]
pub mod plot;
pub mod regret;
pub mod report;
pub mod sweep;
