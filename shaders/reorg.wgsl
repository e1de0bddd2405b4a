// Darknet reorg (reorg_cpu with forward = 0) on full maps: output element n (flat index over the input's
// C×H×W) reads the input buffer viewed as (C/s², H·s, W·s). One invocation per element of one input row
// position: x = i, y = j, z = k (input channel).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let j = gid.y;
    let k = gid.z;
    if (i >= p.in_w || j >= p.in_h || k >= p.in_c) { return; }
    let s = p.stride;
    let out_c = p.in_c / (s * s);
    let c2 = k % out_c;
    let offset = k / out_c;
    let w2 = i * s + offset % s;
    let h2 = j * s + offset / s;
    let src_i = w2 + p.in_w * s * (h2 + p.in_h * s * c2);
    dst[p.out_c_off * p.out_h * p.out_w + (k * p.in_h + j) * p.in_w + i] = src[src_i];
}
