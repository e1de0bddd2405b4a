// Constant padding over a region: out(c, y, x) = in(c, y − pad_top, x − pad_left) inside the input,
// else the value (alpha). extra0, extra1 = pad top, left. One output element per invocation.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= p.rw || gid.y >= p.rh || gid.z >= p.in_c) { return; }
    let c = gid.z;
    let oy = p.ry0 + i32(gid.y);
    let ox = p.rx0 + i32(gid.x);
    let iy = oy - i32(p.extra0);
    let ix = ox - i32(p.extra1);
    var v = p.alpha;
    if (iy >= 0 && iy < p.map_h && ix >= 0 && ix < p.map_w) {
        v = f32(src[i32(c * p.in_h + u32(iy - p.in_y0)) * i32(p.in_w) + ix - p.in_x0]);
    }
    dst[(p.out_c_off + c) * p.out_h * p.out_w + u32(oy - p.out_y0) * p.out_w + u32(ox - p.out_x0)] = Store(v);
}
