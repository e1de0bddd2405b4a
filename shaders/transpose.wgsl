// A C×H×W map as H·W rows of C values: dst[q·C + c] = src[c·H·W + q] (ONNX's [1, C, H·W] transposed
// to [1, H·W, C], as detection heads lay out their boxes). Invocations are numbered linearly over x
// and y (64 per workgroup along x), one output element each.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    let hw = p.in_h * p.in_w;
    if (i >= p.in_c * hw) { return; }
    let q = i / p.in_c;
    let c = i % p.in_c;
    dst[i] = src[c * hw + q];
}
