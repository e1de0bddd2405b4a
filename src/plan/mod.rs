//! Planning an execution without touching the GPU: which buffers it needs and how big they are.

pub mod config;
pub mod cost;
pub mod file;
pub mod geometry;
pub mod memory;
pub mod search;

pub use config::{Config, Group};
pub use cost::CostModel;
pub use memory::{
    DeviceLimits, MemoryBreakdown, MemoryPlan, Mode, Residency, plan, plan_untiled, predict,
};
pub use search::{Choice, fastest};
