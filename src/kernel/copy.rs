//! `copy`: a route (or a reshape: its one source at offset 0), one dispatch per source copying the
//! whole source map into its channel offset of the output (invocations numbered linearly over x and
//! y, one element each).

use super::{
    Binding, Kernel, PLAIN_BINDINGS, Params, ShaderCaps, Work, base_params, linear_workgroups,
};
use crate::network::{LayerKind, Network};

/// Route copy (see the module docs).
pub struct Copy;

impl Kernel for Copy {
    fn name(&self) -> &'static str {
        "copy"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(
            net.layers[layer].kind,
            LayerKind::Route { .. } | LayerKind::Reshape
        )
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/copy.wgsl").into()
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
        let mut p = base_params(w);
        p.extra[0] = w.input.elements() as u32;
        p.extra[1] = w.dst_element as u32;
        p
    }

    fn per_source(&self) -> bool {
        true
    }
}
