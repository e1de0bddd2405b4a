// Shared by every kernel (prepended at build time).
//
// Region convention: a kernel reads an input buffer that holds a rectangle of its input map (rows
// `in_y0..in_y0+in_h`, columns `in_x0..in_x0+in_w`, all channels) and writes the output rectangle
// `ry0..ry0+rh` × `rx0..rx0+rw` (global output-map coordinates) into an output buffer whose (0,0)
// is global (out_y0, out_x0). Zero padding (or "never wins" for pooling) applies only outside the
// true map `0..map_h` × `0..map_w`.
//
// Every storage binding is declared read_write, inputs too: maps live side by side in one arena buffer,
// and WebGPU lets one buffer be bound several times in a dispatch only with the same (storage) usage.

struct Params {
    in_c: u32, in_h: u32, in_w: u32, cin_g: u32,
    in_y0: i32, in_x0: i32, map_h: i32, map_w: i32,
    out_c: u32, out_h: u32, out_w: u32, out_c_off: u32,
    out_y0: i32, out_x0: i32, ry0: i32, rx0: i32,
    rh: u32, rw: u32, filters: u32, cout_g: u32,
    k: u32, stride: u32, pad: u32, act: u32,
    alpha: f32, beta: f32, extra0: u32, extra1: u32,
    extra2: u32, extra3: u32, extra4: u32, extra5: u32,
}

const ACT_LINEAR: u32 = 0u;
const ACT_LEAKY: u32 = 1u;
const ACT_RELU: u32 = 2u;
const ACT_LOGISTIC: u32 = 3u;
const ACT_MISH: u32 = 4u;
const ACT_SWISH: u32 = 5u;
const ACT_HARD_SIGMOID: u32 = 6u;
const ACT_HARD_SWISH: u32 = 7u;
const ACT_LEAKY_RELU: u32 = 8u;
const ACT_CLIP: u32 = 9u;
const ACT_HARD_SIGMOID_OF: u32 = 10u;

// A parameterized activation's parameters as f32 bits, fixed per pipeline (LeakyRelu: alpha; Clip:
// lo, hi; HardSigmoid: alpha, beta).
override ACT_A: u32 = 0u;
override ACT_B: u32 = 0u;

// e^x with exactly the operations of `mafat::network::exp` (the CPU reference), so both give the same
// bits: Cody-Waite reduction, degree-7 Taylor polynomial, exact scaling by 2^n.
fn mexp(x: f32) -> f32 {
    if (x < -87.0) { return 0.0; }
    if (x > 88.0) { return bitcast<f32>(0x7f800000u); }
    let n = floor(x * 1.44269504 + 0.5);
    let r = (x - n * 0.69314575) - n * 1.4286068e-6;
    var p = 1.984127011e-04;
    p = p * r + 1.388888923e-03;
    p = p * r + 8.333333768e-03;
    p = p * r + 4.166666791e-02;
    p = p * r + 1.666666716e-01;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let ni = i32(n);
    let half = ni / 2;
    return p * bitcast<f32>(u32(half + 127) << 23u) * bitcast<f32>(u32(ni - half + 127) << 23u);
}

// clamp(x/6 + 0.5, 0, 1) as x·(1/6 in f32) + 0.5, with the CPU reference's comparisons.
fn hard_sigmoid(x: f32) -> f32 {
    let y = x * bitcast<f32>(0x3e2aaaabu) + 0.5;
    if (y < 0.0) { return 0.0; }
    if (y > 1.0) { return 1.0; }
    return y;
}

fn activate(x: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return select(0.1 * x, x, x > 0.0); }
        case 2u: { return select(0.0, x, x > 0.0); }
        case 3u: { return 1.0 / (1.0 + mexp(-x)); }
        case 4u: {
            // x·tanh(softplus(x)) = x·n/(n + 2), n = e^x·(e^x + 2).
            if (x > 20.0) { return x; }
            let e = mexp(x);
            let n = e * (e + 2.0);
            return x * (n / (n + 2.0));
        }
        case 5u: { return x * (1.0 / (1.0 + mexp(-x))); }
        case 6u: { return hard_sigmoid(x); }
        case 7u: { return x * hard_sigmoid(x); }
        case 8u: { return select(bitcast<f32>(ACT_A) * x, x, x > 0.0); }
        case 9u: { return min(max(x, bitcast<f32>(ACT_A)), bitcast<f32>(ACT_B)); }
        case 10u: {
            let y = bitcast<f32>(ACT_A) * x + bitcast<f32>(ACT_B);
            if (y < 0.0) { return 0.0; }
            if (y > 1.0) { return 1.0; }
            return y;
        }
        default: { return x; }
    }
}
