//! `shortcut`: Darknet's `[shortcut]` on whole maps, `activation(alpha·previous + beta·from)` where the
//! two maps overlap, one output element per invocation.

use super::{
    Binding, Constants, Kernel, Params, ShaderCaps, Slot, Work, act_code, activation_constant,
    base_params, bind, input_elements, input_grid,
};
use crate::network::{LayerKind, Network};

/// Shortcut (see the module docs).
pub struct Shortcut;

/// 0 parameters, 1 the previous layer's map, 2 layer `from`'s map, 3 output.
const BINDINGS: &[Binding] = &[
    bind(0, Slot::Params),
    bind(1, Slot::Input),
    bind(2, Slot::Second),
    bind(3, Slot::Output),
];

impl Kernel for Shortcut {
    fn name(&self) -> &'static str {
        "shortcut"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(net.layers[layer].kind, LayerKind::Shortcut { .. })
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/shortcut.wgsl").into()
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

    fn constants(&self, w: &Work<'_>) -> Constants {
        activation_constant(w)
    }

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        let mut p = base_params(w);
        let l = &w.net.layers[w.layer];
        if let LayerKind::Shortcut {
            from,
            activation,
            alpha,
            beta,
        } = &l.kind
        {
            let (f, x) = (w.net.layers[*from].output, l.input);
            p.act = act_code(*activation);
            p.alpha = *alpha;
            p.beta = *beta;
            p.extra = [
                f.c as u32,
                f.h as u32,
                f.w as u32,
                (f.w / x.w).max(1) as u32,
                (x.w / f.w).max(1) as u32,
                0,
            ];
        }
        p
    }
}
