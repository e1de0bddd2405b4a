//! CPU reference executor: plain, obviously correct f32 code — the oracle for every GPU path.
//!
//! [`forward_at`] with [`Precision::F16`] is the oracle for runs that store maps and weights as
//! f16: the same f32 arithmetic, with the weights, biases and input rounded to f16 and every layer's
//! output rounded to f16 where the GPU stores it (nearest, ties to even). Detection heads run on the
//! CPU after readback in both paths, on the stored map, so their outputs are not rounded.
//!
//! Every convolution output is computed in one fixed order: start from the bias, then add
//! `weight·input` for each input channel, kernel row and kernel column, in ascending order, skipping
//! taps that fall in the zero padding. Plain `a + w*x` (never fused multiply-add). Work is split across
//! threads by output channel, which does not change any element's order of operations.

use crate::error::{Error, Result};
use crate::model::weights::{ConvParams, Weights};
use crate::network::{Conv, LayerKind, MaxPool, Network, Region, Shape, Source, Yolo};
use crate::precision::Precision;
use crate::tensor::Tensor;

/// Run `f(index, plane)` over the `plane`-sized chunks of `out` on all cores.
fn par_planes(out: &mut [f32], plane: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if plane == 0 || out.is_empty() {
        return;
    }
    let n = out.len() / plane;
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(n);
    if threads <= 1 {
        for (i, p) in out.chunks_mut(plane).enumerate() {
            f(i, p);
        }
        return;
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        for (t, chunk) in out.chunks_mut(per * plane).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (j, p) in chunk.chunks_mut(plane).enumerate() {
                    f(t * per + j, p);
                }
            });
        }
    });
}

/// Output positions `o` in `0..out_len` whose tap `o·stride + k − pad` lies inside `0..in_len`.
fn valid(
    out_len: usize,
    stride: usize,
    k: usize,
    pad: usize,
    in_len: usize,
) -> std::ops::Range<usize> {
    let lo = if pad > k {
        (pad - k).div_ceil(stride)
    } else {
        0
    };
    let hi = if in_len + pad > k {
        ((in_len - 1 + pad - k) / stride + 1).min(out_len)
    } else {
        0
    };
    lo..hi.max(lo)
}

/// Convolution (any kernel, stride, symmetric zero padding, groups) with folded batch norm, bias and
/// activation.
pub fn conv2d(x: &Tensor, conv: &Conv, p: &ConvParams) -> Tensor {
    let s = x.shape;
    let (k, st, pad) = (conv.size, conv.stride, conv.padding);
    let oh = (s.h + 2 * pad - k) / st + 1;
    let ow = (s.w + 2 * pad - k) / st + 1;
    let cin_g = s.c / conv.groups;
    let cout_g = conv.filters / conv.groups;
    let mut out = vec![0.0f32; conv.filters * oh * ow];
    // Rows per block so a block of the output plane stays in cache; the order of operations on any
    // one element is unchanged by blocking.
    let block = (8192 / ow.max(1)).max(1);
    par_planes(&mut out, oh * ow, |f, plane| {
        let g = f / cout_g;
        plane.fill(p.bias[f]);
        for y0 in (0..oh).step_by(block) {
            let y1 = (y0 + block).min(oh);
            for cl in 0..cin_g {
                let inp = x.plane(g * cin_g + cl);
                for ky in 0..k {
                    let rows = valid(oh, st, ky, pad, s.h);
                    let (ya, yb) = (rows.start.max(y0), rows.end.min(y1));
                    for kx in 0..k {
                        let wv = p.weights[((f * cin_g + cl) * k + ky) * k + kx];
                        let cols = valid(ow, st, kx, pad, s.w);
                        if cols.is_empty() {
                            continue;
                        }
                        for oy in ya..yb {
                            let iy = oy * st + ky - pad;
                            let irow = &inp[iy * s.w..(iy + 1) * s.w];
                            let orow = &mut plane[oy * ow + cols.start..oy * ow + cols.end];
                            let ix0 = cols.start * st + kx - pad;
                            if st == 1 {
                                for (o, &i) in orow.iter_mut().zip(&irow[ix0..]) {
                                    *o += wv * i;
                                }
                            } else {
                                for (j, o) in orow.iter_mut().enumerate() {
                                    *o += wv * irow[ix0 + j * st];
                                }
                            }
                        }
                    }
                }
            }
        }
        if conv.activation != crate::network::Activation::Linear {
            for v in plane.iter_mut() {
                *v = conv.activation.apply(*v);
            }
        }
    });
    Tensor::from_vec(Shape::new(conv.filters, oh, ow), out)
}

/// Darknet max pool: window at `o·stride − padding/2`, cells outside the map never win, start value
/// `−FLT_MAX`.
pub fn maxpool(x: &Tensor, mp: &MaxPool) -> Tensor {
    let s = x.shape;
    let oh = (s.h + mp.padding - mp.size) / mp.stride + 1;
    let ow = (s.w + mp.padding - mp.size) / mp.stride + 1;
    let off = mp.pad_before() as isize;
    let mut out = vec![0.0f32; s.c * oh * ow];
    par_planes(&mut out, oh * ow, |c, plane| {
        let inp = x.plane(c);
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = -f32::MAX;
                // The window's cells inside the map only (in the same order as the whole window).
                let (y0, x0) = (
                    (oy * mp.stride) as isize - off,
                    (ox * mp.stride) as isize - off,
                );
                let rows = (-y0).max(0)..(s.h as isize - y0).min(mp.size as isize);
                let cols = (-x0).max(0)..(s.w as isize - x0).min(mp.size as isize);
                for ky in rows {
                    let row = &inp[(y0 + ky) as usize * s.w..];
                    for kx in cols.clone() {
                        let v = row[(x0 + kx) as usize];
                        if v > m {
                            m = v;
                        }
                    }
                }
                plane[oy * ow + ox] = m;
            }
        }
    });
    Tensor::from_vec(Shape::new(s.c, oh, ow), out)
}

/// Global average pool: sum in row-major order, then divide by H·W.
pub fn avgpool(x: &Tensor) -> Tensor {
    let s = x.shape;
    let data = (0..s.c)
        .map(|c| x.plane(c).iter().fold(0.0f32, |a, &v| a + v) / (s.h * s.w) as f32)
        .collect();
    Tensor::from_vec(Shape::new(s.c, 1, 1), data)
}

/// Darknet's `softmax`: `exp(x/t − max/t)`, normalized; applied to `n`-element slices of `data` spaced
/// `stride` apart, starting at `offset`. `exp` is Darknet's (double, rounded to f32) for the region
/// head, which only the CPU runs, and mafat's [`crate::network::exp`] for `[softmax]` layers, which the
/// GPU runs too.
fn softmax_slice(
    data: &mut [f32],
    offset: usize,
    n: usize,
    stride: usize,
    temperature: f32,
    exp: fn(f32) -> f32,
) {
    let idx = |i: usize| offset + i * stride;
    let largest = (0..n).fold(
        -f32::MAX,
        |m, i| if data[idx(i)] > m { data[idx(i)] } else { m },
    );
    let mut sum = 0.0f32;
    for i in 0..n {
        let e = exp(data[idx(i)] / temperature - largest / temperature);
        sum += e;
        data[idx(i)] = e;
    }
    for i in 0..n {
        data[idx(i)] /= sum;
    }
}

/// `[softmax]` layer over `groups` equal consecutive slices.
pub fn softmax(x: &Tensor, groups: usize, temperature: f32) -> Tensor {
    let mut out = x.clone();
    let n = out.data.len() / groups;
    for g in 0..groups {
        softmax_slice(&mut out.data, g * n, n, 1, temperature, crate::network::exp);
    }
    out
}

/// Concatenate along channels.
pub fn route(inputs: &[&Tensor]) -> Tensor {
    let (h, w) = (inputs[0].shape.h, inputs[0].shape.w);
    let c = inputs.iter().map(|t| t.shape.c).sum();
    let mut data = Vec::with_capacity(c * h * w);
    for t in inputs {
        data.extend_from_slice(&t.data);
    }
    Tensor::from_vec(Shape::new(c, h, w), data)
}

/// Nearest-neighbour upsampling: `out[c][y][x] = scale·in[c][y/stride][x/stride]`.
pub fn upsample(x: &Tensor, stride: usize, scale: f32) -> Tensor {
    let s = x.shape;
    let (oh, ow) = (s.h * stride, s.w * stride);
    let mut out = vec![0.0f32; s.c * oh * ow];
    for c in 0..s.c {
        for y in 0..oh {
            for xx in 0..ow {
                out[(c * oh + y) * ow + xx] = scale * x.at(c, y / stride, xx / stride);
            }
        }
    }
    Tensor::from_vec(Shape::new(s.c, oh, ow), out)
}

/// Darknet's `[reorg]` (`reorg_cpu(..., forward = 0)`): output element `n` (the flat index over the
/// input's C×H×W) reads the input buffer viewed as `(C/s², H·s, W·s)`.
pub fn reorg(x: &Tensor, stride: usize) -> Tensor {
    let s = x.shape;
    let out_c = s.c / (stride * stride);
    let mut out = vec![0.0f32; s.len()];
    for k in 0..s.c {
        let c2 = k % out_c;
        let offset = k / out_c;
        for j in 0..s.h {
            for i in 0..s.w {
                let w2 = i * stride + offset % stride;
                let h2 = j * stride + offset / stride;
                let src = w2 + s.w * stride * (h2 + s.h * stride * c2);
                out[(k * s.h + j) * s.w + i] = x.data[src];
            }
        }
    }
    Tensor::from_vec(
        Shape::new(s.c * stride * stride, s.h / stride, s.w / stride),
        out,
    )
}

/// Darknet's `[shortcut]`: `out = a` (the previous layer), then over the channels and positions the two
/// maps share, `out = alpha·out + beta·b` with `b` subsampled (or `out` strided) by the integer size
/// ratio, then `activation` everywhere. With equal shapes: `activation(alpha·a + beta·b)`.
pub fn shortcut(
    a: &Tensor,
    b: &Tensor,
    act: crate::network::Activation,
    alpha: f32,
    beta: f32,
) -> Tensor {
    let (o, f) = (a.shape, b.shape);
    let stride = (f.w / o.w).max(1);
    let sample = (o.w / f.w).max(1);
    let mut out = a.clone();
    for k in 0..o.c.min(f.c) {
        for j in 0..o.h.min(f.h) {
            for i in 0..o.w.min(f.w) {
                let oi = i * sample + o.w * (j * sample + o.h * k);
                let ai = i * stride + f.w * (j * stride + f.h * k);
                out.data[oi] = alpha * out.data[oi] + beta * b.data[ai];
            }
        }
    }
    for v in &mut out.data {
        *v = act.apply(*v);
    }
    out
}

fn logistic(v: &mut [f32]) {
    for x in v {
        *x = crate::network::Activation::Logistic.apply(*x);
    }
}

/// YOLOv2 `[region]` head: logistic on x, y and objectness, softmax (or logistic) over classes.
pub fn region(x: &Tensor, r: &Region) -> Tensor {
    let mut out = x.clone();
    let hw = x.shape.h * x.shape.w;
    let per_box = (r.coords + r.classes + 1) * hw;
    for n in 0..r.num {
        let base = n * per_box;
        logistic(&mut out.data[base..base + 2 * hw]);
        let obj = base + r.coords * hw;
        if !r.background {
            logistic(&mut out.data[obj..obj + hw]);
        }
        let cls = base + (r.coords + 1) * hw;
        if !r.softmax {
            logistic(&mut out.data[cls..cls + r.classes * hw]);
        }
    }
    if r.softmax {
        // Darknet's softmax_cpu over the class scores of every box and cell (still the raw input
        // values here: the loop above left them alone).
        let first = (r.coords + usize::from(!r.background)) * hw;
        let n = r.classes + usize::from(r.background);
        for b in 0..r.num {
            for loc in 0..hw {
                softmax_slice(&mut out.data, first + b * per_box + loc, n, hw, 1.0, |x| {
                    (x as f64).exp() as f32
                });
            }
        }
    }
    out
}

/// YOLOv3 `[yolo]` head: logistic on x, y, objectness and every class score.
pub fn yolo(x: &Tensor, y: &Yolo) -> Tensor {
    let mut out = x.clone();
    let hw = x.shape.h * x.shape.w;
    let per_box = (4 + y.classes + 1) * hw;
    for n in 0..y.mask.len() {
        let base = n * per_box;
        logistic(&mut out.data[base..base + 2 * hw]);
        logistic(&mut out.data[base + 4 * hw..base + per_box]);
    }
    out
}

/// Run layer `i` of `net` on its inputs (in the order of [`Network::sources`]).
pub fn run_layer(net: &Network, weights: &Weights, i: usize, inputs: &[&Tensor]) -> Tensor {
    let x = inputs[0];
    match &net.layers[i].kind {
        LayerKind::Conv(c) => conv2d(x, c, weights.conv(i)),
        LayerKind::MaxPool(m) => maxpool(x, m),
        LayerKind::AvgPool => avgpool(x),
        LayerKind::AvgPoolWindow {
            size,
            stride,
            pads,
            count_include_pad,
        } => avgpool_window(
            x,
            net.layers[i].output,
            *size,
            *stride,
            *pads,
            *count_include_pad,
        ),
        LayerKind::Softmax {
            groups,
            temperature,
        } => softmax(x, *groups, *temperature),
        LayerKind::Route { .. } => route(inputs),
        LayerKind::Upsample { stride, scale } => upsample(x, *stride, *scale),
        LayerKind::Reorg { stride } => reorg(x, *stride),
        LayerKind::Shortcut {
            activation,
            alpha,
            beta,
            ..
        } => shortcut(x, inputs[1], *activation, *alpha, *beta),
        LayerKind::Reshape => Tensor::from_vec(net.layers[i].output, x.data.clone()),
        LayerKind::ScaleChannels => scale_channels(x, inputs[1]),
        LayerKind::Slice {
            y0,
            x0,
            stride_y,
            stride_x,
        } => slice(x, net.layers[i].output, (*y0, *x0), (*stride_y, *stride_x)),
        LayerKind::Transpose => transpose(x),
        LayerKind::Pad { top, left, value } => {
            pad(x, net.layers[i].output, *top, *left, value.get())
        }
        LayerKind::Region(r) => region(x, r),
        LayerKind::Yolo(y) => yolo(x, y),
    }
}

/// ONNX `AveragePool` (see [`LayerKind::AvgPoolWindow`]), shaped `out`: per output, the window's
/// cells inside the map summed in row-major order, divided by their count (with
/// `count_include_pad`: by the window's cells inside the padded map).
pub fn avgpool_window(
    x: &Tensor,
    out: Shape,
    k: usize,
    stride: usize,
    pads: [usize; 4],
    count_include_pad: bool,
) -> Tensor {
    let (h, w) = (x.shape.h as i64, x.shape.w as i64);
    let (k, s) = (k as i64, stride as i64);
    let [pt, pl, pb, pr] = pads.map(|p| p as i64);
    let mut data = Vec::with_capacity(out.len());
    for c in 0..out.c {
        for oy in 0..out.h as i64 {
            for ox in 0..out.w as i64 {
                let (y0, x0) = (oy * s - pt, ox * s - pl);
                let (ky0, ky1) = ((-y0).max(0), k.min(h - y0));
                let (kx0, kx1) = ((-x0).max(0), k.min(w - x0));
                let mut sum = 0.0f32;
                for ky in ky0..ky1 {
                    for kx in kx0..kx1 {
                        sum += x.at(c, (y0 + ky) as usize, (x0 + kx) as usize);
                    }
                }
                let (rows, cols) = if count_include_pad {
                    (
                        ((y0 + k).min(h + pb) - y0.max(-pt)).max(0),
                        ((x0 + k).min(w + pr) - x0.max(-pl)).max(0),
                    )
                } else {
                    ((ky1 - ky0).max(0), (kx1 - kx0).max(0))
                };
                data.push(sum / (rows * cols) as f32);
            }
        }
    }
    Tensor::from_vec(out, data)
}

/// The strided slice of `x` shaped `out`: `(c, y, x)` reads `(c, y0 + y·sy, x0 + x·sx)`.
pub fn slice(x: &Tensor, out: Shape, (y0, x0): (usize, usize), (sy, sx): (usize, usize)) -> Tensor {
    let mut data = Vec::with_capacity(out.len());
    for c in 0..out.c {
        for y in 0..out.h {
            for xx in 0..out.w {
                data.push(x.at(c, y0 + y * sy, x0 + xx * sx));
            }
        }
    }
    Tensor::from_vec(out, data)
}

/// `x` padded to `out` with `value`, `top` rows and `left` columns before it.
pub fn pad(x: &Tensor, out: Shape, top: usize, left: usize, value: f32) -> Tensor {
    let mut data = vec![value; out.len()];
    for c in 0..x.shape.c {
        for y in 0..x.shape.h {
            for xx in 0..x.shape.w {
                data[(c * out.h + y + top) * out.w + xx + left] = x.at(c, y, xx);
            }
        }
    }
    Tensor::from_vec(out, data)
}

/// `x` (C×H×W) as H·W rows of C values, shaped H·W×1×C.
pub fn transpose(x: &Tensor) -> Tensor {
    let s = x.shape;
    let hw = s.h * s.w;
    let mut data = vec![0.0f32; s.len()];
    for c in 0..s.c {
        for q in 0..hw {
            data[q * s.c + c] = x.data[c * hw + q];
        }
    }
    Tensor::from_vec(Shape::new(hw, 1, s.c), data)
}

/// `x·s`: channel `c` of `x` multiplied by `s`'s value `c` (`s` holds one value per channel).
pub fn scale_channels(x: &Tensor, s: &Tensor) -> Tensor {
    let plane = x.shape.h * x.shape.w;
    let mut out = x.clone();
    if plane > 0 {
        for (c, p) in out.data.chunks_mut(plane).enumerate() {
            for v in p {
                *v *= s.data[c];
            }
        }
    }
    out
}

/// Run the whole network and return the outputs of the layers in `keep`, in that order. Every other
/// map is dropped as soon as its last consumer has run.
pub fn forward(
    net: &Network,
    weights: &Weights,
    input: &Tensor,
    keep: &[usize],
) -> Result<Vec<Tensor>> {
    forward_stored(net, weights, input, keep, &|_, _| {})
}

/// [`forward`] as a device that stores maps and weights at `precision` computes it: f32
/// arithmetic, with parameters, input and each layer's stored output rounded to `precision` (see
/// the module's introduction). `F32` is [`forward`].
pub fn forward_at(
    net: &Network,
    weights: &Weights,
    input: &Tensor,
    keep: &[usize],
    precision: Precision,
) -> Result<Vec<Tensor>> {
    if precision == Precision::F32 {
        return forward(net, weights, input, keep);
    }
    let mut weights = weights.clone();
    for p in weights.layers.iter_mut().flatten() {
        round_all(&mut p.weights, precision);
        round_all(&mut p.bias, precision);
    }
    let mut input = input.clone();
    round_all(&mut input.data, precision);
    forward_stored(net, &weights, &input, keep, &|i, t| {
        if !crate::kernel::is_cpu_head(&net.layers[i].kind) {
            round_all(&mut t.data, precision);
        }
    })
}

fn round_all(values: &mut [f32], precision: Precision) {
    for v in values {
        *v = precision.round(*v);
    }
}

/// The last layer that reads each map; a map nothing reads "dies" right after it is made.
fn last_uses(net: &Network) -> Vec<usize> {
    let n = net.layers.len();
    let mut last_use: Vec<usize> = (0..n).collect();
    for i in 0..n {
        for s in net.sources(i) {
            if let Source::Layer(l) = s {
                last_use[l] = last_use[l].max(i);
            }
        }
    }
    last_use
}

/// Host bytes of the maps [`forward`] holds at its fullest moment (f32 maps alive at once, the
/// input included, keeping the `keep` outputs to the end): what the CPU reference needs beyond the
/// weights. Checked before running it on a size the host cannot hold.
pub fn peak_map_bytes(net: &Network, keep: &[usize]) -> u64 {
    let last_use = last_uses(net);
    let bytes = |i: usize| 4 * net.layers[i].output.len() as u64;
    let mut alive = 4 * net.input.len() as u64;
    let mut peak = alive;
    for i in 0..net.layers.len() {
        alive += bytes(i);
        peak = peak.max(alive);
        for (l, &last) in last_use.iter().enumerate().take(i + 1) {
            if last == i && !keep.contains(&l) {
                alive -= bytes(l);
            }
        }
    }
    peak
}

/// [`forward`] with `store(i, output)` applied to each layer's output as it is kept.
fn forward_stored(
    net: &Network,
    weights: &Weights,
    input: &Tensor,
    keep: &[usize],
    store: &dyn Fn(usize, &mut Tensor),
) -> Result<Vec<Tensor>> {
    if input.shape != net.input {
        return Err(Error::Usage(format!(
            "input is {} but {} takes {}",
            input.shape, net.name, net.input
        )));
    }
    if let Some(&bad) = keep.iter().find(|&&k| k >= net.layers.len()) {
        return Err(Error::Usage(format!(
            "layer {bad} requested, but {} has {} layers",
            net.name,
            net.layers.len()
        )));
    }
    let n = net.layers.len();
    let last_use = last_uses(net);
    let mut maps: Vec<Option<Tensor>> = vec![None; n];
    for i in 0..n {
        let out = {
            let inputs: Vec<&Tensor> = net
                .sources(i)
                .into_iter()
                .map(|s| match s {
                    Source::Input => input,
                    Source::Layer(l) => maps[l]
                        .as_ref()
                        .expect("inputs are alive until their last use"),
                })
                .collect();
            let mut out = run_layer(net, weights, i, &inputs);
            store(i, &mut out);
            out
        };
        debug_assert_eq!(out.shape, net.layers[i].output);
        maps[i] = Some(out);
        let done = net.sources(i).into_iter().filter_map(|s| match s {
            Source::Layer(l) => Some(l),
            Source::Input => None,
        });
        for l in done.chain(std::iter::once(i)) {
            if last_use[l] == i && !keep.contains(&l) {
                maps[l] = None;
            }
        }
    }
    Ok(keep
        .iter()
        .map(|&k| maps[k].clone().expect("kept maps stay alive"))
        .collect())
}
