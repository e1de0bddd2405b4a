//! Compute pipelines, compiled from a kernel's WGSL the first time a plan needs that kernel and
//! kept for the device's lifetime.

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::kernel::{Constants, KernelRef, Precision};
use std::collections::HashMap;
use std::sync::Mutex;

/// A pipeline: kernel name, entry point, constants, storage precision.
type Key = (&'static str, usize, Constants, Precision);

/// The compiled pipelines of one device, by kernel name, entry point and overridden constants.
#[derive(Default)]
pub struct Pipelines {
    compiled: Mutex<HashMap<Key, wgpu::ComputePipeline>>,
}

impl Pipelines {
    /// No pipeline compiled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pipeline of entry point `entry` of kernel `k` with `constants`, maps and weights stored
    /// at `precision`, on `ctx`'s device, compiled now if it is the first request (a shader
    /// compilation error becomes `Error::Gpu`).
    pub fn get(
        &self,
        ctx: &GpuContext,
        k: KernelRef,
        entry: usize,
        constants: &Constants,
        precision: Precision,
    ) -> Result<wgpu::ComputePipeline> {
        let key = (k.name(), entry, constants.clone(), precision);
        if let Some(p) = self.lock().get(&key) {
            return Ok(p.clone());
        }
        let values: Vec<(&str, f64)> = constants.iter().map(|&(n, v)| (n, v as f64)).collect();
        let pipe = ctx.scoped(
            &format!(
                "compiling kernel {} ({})",
                k.name(),
                k.entry_points()[entry]
            ),
            || {
                let module = ctx
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(k.name()),
                        source: wgpu::ShaderSource::Wgsl(
                            k.source(ctx.shader_caps(), precision).into(),
                        ),
                    });
                ctx.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(k.name()),
                        layout: None,
                        module: &module,
                        entry_point: Some(k.entry_points()[entry]),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants: &values,
                            ..Default::default()
                        },
                        cache: None,
                    })
            },
        )?;
        self.lock().insert(key, pipe.clone());
        Ok(pipe)
    }

    /// Compile every kernel of the registry now (so that later plans never wait for a compiler).
    pub fn compile_all(&self, ctx: &GpuContext) -> Result<()> {
        for &k in crate::kernel::REGISTRY {
            for entry in 0..k.entry_points().len() {
                self.get(ctx, KernelRef(k), entry, &Constants::new(), Precision::F32)?;
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, wgpu::ComputePipeline>> {
        // A panic while holding the lock cannot leave the map half-written: recover it.
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }
}
