//! `slice`: a strided spatial slice over a region (ONNX `Slice` on the height and width axes, as a
//! YOLOv5 Focus layer takes every second row and column), one output element per invocation.

use super::{
    Binding, Kernel, PLAIN_BINDINGS, Params, ShaderCaps, Work, base_params, region_elements,
    region_grid,
};
use crate::network::{LayerKind, Network};

/// Strided slice (see the module docs).
pub struct Slice;

impl Kernel for Slice {
    fn name(&self) -> &'static str {
        "slice"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(net.layers[layer].kind, LayerKind::Slice { .. })
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/slice.wgsl").into()
    }

    one_per_output_element!();

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        let mut p = base_params(w);
        if let LayerKind::Slice {
            y0,
            x0,
            stride_y,
            stride_x,
        } = w.net.layers[w.layer].kind
        {
            p.extra = [y0 as u32, x0 as u32, stride_y as u32, stride_x as u32, 0, 0];
        }
        p
    }
}
