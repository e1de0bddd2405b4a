// Grouped / depthwise convolution (filters per group not a multiple of 4): each invocation computes one
// output channel × 4 neighbouring output pixels. Weights [filters][cin_g][k][k] then biases[filters],
// plain f32. Same order of operations as the CPU reference.

// The activation, fixed per pipeline (the branches on it fold away).
override ACT: u32 = 0u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(2) var<storage, read_write> wts: array<Weight>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let px = gid.x * 4u;
    if (px >= p.rw || gid.y >= p.rh) { return; }
    let f = gid.z;
    if (f >= p.filters) { return; }
    let g = f / p.cout_g;
    let oy = p.ry0 + i32(gid.y);
    let ox = p.rx0 + i32(px);
    let s = i32(p.stride);
    let pad = i32(p.pad);
    let k = p.k;
    let bias = f32(wts[p.filters * p.cin_g * k * k + f]);
    var a = vec4<f32>(bias);
    let n = min(4u, p.rw - px);
    let ix_base = ox * s - pad;
    for (var ci = 0u; ci < p.cin_g; ci++) {
        let cbuf = g * p.cin_g + ci;
        let wrow = (f * p.cin_g + ci) * k * k;
        for (var ky = 0u; ky < k; ky++) {
            let iy = oy * s - pad + i32(ky);
            if (iy < 0 || iy >= p.map_h) { continue; }
            let rbase = i32((cbuf * p.in_h) + u32(iy - p.in_y0)) * i32(p.in_w) - p.in_x0;
            for (var kx = 0u; kx < k; kx++) {
                let w = f32(wts[wrow + ky * k + kx]);
                for (var j = 0u; j < n; j++) {
                    let ix = ix_base + i32(kx) + i32(j) * s;
                    if (ix >= 0 && ix < p.map_w) { a[j] = a[j] + w * f32(src[rbase + ix]); }
                }
            }
        }
    }
    let o = (p.out_c_off + f) * p.out_h * p.out_w + u32(oy - p.out_y0) * p.out_w + u32(ox - p.out_x0);
    for (var j = 0u; j < n; j++) {
        dst[o + j] = Store(activate(a[j], ACT));
    }
}
