//! mafat — memory-aware fusing and tiling of convolutional networks on the GPU through wgpu.
//!
//! Layout, from input to execution:
//! - [`model`]: model formats (Darknet `.cfg`/`.weights`, built-in models);
//! - [`network`]: the network IR (layers with inferred shapes);
//! - [`plan`]: what an execution needs (buffers, sizes), computed without a GPU;
//! - [`reference`](mod@reference): the CPU reference executor, the oracle for every GPU path;
//! - [`input`], [`tensor`]: input images/synthetic data and tensors (`.npy` output);
//! - [`gpu`]: the wgpu side: context, kernels, buffer pool, executor;
//! - [`detect`]: detection heads to labelled boxes (decode, NMS, drawing).

#![warn(missing_docs)]

pub mod detect;
pub mod error;
pub mod gpu;
pub mod input;
pub mod model;
pub mod network;
pub mod plan;
pub mod reference;
pub mod report;
mod rng;
pub mod tensor;
pub mod units;

pub use error::{Error, Result};
pub use network::{Layer, LayerKind, Network, Shape};
pub use tensor::Tensor;
