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
    /// Darknet max pool over a region: one output element per invocation.
    MaxPool,
    /// Nearest-neighbour upsampling over a region: one output element per invocation.
    Upsample,
    /// `[reorg]` on the whole map: one input element per invocation.
    Reorg,
    /// `[shortcut]` on the whole map: one output element per invocation.
    Shortcut,
    /// Global average pool: one channel per invocation.
    AvgPool,
    /// `[softmax]`: one slice per invocation.
    Softmax,
    /// Copy a map into a channel offset of another (route).
    Copy,
}

impl Kernel {
    /// Every kernel kind, in the order [`Pipelines::new`] compiles them.
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

    /// Short name (`conv2d`, `maxpool`, ...): the label of the kernel's shader module and pipeline,
    /// and how messages name it.
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
    /// Channels of the layer's (primary) input map.
    pub in_c: u32,
    /// Rows of the input region the input binding holds.
    pub in_h: u32,
    /// Columns of the input region the input binding holds.
    pub in_w: u32,
    /// Input channels per conv group (`in_c` for other layers).
    pub cin_g: u32,
    /// Input-map row of the input binding's first row.
    pub in_y0: i32,
    /// Input-map column of the input binding's first column.
    pub in_x0: i32,
    /// Rows of the whole input map (zero padding, or never-winning pool cells, lie outside
    /// `0..map_h`).
    pub map_h: i32,
    /// Columns of the whole input map (padding lies outside `0..map_w`).
    pub map_w: i32,
    /// Channels of the layer's output map.
    pub out_c: u32,
    /// Rows of the output region the output binding holds.
    pub out_h: u32,
    /// Columns of the output region the output binding holds.
    pub out_w: u32,
    /// First channel written in the output binding (0 in every plan mafat makes).
    pub out_c_off: u32,
    /// Output-map row of the output binding's first row.
    pub out_y0: i32,
    /// Output-map column of the output binding's first column.
    pub out_x0: i32,
    /// Output-map row of the first output row the dispatch computes.
    pub ry0: i32,
    /// Output-map column of the first output column the dispatch computes.
    pub rx0: i32,
    /// Output rows the dispatch computes.
    pub rh: u32,
    /// Output columns the dispatch computes.
    pub rw: u32,
    /// Conv filters (output channels).
    pub filters: u32,
    /// Conv filters per group.
    pub cout_g: u32,
    /// Window side (conv kernel or pool window).
    pub k: u32,
    /// Conv or pool stride, upsampling factor or reorg block side.
    pub stride: u32,
    /// Padding before the first row and column: the conv's padding, or a max pool's `padding/2`.
    pub pad: u32,
    /// Activation code ([`act_code`]).
    pub act: u32,
    /// Shortcut: weight of the previous layer; upsample: scale; softmax: temperature (else 1).
    pub alpha: f32,
    /// Shortcut: weight of layer `from` (else 1).
    pub beta: f32,
    /// Kernel-specific: shortcut `[from's c, h, w, stride, sample, 0]`; softmax `[groups, …]`; copy
    /// `[elements, first destination element, …]`.
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

    /// The compiled pipeline of kernel `k`.
    pub fn get(&self, k: Kernel) -> &wgpu::ComputePipeline {
        &self
            .pipes
            .iter()
            .find(|(kk, _)| *kk == k)
            .expect("every kernel is compiled")
            .1
    }
}
