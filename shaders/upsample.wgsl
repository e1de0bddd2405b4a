// Nearest-neighbour upsampling over a region: out(y, x) = scale · in(y / stride, x / stride).
// `alpha` carries the scale.

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
    let v = f32(src[i32(c * p.in_h + u32(oy / s - p.in_y0)) * i32(p.in_w) + (ox / s - p.in_x0)]);
    dst[(p.out_c_off + c) * p.out_h * p.out_w + u32(oy - p.out_y0) * p.out_w + u32(ox - p.out_x0)] = Store(p.alpha * v);
}
