//! `conv2d`: the register-tiled convolution, its WGSL generated fully unrolled.
//!
//! Each invocation computes `quads`·4 output channels × `pixels` neighbouring output pixels of one
//! row ([`Blocking`]; the registry holds several), in named variables (private arrays with dynamic indices end up in memory). On
//! lavapipe a storage-buffer load costs about 12 cycles per lane against a fraction of a cycle for a
//! multiply-add, so the kernel is built around loads: every input value loaded feeds `quads`·4
//! multiply-adds and every weight vec4 feeds `pixels`. Invocations enumerate runs of `pixels`
//! pixels row by row (numbered linearly over `gid.x` and `gid.y`), so narrow maps still fill the SIMD
//! lanes; `gid.z` picks the filter block.
//!
//! Weights are laid out `[filters/4][cin_g][k][k]` as vec4 over 4 consecutive filters, followed by one
//! bias vec4 per filter quad. Every output is accumulated in the CPU reference's order — bias, then
//! input channel, kernel row, kernel column, skipping taps in the zero padding — so the results agree
//! bit for bit. Used when groups == 1 or the filters per group are a multiple of `quads`·4.

use super::{
    Binding, Constants, Kernel, Params, ShaderCaps, Slot, Work, act_code, activation_constant,
    base_params, bind, groups_of, linear_workgroups,
};
use crate::model::weights::ConvParams;
use crate::network::{LayerKind, Network};
use std::fmt::Write;

/// Most filter quads per invocation: the subgroup path shares one quad's weights per lane, so
/// subgroups need at least this many lanes.
pub const MAX_QUADS: usize = 8;

/// How many outputs one invocation computes: `quads`·4 filters × `pixels` neighbouring pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    /// Filter quads (4 output channels each) per invocation (at most 8: one per subgroup lane).
    pub quads: usize,
    /// Output pixels per invocation.
    pub pixels: usize,
}

/// The register-tiled convolution (see the module docs) at one blocking.
pub struct Conv2d {
    /// Its name in reports and `--kernel`.
    pub name: &'static str,
    /// Outputs per invocation.
    pub blocking: Blocking,
}

/// The bindings of a convolution: 0 parameters, 1 input, 2 weights, 3 output.
pub(super) const CONV_BINDINGS: &[Binding] = &[
    bind(0, Slot::Params),
    bind(1, Slot::Input),
    bind(2, Slot::Weights),
    bind(3, Slot::Output),
];

/// The conv layer of `w` (its kernel, stride, padding, groups, filters, activation) on top of the
/// shared shape parameters.
pub(super) fn conv_params(w: &Work<'_>) -> Params {
    let mut p = base_params(w);
    let l = &w.net.layers[w.layer];
    if let LayerKind::Conv(c) = &l.kind {
        p.cin_g = (l.input.c / c.groups) as u32;
        p.filters = c.filters as u32;
        p.cout_g = (c.filters / c.groups) as u32;
        p.k = c.size as u32;
        p.stride = c.stride as u32;
        p.pad = c.padding as u32;
        p.act = act_code(c.activation);
    }
    p
}

/// Weights per filter: `cin/groups · k · k`.
pub(super) fn per_filter(net: &Network, layer: usize) -> usize {
    let l = &net.layers[layer];
    match &l.kind {
        LayerKind::Conv(c) => (l.input.c / c.groups) * c.size * c.size,
        _ => 0,
    }
}

fn filters(net: &Network, layer: usize) -> usize {
    match &net.layers[layer].kind {
        LayerKind::Conv(c) => c.filters,
        _ => 0,
    }
}

impl Kernel for Conv2d {
    fn name(&self) -> &'static str {
        self.name
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        match &net.layers[layer].kind {
            LayerKind::Conv(c) => {
                c.groups == 1 || (c.filters / c.groups).is_multiple_of(4 * self.blocking.quads)
            }
            _ => false,
        }
    }

    fn wgsl(&self, caps: ShaderCaps) -> String {
        // naga 30 takes the subgroup built-ins without `enable subgroups;` (and rejects it).
        source(self.blocking, caps.subgroups)
    }

    fn workgroup_size(&self, _entry: usize) -> [u32; 3] {
        [64, 1, 1]
    }

    fn workgroups(&self, w: &Work<'_>, _stage: usize) -> [u32; 3] {
        // Pixel runs are numbered linearly over x and y (the kernel reads `num_workgroups.x`), so
        // no dimension passes the 65,535-workgroup limit.
        let b = self.blocking;
        let runs = w.region.width().div_ceil(b.pixels) * w.region.height();
        let o = w.net.layers[w.layer].output;
        linear_workgroups(runs, groups_of(o.c, 4 * b.quads as u32))
    }

    fn invocations(&self, w: &Work<'_>) -> u64 {
        let (b, o) = (self.blocking, w.net.layers[w.layer].output);
        (w.region.height() * w.region.width().div_ceil(b.pixels)) as u64
            * (o.c as u64).div_ceil(4 * b.quads as u64)
    }

    fn bindings(&self, _entry: usize) -> &'static [Binding] {
        CONV_BINDINGS
    }

    fn constants(&self, w: &Work<'_>) -> Constants {
        activation_constant(w)
    }

    fn params(&self, w: &Work<'_>, _stage: usize) -> Params {
        conv_params(w)
    }

    fn weight_bytes(&self, net: &Network, layer: usize) -> u64 {
        quad_weight_bytes(net, layer)
    }

    fn pack_weights(&self, net: &Network, layer: usize, p: &ConvParams) -> Vec<u8> {
        pack_quads(net, layer, p)
    }
}

/// Bytes of [`pack_quads`]' layout.
pub(super) fn quad_weight_bytes(net: &Network, layer: usize) -> u64 {
    let nq = filters(net, layer).div_ceil(4) as u64;
    16 * (nq * per_filter(net, layer) as u64 + nq)
}

/// Weights `[filters/4][cin_g][k][k]` as vec4 over 4 consecutive filters (the last quad padded with
/// zeros), then the biases as vec4s.
pub(super) fn pack_quads(net: &Network, layer: usize, p: &ConvParams) -> Vec<u8> {
    let (n, per) = (filters(net, layer), per_filter(net, layer));
    let nq = n.div_ceil(4);
    let mut out = vec![0.0f32; 4 * (nq * per + nq)];
    for f in 0..n {
        let (q, lane) = (f / 4, f % 4);
        for j in 0..per {
            out[4 * (q * per + j) + lane] = p.weights[f * per + j];
        }
        out[4 * (nq * per + q) + lane] = p.bias[f];
    }
    bytemuck::cast_slice(&out).to_vec()
}

/// The kernel's WGSL (without the shared prelude). With `subgroups`, each lane of a subgroup (at least
/// `quads` lanes) loads the weights of one filter quad and the others take them with
/// `subgroupShuffle`: a b.quads-fold cut in weight loads. That variant keeps every lane in uniform
/// control flow (only whole subgroups return early; inactive lanes of a live subgroup only skip their
/// loads and stores).
fn source(b: Blocking, subgroups: bool) -> String {
    if subgroups {
        return source_subgroups(b);
    }
    let (cq, px) = (b.quads, b.pixels);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Generated by src/kernel/conv2d.rs: {cq} filter quads x {px} pixels per invocation.
// The activation, fixed per pipeline (the branches on it fold away).
override ACT: u32 = 0u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(2) var<storage, read_write> wts: array<Weight4>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let runs = (p.rw + {pm1}u) / {px}u;
    let id = gid.x + gid.y * nwg.x * 64u;
    let row = id / runs;
    if (row >= p.rh) {{ return; }}
    let px = (id % runs) * {px}u;
    let nq = (p.filters + 3u) / 4u;
    let qb = gid.z * {cq}u;
    if (qb >= nq) {{ return; }}
    let g = (qb * 4u) / p.cout_g;
    let oy = p.ry0 + i32(row);
    let ox = p.rx0 + i32(px);
    let s = i32(p.stride);
    let pad = i32(p.pad);
    let k = p.k;
    let kk = k * k;
    let n = min({px}u, p.rw - px);
    let last = nq - 1u;",
        pm1 = px - 1
    );
    for c in 0..cq {
        let _ = writeln!(s, "    let q{c} = min(qb + {c}u, last);");
        let _ = writeln!(
            s,
            "    let b{c} = vec4<f32>(wts[nq * p.cin_g * kk + q{c}]);"
        );
        for j in 0..px {
            let _ = writeln!(s, "    var a{j}_{c} = b{c};");
        }
    }
    s.push_str(
        "    let ix_base = ox * s - pad;
    for (var ci = 0u; ci < p.cin_g; ci++) {
        let cbuf = g * p.cin_g + ci;
",
    );
    for c in 0..cq {
        let _ = writeln!(s, "        let wr{c} = (q{c} * p.cin_g + ci) * kk;");
    }
    s.push_str(
        "        for (var ky = 0u; ky < k; ky++) {
            let iy = oy * s - pad + i32(ky);
            if (iy < 0 || iy >= p.map_h) { continue; }
            let rbase = i32((cbuf * p.in_h) + u32(iy - p.in_y0)) * i32(p.in_w) - p.in_x0;
            for (var kx = 0u; kx < k; kx++) {
                let t = ky * k + kx;
",
    );
    for c in 0..cq {
        let _ = writeln!(s, "                let w{c} = vec4<f32>(wts[wr{c} + t]);");
    }
    push_tap_pixels(&mut s, "", b);
    s.push_str("            }\n        }\n    }\n");
    push_stores(&mut s, b);
    s
}

fn source_subgroups(b: Blocking) -> String {
    let (cq, px) = (b.quads, b.pixels);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Generated by src/kernel/conv2d.rs: {cq} filter quads x {px} pixels per invocation, weights
// shared across the subgroup.
// The activation, fixed per pipeline (the branches on it fold away).
override ACT: u32 = 0u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(2) var<storage, read_write> wts: array<Weight4>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {{
    let runs = (p.rw + {pm1}u) / {px}u;
    let id = gid.x + gid.y * nwg.x * 64u;
    let row = id / runs;
    let px = (id % runs) * {px}u;
    let live = row < p.rh;
    // A subgroup with no pixel to compute leaves as a whole (small tiles leave most lanes idle, and
    // idle lanes would otherwise run the whole channel loop).
    if (subgroupAll(!live)) {{ return; }}
    let n = select(0u, min({px}u, p.rw - px), live);
    let nq = (p.filters + 3u) / 4u;
    let qb = gid.z * {cq}u;
    let g = (qb * 4u) / p.cout_g;
    let oy = p.ry0 + i32(row);
    let ox = p.rx0 + i32(px);
    let s = i32(p.stride);
    let pad = i32(p.pad);
    let k = p.k;
    let kk = k * k;
    let last = nq - 1u;
    let myq = min(qb + lane % {cq}u, last);
    let bmine = vec4<f32>(wts[nq * p.cin_g * kk + myq]);",
        pm1 = px - 1
    );
    for c in 0..cq {
        let _ = writeln!(s, "    let b{c} = subgroupShuffle(bmine, {c}u);");
        for j in 0..px {
            let _ = writeln!(s, "    var a{j}_{c} = b{c};");
        }
    }
    // 3x3 stride 1 (most of YOLO): each input row segment is loaded once per kernel row and reused
    // by the three kernel columns.
    s.push_str(
        "    let ix_base = ox * s - pad;
    if (k == 3u && s == 1) {
    for (var ci = 0u; ci < p.cin_g; ci++) {
        let cbuf = g * p.cin_g + ci;
        let wrow = (myq * p.cin_g + ci) * 9u;
        for (var ky = 0u; ky < 3u; ky++) {
            let iy = oy - pad + i32(ky);
            let rok = n > 0u && iy >= 0 && iy < p.map_h;
            let rbase = i32((cbuf * p.in_h) + u32(iy - p.in_y0)) * i32(p.in_w) - p.in_x0;
",
    );
    for m in 0..px + 2 {
        let _ = writeln!(
            s,
            "            let ok{m} = rok && ix_base + {m} >= 0 && ix_base + {m} < p.map_w;"
        );
        let _ = writeln!(s, "            var r{m} = 0.0;");
        let _ = writeln!(
            s,
            "            if (ok{m}) {{ r{m} = f32(src[rbase + ix_base + {m}]); }}"
        );
    }
    for kx in 0..3 {
        let _ = writeln!(s, "            {{");
        let _ = writeln!(
            s,
            "            let wmine = vec4<f32>(wts[wrow + ky * 3u + {kx}u]);"
        );
        for c in 0..cq {
            let _ = writeln!(s, "            let w{c} = subgroupShuffle(wmine, {c}u);");
        }
        for j in 0..px {
            let m = j + kx;
            let _ = writeln!(s, "            if (ok{m} && n > {j}u) {{");
            push_madds(&mut s, "                ", j, &format!("r{m}"), b);
            s.push_str("            }\n");
        }
        let _ = writeln!(s, "            }}");
    }
    s.push_str(
        "        }
    }
    } else {
    for (var ci = 0u; ci < p.cin_g; ci++) {
        let cbuf = g * p.cin_g + ci;
        let wrow = (myq * p.cin_g + ci) * kk;
        for (var ky = 0u; ky < k; ky++) {
            let iy = oy * s - pad + i32(ky);
            let rok = n > 0u && iy >= 0 && iy < p.map_h;
            let rbase = i32((cbuf * p.in_h) + u32(iy - p.in_y0)) * i32(p.in_w) - p.in_x0;
            for (var kx = 0u; kx < k; kx++) {
                let wmine = vec4<f32>(wts[wrow + ky * k + kx]);
",
    );
    for c in 0..cq {
        let _ = writeln!(
            s,
            "                let w{c} = subgroupShuffle(wmine, {c}u);"
        );
    }
    push_tap_pixels(&mut s, "rok && ", b);
    s.push_str("            }\n        }\n    }\n");
    s.push_str("    }\n    if (n == 0u || qb >= nq) { return; }\n");
    push_stores(&mut s, b);
    s
}

/// One kernel tap for every pixel of the run: load the input under `guard` + "pixel in the run and in
/// the map", then multiply-add into the pixel's accumulators.
fn push_tap_pixels(s: &mut String, guard: &str, b: Blocking) {
    s.push_str("                let ix = ix_base + i32(kx);\n");
    for j in 0..b.pixels {
        let _ = writeln!(s, "                let x{j} = ix + {j} * s;");
        let _ = writeln!(
            s,
            "                if ({guard}n > {j}u && x{j} >= 0 && x{j} < p.map_w) {{"
        );
        let _ = writeln!(s, "                    let v = f32(src[rbase + x{j}]);");
        push_madds(s, "                    ", j, "v", b);
        s.push_str("                }\n");
    }
}

/// `a{j}_{c} = a{j}_{c} + w{c} * value` for every filter quad `c`: pixel `j`'s accumulators.
fn push_madds(s: &mut String, indent: &str, j: usize, value: &str, b: Blocking) {
    for c in 0..b.quads {
        let _ = writeln!(s, "{indent}a{j}_{c} = a{j}_{c} + w{c} * {value};");
    }
}

/// The epilogue: activation and stores of every accumulator inside the region and filter count.
fn push_stores(s: &mut String, b: Blocking) {
    s.push_str(
        "    let plane = p.out_h * p.out_w;
    let obase = u32(oy - p.out_y0) * p.out_w + u32(ox - p.out_x0);
",
    );
    for c in 0..b.quads {
        let _ = writeln!(
            s,
            "    for (var l = 0u; l < 4u; l++) {{
        let f = (qb + {c}u) * 4u + l;
        if (f >= p.filters) {{ break; }}
        let o = (p.out_c_off + f) * plane + obase;"
        );
        for j in 0..b.pixels {
            if j == 0 {
                let _ = writeln!(s, "        dst[o] = Store(activate(a0_{c}[l], ACT));");
            } else {
                let _ = writeln!(
                    s,
                    "        if (n > {j}u) {{ dst[o + {j}u] = Store(activate(a{j}_{c}[l], ACT)); }}"
                );
            }
        }
        s.push_str("    }\n");
    }
    s.push_str("}\n");
}
