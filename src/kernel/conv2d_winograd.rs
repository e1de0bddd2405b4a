//! `conv2d_winograd*`: 3×3 stride-1 convolutions by Winograd's minimal filtering F(m×m, 3×3):
//! F(2×2, 3×3) (`conv2d_winograd`: 16 multiplies per 4 outputs and input channel instead of 36,
//! 2.25× fewer) and F(4×4, 3×3) (`conv2d_winograd4`: 36 per 16 outputs instead of 144, 4× fewer).
//! With n = m + 2, an m×m output tile is computed from an n×n input patch d as
//! Y = Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A, the n² elementwise products summed over the input channels
//! first — a matrix product per position.
//!
//! A work (a layer's region, or a tile of a fused group) runs in **bands** of tile rows, three
//! dispatches each, through two arena workspace buffers:
//! 1. `input_transform`: per 4 neighbouring tiles of a row and input channel, V = Bᵀ·d·B, stored
//!    `V[pos][c][tile]` (vec4 over 4 tiles). Cells outside the region the input binding holds read
//!    as zero: the map's zero padding at true borders, and cells that feed only outputs that are
//!    not stored (see below).
//! 2. `product`: per position, M = V·U (U = G·g·Gᵀ, the filters transformed once at load and
//!    packed `U[pos][c][filter quad]`, counted as the layer's weights), over the input channels in
//!    order from zero; `tiles` tiles × `quads` filter quads per invocation, the filter quads shared
//!    across the subgroup with `subgroupShuffle`. Stored `M[pos][tile][filter quad]`.
//! 3. `output_transform`: per tile and filter quad, Y = bias + Aᵀ·M·A, activation, stores of the
//!    outputs inside the region.
//!
//! **Tiled == untiled.** Tiles sit on the map's grid of multiples of m whatever the region a work
//! computes (a region that starts or ends inside a tile computes, and drops, the rest of it), so a
//! tile always rounds the same way. For F(2×2) each output row (column) of a tile depends, in
//! floating point too, only on the 3 input rows its window covers (Bᵀ's rows 0–2 read d₀–d₂, rows
//! 1–3 read d₁–d₃, and Aᵀ's rows combine M's rows 0–2 and 1–3), so cells outside the traced input
//! region may read as zero. For F(4×4) they may not (Bᵀ's rows 1–4 read d₁–d₄, Aᵀ's rows read M's
//! rows 0–4 and 1–5): the kernel reports the input region of its whole patches
//! ([`Kernel::input_region`]), so fused groups trace (and hold) every cell a tile reads.
//!
//! **Bands** are as many tile rows as keep the two workspace buffers within
//! max([`MIN_WORKSPACE`], half the bytes of the output region, a quarter of the transformed
//! weights' — deep layers on small maps are all weights, and one band fills the SIMD lanes best),
//! but at least 8 blocks of tiles (a product dispatch with fewer leaves SIMD lanes idle): the memory
//! plan counts them, and a tighter budget tiles the layer, which shrinks them.
//!
//! **Exactness.** F(2×2)'s G has entries 0, ±½, 1 and its Bᵀ, Aᵀ entries 0, ±1, so on small
//! integers every transform and product is exact and the result equals the direct convolution's bit
//! for bit. F(4×4)'s G has sixths and twenty-fourths: U = G·g·Gᵀ is exact (a multiple of 1/64)
//! where the weights are multiples of 9, and then so is everything else. On random floats the
//! rounding differs from the direct sum (the tests state the tolerance).

use super::conv2d::conv_params;
use super::{
    Binding, Constants, Kernel, Params, ShaderCaps, Slot, Work, activation_constant, bind,
    groups_of, linear_workgroups,
};
use crate::error::Result;
use crate::model::weights::ConvParams;
use crate::network::{LayerKind, Network};
use crate::region::Region;
use std::fmt::Write;

/// Workspace bound per work when the output region is small (bytes of V and M together).
pub const MIN_WORKSPACE: u64 = 1 << 20;

/// Lanes of a product workgroup (all on one position and filter block, the weights they share;
/// on lavapipe 8 and 64 time alike).
const PRODUCT_LANES: u32 = 64;

/// How much of the product one invocation computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    /// Tiles (a multiple of 4: vec4 loads of V).
    pub tiles: u32,
    /// Filter quads (a multiple of 8 up to 16: with subgroups, each lane of 8 loads one or two
    /// quads' weights and shares them by `subgroupShuffle`).
    pub quads: u32,
}

/// Winograd F(m×m, 3×3) (see the module docs) at one blocking of its product.
pub struct Conv2dWinograd {
    /// Its name in reports and `--kernel`.
    pub name: &'static str,
    /// Output tile side: 2 or 4.
    pub m: usize,
    /// The product's blocking.
    pub blocking: Blocking,
}

/// The transform matrices of F(m×m, 3×3), n = m + 2.
struct Transform {
    /// Bᵀ, n×n.
    bt: &'static [&'static [f64]],
    /// G, n×3.
    g: &'static [[f64; 3]],
    /// Aᵀ, m×n.
    at: &'static [&'static [f64]],
}

/// F(2×2, 3×3).
const F2: Transform = Transform {
    bt: &[
        &[1.0, 0.0, -1.0, 0.0],
        &[0.0, 1.0, 1.0, 0.0],
        &[0.0, -1.0, 1.0, 0.0],
        &[0.0, 1.0, 0.0, -1.0],
    ],
    g: &[
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ],
    at: &[&[1.0, 1.0, 1.0, 0.0], &[0.0, 1.0, -1.0, -1.0]],
};

/// F(4×4, 3×3) (Lavin & Gray's points 0, ±1, ±2).
const F4: Transform = Transform {
    bt: &[
        &[4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        &[0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        &[0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        &[0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        &[0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        &[0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ],
    g: &[
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ],
    at: &[
        &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        &[0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        &[0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        &[0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ],
};

impl Conv2dWinograd {
    fn transform(&self) -> &'static Transform {
        match self.m {
            2 => &F2,
            _ => &F4,
        }
    }

    /// Patch side n = m + 2.
    fn n(&self) -> usize {
        self.m + 2
    }

    /// Positions n².
    fn positions(&self) -> u32 {
        (self.n() * self.n()) as u32
    }
}

const ENTRIES: &[&str] = &["input_transform", "product", "output_transform"];

const INPUT_BINDINGS: &[Binding] = &[
    bind(0, Slot::Params),
    bind(1, Slot::Input),
    bind(4, Slot::Workspace(0)),
];
const PRODUCT_BINDINGS: &[Binding] = &[
    bind(0, Slot::Params),
    bind(2, Slot::Weights),
    bind(4, Slot::Workspace(0)),
    bind(5, Slot::Workspace(1)),
];
const OUTPUT_BINDINGS: &[Binding] = &[
    bind(0, Slot::Params),
    bind(2, Slot::Weights),
    bind(3, Slot::Output),
    bind(5, Slot::Workspace(1)),
];

/// How a work is cut into bands of tile rows, and the workspace layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bands {
    /// Tiles per row of the region (on the map's grid of multiples of m).
    tx: u32,
    /// Tile rows of the region.
    ty: u32,
    /// Tile-row pitch in the workspace (`tx` rounded up to whole quads of tiles).
    txp: u32,
    /// Tile rows per band (the last band may hold fewer).
    rows: u32,
    /// Tiles per band in the workspace (a multiple of the product's tiles per invocation).
    tpad: u32,
    /// Input channels.
    cin: u32,
    /// Filter quads.
    nq: u32,
    /// Tiles per product invocation.
    tiles: u32,
}

impl Bands {
    fn of(k: &Conv2dWinograd, w: &Work<'_>) -> Bands {
        let l = &w.net.layers[w.layer];
        let (r, m) = (w.region, k.m);
        let (tx, ty) = (
            (r.x1 / m - r.x0 / m + 1) as u32,
            (r.y1 / m - r.y0 / m + 1) as u32,
        );
        let txp = tx.next_multiple_of(4);
        let (cin, nq) = (l.input.c as u32, l.output.c.div_ceil(4) as u32);
        let per_row = 4 * k.positions() as u64 * txp as u64 * (cin as u64 + 4 * nq as u64);
        let out_bytes = 4 * w.region.len(l.output.c) as u64;
        let cap = MIN_WORKSPACE
            .max(out_bytes / 2)
            .max(k.weight_bytes(w.net, w.layer) / 4);
        let tiles = k.blocking.tiles;
        let least = (8 * tiles as u64).div_ceil(txp as u64);
        let rows = (cap / per_row).max(least).clamp(1, ty as u64) as u32;
        Bands {
            tx,
            ty,
            txp,
            rows,
            tpad: (rows * txp).next_multiple_of(tiles),
            cin,
            nq,
            tiles,
        }
    }

    fn count(&self) -> u32 {
        self.ty.div_ceil(self.rows)
    }

    /// Tile rows of band `b`.
    fn rows_of(&self, b: u32) -> u32 {
        self.rows.min(self.ty - b * self.rows)
    }

    /// Tile blocks the product computes in band `b`.
    fn blocks_of(&self, b: u32) -> u32 {
        (self.rows_of(b) * self.txp).div_ceil(self.tiles)
    }
}

impl Kernel for Conv2dWinograd {
    fn name(&self) -> &'static str {
        self.name
    }

    fn supports(&self, net: &Network, layer: usize) -> bool {
        matches!(&net.layers[layer].kind,
            LayerKind::Conv(c) if c.size == 3 && c.stride == 1 && c.groups == 1)
    }

    fn wgsl(&self, caps: ShaderCaps) -> String {
        source(self, caps.subgroups)
    }

    fn entry_points(&self) -> &'static [&'static str] {
        ENTRIES
    }

    fn stages(&self, w: &Work<'_>) -> usize {
        3 * Bands::of(self, w).count() as usize
    }

    fn entry(&self, _w: &Work<'_>, stage: usize) -> usize {
        stage % 3
    }

    fn workgroup_size(&self, entry: usize) -> [u32; 3] {
        match entry {
            1 => [PRODUCT_LANES, 1, 1],
            _ => [64, 1, 1],
        }
    }

    fn workgroups(&self, w: &Work<'_>, stage: usize) -> [u32; 3] {
        let b = Bands::of(self, w);
        let band = (stage / 3) as u32;
        let rows = b.rows_of(band) as usize;
        match stage % 3 {
            0 => linear_workgroups(rows * b.txp as usize / 4, b.cin),
            1 => [
                groups_of(b.blocks_of(band) as usize, PRODUCT_LANES),
                self.positions(),
                b.nq.div_ceil(self.blocking.quads),
            ],
            _ => linear_workgroups(rows * b.tx as usize, b.nq),
        }
    }

    fn invocations(&self, w: &Work<'_>) -> u64 {
        let b = Bands::of(self, w);
        let (ty, txp, tx) = (b.ty as u64, b.txp as u64, b.tx as u64);
        let blocks: u64 = (0..b.count()).map(|k| b.blocks_of(k) as u64).sum();
        ty * txp / 4 * b.cin as u64
            + blocks * self.positions() as u64 * b.nq.div_ceil(self.blocking.quads) as u64
            + ty * tx * b.nq as u64
    }

    fn bindings(&self, entry: usize) -> &'static [Binding] {
        [INPUT_BINDINGS, PRODUCT_BINDINGS, OUTPUT_BINDINGS][entry]
    }

    fn constants(&self, w: &Work<'_>) -> Constants {
        activation_constant(w)
    }

    fn params(&self, w: &Work<'_>, stage: usize) -> Params {
        let b = Bands::of(self, w);
        let band = (stage / 3) as u32;
        let mut p = conv_params(w);
        p.extra = [band * b.rows, b.rows_of(band), b.txp, b.tpad, b.nq, b.tx];
        p
    }

    fn input_region(&self, net: &Network, layer: usize, out: Region) -> Result<Region> {
        let l = &net.layers[layer];
        let window = crate::region::input_region(&l.kind, l.input, out)?;
        if self.m == 2 {
            return Ok(window);
        }
        // Every cell of the patches of the tiles covering `out`, clamped to the map.
        let (m, pad) = (self.m, conv_pad(&l.kind));
        let span = |o0: usize, o1: usize, len: usize| {
            let first = (o0 / m * m).saturating_sub(pad);
            let last = (o1 / m * m + m + 1).saturating_sub(pad).min(len - 1);
            (first.min(last), last)
        };
        let (y0, y1) = span(out.y0, out.y1, l.input.h);
        let (x0, x1) = span(out.x0, out.x1, l.input.w);
        Ok(Region { y0, y1, x0, x1 })
    }

    fn workspace(&self, w: &Work<'_>) -> Vec<u64> {
        let b = Bands::of(self, w);
        let tiles = self.positions() as u64 * b.tpad as u64;
        vec![4 * tiles * b.cin as u64, 16 * tiles * b.nq as u64]
    }

    fn reference_order(&self) -> bool {
        false
    }

    fn exact_weight_multiple(&self) -> u32 {
        match self.m {
            2 => 1,
            _ => 9,
        }
    }

    fn weight_bytes(&self, net: &Network, layer: usize) -> u64 {
        let l = &net.layers[layer];
        let nq = l.output.c.div_ceil(4) as u64;
        16 * (self.positions() as u64 * l.input.c as u64 * nq + nq)
    }

    fn pack_weights(&self, net: &Network, layer: usize, p: &ConvParams) -> Vec<u8> {
        let l = &net.layers[layer];
        pack(self.transform(), l.input.c, l.output.c, p)
    }
}

fn conv_pad(kind: &LayerKind) -> usize {
    match kind {
        LayerKind::Conv(c) => c.padding,
        _ => 0,
    }
}

/// U = G·g·Gᵀ of one 3×3 filter slice `g` (row-major) for F(`m`×`m`, 3×3), as n² values
/// (row-major over n×n), computed in f64 and rounded once.
pub fn transform_filter(m: usize, g: &[f32]) -> Vec<f32> {
    let t = if m == 2 { &F2 } else { &F4 };
    transform_with(t, g)
}

fn transform_with(t: &Transform, g: &[f32]) -> Vec<f32> {
    let n = t.g.len();
    let gg: Vec<[f64; 3]> =
        t.g.iter()
            .map(|row| {
                let mut r = [0.0f64; 3];
                for (j, v) in r.iter_mut().enumerate() {
                    *v = (0..3).map(|k| row[k] * g[k * 3 + j] as f64).sum();
                }
                r
            })
            .collect();
    let mut u = vec![0.0f32; n * n];
    for i in 0..n {
        for (j, row) in t.g.iter().enumerate() {
            u[i * n + j] = (0..3).map(|k| gg[i][k] * row[k]).sum::<f64>() as f32;
        }
    }
    u
}

/// `U[pos][c][filter quad]` as vec4 over 4 consecutive filters (zero past the last), then the
/// biases as vec4s.
fn pack(t: &Transform, cin: usize, filters: usize, p: &ConvParams) -> Vec<u8> {
    let nq = filters.div_ceil(4);
    let pos = t.g.len() * t.g.len();
    let mut out = vec![0.0f32; 4 * (pos * cin * nq + nq)];
    for f in 0..filters {
        for c in 0..cin {
            let at = (f * cin + c) * 9;
            let u = transform_with(t, &p.weights[at..at + 9]);
            for (k, v) in u.iter().enumerate() {
                out[4 * ((k * cin + c) * nq + f / 4) + f % 4] = *v;
            }
        }
        out[4 * (pos * cin * nq + f / 4) + f % 4] = p.bias[f];
    }
    bytemuck::cast_slice(&out).to_vec()
}

/// `Σ coef·term` over the non-zero coefficients, in order (±1 as a plain sum or difference).
fn combination(coefs: &[f64], terms: &[String]) -> String {
    let mut s = String::new();
    for (c, t) in coefs.iter().zip(terms) {
        if *c == 0.0 {
            continue;
        }
        let mag = c.abs();
        let term = match mag == 1.0 {
            true => t.clone(),
            false => format!("{mag:?} * {t}"),
        };
        match (s.is_empty(), *c < 0.0) {
            (true, false) => s.push_str(&term),
            (true, true) => {
                let _ = write!(s, "-{term}");
            }
            (false, false) => {
                let _ = write!(s, " + {term}");
            }
            (false, true) => {
                let _ = write!(s, " - {term}");
            }
        }
    }
    if s.is_empty() { "0.0".into() } else { s }
}

/// The kernel's WGSL (without the prelude).
fn source(k: &Conv2dWinograd, subgroups: bool) -> String {
    let mut s = format!(
        "// Generated by src/kernel/conv2d_winograd.rs: Winograd F({m}x{m}, 3x3) in three entry points;
// the product computes {t} tiles x {q} filter quads per invocation.
// extra: [first tile row of the band, tile rows in it, tile-row pitch, tiles per band slot,
//         filter quads, tiles per row].
// The activation, fixed per pipeline (the branches on it fold away).
override ACT: u32 = 0u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(2) var<storage, read_write> wts: array<Weight4>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;
@group(0) @binding(4) var<storage, read_write> vws: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> mws: array<vec4<f32>>;
",
        m = k.m,
        t = k.blocking.tiles,
        q = k.blocking.quads
    );
    push_input_transform(&mut s, k);
    push_product(&mut s, k, subgroups);
    push_output_transform(&mut s, k);
    s
}

/// Stage 1: per quad of tiles of a tile row and input channel, the n × (4m + 2) input cells they
/// read, then V = Bᵀ·d·B for each of the 4 tiles, stored as one vec4 (4 tiles) per position.
fn push_input_transform(s: &mut String, k: &Conv2dWinograd) {
    let (m, n, t) = (k.m, k.n(), k.transform());
    let cols = 4 * m + 2;
    let _ = writeln!(
        s,
        "
// Input cell (y, x) of channel c (map coordinates), zero outside the region the binding holds.
fn cell(c: u32, y: i32, x: i32) -> f32 {{
    let ry = y - p.in_y0;
    let rx = x - p.in_x0;
    if (ry < 0 || ry >= i32(p.in_h) || rx < 0 || rx >= i32(p.in_w)) {{ return 0.0; }}
    return f32(src[(c * p.in_h + u32(ry)) * p.in_w + u32(rx)]);
}}

@compute @workgroup_size(64, 1, 1)
fn input_transform(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let id = gid.x + gid.y * nwg.x * 64u;
    let quads = p.extra2 / 4u;
    let row = id / quads;
    if (row >= p.extra1) {{ return; }}
    let col = (id % quads) * 4u;
    let c = gid.z;
    let y0 = (p.ry0 / {m} * {m}) + {m} * i32(p.extra0 + row) - i32(p.pad);
    let x0 = (p.rx0 / {m} * {m}) + {m} * i32(col) - i32(p.pad);"
    );
    for r in 0..n {
        for c in 0..cols {
            let _ = writeln!(s, "    let d{r}_{c} = cell(c, y0 + {r}, x0 + {c});");
        }
    }
    // t = Bᵀ·d, per column of cells.
    for i in 0..n {
        for c in 0..cols {
            let terms: Vec<String> = (0..n).map(|r| format!("d{r}_{c}")).collect();
            let _ = writeln!(s, "    let t{i}_{c} = {};", combination(t.bt[i], &terms));
        }
    }
    s.push_str(
        "    let plane = p.cin_g * p.extra3 / 4u;
    let at = c * p.extra3 / 4u + (row * p.extra2 + col) / 4u;
",
    );
    // V = t·B: position (i, j) of tile q uses columns q·m .. q·m + n − 1 of t's row i.
    for i in 0..n {
        for j in 0..n {
            let parts: Vec<String> = (0..4)
                .map(|q| {
                    let terms: Vec<String> =
                        (0..n).map(|l| format!("t{i}_{}", q * m + l)).collect();
                    combination(t.bt[j], &terms)
                })
                .collect();
            let _ = writeln!(
                s,
                "    vws[{pos}u * plane + at] = vec4<f32>({});",
                parts.join(", "),
                pos = i * n + j
            );
        }
    }
    s.push_str("}\n");
}

/// Stage 2: M[pos][tile][quad] = Σ_c V[pos][c][tile] · U[pos][c][quad], `tiles` tiles × `quads`
/// filter quads per invocation, input channels in order from zero.
fn push_product(s: &mut String, k: &Conv2dWinograd, subgroups: bool) {
    let (tiles, quads) = (k.blocking.tiles as usize, k.blocking.quads as usize);
    let lane = if subgroups {
        ",\n    @builtin(subgroup_invocation_id) lane: u32"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "
@compute @workgroup_size({PRODUCT_LANES}, 1, 1)
fn product(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>{lane}) {{
    let blocks = (p.extra1 * p.extra2 + {tm1}u) / {tiles}u;
    let tb = gid.x;
    let live = tb < blocks;",
        tm1 = tiles - 1
    );
    if subgroups {
        s.push_str("    if (subgroupAll(!live)) { return; }\n");
    } else {
        s.push_str("    if (!live) { return; }\n");
    }
    let _ = writeln!(
        s,
        "    let pos = wid.y;
    let nq = p.extra4;
    let qb = wid.z * {quads}u;
    let last = nq - 1u;
    let cin = p.cin_g;
    let tq = p.extra3 / 4u;
    let vb = pos * cin * tq + select(0u, tb * {tv}u, live);
    let ub = pos * cin * nq;",
        tv = tiles / 4
    );
    if subgroups {
        for r in 0..quads / 8 {
            let _ = writeln!(
                s,
                "    let myq{r} = min(qb + {}u + lane % 8u, last);",
                8 * r
            );
        }
    }
    for j in 0..tiles {
        for c in 0..quads {
            let _ = writeln!(s, "    var a{j}_{c} = vec4<f32>(0.0);");
        }
    }
    s.push_str("    for (var ci = 0u; ci < cin; ci++) {\n");
    for v in 0..tiles / 4 {
        let _ = writeln!(s, "        let v{v} = vws[vb + ci * tq + {v}u];");
    }
    if subgroups {
        for r in 0..quads / 8 {
            let _ = writeln!(
                s,
                "        let um{r} = vec4<f32>(wts[ub + ci * nq + myq{r}]);"
            );
        }
    }
    for c in 0..quads {
        if subgroups {
            let _ = writeln!(
                s,
                "        let w{c} = subgroupShuffle(um{}, {}u);",
                c / 8,
                c % 8
            );
        } else {
            let _ = writeln!(
                s,
                "        let w{c} = vec4<f32>(wts[ub + ci * nq + min(qb + {c}u, last)]);"
            );
        }
    }
    for j in 0..tiles {
        for c in 0..quads {
            let _ = writeln!(
                s,
                "        a{j}_{c} = a{j}_{c} + w{c} * v{}[{}];",
                j / 4,
                j % 4
            );
        }
    }
    let _ = writeln!(
        s,
        "    }}
    if (!live) {{ return; }}
    let mb = (pos * p.extra3 + tb * {tiles}u) * nq;"
    );
    for c in 0..quads {
        let _ = writeln!(s, "    if (qb + {c}u < nq) {{");
        for j in 0..tiles {
            let _ = writeln!(s, "        mws[mb + {j}u * nq + qb + {c}u] = a{j}_{c};");
        }
        s.push_str("    }\n");
    }
    s.push_str("}\n");
}

/// Stage 3: per tile and filter quad, Y = bias + Aᵀ·M·A, activation, stores of the outputs
/// inside the region.
fn push_output_transform(s: &mut String, k: &Conv2dWinograd) {
    let (m, n, t) = (k.m, k.n(), k.transform());
    let _ = writeln!(
        s,
        "
@compute @workgroup_size(64, 1, 1)
fn output_transform(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let id = gid.x + gid.y * nwg.x * 64u;
    let row = id / p.extra5;
    if (row >= p.extra1) {{ return; }}
    let col = id % p.extra5;
    let q = gid.z;
    let nq = p.extra4;
    let t = row * p.extra2 + col;
    let step = p.extra3 * nq;
    let base = t * nq + q;"
    );
    for pos in 0..n * n {
        let _ = writeln!(s, "    let m{pos} = mws[{pos}u * step + base];");
    }
    // s = Aᵀ·M (rows), per column j.
    for i in 0..m {
        for j in 0..n {
            let terms: Vec<String> = (0..n).map(|r| format!("m{}", r * n + j)).collect();
            let _ = writeln!(s, "    let s{i}_{j} = {};", combination(t.at[i], &terms));
        }
    }
    let _ = writeln!(
        s,
        "    let bias = vec4<f32>(wts[{}u * p.cin_g * nq + q]);",
        n * n
    );
    for i in 0..m {
        for j in 0..m {
            let terms: Vec<String> = (0..n).map(|c| format!("s{i}_{c}")).collect();
            let _ = writeln!(
                s,
                "    let y{i}{j} = bias + ({});",
                combination(t.at[j], &terms)
            );
        }
    }
    let _ = writeln!(
        s,
        "    // The tile on the map's grid; which of its rows and columns lie inside the region.
    let oy = (p.ry0 / {m} * {m}) + {m} * i32(p.extra0 + row);
    let ox = (p.rx0 / {m} * {m}) + {m} * i32(col);
    let plane = p.out_h * p.out_w;
    let o = (oy - p.out_y0) * i32(p.out_w) + (ox - p.out_x0);"
    );
    for i in 0..m {
        let _ = writeln!(
            s,
            "    let in_y{i} = oy + {i} >= p.ry0 && oy + {i} < p.ry0 + i32(p.rh);"
        );
        let _ = writeln!(
            s,
            "    let in_x{i} = ox + {i} >= p.rx0 && ox + {i} < p.rx0 + i32(p.rw);"
        );
    }
    s.push_str(
        "    for (var l = 0u; l < 4u; l++) {
        let f = q * 4u + l;
        if (f >= p.filters) { break; }
        let at = i32((p.out_c_off + f) * plane) + o;
",
    );
    for i in 0..m {
        for j in 0..m {
            let _ = writeln!(
                s,
                "        if (in_y{i} && in_x{j}) {{ dst[at + {i} * i32(p.out_w) + {j}] = Store(activate(y{i}{j}[l], ACT)); }}"
            );
        }
    }
    s.push_str("    }\n}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Y = Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A equals the direct correlation exactly on integers (F(4×4):
    /// weights multiples of 9), computed in f32 as the kernel does.
    #[test]
    fn transforms_give_the_direct_convolution_exactly_on_integers() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % 9) as f32 - 4.0
        };
        for (m, t, scale) in [(2usize, &F2, 1.0f32), (4, &F4, 9.0)] {
            let n = m + 2;
            for _ in 0..200 {
                let g: Vec<f32> = (0..9).map(|_| scale * next()).collect();
                let d: Vec<f32> = (0..n * n).map(|_| next()).collect();
                let u = transform_filter(m, &g);
                let mul = |a: &[&[f64]], b: &[f32], rows: usize| -> Vec<f32> {
                    // a (rows×n) · b (n×n), then · aᵀ.
                    let mut t1 = vec![0f32; rows * n];
                    for i in 0..rows {
                        for j in 0..n {
                            t1[i * n + j] = (0..n).map(|k| a[i][k] as f32 * b[k * n + j]).sum();
                        }
                    }
                    let mut t2 = vec![0f32; rows * rows];
                    for i in 0..rows {
                        for j in 0..rows {
                            t2[i * rows + j] = (0..n).map(|k| t1[i * n + k] * a[j][k] as f32).sum();
                        }
                    }
                    t2
                };
                let v = mul(t.bt, &d, n);
                let prod: Vec<f32> = u.iter().zip(&v).map(|(a, b)| a * b).collect();
                let y = mul(t.at, &prod, m);
                for oy in 0..m {
                    for ox in 0..m {
                        let direct: f32 = (0..3)
                            .flat_map(|ky| (0..3).map(move |kx| (ky, kx)))
                            .map(|(ky, kx)| g[ky * 3 + kx] * d[(oy + ky) * n + ox + kx])
                            .sum();
                        assert_eq!(y[oy * m + ox], direct, "F({m}x{m})");
                    }
                }
            }
        }
    }

    #[test]
    fn combinations_skip_zeros_and_sign_ones() {
        let terms: Vec<String> = (0..4).map(|i| format!("x{i}")).collect();
        assert_eq!(combination(&[1.0, 0.0, -1.0, 0.0], &terms), "x0 - x2");
        assert_eq!(
            combination(&[0.0, -2.0, -1.0, 2.0], &terms),
            "-2.0 * x1 - x2 + 2.0 * x3"
        );
        assert_eq!(combination(&[0.0; 4], &terms), "0.0");
    }
}
