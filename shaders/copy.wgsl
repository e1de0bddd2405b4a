// Copy a whole map into a channel offset of another (route): dst[extra1 + i] = src[i] for i < extra0.
// Invocations are numbered linearly over x and y (64 per workgroup along x).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.extra0) { return; }
    dst[p.extra1 + i] = src[i];
}
