//! GPU side (wgpu): device context, WGSL kernels, the budget-accounted buffer pool, the executor.

pub mod calibrate;
pub mod context;
pub mod conv_kernel;
pub mod executor;
pub mod info;
pub mod kernels;
pub mod measure;
pub mod pool;
pub mod regret;
pub mod sweep;

pub use context::GpuContext;
pub use executor::{Executor, RunOutput, Timing};
pub use kernels::Pipelines;
pub use pool::{BufferPool, PoolStats};
