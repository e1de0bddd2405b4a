//! The adapter limits a plan must respect, as a plain struct: the GPU side fills it from the
//! device ([`crate::gpu::GpuContext::device_limits`]), tests and tools can write one by hand.

use serde::Serialize;

/// The adapter limits the planner respects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceLimits {
    /// Largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Largest storage-buffer binding, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Alignment of uniform-binding offsets, in bytes (the parameter blocks' stride is a multiple).
    pub min_uniform_buffer_offset_alignment: u64,
    /// Alignment of storage-binding offsets, in bytes (arena items are rounded up to it).
    pub min_storage_buffer_offset_alignment: u64,
    /// Most workgroups along any one dimension of a dispatch.
    pub max_compute_workgroups_per_dimension: u32,
    /// The device records GPU timestamps (two queries per group that dispatches kernels, resolved
    /// into buffers).
    pub timestamps: bool,
}

impl DeviceLimits {
    /// Byte alignment of arena items: the storage-binding offset alignment, and at least 16 so
    /// that kernels may read and write items as `vec4` arrays.
    pub fn arena_alignment(&self) -> u64 {
        self.min_storage_buffer_offset_alignment.max(16)
    }

    /// Bytes between two parameter blocks in the uniform buffer.
    pub fn params_stride(&self) -> u64 {
        crate::kernel::PARAMS_BYTES
            .next_multiple_of(self.min_uniform_buffer_offset_alignment.max(4))
    }
}
