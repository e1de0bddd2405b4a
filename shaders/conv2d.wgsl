// Convolution with folded batch norm, bias and activation, register-tiled: each invocation computes
// 4 output channels (one vec4 of weights) × 4 neighbouring output pixels of one row. Weights are laid
// out [filters/4][cin_g][k][k] as vec4 over 4 consecutive filters, followed by the biases as vec4s.
// Every output is accumulated in the CPU reference's order: bias, then input channel, kernel row,
// kernel column, skipping taps in the zero padding. Used when groups == 1 or filters-per-group % 4 == 0.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> wts: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let px = gid.x * 4u;
    if (px >= p.rw || gid.y >= p.rh) { return; }
    let f4 = gid.z;
    let f0 = f4 * 4u;
    if (f0 >= p.filters) { return; }
    let g = f0 / p.cout_g;
    let oy = p.ry0 + i32(gid.y);
    let ox = p.rx0 + i32(px);
    let s = i32(p.stride);
    let pad = i32(p.pad);
    let k = p.k;
    let nq = (p.filters + 3u) / 4u;
    let bias = wts[nq * p.cin_g * k * k + f4];
    var a0 = bias;
    var a1 = bias;
    var a2 = bias;
    var a3 = bias;
    // Which of the 4 pixels exist in the region.
    let n = min(4u, p.rw - px);
    let ix_base = ox * s - pad;
    for (var ci = 0u; ci < p.cin_g; ci++) {
        let cbuf = g * p.cin_g + ci;
        let wrow = (f4 * p.cin_g + ci) * k * k;
        for (var ky = 0u; ky < k; ky++) {
            let iy = oy * s - pad + i32(ky);
            if (iy < 0 || iy >= p.map_h) { continue; }
            let rbase = i32((cbuf * p.in_h) + u32(iy - p.in_y0)) * i32(p.in_w) - p.in_x0;
            for (var kx = 0u; kx < k; kx++) {
                let w = wts[wrow + ky * k + kx];
                let ix = ix_base + i32(kx);
                if (ix >= 0 && ix < p.map_w) { a0 = a0 + w * src[rbase + ix]; }
                let ix1 = ix + s;
                if (n > 1u && ix1 >= 0 && ix1 < p.map_w) { a1 = a1 + w * src[rbase + ix1]; }
                let ix2 = ix1 + s;
                if (n > 2u && ix2 >= 0 && ix2 < p.map_w) { a2 = a2 + w * src[rbase + ix2]; }
                let ix3 = ix2 + s;
                if (n > 3u && ix3 >= 0 && ix3 < p.map_w) { a3 = a3 + w * src[rbase + ix3]; }
            }
        }
    }
    let plane = p.out_h * p.out_w;
    let obase = u32(oy - p.out_y0) * p.out_w + u32(ox - p.out_x0);
    for (var c = 0u; c < 4u; c++) {
        let f = f0 + c;
        if (f >= p.filters) { break; }
        let o = (p.out_c_off + f) * plane + obase;
        dst[o] = activate(a0[c], p.act);
        if (n > 1u) { dst[o + 1u] = activate(a1[c], p.act); }
        if (n > 2u) { dst[o + 2u] = activate(a2[c], p.act); }
        if (n > 3u) { dst[o + 3u] = activate(a3[c], p.act); }
    }
}
