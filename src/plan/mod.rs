//! Planning an execution without touching the GPU: tile geometry, the memory predictor (the planner
//! and its passes), the latency cost model and the search. Depends on [`crate::kernel`],
//! [`crate::network`] and [`crate::model`], never on [`crate::gpu`]: device limits come in as a
//! plain [`DeviceLimits`].

pub(crate) mod arena;
pub(crate) mod buffers;
pub mod config;
pub mod cost;
pub mod file;
pub mod geometry;
pub(crate) mod lifetimes;
pub mod limits;
pub mod lower;
pub mod memory;
pub mod planner;
pub mod search;

pub use buffers::STAGING_CHUNK;
pub use config::{Config, Group};
pub use cost::CostModel;
pub use limits::DeviceLimits;
pub use memory::{
    BufferKind, Dispatch, ItemKind, MemoryBreakdown, MemoryPlan, Mode, Operand, Residency,
};
pub use planner::Planner;
pub use search::{Choice, fastest};
