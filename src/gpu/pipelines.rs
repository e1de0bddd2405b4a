//! Compute pipelines, compiled from a kernel's WGSL the first time a plan needs that kernel and
//! kept for the device's lifetime.

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::kernel::KernelRef;
use std::collections::HashMap;
use std::sync::Mutex;

/// The compiled pipelines of one device, by kernel name and stage.
#[derive(Default)]
pub struct Pipelines {
    compiled: Mutex<HashMap<(&'static str, usize), wgpu::ComputePipeline>>,
}

impl Pipelines {
    /// No pipeline compiled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pipeline of stage `stage` of kernel `k` on `ctx`'s device, compiled now if it is the
    /// first request (a shader compilation error becomes `Error::Gpu`).
    pub fn get(
        &self,
        ctx: &GpuContext,
        k: KernelRef,
        stage: usize,
    ) -> Result<wgpu::ComputePipeline> {
        if let Some(p) = self.lock().get(&(k.name(), stage)) {
            return Ok(p.clone());
        }
        let pipe = ctx.scoped(
            &format!("compiling kernel {} stage {stage}", k.name()),
            || {
                let module = ctx
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(k.name()),
                        source: wgpu::ShaderSource::Wgsl(k.source(ctx.shader_caps()).into()),
                    });
                ctx.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(k.name()),
                        layout: None,
                        module: &module,
                        entry_point: Some(k.entry_point(stage)),
                        compilation_options: Default::default(),
                        cache: None,
                    })
            },
        )?;
        self.lock().insert((k.name(), stage), pipe.clone());
        Ok(pipe)
    }

    /// Compile every kernel of the registry now (so that later plans never wait for a compiler).
    pub fn compile_all(&self, ctx: &GpuContext) -> Result<()> {
        for &k in crate::kernel::REGISTRY {
            for stage in 0..k.stages() {
                self.get(ctx, KernelRef(k), stage)?;
            }
        }
        Ok(())
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(&'static str, usize), wgpu::ComputePipeline>> {
        // A panic while holding the lock cannot leave the map half-written: recover it.
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }
}
