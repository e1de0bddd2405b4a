// Strided spatial slice over a region: out(c, y, x) = in(c, y0 + y·sy, x0 + x·sx).
// extra0..3 = y0, x0, sy, sx.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.rw || gid.y >= p.rh || gid.z >= p.in_c) { return; }
    let c = gid.z;
    let oy = p.ry0 + i32(gid.y);
    let ox = p.rx0 + i32(gid.x);
    let iy = i32(p.extra0) + oy * i32(p.extra2) - p.in_y0;
    let ix = i32(p.extra1) + ox * i32(p.extra3) - p.in_x0;
    let v = src[i32(c * p.in_h) * i32(p.in_w) + iy * i32(p.in_w) + ix];
    dst[(p.out_c_off + c) * p.out_h * p.out_w + u32(oy - p.out_y0) * p.out_w + u32(ox - p.out_x0)] = v;
}
