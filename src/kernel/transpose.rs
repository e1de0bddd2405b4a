//! `transpose`: a C×H×W map as H·W rows of C values (ONNX's `[1, C, L]` → `[1, L, C]` of a
//! detection head), one output element per invocation, numbered linearly.

use super::{
    Binding, Kernel, PLAIN_BINDINGS, Params, ShaderCaps, Work, base_params, linear_workgroups,
};
use crate::network::{LayerKind, Network};

/// Map to rows (see the module docs).
pub struct Transpose;

impl Kernel for Transpose {
    fn name(&self) -> &'static str {
        "transpose"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(net.layers[layer].kind, LayerKind::Transpose)
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/transpose.wgsl").into()
    }

    fn workgroup_size(&self, _entry: usize) -> [u32; 3] {
        [64, 1, 1]
    }

    fn workgroups(&self, w: &Work<'_>, _stage: usize) -> [u32; 3] {
        linear_workgroups(w.input.elements(), 1)
    }

    fn invocations(&self, w: &Work<'_>) -> u64 {
        w.input.elements() as u64
    }

    fn bindings(&self, _entry: usize) -> &'static [Binding] {
        PLAIN_BINDINGS
    }

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        base_params(w)
    }
}
