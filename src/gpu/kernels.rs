//! WGSL kernels (from `shaders/`, embedded at build time) and their compute pipelines: one pipeline
//! per kernel kind, shapes passed in a uniform [`Params`] block.

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::network::Activation;

const COMMON: &str = include_str!("../../shaders/common.wgsl");

/// Every kernel kind mafat dispatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Register-tiled conv: `CONV_QUADS`·4 output channels × `CONV_PIXELS` pixels per invocation
    /// (groups == 1 or filters per group a multiple of `CONV_QUADS`·4).
    Conv,
    /// Grouped/depthwise conv: 1 output channel × 4 pixels per invocation.
    ConvGrouped,
    MaxPool,
    Upsample,
    Reorg,
    Shortcut,
    AvgPool,
    Softmax,
    /// Copy a map into a channel offset of another (route).
    Copy,
}

impl Kernel {
    pub const ALL: [Kernel; 9] = [
        Kernel::Conv,
        Kernel::ConvGrouped,
        Kernel::MaxPool,
        Kernel::Upsample,
        Kernel::Reorg,
        Kernel::Shortcut,
        Kernel::AvgPool,
        Kernel::Softmax,
        Kernel::Copy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Conv => "conv2d",
            Kernel::ConvGrouped => "conv2d_grouped",
            Kernel::MaxPool => "maxpool",
            Kernel::Upsample => "upsample",
            Kernel::Reorg => "reorg",
            Kernel::Shortcut => "shortcut",
            Kernel::AvgPool => "avgpool",
            Kernel::Softmax => "softmax",
            Kernel::Copy => "copy",
        }
    }

    /// The kernel's file in `shaders/` (the register-tiled conv is generated instead).
    fn file(self) -> Option<&'static str> {
        Some(match self {
            Kernel::Conv => return None,
            Kernel::ConvGrouped => include_str!("../../shaders/conv2d_grouped.wgsl"),
            Kernel::MaxPool => include_str!("../../shaders/maxpool.wgsl"),
            Kernel::Upsample => include_str!("../../shaders/upsample.wgsl"),
            Kernel::Reorg => include_str!("../../shaders/reorg.wgsl"),
            Kernel::Shortcut => include_str!("../../shaders/shortcut.wgsl"),
            Kernel::AvgPool => include_str!("../../shaders/avgpool.wgsl"),
            Kernel::Softmax => include_str!("../../shaders/softmax.wgsl"),
            Kernel::Copy => include_str!("../../shaders/copy.wgsl"),
        })
    }

    /// Full WGSL source: the shared prelude, then the kernel (the register-tiled conv is generated
    /// unrolled by [`crate::gpu::conv_kernel`]; the others are files in `shaders/`).
    pub fn source(self) -> String {
        self.source_for(false)
    }

    /// The source for a device with (`subgroups`) or without subgroup operations.
    pub fn source_for(self, subgroups: bool) -> String {
        match self.file() {
            Some(body) => format!("{COMMON}\n{body}"),
            // naga 30 takes the subgroup built-ins without `enable subgroups;` (and rejects it).
            None if subgroups => format!("{COMMON}\n{}", crate::gpu::conv_kernel::source(true)),
            None => format!("{COMMON}\n{}", crate::gpu::conv_kernel::source(false)),
        }
    }

    /// Workgroup size declared in the shader.
    pub fn workgroup(self) -> [u32; 3] {
        match self {
            Kernel::AvgPool | Kernel::Softmax | Kernel::Conv | Kernel::Copy => [64, 1, 1],
            _ => [8, 8, 1],
        }
    }

    /// Output pixels per invocation along x.
    pub fn pixels_per_invocation(self) -> u32 {
        match self {
            Kernel::Conv => crate::gpu::conv_kernel::CONV_PIXELS as u32,
            Kernel::ConvGrouped => 4,
            _ => 1,
        }
    }
}

/// The uniform block every kernel reads (`Params` in `shaders/common.wgsl`): 32 four-byte fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub in_c: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub cin_g: u32,
    pub in_y0: i32,
    pub in_x0: i32,
    pub map_h: i32,
    pub map_w: i32,
    pub out_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub out_c_off: u32,
    pub out_y0: i32,
    pub out_x0: i32,
    pub ry0: i32,
    pub rx0: i32,
    pub rh: u32,
    pub rw: u32,
    pub filters: u32,
    pub cout_g: u32,
    pub k: u32,
    pub stride: u32,
    pub pad: u32,
    pub act: u32,
    pub alpha: f32,
    pub beta: f32,
    pub extra: [u32; 6],
}

/// Size of [`Params`] in bytes.
pub const PARAMS_BYTES: u64 = std::mem::size_of::<Params>() as u64;

/// Activation code in the shaders.
pub fn act_code(a: Activation) -> u32 {
    match a {
        Activation::Linear => 0,
        Activation::Leaky => 1,
        Activation::Relu => 2,
        Activation::Logistic => 3,
        Activation::Mish => 4,
    }
}

/// Compiled pipelines, one per kernel kind.
pub struct Pipelines {
    pipes: Vec<(Kernel, wgpu::ComputePipeline)>,
}

impl Pipelines {
    /// Compile every kernel (shader compilation errors become `Error::Gpu`).
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let mut pipes = Vec::new();
        for k in Kernel::ALL {
            let pipe = ctx.scoped(&format!("compiling kernel {}", k.name()), || {
                let module = ctx
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(k.name()),
                        source: wgpu::ShaderSource::Wgsl(k.source_for(ctx.subgroups).into()),
                    });
                ctx.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(k.name()),
                        layout: None,
                        module: &module,
                        entry_point: Some("main"),
                        compilation_options: Default::default(),
                        cache: None,
                    })
            })?;
            pipes.push((k, pipe));
        }
        Ok(Pipelines { pipes })
    }

    pub fn get(&self, k: Kernel) -> &wgpu::ComputePipeline {
        &self
            .pipes
            .iter()
            .find(|(kk, _)| *kk == k)
            .expect("every kernel is compiled")
            .1
    }
}
