//! `maxpool`: Darknet's max pool over a region, one output element per invocation (window starting
//! at `−padding/2`; cells outside the true map never win).

use super::{
    Binding, Kernel, PLAIN_BINDINGS, Params, ShaderCaps, Work, base_params, region_elements,
    region_grid,
};
use crate::network::{LayerKind, Network};

/// Max pool (see the module docs).
pub struct MaxPool;

impl Kernel for MaxPool {
    fn name(&self) -> &'static str {
        "maxpool"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(net.layers[layer].kind, LayerKind::MaxPool(_))
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/maxpool.wgsl").into()
    }

    one_per_output_element!();

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        let mut p = base_params(w);
        if let LayerKind::MaxPool(m) = &w.net.layers[w.layer].kind {
            p.k = m.size as u32;
            p.stride = m.stride as u32;
            p.pad = m.pad_before() as u32;
        }
        p
    }
}
