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
    // Only the window's cells inside the true map: a window far larger than the map (Darknet pads
    // by size − 1) costs what the map holds, not size² steps.
    let y0 = oy * s - off;
    let x0 = ox * s - off;
    let ky0 = max(0, -y0);
    let ky1 = min(i32(p.k), p.map_h - y0);
    let kx0 = max(0, -x0);
    let kx1 = min(i32(p.k), p.map_w - x0);
    for (var ky = ky0; ky < ky1; ky++) {
        let iy = y0 + ky;
        let rbase = i32(c * p.in_h + u32(iy - p.in_y0)) * i32(p.in_w) - p.in_x0;
        for (var kx = kx0; kx < kx1; kx++) {
            let v = f32(src[rbase + x0 + kx]);
            if (v > m) { m = v; }
        }
    }
    dst[(p.out_c_off + c) * p.out_h * p.out_w + u32(oy - p.out_y0) * p.out_w + u32(ox - p.out_x0)] = Store(m);
}
