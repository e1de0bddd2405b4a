// Implicit-GEMM convolution (src/kernel/conv2d_gemm.rs): a 64-pixel x 64-filter output tile per
// workgroup of 16x16 invocations, each 4 pixels x 4 filters; K = cin*k*k staged through workgroup
// memory 16 at a time. Pixels are numbered row-major over the region computed; workgroups run over
// x and y (linearly) for pixel tiles, over z for filter tiles.

// The activation, fixed per pipeline (the branches on it fold away).
override ACT: u32 = 0u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(2) var<storage, read_write> wts: array<Weight4>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

// The K slice: 16 rows of 64 pixels (inputs), 16 rows of 16 filter quads (weights).
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let tid = lid.y * 16u + lid.x;
    let plane = p.rh * p.rw;
    let m0 = (wid.x + wid.y * nwg.x) * 64u;
    let nq = (p.filters + 3u) / 4u;
    let q0 = wid.z * 16u;
    let kk = p.k * p.k;
    let klen = p.cin_g * kk;
    let s = i32(p.stride);
    let pad = i32(p.pad);

    // The pixel this invocation gathers inputs for (column tid % 64 of the input slice).
    let gm = m0 + tid % 64u;
    let gvalid = gm < plane;
    let gq = min(gm, plane - 1u);
    let iy0 = (p.ry0 + i32(gq / p.rw)) * s - pad;
    let ix0 = (p.rx0 + i32(gq % p.rw)) * s - pad;
    let grow = tid / 64u;

    // The outputs it computes: pixels m0 + 4*ly .. +3, filter quad q0 + lx.
    let q = q0 + lid.x;
    let bias = vec4<f32>(wts[klen * nq + min(q, nq - 1u)]);
    var acc0 = bias;
    var acc1 = bias;
    var acc2 = bias;
    var acc3 = bias;

    for (var k0 = 0u; k0 < klen; k0 += 16u) {
        // Inputs: rows grow, grow + 4, grow + 8, grow + 12 of the slice at this column.
        for (var j = 0u; j < 4u; j++) {
            let r = grow + 4u * j;
            let kidx = k0 + r;
            var v = 0.0;
            if (gvalid && kidx < klen) {
                let ci = kidx / kk;
                let t = kidx % kk;
                let iy = iy0 + i32(t / p.k);
                let ix = ix0 + i32(t % p.k);
                if (iy >= 0 && iy < p.map_h && ix >= 0 && ix < p.map_w) {
                    v = f32(src[(ci * p.in_h + u32(iy - p.in_y0)) * p.in_w + u32(ix - p.in_x0)]);
                }
            }
            a_tile[r * 64u + tid % 64u] = v;
        }
        // Weights: row tid / 16, quad tid % 16.
        let wk = k0 + tid / 16u;
        let wq = q0 + tid % 16u;
        var wv = vec4<f32>(0.0);
        if (wk < klen && wq < nq) {
            wv = vec4<f32>(wts[wk * nq + wq]);
        }
        b_tile[tid] = wv;
        workgroupBarrier();
        for (var r = 0u; r < 16u; r++) {
            let b = b_tile[r * 16u + lid.x];
            let a = r * 64u + lid.y * 4u;
            acc0 = acc0 + b * a_tile[a];
            acc1 = acc1 + b * a_tile[a + 1u];
            acc2 = acc2 + b * a_tile[a + 2u];
            acc3 = acc3 + b * a_tile[a + 3u];
        }
        workgroupBarrier();
    }

    if (q >= nq) { return; }
    let oplane = p.out_h * p.out_w;
    var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        if (m >= plane) { break; }
        let oy = p.ry0 + i32(m / p.rw);
        let ox = p.rx0 + i32(m % p.rw);
        let o = u32(oy - p.out_y0) * p.out_w + u32(ox - p.out_x0);
        for (var l = 0u; l < 4u; l++) {
            let f = q * 4u + l;
            if (f < p.filters) {
                dst[(p.out_c_off + f) * oplane + o] = Store(activate(accs[i][l], ACT));
            }
        }
    }
}
