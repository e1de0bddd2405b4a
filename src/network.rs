//! Network IR: an ordered list of layers (Darknet numbering, from 0) with inferred shapes.
//!
//! Every tensor is f32, batch 1, laid out C×H×W. Output sizes follow Darknet's exact integer formulas
//! (see `../shared/design.md`, "Darknet semantics").

use serde::Serialize;
use std::fmt;

/// A feature-map shape: channels × height × width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Shape {
    /// Channels.
    pub c: usize,
    /// Height in pixels (rows).
    pub h: usize,
    /// Width in pixels (columns).
    pub w: usize,
}

impl Shape {
    /// A shape of `c` channels × `h` rows × `w` columns.
    pub const fn new(c: usize, h: usize, w: usize) -> Self {
        Shape { c, h, w }
    }
    /// Number of f32 elements.
    pub const fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// True when some dimension is 0 (the shape holds no element).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Size in bytes as f32.
    pub const fn bytes(&self) -> u64 {
        self.len() as u64 * 4
    }
}

impl fmt::Display for Shape {
    /// Darknet order: width × height × channels.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.w, self.h, self.c)
    }
}

/// `e^x` in f32 from additions, multiplications and one division-free scaling, so that the CPU
/// reference and the WGSL kernels (`mexp` in `shaders/common.wgsl`, the same operations in the same
/// order) produce the same bits. Cody–Waite range reduction `x = n·ln2 + r`, a degree-7 Taylor
/// polynomial on |r| ≤ ln2/2, then exact scaling by 2^n. Within 2 ulp of the true value; 0 below −87
/// (where `e^x` would approach subnormals, which GPUs may flush), +∞ above 88.
// The coefficients are written with the digits of their exact f32 values, as in the WGSL copy.
#[allow(clippy::excessive_precision)]
#[inline]
pub fn exp(x: f32) -> f32 {
    if x < -87.0 {
        return 0.0;
    }
    if x > 88.0 {
        return f32::INFINITY;
    }
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = (x - n * 0.693_145_75) - n * 1.428_606_8e-6;
    let mut p = 1.984127011e-04;
    p = p * r + 1.388888923e-03;
    p = p * r + 8.333333768e-03;
    p = p * r + 4.166666791e-02;
    p = p * r + 1.666666716e-01;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // 2^n as two exact power-of-two factors (n can reach 127).
    let n = n as i32;
    let half = n / 2;
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    p * pow2(half) * pow2(n - half)
}

/// An f32 parameter held by its bits, so that an activation stays `Eq` and `Hash` (pipelines are
/// specialized and keyed by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct F32Bits(pub u32);

impl F32Bits {
    /// `v`'s bits.
    pub fn new(v: f32) -> Self {
        F32Bits(v.to_bits())
    }
    /// The value.
    pub fn get(self) -> f32 {
        f32::from_bits(self.0)
    }
}

impl Serialize for F32Bits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_f32(self.get())
    }
}

/// Pointwise activation applied after a convolution or shortcut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `linear`: the identity.
    Linear,
    /// `leaky`: `x` for `x > 0`, else `0.1·x`.
    Leaky,
    /// `relu`: `x` for `x > 0`, else 0.
    Relu,
    /// `logistic`: `1 / (1 + e^−x)`.
    Logistic,
    /// `mish`: `x·tanh(ln(1 + e^x))` (the identity above 20).
    Mish,
    /// `swish` (ONNX's SiLU, `Mul(x, Sigmoid(x))`): `x / (1 + e^−x)`, as `x·logistic(x)`.
    Swish,
    /// ONNX `HardSigmoid` with `alpha = 1/6`, `beta = 0.5` (the form `HardSwish` uses):
    /// `clamp(x/6 + 0.5, 0, 1)`, computed as `x·HARD_SLOPE + 0.5`.
    HardSigmoid,
    /// ONNX `HardSwish`: `x·HardSigmoid(x)`.
    HardSwish,
    /// ONNX `LeakyRelu` (and `PRelu` with one slope) of any slope: `x` for `x > 0`, else
    /// `alpha·x`.
    LeakyRelu {
        /// The slope below 0.
        alpha: F32Bits,
    },
    /// ONNX `Clip` (ReLU6 is `Clip(0, 6)`): `min(max(x, lo), hi)`.
    Clip {
        /// Lower bound.
        lo: F32Bits,
        /// Upper bound.
        hi: F32Bits,
    },
    /// ONNX `HardSigmoid` of any `alpha`, `beta`: `clamp(alpha·x + beta, 0, 1)`.
    HardSigmoidOf {
        /// Slope.
        alpha: F32Bits,
        /// Offset.
        beta: F32Bits,
    },
}

/// The slope of [`Activation::HardSigmoid`]: 1/6 rounded to f32 (bits `0x3e2aaaab`, the same
/// constant in `shaders/common.wgsl`).
pub const HARD_SLOPE: f32 = 1.0 / 6.0;

#[inline]
fn hard_sigmoid(x: f32) -> f32 {
    (x * HARD_SLOPE + 0.5).clamp(0.0, 1.0)
}

impl Activation {
    /// The activation a `.cfg` names `name` (`linear`, `leaky`, `relu`, `logistic`, `mish`,
    /// `swish`, and mafat's own `hardsigmoid` and `hardswish`, which Darknet lacks: ONNX's); `None`
    /// for any other name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "linear" => Activation::Linear,
            "leaky" => Activation::Leaky,
            "relu" => Activation::Relu,
            "logistic" => Activation::Logistic,
            "mish" => Activation::Mish,
            "swish" => Activation::Swish,
            "hardsigmoid" => Activation::HardSigmoid,
            "hardswish" => Activation::HardSwish,
            _ => return None,
        })
    }
    /// The activation's `.cfg` name (the inverse of [`Activation::parse`]; the parameterized ONNX
    /// forms, which no `.cfg` names, by a name of their own).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Leaky => "leaky",
            Activation::Relu => "relu",
            Activation::Logistic => "logistic",
            Activation::Mish => "mish",
            Activation::Swish => "swish",
            Activation::HardSigmoid => "hardsigmoid",
            Activation::HardSwish => "hardswish",
            Activation::LeakyRelu { .. } => "leakyrelu",
            Activation::Clip { .. } => "clip",
            Activation::HardSigmoidOf { .. } => "hardsigmoid_of",
        }
    }
    /// Darknet's activation functions, in f32. `leaky` multiplies by the f32 constant 0.1 (Darknet
    /// evaluates `.1*x` in double; the two agree to within one ulp, and every mafat path uses this form).
    /// `logistic` and `mish` use [`exp`], so GPU and CPU agree bit for bit.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Linear => x,
            Activation::Leaky => {
                if x > 0.0 {
                    x
                } else {
                    0.1 * x
                }
            }
            Activation::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            Activation::Logistic => 1.0 / (1.0 + exp(-x)),
            Activation::Mish => {
                // x·tanh(softplus(x)) (AlexeyAB's darknet, threshold 20), with
                // tanh(ln(1 + e^x)) = n/(n + 2), n = e^x·(e^x + 2): only `exp` is needed.
                if x > 20.0 {
                    x
                } else {
                    let e = exp(x);
                    let n = e * (e + 2.0);
                    x * (n / (n + 2.0))
                }
            }
            Activation::Swish => x * (1.0 / (1.0 + exp(-x))),
            Activation::HardSigmoid => hard_sigmoid(x),
            Activation::HardSwish => x * hard_sigmoid(x),
            Activation::LeakyRelu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha.get() * x
                }
            }
            Activation::Clip { lo, hi } => x.max(lo.get()).min(hi.get()),
            Activation::HardSigmoidOf { alpha, beta } => {
                (alpha.get() * x + beta.get()).clamp(0.0, 1.0)
            }
        }
    }
}

/// `[convolutional]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conv {
    /// Output channels.
    pub filters: usize,
    /// Kernel side `k` (a square `k`×`k` window).
    pub size: usize,
    /// Step between windows along both axes, in input pixels.
    pub stride: usize,
    /// Symmetric zero padding on every side.
    pub padding: usize,
    /// Channel groups: input channels and filters are split into `groups` equal parts, each filter
    /// reading only its part's `c/groups` input channels (1: an ordinary convolution).
    pub groups: usize,
    /// The `.weights` record holds batch-norm statistics (folded into weights and biases on load).
    pub batch_normalize: bool,
    /// Applied to every output after the bias.
    pub activation: Activation,
}

/// `[maxpool]` with Darknet's padding: the window starts at `-(padding/2)`; out-of-map cells never win.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaxPool {
    /// Window side `k` (a square `k`×`k` window).
    pub size: usize,
    /// Step between windows along both axes, in input pixels.
    pub stride: usize,
    /// Total padding (Darknet's `padding`, default `size - 1`): `padding/2` before, the rest after.
    pub padding: usize,
}

impl MaxPool {
    /// Padding before the first row/column.
    pub fn pad_before(&self) -> usize {
        self.padding / 2
    }
}

/// `[region]`: the YOLOv2 detection head (an in-place activation of its input).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Region {
    /// Class scores per box.
    pub classes: usize,
    /// Box coordinates per box (4: x, y, w, h), stored before the objectness.
    pub coords: usize,
    /// Boxes (anchors) per grid cell; the input has `num·(coords + classes + 1)` channels.
    pub num: usize,
    /// Softmax over each box's class scores (else a logistic on each).
    pub softmax: bool,
    /// Darknet's `background`: no logistic on the objectness, and the softmax also covers the
    /// objectness channel.
    pub background: bool,
    /// Anchor sizes `[w0, h0, w1, h1, …]` in grid cells, `2·num` numbers (empty when the cfg gives
    /// none).
    pub anchors: Vec<f32>,
}

/// `[yolo]`: the YOLOv3 detection head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Yolo {
    /// Class scores per box; the input has `mask.len()·(classes + 5)` channels.
    pub classes: usize,
    /// Indices into `anchors` (pairs) used by this head; `mask.len()` boxes per cell.
    pub mask: Vec<usize>,
    /// Every anchor size of the model `[w0, h0, w1, h1, …]` in input pixels, `2·num` numbers (empty
    /// when the cfg gives none).
    pub anchors: Vec<f32>,
}

/// What a layer computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum LayerKind {
    /// `[convolutional]`.
    Conv(Conv),
    /// `[maxpool]`.
    MaxPool(MaxPool),
    /// Global average pool to C×1×1.
    AvgPool,
    /// Average over `size`×`size` windows (ONNX `AveragePool`): window rows start at
    /// `o·stride − pads[0]`, columns at `o·stride − pads[1]`; the sum of the window's cells inside
    /// the map is divided by their count, or with `count_include_pad` by the window's cells inside
    /// the padded map (`pads` = top, left, bottom, right). The output's size says how many windows.
    AvgPoolWindow {
        /// Window side.
        size: usize,
        /// Step between windows, both axes.
        stride: usize,
        /// Zero padding: top, left, bottom, right.
        pads: [usize; 4],
        /// Whether padded cells count in the divisor.
        count_include_pad: bool,
    },
    /// Softmax over channels (Darknet's `[softmax]` on a C×1×1 input, `groups` equal slices).
    Softmax {
        /// Number of equal consecutive slices of the input, each normalized on its own.
        groups: usize,
        /// Every input is divided by it before the exponential (never 0).
        temperature: f32,
    },
    /// Concatenate the outputs of `layers` along channels.
    Route {
        /// Absolute indices of the source layers (all earlier than this one), in concatenation order;
        /// their widths and heights are equal.
        layers: Vec<usize>,
    },
    /// Nearest-neighbour upsampling by `stride`, multiplied by `scale`.
    Upsample {
        /// Integer factor along both axes (output `C × H·stride × W·stride`).
        stride: usize,
        /// Multiplies every output value.
        scale: f32,
    },
    /// Darknet's `[reorg]` (space-to-depth with Darknet's exact index mapping).
    Reorg {
        /// Block side `s`: a `C×H×W` input becomes `C·s² × H/s × W/s`.
        stride: usize,
    },
    /// `activation(alpha·previous + beta·layers[from])`, output shaped as the previous layer's; when
    /// `from`'s width and height differ from it by an integer factor, only the positions the two
    /// share are summed (see [`crate::reference::shortcut`]).
    Shortcut {
        /// Absolute index of the earlier layer whose output is added.
        from: usize,
        /// Applied after the sum, to every output.
        activation: Activation,
        /// Weight of the previous layer's output.
        alpha: f32,
        /// Weight of layer `from`'s output.
        beta: f32,
    },
    /// The input's values unchanged, in the same order, under another shape of as many elements
    /// (ONNX `Flatten`/`Reshape`, e.g. C×H×W to a vector C·H·W×1×1 before a classifier).
    Reshape,
    /// `primary·scale`: every channel of the primary input multiplied by the one value of the
    /// same channel of the second input, a C×1×1 map (ONNX `Mul` of a squeeze-and-excitation
    /// block; Darknet's `[scale_channels]`).
    ScaleChannels,
    /// A strided spatial slice of every channel: output `(c, y, x)` = input
    /// `(c, y0 + y·stride_y, x0 + x·stride_x)` (ONNX `Slice` on the height and width axes; the
    /// output's size says where it ends).
    Slice {
        /// First input row.
        y0: usize,
        /// First input column.
        x0: usize,
        /// Step between rows taken.
        stride_y: usize,
        /// Step between columns taken.
        stride_x: usize,
    },
    /// Constant padding: output `(c, y, x)` = input `(c, y − top, x − left)` inside the input, else
    /// `value` (ONNX `Pad` in constant mode; a convolution's uneven padding). The output's size says
    /// how much is added after.
    Pad {
        /// Rows added before.
        top: usize,
        /// Columns added before.
        left: usize,
        /// The value of added cells.
        value: F32Bits,
    },
    /// A C×H×W map as H·W rows of C values: output `(q, 0, c)` = input `(c, q / W, q % W)`, shaped
    /// H·W×1×C (ONNX's `Transpose` of `[1, C, H·W]` to `[1, H·W, C]` in a detection head).
    Transpose,
    /// `[region]`: the YOLOv2 detection head.
    Region(Region),
    /// `[yolo]`: the YOLOv3 detection head.
    Yolo(Yolo),
}

impl LayerKind {
    /// Darknet's section name.
    pub fn name(&self) -> &'static str {
        match self {
            LayerKind::Conv(_) => "conv",
            LayerKind::MaxPool(_) => "max",
            LayerKind::AvgPool => "avg",
            LayerKind::AvgPoolWindow { .. } => "avgpool",
            LayerKind::Softmax { .. } => "softmax",
            LayerKind::Route { .. } => "route",
            LayerKind::Upsample { .. } => "upsample",
            LayerKind::Reorg { .. } => "reorg",
            LayerKind::Shortcut { .. } => "shortcut",
            LayerKind::Reshape => "reshape",
            LayerKind::ScaleChannels => "scale",
            LayerKind::Slice { .. } => "slice",
            LayerKind::Transpose => "transpose",
            LayerKind::Pad { .. } => "pad",
            LayerKind::Region(_) => "region",
            LayerKind::Yolo(_) => "yolo",
        }
    }
}

/// Where a layer reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Source {
    /// The network's input image.
    Input,
    /// The output of layer `n`.
    Layer(usize),
}

impl Source {
    /// What layer `i` of a chain reads: the previous layer's output, or the input for layer 0.
    pub fn previous(i: usize) -> Source {
        match i.checked_sub(1) {
            Some(p) => Source::Layer(p),
            None => Source::Input,
        }
    }

    /// Darknet's rule for where layer `index` of `kind` reads: a route reads its `layers`, a
    /// shortcut the previous layer and then `from`, every other layer the previous layer.
    pub fn darknet(index: usize, kind: &LayerKind) -> Vec<Source> {
        let prev = Source::previous(index);
        match kind {
            LayerKind::Route { layers } => layers.iter().map(|&l| Source::Layer(l)).collect(),
            LayerKind::Shortcut { from, .. } => vec![prev, Source::Layer(*from)],
            _ => vec![prev],
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Input => write!(f, "input"),
            Source::Layer(l) => write!(f, "{l}"),
        }
    }
}

/// One layer with its inferred shapes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    /// Position in [`Network::layers`] (Darknet's layer number, from 0).
    pub index: usize,
    /// What the layer computes, with its parameters.
    pub kind: LayerKind,
    /// Shape of the primary input (the first source's output; for a route, its concatenated inputs).
    pub input: Shape,
    /// Shape of the layer's output map.
    pub output: Shape,
    /// Where the layer reads from, in order: its primary input first (a route: every source in
    /// concatenation order; a shortcut or a join: the primary input, then the second). Every
    /// [`Source::Layer`] is an earlier layer.
    pub sources: Vec<Source>,
}

impl Layer {
    /// Bytes of the layer's parameters as mafat holds them on the device (f32 weights with batch norm
    /// folded in, plus one f32 bias per filter).
    pub fn weight_bytes(&self) -> u64 {
        match &self.kind {
            LayerKind::Conv(c) => 4 * self.weight_count(c) as u64 + 4 * c.filters as u64,
            _ => 0,
        }
    }

    /// Number of conv weights (without biases).
    fn weight_count(&self, c: &Conv) -> usize {
        c.filters * (self.input.c / c.groups) * c.size * c.size
    }

    /// Multiply-accumulates of the layer (0 for layers that only move or compare data).
    pub fn macs(&self) -> u64 {
        match &self.kind {
            LayerKind::Conv(c) => {
                (self.output.h * self.output.w) as u64 * self.weight_count(c) as u64
            }
            _ => 0,
        }
    }

    /// "size/stride" column of the layer table.
    pub fn window(&self) -> String {
        match &self.kind {
            LayerKind::Conv(c) => format!("{}x{}/{}", c.size, c.size, c.stride),
            LayerKind::MaxPool(p) => format!("{}x{}/{}", p.size, p.size, p.stride),
            LayerKind::Reorg { stride } | LayerKind::Upsample { stride, .. } => {
                format!("/{stride}")
            }
            _ => String::new(),
        }
    }
}

/// An ordered list of layers with inferred shapes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Network {
    /// Built-in model name or cfg path.
    pub name: String,
    /// Shape of the network's input (`[net]` channels, height and width, or the size override).
    pub input: Shape,
    /// The layers in execution order; `layers[i].index == i`.
    pub layers: Vec<Layer>,
    /// The layers whose outputs the model declares as its outputs, in order (an ONNX graph's
    /// outputs); empty for Darknet models, whose outputs follow [`Network::outputs`]' rule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub declared_outputs: Vec<usize>,
}

impl Network {
    /// Where layer `i` reads from, in order (see [`Layer::sources`]).
    pub fn sources(&self, i: usize) -> Vec<Source> {
        self.layers[i].sources.clone()
    }

    /// True when layer `i` reads exactly the previous layer's output (or the network's input, for
    /// layer 0) and nothing else: the links a fused chain of layers is made of.
    pub fn reads_previous(&self, i: usize) -> bool {
        self.layers[i].sources == [Source::previous(i)]
    }

    /// Shape of a source.
    pub fn shape_of(&self, s: Source) -> Shape {
        match s {
            Source::Input => self.input,
            Source::Layer(l) => self.layers[l].output,
        }
    }

    /// Total multiply-accumulates.
    pub fn macs(&self) -> u64 {
        self.layers.iter().map(Layer::macs).sum()
    }

    /// Total parameter bytes (folded f32).
    pub fn weight_bytes(&self) -> u64 {
        self.layers.iter().map(Layer::weight_bytes).sum()
    }

    /// The network's output layers: the declared ones if any, else every detection head if there
    /// is any, else the last layer.
    pub fn outputs(&self) -> Vec<usize> {
        if !self.declared_outputs.is_empty() {
            return self.declared_outputs.clone();
        }
        let heads: Vec<usize> = self
            .layers
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::Region(_) | LayerKind::Yolo(_)))
            .map(|l| l.index)
            .collect();
        if heads.is_empty() {
            self.layers.len().checked_sub(1).into_iter().collect()
        } else {
            heads
        }
    }

    /// Darknet-style layer table: index, type, filters, size/stride, input → output, weight bytes, MACs.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>5} {:<9} {:>7} {:>9}  {:>16}    {:>16} {:>12} {:>15}",
            "layer", "type", "filters", "size", "input", "output", "weight B", "MACs"
        );
        for l in &self.layers {
            let filters = match &l.kind {
                LayerKind::Conv(c) => c.filters.to_string(),
                _ => String::new(),
            };
            let joined = |sep: &str| {
                let names: Vec<String> = l.sources.iter().map(|s| s.to_string()).collect();
                names.join(sep)
            };
            let input = match &l.kind {
                LayerKind::Route { .. } => joined(","),
                _ if l.sources.len() > 1 => joined(" + "),
                _ if !self.reads_previous(l.index) => format!("{}: {}", joined(""), l.input),
                _ => l.input.to_string(),
            };
            let _ = writeln!(
                s,
                "{:>5} {:<9} {:>7} {:>9}  {:>16} -> {:>16} {:>12} {:>15}",
                l.index,
                l.kind.name(),
                filters,
                l.window(),
                input,
                l.output.to_string(),
                l.weight_bytes(),
                l.macs()
            );
        }
        let _ = writeln!(
            s,
            "total: {} layers, input {}, {} weight bytes ({:.1} MiB), {} MACs ({:.2} G)",
            self.layers.len(),
            self.input,
            self.weight_bytes(),
            self.weight_bytes() as f64 / (1024.0 * 1024.0),
            self.macs(),
            self.macs() as f64 / 1e9
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_2_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            let ulp = (want as f32).abs() as f64 * f32::EPSILON as f64;
            worst = worst.max((got - want).abs() / ulp);
            x += 0.0137;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
    }

    #[test]
    fn activations_match_their_definitions() {
        for i in -400..400 {
            let x = i as f32 * 0.05;
            let lg = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!(
                (Activation::Logistic.apply(x) as f64 - lg).abs() < 2e-7,
                "{x}"
            );
            let sp = (1.0 + (x as f64).exp()).ln();
            let mish = x as f64 * sp.tanh();
            assert!(
                (Activation::Mish.apply(x) as f64 - mish).abs() < 1e-6 * mish.abs().max(1.0),
                "{x}"
            );
        }
    }
}
