//! `avgpool`: global average pool to C×1×1, one channel per invocation (row-major sum, then one
//! division).

use super::{Binding, Kernel, PLAIN_BINDINGS, Params, ShaderCaps, Work, base_params, groups_of};
use crate::network::{LayerKind, Network};

/// Global average pool (see the module docs).
pub struct AvgPool;

impl Kernel for AvgPool {
    fn name(&self) -> &'static str {
        "avgpool"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(net.layers[layer].kind, LayerKind::AvgPool)
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/avgpool.wgsl").into()
    }

    fn workgroup_size(&self, _entry: usize) -> [u32; 3] {
        [64, 1, 1]
    }

    fn workgroups(&self, w: &Work<'_>, _stage: usize) -> [u32; 3] {
        [groups_of(w.net.layers[w.layer].input.c, 64), 1, 1]
    }

    fn invocations(&self, w: &Work<'_>) -> u64 {
        w.net.layers[w.layer].input.c as u64
    }

    fn bindings(&self, _entry: usize) -> &'static [Binding] {
        PLAIN_BINDINGS
    }

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        base_params(w)
    }
}
