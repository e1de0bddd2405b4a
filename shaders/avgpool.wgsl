// Global average pool: one invocation per channel sums the plane in row-major order, then divides.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.in_c) { return; }
    let n = p.in_h * p.in_w;
    var s = 0.0;
    for (var i = 0u; i < n; i++) { s = s + f32(src[c * n + i]); }
    dst[p.out_c_off + c] = Store(s / f32(n));
}
