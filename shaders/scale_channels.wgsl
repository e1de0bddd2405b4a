// Scale channels on full maps: dst[c, y, x] = src[c, y, x] · scale[c] (a squeeze-and-excitation
// block's product). Binding 1 = the map, binding 2 = the C×1×1 scale map.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(2) var<storage, read_write> scale: array<Store>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = gid.x;
    let y = gid.y;
    let c = gid.z;
    if (x >= p.in_w || y >= p.in_h || c >= p.in_c) { return; }
    let i = (c * p.in_h + y) * p.in_w + x;
    dst[i] = Store(f32(src[i]) * f32(scale[c]));
}
