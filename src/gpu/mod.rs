//! GPU side (wgpu): the device context, compiled pipelines, the budget-accounted buffer pool, byte
//! transfers and the executor. Applications use it through [`crate::Session`].

pub mod context;
pub mod executor;
pub mod info;
pub mod pipelines;
pub mod pool;
pub(crate) mod transfer;

pub use context::GpuContext;
pub use executor::{Executor, RunOutput, Timing};
pub use pipelines::Pipelines;
pub use pool::{BufferPool, PoolStats};
