//! `conv2d_grouped`: grouped and depthwise convolutions (any filters per group; only for
//! `groups > 1`, where the register-tiled kernels may not apply): each invocation
//! computes one output channel × 4 neighbouring output pixels. Weights `[filters][cin_g][k][k]`, then
//! one bias per filter, plain f32; the CPU reference's order of operations.

use super::conv2d::{CONV_BINDINGS, conv_params, per_filter};
use super::{Binding, Constants, Kernel, Params, ShaderCaps, Work, activation_constant, groups_of};
use crate::model::weights::ConvParams;
use crate::network::{LayerKind, Network};

/// Output pixels per invocation.
const PIXELS: usize = 4;

/// Grouped/depthwise convolution (see the module docs).
pub struct Conv2dGrouped;

impl Kernel for Conv2dGrouped {
    fn name(&self) -> &'static str {
        "conv2d_grouped"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(&net.layers[layer].kind, LayerKind::Conv(c) if c.groups > 1)
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/conv2d_grouped.wgsl").into()
    }

    fn workgroup_size(&self, _entry: usize) -> [u32; 3] {
        [8, 8, 1]
    }

    fn workgroups(&self, w: &Work<'_>, _stage: usize) -> [u32; 3] {
        let o = w.net.layers[w.layer].output;
        [
            groups_of(w.region.width().div_ceil(PIXELS), 8),
            groups_of(w.region.height(), 8),
            o.c as u32,
        ]
    }

    fn invocations(&self, w: &Work<'_>) -> u64 {
        let o = w.net.layers[w.layer].output;
        (w.region.height() * w.region.width().div_ceil(PIXELS) * o.c) as u64
    }

    fn bindings(&self, _entry: usize) -> &'static [Binding] {
        CONV_BINDINGS
    }

    fn constants(&self, w: &Work<'_>) -> Constants {
        activation_constant(w)
    }

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        conv_params(w)
    }

    fn weight_bytes(&self, net: &Network, layer: usize) -> u64 {
        let f = net.layers[layer].output.c as u64;
        4 * (f * per_filter(net, layer) as u64 + f)
    }

    fn pack_weights(&self, _net: &Network, _layer: usize, p: &ConvParams) -> Vec<u8> {
        let mut out: Vec<u8> = bytemuck::cast_slice(&p.weights).to_vec();
        out.extend_from_slice(bytemuck::cast_slice(&p.bias));
        out
    }
}
