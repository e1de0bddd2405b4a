//! The uniform parameter block every kernel reads (`Params` in `shaders/common.wgsl`).

use crate::network::Activation;

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
        Activation::Swish => 5,
        Activation::HardSigmoid => 6,
        Activation::HardSwish => 7,
        Activation::LeakyRelu { .. } => 8,
        Activation::Clip { .. } => 9,
        Activation::HardSigmoidOf { .. } => 10,
    }
}

/// The activation's parameters as the `ACT_A`, `ACT_B` overrides' f32 bits (0 where it has none).
pub fn act_params(a: Activation) -> [u32; 2] {
    match a {
        Activation::LeakyRelu { alpha } => [alpha.0, 0],
        Activation::Clip { lo, hi } => [lo.0, hi.0],
        Activation::HardSigmoidOf { alpha, beta } => [alpha.0, beta.0],
        _ => [0, 0],
    }
}
