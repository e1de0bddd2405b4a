//! `reorg`: Darknet's `[reorg]` (space-to-depth with Darknet's exact index mapping) on whole maps,
//! one input element per invocation.

use super::{
    Binding, Kernel, PLAIN_BINDINGS, Params, ShaderCaps, Work, base_params, input_elements,
    input_grid,
};
use crate::network::{LayerKind, Network};

/// Reorg (see the module docs).
pub struct Reorg;

impl Kernel for Reorg {
    fn name(&self) -> &'static str {
        "reorg"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(net.layers[layer].kind, LayerKind::Reorg { .. })
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/reorg.wgsl").into()
    }

    fn workgroup_size(&self, _entry: usize) -> [u32; 3] {
        [8, 8, 1]
    }

    fn workgroups(&self, w: &Work<'_>, _stage: usize) -> [u32; 3] {
        input_grid(w)
    }

    fn invocations(&self, w: &Work<'_>) -> u64 {
        input_elements(w)
    }

    fn bindings(&self, _entry: usize) -> &'static [Binding] {
        PLAIN_BINDINGS
    }

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        let mut p = base_params(w);
        if let LayerKind::Reorg { stride } = &w.net.layers[w.layer].kind {
            p.stride = *stride as u32;
        }
        p
    }
}
