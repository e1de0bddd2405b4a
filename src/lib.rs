//! mafat — memory-aware fusing and tiling of convolutional networks on the GPU through wgpu.
//!
//! Layout, from input to execution:
//! - [`model`]: model formats (Darknet `.cfg`/`.weights`, built-in models);
//! - [`network`]: the network IR (layers with inferred shapes);
//! - [`kernel`]: the kernels, device-free: per operation its WGSL, dispatch geometry, parameters,
//!   bindings and weight layout, and which kernel runs a layer;
//! - [`plan`]: tile geometry, the memory predictor (planner), the cost model and the search —
//!   without a GPU;
//! - [`gpu`]: the wgpu side: context, pipelines, buffer pool, executor;
//! - [`Session`]: the front door — a device, planning for a budget, prepared networks, runs;
//! - [`tune`]: measurement in turns, calibration of the cost model and its cache;
//! - [`experiments`]: the regret harness, the sweep against the baselines, their reports;
//! - [`reference`](mod@reference): the CPU reference executor, the oracle for every GPU path;
//! - [`input`], [`tensor`], [`region`]: inputs, tensors (`.npy`), map regions;
//! - [`detect`]: detection heads to labelled boxes (decode, NMS, drawing).

#![warn(missing_docs)]

pub mod detect;
pub mod error;
pub mod experiments;
pub mod gpu;
pub mod host;
pub mod input;
pub mod kernel;
pub mod model;
pub mod network;
pub mod npy;
pub mod plan;
pub mod precision;
pub mod reference;
pub mod region;
mod rng;
pub mod session;
pub mod tensor;
pub mod tune;
pub mod units;

pub use error::{Error, Result};
pub use network::{Layer, LayerKind, Network, Shape};
pub use precision::Precision;
pub use session::{BudgetOptions, BudgetPlan, Prepared, Session, SessionOptions, Verification};
pub use tensor::Tensor;
