//! Adapter discovery for `mafat info`.

use crate::error::{Error, Result};
use serde::Serialize;

/// The limits that decide which buffers, bindings and dispatches mafat may use.
#[derive(Debug, Clone, Serialize)]
pub struct LimitsReport {
    /// Largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Largest storage-buffer binding, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Most workgroups along any one dimension of a dispatch.
    pub max_compute_workgroups_per_dimension: u32,
    /// Most invocations in one workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroup shared memory, in bytes.
    pub max_compute_workgroup_storage_size: u32,
}

/// One adapter as `mafat info` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterReport {
    /// The adapter's name, as the driver reports it.
    pub name: String,
    /// The wgpu backend: `vulkan`, `metal`, `dx12`, `gl`, ...
    pub backend: String,
    /// wgpu's device type: `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// The driver's name.
    pub driver: String,
    /// The driver's version or other details.
    pub driver_info: String,
    /// GPU timestamp queries (mafat times layers with them when present).
    pub timestamp_query: bool,
    /// 16-bit floats in shaders (`shader-f16`).
    pub shader_f16: bool,
    /// Subgroup operations and the subgroup sizes (mafat's conv kernel shares weight loads with them).
    pub subgroups: bool,
    /// Smallest and largest subgroup size, in lanes.
    pub subgroup_sizes: [u32; 2],
    /// The limits that bound mafat's buffers, bindings and dispatches.
    pub limits: LimitsReport,
}

/// A wgpu instance configured from the environment (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, ...).
pub fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter the environment allows, or an error saying there is none and what to do about it.
pub fn list_adapters() -> Result<Vec<AdapterReport>> {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let backends = desc.backends;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    if adapters.is_empty() {
        return Err(Error::NoAdapter(format!(
            "no GPU adapter found (backends searched: {backends:?}); install a Vulkan driver \
             (on Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1 gives lavapipe) \
             or check WGPU_BACKEND"
        )));
    }
    Ok(adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            let l = a.limits();
            AdapterReport {
                name: i.name,
                backend: i.backend.to_string(),
                device_type: format!("{:?}", i.device_type),
                driver: i.driver,
                driver_info: i.driver_info,
                timestamp_query: a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
                shader_f16: a.features().contains(wgpu::Features::SHADER_F16),
                subgroups: a.features().contains(wgpu::Features::SUBGROUP),
                subgroup_sizes: [i.subgroup_min_size, i.subgroup_max_size],
                limits: LimitsReport {
                    max_buffer_size: l.max_buffer_size,
                    max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                    max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
                    max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
                    max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
                },
            }
        })
        .collect())
}
