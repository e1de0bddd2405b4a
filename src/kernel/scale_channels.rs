//! `scale_channels`: every channel of a whole map multiplied by that channel's value of a C×1×1
//! map (ONNX `Mul` in a squeeze-and-excitation block), one output element per invocation.

use super::{
    Binding, Kernel, Params, ShaderCaps, Slot, Work, base_params, bind, input_elements, input_grid,
};
use crate::network::{LayerKind, Network};

/// Channel scaling (see the module docs).
pub struct ScaleChannels;

/// 0 parameters, 1 the map, 2 the per-channel scales, 3 output.
const BINDINGS: &[Binding] = &[
    bind(0, Slot::Params),
    bind(1, Slot::Input),
    bind(2, Slot::Second),
    bind(3, Slot::Output),
];

impl Kernel for ScaleChannels {
    fn name(&self) -> &'static str {
        "scale_channels"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(net.layers[layer].kind, LayerKind::ScaleChannels)
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/scale_channels.wgsl").into()
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
        BINDINGS
    }

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        base_params(w)
    }
}
