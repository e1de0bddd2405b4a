//! GPU side (wgpu). For now: adapter discovery and the limits that matter to mafat.

pub mod info;
