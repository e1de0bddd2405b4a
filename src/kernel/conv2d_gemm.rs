//! `conv2d_gemm`: the convolution as an implicit matrix product shaped for GPUs with fast
//! workgroup memory — M = the region's output pixels, N = filters, K = cin·k·k — in 64×64 output
//! tiles per workgroup of 16×16 invocations, each computing 4 pixels × 4 filters in registers; K is
//! staged through workgroup memory 16 at a time (the input slice gathered on the fly from the map,
//! im2col without the buffer; the weights as vec4 over 4 filters).
//!
//! Every output accumulates bias, then K in order — input channel, kernel row, kernel column, the
//! CPU reference's order — so results agree bit for bit; taps in the zero padding add w·0, which
//! leaves any sum but −0 unchanged (a −0 bias would end +0 where the reference skips the tap).
//! Any kernel size, stride, padding and region; `groups == 1`.
//!
//! On a CPU rasterizer (lavapipe) workgroup memory costs what storage does and barriers switch
//! coroutines (8× slower than `conv2d` there): it is a candidate only on adapters whose workgroup
//! memory is fast ([`Kernel::suits`]); `--kernel conv2d_gemm` runs it anywhere.

use super::conv2d::conv_params;
use super::{
    Binding, Constants, Kernel, Params, ShaderCaps, Slot, Work, activation_constant, bind,
    groups_of,
};
use crate::model::weights::ConvParams;
use crate::network::{LayerKind, Network};

/// Output pixels per workgroup tile.
const TILE_M: usize = 64;
/// Filters per workgroup tile.
const TILE_N: usize = 64;

/// The implicit-GEMM convolution (see the module docs).
pub struct Conv2dGemm;

const BINDINGS: &[Binding] = &[
    bind(0, Slot::Params),
    bind(1, Slot::Input),
    bind(2, Slot::Weights),
    bind(3, Slot::Output),
];

fn k_len(net: &Network, layer: usize) -> usize {
    let l = &net.layers[layer];
    match &l.kind {
        LayerKind::Conv(c) => l.input.c * c.size * c.size,
        _ => 0,
    }
}

impl Kernel for Conv2dGemm {
    fn name(&self) -> &'static str {
        "conv2d_gemm"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(&net.layers[layer].kind, LayerKind::Conv(c) if c.groups == 1)
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/conv2d_gemm.wgsl").into()
    }

    fn workgroup_size(&self, _entry: usize) -> [u32; 3] {
        [16, 16, 1]
    }

    fn suits(&self, caps: ShaderCaps) -> bool {
        caps.fast_workgroup_memory
    }

    fn workgroups(&self, w: &Work<'_>, _stage: usize) -> [u32; 3] {
        let tiles = (w.region.height() * w.region.width()).div_ceil(TILE_M);
        let y = tiles.div_ceil(super::MAX_GROUPS_X).max(1);
        [
            tiles.div_ceil(y) as u32,
            y as u32,
            groups_of(w.net.layers[w.layer].output.c, TILE_N as u32),
        ]
    }

    fn invocations(&self, w: &Work<'_>) -> u64 {
        // Each invocation computes 4 pixels × 4 filters.
        (w.region.height() * w.region.width()).div_ceil(4) as u64
            * w.net.layers[w.layer].output.c.div_ceil(4) as u64
    }

    fn bindings(&self, _entry: usize) -> &'static [Binding] {
        BINDINGS
    }

    fn constants(&self, w: &Work<'_>) -> Constants {
        activation_constant(w)
    }

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        conv_params(w)
    }

    fn weight_bytes(&self, net: &Network, layer: usize) -> u64 {
        let nq = net.layers[layer].output.c.div_ceil(4) as u64;
        16 * nq * (k_len(net, layer) as u64 + 1)
    }

    fn pack_weights(&self, net: &Network, layer: usize, p: &ConvParams) -> Vec<u8> {
        // [K][filter quad] as vec4 over 4 consecutive filters (zero past the last), then the biases.
        let (filters, k) = (net.layers[layer].output.c, k_len(net, layer));
        let nq = filters.div_ceil(4);
        let mut out = vec![0.0f32; 4 * nq * (k + 1)];
        for f in 0..filters {
            for j in 0..k {
                out[4 * (j * nq + f / 4) + f % 4] = p.weights[f * k + j];
            }
            out[4 * (k * nq + f / 4) + f % 4] = p.bias[f];
        }
        bytemuck::cast_slice(&out).to_vec()
    }
}
