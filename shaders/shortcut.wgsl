// Darknet shortcut on full maps: out = prev; where the maps overlap (channels < min, positions on the
// sample grid) out = alpha·prev + beta·from (from subsampled by `stride`); then the activation.
// Binding 1 = prev (the output shape), binding 2 = from. extra0..5 = from's c, h, w, stride, sample.

// The activation, fixed per pipeline (the branches on it fold away).
override ACT: u32 = 0u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> src: array<Store>;
@group(0) @binding(2) var<storage, read_write> add: array<Store>;
@group(0) @binding(3) var<storage, read_write> dst: array<Store>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = gid.x;
    let y = gid.y;
    let c = gid.z;
    if (x >= p.in_w || y >= p.in_h || c >= p.in_c) { return; }
    let fc = p.extra0;
    let fh = p.extra1;
    let fw = p.extra2;
    let stride = p.extra3;
    let sample = p.extra4;
    let i = (c * p.in_h + y) * p.in_w + x;
    var v = f32(src[i]);
    let xi = x / sample;
    let yj = y / sample;
    if (c < min(p.in_c, fc) && x % sample == 0u && y % sample == 0u && xi < min(p.in_w, fw) && yj < min(p.in_h, fh)) {
        v = p.alpha * v + p.beta * f32(add[xi * stride + fw * (yj * stride + fh * c)]);
    }
    dst[p.out_c_off * p.out_h * p.out_w + i] = Store(activate(v, ACT));
}
