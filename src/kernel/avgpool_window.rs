//! `avgpool_window`: an average over k×k windows (ONNX `AveragePool`) over a region, one output
//! element per invocation; cells are summed in row-major order, then divided by their count (or by
//! the padded window's with `count_include_pad`).

use super::{
    Binding, Kernel, PLAIN_BINDINGS, Params, ShaderCaps, Work, base_params, region_elements,
    region_grid,
};
use crate::network::{LayerKind, Network};

/// Windowed average pool (see the module docs).
pub struct AvgPoolWindow;

impl Kernel for AvgPoolWindow {
    fn name(&self) -> &'static str {
        "avgpool_window"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(net.layers[layer].kind, LayerKind::AvgPoolWindow { .. })
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/avgpool_window.wgsl").into()
    }

    one_per_output_element!();

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        let mut p = base_params(w);
        if let LayerKind::AvgPoolWindow {
            size,
            stride,
            pads,
            count_include_pad,
        } = w.net.layers[w.layer].kind
        {
            p.k = size as u32;
            p.stride = stride as u32;
            p.extra = [
                pads[0] as u32,
                pads[1] as u32,
                pads[2] as u32,
                pads[3] as u32,
                u32::from(count_include_pad),
                0,
            ];
        }
        p
    }
}
