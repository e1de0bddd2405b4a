//! `pad`: constant padding of a map over a region (ONNX `Pad` in constant mode on the height and
//! width axes, and a convolution's uneven padding), one output element per invocation.

use super::{
    Binding, Kernel, PLAIN_BINDINGS, Params, ShaderCaps, Work, base_params, region_elements,
    region_grid,
};
use crate::network::{LayerKind, Network};

/// Constant padding (see the module docs).
pub struct Pad;

impl Kernel for Pad {
    fn name(&self) -> &'static str {
        "pad"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(net.layers[layer].kind, LayerKind::Pad { .. })
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/pad.wgsl").into()
    }

    one_per_output_element!();

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        let mut p = base_params(w);
        if let LayerKind::Pad { top, left, value } = w.net.layers[w.layer].kind {
            p.extra[0] = top as u32;
            p.extra[1] = left as u32;
            p.alpha = value.get();
        }
        p
    }
}
