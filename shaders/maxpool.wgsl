// Darknet max pool over a region: window rows o·stride − pad_before + 0..k (pad = pad_before here);
// cells outside the true map never win; the start value is −FLT_MAX. One output element per invocation.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.rw || gid.y >= p.rh || gid.z >= p.in_c) { return; }
    let c = gid.z;
    let oy = p.ry0 + i32(gid.y);
    let ox = p.rx0 + i32(gid.x);
    let s = i32(p.stride);
    let off = i32(p.pad);
    var m = -3.40282347e+38;
    for (var ky = 0u; ky < p.k; ky++) {
        let iy = oy * s + i32(ky) - off;
        if (iy < 0 || iy >= p.map_h) { continue; }
        let rbase = i32(c * p.in_h + u32(iy - p.in_y0)) * i32(p.in_w) - p.in_x0;
        for (var kx = 0u; kx < p.k; kx++) {
            let ix = ox * s + i32(kx) - off;
            if (ix < 0 || ix >= p.map_w) { continue; }
            let v = f32(src[rbase + ix]);
            if (v > m) { m = v; }
        }
    }
    dst[(p.out_c_off + c) * p.out_h * p.out_w + u32(oy - p.out_y0) * p.out_w + u32(ox - p.out_x0)] = Store(m);
}
