// Darknet max pool, 2x2 windows at stride 2 with no padding before (the YOLO downsampling pool), four
// neighbouring outputs of one row per invocation (x: the run of 4 in the row, y: the row, z: the
// channel). Each output is max-accumulated exactly as the CPU reference does (start at -FLT_MAX,
// take a cell when it is greater, cells in window order, cells outside the true map never taken),
// on four outputs at once.
// `aligned`: rows of the input binding are whole vec4s and the region's runs start on a vec4: two
// vec4 loads per input row; one vec4 store when the output's are too (extra0 = 1). `main`: any
// region, cell by cell.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store4>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store4>;

// Take `v` where it is greater than `m` and its cell counts.
fn take(m: vec4<f32>, v: vec4<f32>, ok: vec4<bool>) -> vec4<f32> {
    return select(m, v, ok & (v > m));
}

// The four outputs from their input rows (`r0a`, `r0b`: columns 0-3 and 4-7 of the first row;
// `r1a`, `r1b` of the second), columns `ix..ix+8` and rows `iy`, `iy + 1` of the map.
fn pool(r0a: vec4<f32>, r0b: vec4<f32>, r1a: vec4<f32>, r1b: vec4<f32>, ix: i32, iy: i32) -> vec4<f32> {
    let cols0 = vec4<i32>(ix, ix + 2, ix + 4, ix + 6);
    let ok0 = cols0 < vec4<i32>(p.map_w);
    let ok1 = (cols0 + vec4<i32>(1)) < vec4<i32>(p.map_w);
    let okb = vec4<bool>(iy + 1 < p.map_h);
    var m = vec4<f32>(-3.40282347e+38);
    m = take(m, vec4<f32>(r0a.x, r0a.z, r0b.x, r0b.z), ok0);
    m = take(m, vec4<f32>(r0a.y, r0a.w, r0b.y, r0b.w), ok1);
    m = take(m, vec4<f32>(r1a.x, r1a.z, r1b.x, r1b.z), ok0 & okb);
    m = take(m, vec4<f32>(r1a.y, r1a.w, r1b.y, r1b.w), ok1 & okb);
    return m;
}

// The run of 4 outputs of invocation `gid`: its first column in the region, how many of the 4
// are in it, its output row and column in the map, and the input element of its first cell.
struct Run { j: u32, n: u32, oy: i32, ox: i32, e: u32 }

fn run_of(gid: vec3<u32>) -> Run {
    let j = gid.x * 4u;
    let oy = p.ry0 + i32(gid.y);
    let ox = p.rx0 + i32(j);
    let e = (gid.z * p.in_h + u32(2 * oy - p.in_y0)) * p.in_w + u32(2 * ox - p.in_x0);
    return Run(j, min(4u, p.rw - j), oy, ox, e);
}

// The output element of `r`'s first output, channel `c`.
fn out_at(r: Run, c: u32) -> u32 {
    return (p.out_c_off + c) * p.out_h * p.out_w + u32(r.oy - p.out_y0) * p.out_w + u32(r.ox - p.out_x0);
}

@compute @workgroup_size(16, 4, 1)
fn aligned(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x * 4u >= p.rw || gid.y >= p.rh) { return; }
    let r = run_of(gid);
    let iy = 2 * r.oy;
    let v = r.e >> 2u;
    let w = (r.e + select(0u, p.in_w, iy + 1 < p.map_h)) >> 2u;
    let m = pool(vec4<f32>(src[v]), vec4<f32>(src[v + 1u]), vec4<f32>(src[w]), vec4<f32>(src[w + 1u]), 2 * r.ox, iy);
    let o = out_at(r, gid.z);
    if (r.n == 4u && p.extra0 == 1u) {
        dst[o >> 2u] = Store4(m);
    } else {
        for (var k = 0u; k < r.n; k++) {
            let q = o + k;
            dst[q >> 2u][q & 3u] = Store(m[k]);
        }
    }
}

fn cell(e: u32) -> f32 {
    return f32(src[e >> 2u][e & 3u]);
}

@compute @workgroup_size(16, 4, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x * 4u >= p.rw || gid.y >= p.rh) { return; }
    let r = run_of(gid);
    let iy = 2 * r.oy;
    let ix = 2 * r.ox;
    let e = r.e;
    let f = e + select(0u, p.in_w, iy + 1 < p.map_h);
    // Cells past the binding's row are read clamped to its last cell (and only feed outputs past
    // the region or cells outside the map, which are never taken).
    let last = u32(i32(p.in_w) - 1 - (ix - p.in_x0));
    let m = pool(
        vec4<f32>(cell(e), cell(e + min(1u, last)), cell(e + min(2u, last)), cell(e + min(3u, last))),
        vec4<f32>(cell(e + min(4u, last)), cell(e + min(5u, last)), cell(e + min(6u, last)), cell(e + min(7u, last))),
        vec4<f32>(cell(f), cell(f + min(1u, last)), cell(f + min(2u, last)), cell(f + min(3u, last))),
        vec4<f32>(cell(f + min(4u, last)), cell(f + min(5u, last)), cell(f + min(6u, last)), cell(f + min(7u, last))),
        ix,
        iy,
    );
    let o = out_at(r, gid.z);
    for (var k = 0u; k < r.n; k++) {
        let q = o + k;
        dst[q >> 2u][q & 3u] = Store(m[k]);
    }
}
