//! `upsample`: nearest-neighbour upsampling over a region, times a scale, one output element per
//! invocation.

use super::{
    Binding, Kernel, PLAIN_BINDINGS, Params, ShaderCaps, Work, base_params, region_elements,
    region_grid,
};
use crate::network::{LayerKind, Network};

/// Nearest-neighbour upsampling (see the module docs).
pub struct Upsample;

impl Kernel for Upsample {
    fn name(&self) -> &'static str {
        "upsample"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(net.layers[layer].kind, LayerKind::Upsample { .. })
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/upsample.wgsl").into()
    }

    one_per_output_element!();

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        let mut p = base_params(w);
        if let LayerKind::Upsample { stride, scale } = &w.net.layers[w.layer].kind {
            p.stride = *stride as u32;
            p.alpha = *scale;
        }
        p
    }
}
