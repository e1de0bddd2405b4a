//! `softmax`: Darknet's `[softmax]` over equal consecutive slices of the input, one slice per
//! invocation (the temperature divides every input first).

use super::{Binding, Kernel, PLAIN_BINDINGS, Params, ShaderCaps, Work, base_params, groups_of};
use crate::network::{LayerKind, Network};

/// Softmax (see the module docs).
pub struct Softmax;

fn slices(net: &Network, layer: usize) -> usize {
    match &net.layers[layer].kind {
        LayerKind::Softmax { groups, .. } => *groups,
        _ => 1,
    }
}

impl Kernel for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(net.layers[layer].kind, LayerKind::Softmax { .. })
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/softmax.wgsl").into()
    }

    fn workgroup_size(&self, _entry: usize) -> [u32; 3] {
        [64, 1, 1]
    }

    fn workgroups(&self, w: &Work<'_>, _stage: usize) -> [u32; 3] {
        [groups_of(slices(w.net, w.layer), 64), 1, 1]
    }

    fn invocations(&self, w: &Work<'_>) -> u64 {
        slices(w.net, w.layer) as u64
    }

    fn bindings(&self, _entry: usize) -> &'static [Binding] {
        PLAIN_BINDINGS
    }

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        let mut p = base_params(w);
        if let LayerKind::Softmax {
            groups,
            temperature,
        } = &w.net.layers[w.layer].kind
        {
            p.alpha = *temperature;
            p.extra[0] = *groups as u32;
        }
        p
    }
}
