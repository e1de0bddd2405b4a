//! `maxpool_2x2`: Darknet's 2×2 stride-2 max pool (no padding before: YOLO's downsampling), four
//! neighbouring outputs of a row per invocation, with an entry point for works whose input rows are
//! whole vec4s and whose region starts on a vec4 (vec4 loads, and vec4 stores where the output
//! aligns too: a quarter of the memory instructions of [`super::maxpool`]) and a general one for the
//! others.

use super::{Binding, Kernel, PLAIN_BINDINGS, Params, ShaderCaps, Work, base_params, groups_of};
use crate::network::{LayerKind, Network};

/// The 2×2 stride-2 max pool (see the module docs).
pub struct MaxPool2x2;

impl Kernel for MaxPool2x2 {
    fn name(&self) -> &'static str {
        "maxpool_2x2"
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(&net.layers[layer].kind,
            LayerKind::MaxPool(m) if m.size == 2 && m.stride == 2 && m.pad_before() == 0)
    }

    fn wgsl(&self, _caps: ShaderCaps) -> String {
        include_str!("../../shaders/maxpool_2x2.wgsl").into()
    }

    fn entry_points(&self) -> &'static [&'static str] {
        &["main", "aligned"]
    }

    fn entry(&self, w: &Work<'_>, _stage: usize) -> usize {
        aligned(w) as usize
    }

    fn workgroup_size(&self, _entry: usize) -> [u32; 3] {
        [16, 4, 1]
    }

    fn workgroups(&self, w: &Work<'_>, _stage: usize) -> [u32; 3] {
        [
            groups_of(w.region.width().div_ceil(4), 16),
            groups_of(w.region.height(), 4),
            w.net.layers[w.layer].output.c as u32,
        ]
    }

    fn invocations(&self, w: &Work<'_>) -> u64 {
        (w.region.width().div_ceil(4) * w.region.height()) as u64
            * w.net.layers[w.layer].output.c as u64
    }

    fn bindings(&self, _entry: usize) -> &'static [Binding] {
        PLAIN_BINDINGS
    }

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        let mut p = base_params(w);
        p.k = 2;
        p.stride = 2;
        let (o, r) = (w.output.holds, w.region);
        p.extra[0] = (o.width().is_multiple_of(4) && (r.x0 - o.x0).is_multiple_of(4)) as u32;
        p
    }
}

/// Whether work `w` suits the `aligned` entry point: rows of the input binding are whole vec4s and
/// every run of 8 input columns starts on a vec4 (the region's first input column is 2·x0, runs
/// step by 8). Its stores are vec4s where the output's rows and runs are aligned too (`extra0`).
fn aligned(w: &Work<'_>) -> bool {
    let (i, r) = (w.input.holds, w.region);
    i.width().is_multiple_of(4) && (2 * r.x0 - i.x0).is_multiple_of(4)
}
