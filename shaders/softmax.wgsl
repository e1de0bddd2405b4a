// Darknet [softmax] over `extra0` equal consecutive slices (one invocation per slice); `alpha` is the
// temperature. mexp(x/t − max/t), normalized (same operations as the CPU reference; each exponential
// is computed again for the division rather than stored, so it is rounded only once, at the store).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = gid.x;
    let groups = p.extra0;
    if (g >= groups) { return; }
    let n = p.in_c * p.in_h * p.in_w / groups;
    let base = g * n;
    let t = p.alpha;
    var largest = -3.40282347e+38;
    for (var i = 0u; i < n; i++) {
        let v = f32(src[base + i]);
        if (v > largest) { largest = v; }
    }
    var sum = 0.0;
    for (var i = 0u; i < n; i++) {
        sum = sum + mexp(f32(src[base + i]) / t - largest / t);
    }
    for (var i = 0u; i < n; i++) {
        dst[base + i] = Store(mexp(f32(src[base + i]) / t - largest / t) / sum);
    }
}
