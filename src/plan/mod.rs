//! Planning an execution without touching the GPU: which buffers it needs and how big they are.

pub mod geometry;
pub mod memory;

pub use memory::{DeviceLimits, MemoryPlan, Mode, plan_untiled};
