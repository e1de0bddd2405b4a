//! The wgpu device mafat runs on: adapter choice, limits, memory hints and error capture.

use crate::error::{Error, Result};
use crate::kernel::{MIN_SUBGROUP_LANES, ShaderCaps};
use crate::plan::DeviceLimits;
use std::sync::{Arc, Mutex};

/// Errors wgpu reported outside any error scope, with the thread whose call caused each.
type Uncaptured = Arc<Mutex<Vec<(std::thread::ThreadId, String)>>>;

/// Most uncaptured errors kept (a thread that never checks again cannot grow the list).
const MAX_UNCAPTURED: usize = 64;

/// wgpu's sub-allocation block range. Small blocks keep the allocator's reserved bytes close to the
/// bytes actually allocated (Vulkan's default 64–128 MiB blocks would hide any small budget).
pub const BLOCK_SIZES: std::ops::Range<u64> = (256 << 10)..(1 << 20);

/// A device and queue plus what mafat needs to know about them.
pub struct GpuContext {
    /// The device, requested with every limit the adapter has.
    pub device: wgpu::Device,
    /// The device's queue.
    pub queue: wgpu::Queue,
    /// The adapter's name, backend, device type and driver.
    pub info: wgpu::AdapterInfo,
    /// The adapter's limits (the device has all of them).
    pub limits: wgpu::Limits,
    /// GPU timestamp queries are available (timings come from the GPU, not the wall clock).
    pub timestamps: bool,
    /// Subgroup operations with subgroups of at least [`MIN_SUBGROUP_LANES`] lanes: the conv kernel
    /// shares weight loads across the subgroup. `MAFAT_NO_SUBGROUPS=1` turns this off.
    pub subgroups: bool,
    /// WGSL `f16` with 16-bit storage (`SHADER_F16`): maps and weights may be stored as f16.
    pub f16: bool,
    /// Errors wgpu reported outside any error scope, collected instead of panicking (only on a
    /// device mafat opened itself: a caller's device keeps the caller's handler).
    uncaptured: Uncaptured,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuContext({})", self.adapter_name())
    }
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Subgroup operations the kernels can use: the feature, subgroups of at least
/// [`MIN_SUBGROUP_LANES`] lanes, and `MAFAT_NO_SUBGROUPS` not `1`.
fn subgroups_usable(features: wgpu::Features, info: &wgpu::AdapterInfo) -> bool {
    features.contains(wgpu::Features::SUBGROUP)
        && info.subgroup_min_size >= MIN_SUBGROUP_LANES
        && std::env::var("MAFAT_NO_SUBGROUPS").map_or(true, |v| v != "1")
}

impl GpuContext {
    /// Open a device. The instance follows the environment (`WGPU_BACKEND`, ...); `adapter` (or
    /// `WGPU_ADAPTER_NAME`) picks the first adapter whose name contains it, case-insensitively;
    /// otherwise a discrete GPU is preferred, then integrated, virtual, CPU.
    pub fn new(adapter: Option<&str>) -> Result<Self> {
        Self::open(adapter, true)
    }

    /// Like [`GpuContext::new`]; `allow_subgroups = false` keeps the kernels that need no subgroup
    /// operations even where the adapter has them (tests run both).
    pub fn open(adapter: Option<&str>, allow_subgroups: bool) -> Result<Self> {
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if adapters.is_empty() {
            return Err(Error::NoAdapter(format!(
                "no GPU adapter found (backends searched: {backends:?}); install a Vulkan driver \
                 (on Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1 gives lavapipe) \
                 or check WGPU_BACKEND"
            )));
        }
        let wanted = adapter
            .map(str::to_string)
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok());
        let chosen = match &wanted {
            Some(name) => {
                let needle = name.to_lowercase();
                let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
                let i = names
                    .iter()
                    .position(|n| n.to_lowercase().contains(&needle))
                    .ok_or_else(|| {
                        Error::NoAdapter(format!(
                            "no adapter matches `{}`; available: {}",
                            crate::units::prefix(name),
                            names.join(", ")
                        ))
                    })?;
                adapters.swap_remove(i)
            }
            None => {
                adapters.sort_by_key(|a| type_rank(a.get_info().device_type));
                adapters.swap_remove(0)
            }
        };
        let info = chosen.get_info();
        let limits = chosen.limits();
        let timestamps = chosen.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let subgroups = allow_subgroups && subgroups_usable(chosen.features(), &info);
        let f16 = chosen.features().contains(wgpu::Features::SHADER_F16);
        let mut required_features = wgpu::Features::empty();
        if f16 {
            required_features |= wgpu::Features::SHADER_F16;
        }
        if timestamps {
            required_features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        if subgroups {
            required_features |= wgpu::Features::SUBGROUP;
        }
        let (device, queue) = pollster::block_on(chosen.request_device(&wgpu::DeviceDescriptor {
            label: Some("mafat"),
            required_features,
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Manual {
                suballocated_device_memory_block_size: BLOCK_SIZES,
            },
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu {
            during: format!("opening {}", info.name),
            message: e.to_string(),
        })?;
        let uncaptured: Uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        // wgpu reports an error on the thread whose call caused it: each thread (two sessions'
        // runs, two tests) sees only its own.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("wgpu: {e}");
            if let Ok(mut v) = sink.lock() {
                if v.len() >= MAX_UNCAPTURED {
                    v.remove(0);
                }
                v.push((std::thread::current().id(), e.to_string()));
            }
        }));
        log::info!(
            "adapter: {} ({}, {:?}, driver {} {}), timestamps: {timestamps}, subgroups: {subgroups} (sizes {}..={})",
            info.name,
            info.backend,
            info.device_type,
            info.driver,
            info.driver_info,
            info.subgroup_min_size,
            info.subgroup_max_size
        );
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            timestamps,
            subgroups,
            f16,
            uncaptured,
        })
    }

    /// Use a device the caller opened (an app that renders with wgpu shares its device with mafat).
    /// The adapter's info, limits and features are read from the device; mafat uses timestamps and
    /// subgroups only where the device was created with them (`TIMESTAMP_QUERY`, `SUBGROUP`), and
    /// installs no uncaptured-error handler of its own: its calls run inside error scopes.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, allow_subgroups: bool) -> Self {
        let info = device.adapter_info();
        let limits = device.limits();
        let features = device.features();
        GpuContext {
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            subgroups: allow_subgroups && subgroups_usable(features, &info),
            f16: features.contains(wgpu::Features::SHADER_F16),
            device,
            queue,
            info,
            limits,
            uncaptured: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Fail, in one line, when maps and weights cannot be stored at `precision` on this device.
    pub fn check_precision(&self, precision: crate::precision::Precision) -> Result<()> {
        if precision == crate::precision::Precision::F16 && !self.f16 {
            return Err(Error::Unsupported(format!(
                "--precision f16 needs shader-f16 (WGSL f16 with 16-bit storage), which {} lacks; use --precision f32",
                self.info.name
            )));
        }
        Ok(())
    }

    /// The limits the planner respects, read from the device.
    pub fn device_limits(&self) -> DeviceLimits {
        let l = &self.limits;
        DeviceLimits {
            max_buffer_size: l.max_buffer_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            min_uniform_buffer_offset_alignment: l.min_uniform_buffer_offset_alignment as u64,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment as u64,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            timestamps: self.timestamps,
        }
    }

    /// What the kernels' WGSL may use on this device.
    pub fn shader_caps(&self) -> ShaderCaps {
        ShaderCaps {
            subgroups: self.subgroups,
            fast_workgroup_memory: self.info.device_type != wgpu::DeviceType::Cpu,
        }
    }

    /// "name (backend)" for reports.
    pub fn adapter_name(&self) -> String {
        format!("{} ({})", self.info.name, self.info.backend)
    }

    /// Run `f` inside validation and out-of-memory error scopes; a wgpu error becomes `Error::Gpu`.
    pub fn scoped<T>(&self, during: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::Gpu {
                during: during.to_string(),
                message: e.to_string(),
            });
        }
        self.check(during)?;
        Ok(out)
    }

    /// [`GpuContext::scoped`] for work that can fail on its own: a wgpu error comes first.
    pub fn scoped_result<T>(&self, during: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.scoped(during, f)?
    }

    /// Fail with the first error wgpu reported outside a scope, on this thread, since the last
    /// check (errors caused by other threads are left for them).
    pub fn check(&self, during: &str) -> Result<()> {
        let mut v = self.uncaptured.lock().map_err(|_| Error::Gpu {
            during: during.to_string(),
            message: "error log poisoned".into(),
        })?;
        let me = std::thread::current().id();
        let first = v.iter().find(|(t, _)| *t == me).map(|(_, e)| e.clone());
        v.retain(|(t, _)| *t != me);
        match first {
            Some(message) => Err(Error::Gpu {
                during: during.to_string(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Block until the queue is idle.
    pub fn wait(&self, during: &str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu {
                during: during.to_string(),
                message: e.to_string(),
            })?;
        self.check(during)
    }

    /// wgpu's allocator report: (allocated, reserved) bytes, when the backend gives one.
    pub fn allocator_bytes(&self) -> Option<(u64, u64)> {
        self.device
            .generate_allocator_report()
            .map(|r| (r.total_allocated_bytes, r.total_reserved_bytes))
    }
}
