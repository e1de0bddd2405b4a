// Average pool over k×k windows (ONNX AveragePool) over a region: window rows o·stride − pad_top
// + 0..k. The sum runs over the window's cells inside the true map, in row-major order; it is divided
// by that count, or, with count_include_pad (extra4 = 1), by the cells inside the padded map
// (−pad_top .. map_h + pad_bottom). extra0..3 = pad top, left, bottom, right. One output per
// invocation.

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
    let k = i32(p.k);
    let y0 = oy * s - i32(p.extra0);
    let x0 = ox * s - i32(p.extra1);
    let ky0 = max(0, -y0);
    let ky1 = min(k, p.map_h - y0);
    let kx0 = max(0, -x0);
    let kx1 = min(k, p.map_w - x0);
    var sum = 0.0;
    for (var ky = ky0; ky < ky1; ky++) {
        let rbase = i32(c * p.in_h + u32(y0 + ky - p.in_y0)) * i32(p.in_w) - p.in_x0;
        for (var kx = kx0; kx < kx1; kx++) {
            sum = sum + f32(src[rbase + x0 + kx]);
        }
    }
    var rows = max(ky1 - ky0, 0);
    var cols = max(kx1 - kx0, 0);
    if (p.extra4 == 1u) {
        let top = -i32(p.extra0);
        let left = -i32(p.extra1);
        rows = max(min(y0 + k, p.map_h + i32(p.extra2)) - max(y0, top), 0);
        cols = max(min(x0 + k, p.map_w + i32(p.extra3)) - max(x0, left), 0);
    }
    let v = sum / f32(rows * cols);
    dst[(p.out_c_off + c) * p.out_h * p.out_w + u32(oy - p.out_y0) * p.out_w + u32(ox - p.out_x0)] = Store(v);
}
