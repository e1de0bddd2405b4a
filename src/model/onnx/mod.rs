//! ONNX models: a `ModelProto` (decoded by prost from ONNX's own `onnx.proto`) imported into the
//! network IR with its parameters.
//!
//! The graph's nodes are visited in their (topological) order; each becomes a layer, or is folded
//! into the layer before it, or is computed at import when its inputs are constants:
//!
//! - `Conv` (any groups, square kernels, equal strides, `pads`/`auto_pad`: uneven padding is a `Pad`
//!   layer first), `Gemm` and `MatMul` by a constant (as 1×1 convolutions of a C·H·W×1×1 vector)
//!   become conv layers;
//!   `BatchNormalization`, `Add`/`Sub`/`Mul`/`Div` by a per-channel or scalar constant, and the
//!   activations `Relu`, `LeakyRelu`, `PRelu` (one slope), `Sigmoid`, `HardSigmoid`, `HardSwish`,
//!   `Clip` and SiLU (`Mul(x, Sigmoid(x))`) fold into the convolution whose output they alone read,
//!   else run as a per-channel affine layer (a depthwise 1×1 convolution) with that activation.
//! - `Add`/`Sub` of two maps are shortcuts; `Mul` of a map by a C×1×1 map scales its channels;
//!   `Concat` on channels is a route; `MaxPool`, `GlobalAveragePool`, nearest `Resize`/`Upsample` by
//!   an integer factor, `AveragePool`, constant `Pad`, spatial `Slice`, `Softmax` over a vector and
//!   `Flatten`/`Reshape` to a vector are their layers;
//!   `Identity` and inference-mode `Dropout` vanish.
//! - `Constant`, `Shape`, `Gather`, `Slice`, `Concat`, `Unsqueeze`, `Squeeze`, `Cast` and
//!   `Reshape` on constants are computed at import (a classifier's dynamic flatten).
//!
//! Anything else (an operator, an attribute value, a shape) is refused with one error naming the
//! node, its operator and what is supported: never a silently different answer. Maps are batch 1:
//! a graph input `[N, C, H, W]` (or `[N, K]`) with N 1 or free; a free height or width takes
//! `--size`.

pub mod tensor;

use super::onnx_pb::{self, ModelProto, NodeProto, TensorProto};
use super::weights::{ConvParams, Weights};
use crate::error::{Error, Result};
use crate::network::{
    Activation, Conv, F32Bits, HARD_SLOPE, Layer, LayerKind, MaxPool, Network, Shape, Source,
};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;
pub use tensor::{Constant, Values};

/// Largest `.onnx` file read (protobuf's own limit is 2 GiB; weights past 1 GiB are out of
/// mafat's reach anyway).
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// Largest tensor file (`.pb`, `.npy`) read.
pub const MAX_TENSOR_FILE_BYTES: u64 = 1 << 30;

/// Opsets of the default (`ai.onnx`) domain the importer reads.
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=25;

/// The operators the importer reads (see the module docs for the forms of each).
pub const SUPPORTED: &str = "Conv, BatchNormalization, Relu, LeakyRelu, PRelu (one slope), Sigmoid, HardSigmoid, HardSwish, Clip, Add, Sub, Mul, Div, Concat, MaxPool, AveragePool, GlobalAveragePool, Resize/Upsample (nearest, integer factor), Pad (constant), Flatten, Reshape, Gemm, MatMul, Softmax, Slice, Transpose (a detection head's), Identity, Dropout, Constant, Shape, Gather, Squeeze, Unsqueeze, Cast";

/// Where an error about an operator points the user for [`SUPPORTED`] (the list is too long for
/// one line of an error).
const SEE_SUPPORTED: &str = "the operators mafat reads are listed in its README (ONNX models)";

/// Largest kernel side, stride, padding, resize factor and map side the importer accepts: past it
/// a model is surely wrong, and the kernels' 32-bit parameters must hold every figure.
const MAX_SIDE: usize = 1 << 16;

/// Whether `model` names an ONNX file (by its `.onnx` extension).
pub fn is_onnx_path(model: &str) -> bool {
    Path::new(model)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// A graph output: its name, the layer that computes it and its ONNX dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphOutput {
    /// The output's name in the graph.
    pub name: String,
    /// The layer whose output it is.
    pub layer: usize,
    /// Its dimensions as ONNX gives them (`[1, C, H, W]` or `[1, K]`).
    pub dims: Vec<usize>,
}

/// An imported model: the network, its parameters (batch norm and biases folded), and the names
/// of its input and outputs.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The network (its `declared_outputs` are the graph's outputs, in order).
    pub network: Network,
    /// Every conv layer's parameters.
    pub weights: Weights,
    /// The graph input's name.
    pub input_name: String,
    /// The graph input's dimensions as ONNX gives them, at the size imported.
    pub input_dims: Vec<usize>,
    /// The graph's outputs, in order.
    pub outputs: Vec<GraphOutput>,
    /// The model's opset of the default domain.
    pub opset: i64,
}

/// Read and import the ONNX model at `path`; `size` = `(width, height)` sets the input's height and
/// width (required when the model leaves them free).
pub fn load(path: &Path, size: Option<(usize, usize)>) -> Result<Imported> {
    let origin = path.display().to_string();
    let model = read_model(path)?;
    import(&model, &origin, size, &HashMap::new())
}

/// The parameters of `net` from the ONNX model at `path`, which must import to exactly `net`
/// (imported at `net`'s input size).
pub fn load_weights(path: &Path, net: &Network) -> Result<Weights> {
    let size = (net.input.w, net.input.h);
    let im = load(path, Some(size))?;
    if im.network.layers != net.layers || im.network.input != net.input {
        return Err(Error::Weights {
            path: path.display().to_string(),
            message: format!(
                "this model's network differs from {}'s: give the ONNX model the network came from",
                crate::units::shorten(&net.name)
            ),
        });
    }
    Ok(im.weights)
}

/// Read and decode the `ModelProto` at `path` (at most [`MAX_MODEL_BYTES`]).
pub fn read_model(path: &Path) -> Result<ModelProto> {
    let origin = path.display().to_string();
    let bytes = super::read_bytes_capped(path, MAX_MODEL_BYTES)
        .map_err(|e| Error::io(path, e))?
        .ok_or_else(|| onnx_error(&origin, format!("larger than {MAX_MODEL_BYTES} bytes")))?;
    ModelProto::decode(bytes.as_slice()).map_err(|e| {
        onnx_error(
            &origin,
            format!("not an ONNX model (protobuf: {e}); give a .onnx file or a Darknet .cfg"),
        )
    })
}

/// Read a serialized `TensorProto` (`.pb`, as ONNX's test data stores inputs and outputs).
pub fn read_tensor(path: &Path) -> Result<Constant> {
    let origin = path.display().to_string();
    let bytes = super::read_bytes_capped(path, MAX_TENSOR_FILE_BYTES)
        .map_err(|e| Error::io(path, e))?
        .ok_or_else(|| {
            onnx_error(
                &origin,
                format!("larger than {MAX_TENSOR_FILE_BYTES} bytes"),
            )
        })?;
    let t = TensorProto::decode(bytes.as_slice())
        .map_err(|e| onnx_error(&origin, format!("not an ONNX TensorProto (protobuf: {e})")))?;
    tensor::decode(&t).map_err(|m| onnx_error(&origin, m))
}

fn onnx_error(origin: &str, message: String) -> Error {
    Error::Onnx {
        origin: origin.to_string(),
        message,
    }
}

/// Import `model`. `fed` gives constant values to graph inputs by name (ONNX's node tests feed
/// weights that way); the one graph input left is the network's input.
pub fn import(
    model: &ModelProto,
    origin: &str,
    size: Option<(usize, usize)>,
    fed: &HashMap<String, Constant>,
) -> Result<Imported> {
    let fail = |m: String| onnx_error(origin, m);
    let mut opset = None;
    for o in &model.opset_import {
        match o.domain() {
            "" | "ai.onnx" => opset = Some(o.version()),
            other => {
                return Err(fail(format!(
                    "it imports the operator domain `{}`; mafat reads only ONNX's default domain",
                    crate::units::prefix(other)
                )));
            }
        }
    }
    let opset = opset.ok_or_else(|| fail("it imports no opset of ONNX's default domain".into()))?;
    if !OPSETS.contains(&opset) {
        return Err(fail(format!(
            "opset {opset}: mafat reads opsets {}..={}; convert the model (onnx.version_converter)",
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| fail("the model has no graph".into()))?;
    if !graph.sparse_initializer.is_empty() {
        return Err(fail(
            "it has sparse initializers, which mafat does not read".into(),
        ));
    }
    let mut im = Importer {
        origin,
        opset,
        layers: Vec::new(),
        params: Vec::new(),
        values: HashMap::new(),
        uses: HashMap::new(),
        pending_swish: HashMap::new(),
        nodes: &graph.node,
    };
    for t in &graph.initializer {
        let c = tensor::decode(t)
            .map_err(|m| fail(format!("initializer `{}`: {m}", short(t.name()))))?;
        im.values.insert(t.name().to_string(), Val::Const(c));
    }
    for (name, c) in fed {
        im.values.insert(name.clone(), Val::Const(c.clone()));
    }
    // The network's input: the one graph input that is neither an initializer nor fed.
    let inputs: Vec<&onnx_pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|vi| !im.values.contains_key(vi.name()))
        .collect();
    let vi = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(fail("the graph has no input that is not a constant".into())),
        many => {
            return Err(fail(format!(
                "the graph has {} inputs ({}); mafat runs networks of one input",
                many.len(),
                many.iter()
                    .map(|v| short(v.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let (input_shape, input_layout, input_dims) = graph_input(vi, size).map_err(fail)?;
    im.values.insert(
        vi.name().to_string(),
        Val::Map(MapVal {
            src: Source::Input,
            shape: input_shape,
            layout: input_layout,
        }),
    );
    for n in &graph.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            *im.uses.entry(i.clone()).or_default() += 1;
        }
    }
    for o in &graph.output {
        *im.uses.entry(o.name().to_string()).or_default() += 1;
    }
    for (k, node) in graph.node.iter().enumerate() {
        im.node(k, node)?;
    }
    let mut outputs = Vec::new();
    for o in &graph.output {
        let name = o.name();
        let m = match im.values.get(name) {
            Some(Val::Map(m)) => *m,
            Some(Val::Const(_)) => {
                return Err(fail(format!(
                    "graph output `{}` is a constant; mafat computes networks whose outputs depend on the input",
                    short(name)
                )));
            }
            Some(Val::Rows(_)) => {
                return Err(fail(format!(
                    "graph output `{}` is a [1, C, L] view of reshaped maps; mafat outputs such a view only after a Transpose (perm 0, 2, 1)",
                    short(name)
                )));
            }
            None => {
                return Err(fail(format!(
                    "graph output `{}` is made by no node",
                    short(name)
                )));
            }
        };
        let layer = match m.src {
            Source::Layer(layer) => layer,
            // The input itself (an Identity or Dropout network): a copy of it.
            Source::Input => {
                let index = im.layers.len();
                im.layers.push(Layer {
                    index,
                    kind: LayerKind::Reshape,
                    input: m.shape,
                    output: m.shape,
                    sources: vec![Source::Input],
                });
                im.params.push(None);
                index
            }
        };
        outputs.push(GraphOutput {
            name: name.to_string(),
            layer,
            dims: dims_of(m),
        });
    }
    if outputs.is_empty() {
        return Err(fail("the graph has no output".into()));
    }
    let network = Network {
        name: origin.to_string(),
        input: input_shape,
        declared_outputs: outputs.iter().map(|o| o.layer).collect(),
        layers: im.layers,
    };
    Ok(Imported {
        network,
        weights: Weights { layers: im.params },
        input_name: vi.name().to_string(),
        input_dims,
        outputs,
        opset,
    })
}

/// What a node that reads a [`Val::Rows`] view other than Concat and Transpose is told.
const ROWS_ONLY: &str = "a [1, C, L] view of reshaped maps feeds it; mafat reads such a view only through Concat (axis 2) and Transpose (perm 0, 2, 1)";

/// A name cut for an error message.
fn short(name: &str) -> String {
    crate::units::prefix(name).to_string()
}

/// ONNX dimensions of a map.
fn dims_of(m: MapVal) -> Vec<usize> {
    match m.layout {
        Layout::Nc => vec![1, m.shape.c],
        Layout::Chw => vec![m.shape.c, m.shape.h, m.shape.w],
        Layout::Nchw => vec![1, m.shape.c, m.shape.h, m.shape.w],
        Layout::Rows => vec![1, m.shape.c, m.shape.w],
    }
}

/// The network input's shape, layout and ONNX dimensions from its declaration.
fn graph_input(
    vi: &onnx_pb::ValueInfoProto,
    size: Option<(usize, usize)>,
) -> std::result::Result<(Shape, Layout, Vec<usize>), String> {
    use onnx_pb::tensor_shape_proto::dimension::Value as Dim;
    use onnx_pb::type_proto::Value as Ty;
    let name = short(vi.name());
    let Some(Ty::TensorType(t)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(format!("graph input `{name}` is not a tensor"));
    };
    if t.elem_type() != onnx_pb::tensor_proto::DataType::Float as i32 {
        return Err(format!(
            "graph input `{name}` has element type {}; mafat's inputs are FLOAT",
            t.elem_type()
        ));
    }
    let dims: Vec<Option<i64>> = t
        .shape
        .iter()
        .flat_map(|s| &s.dim)
        .map(|d| match d.value {
            Some(Dim::DimValue(v)) if v > 0 => Some(v),
            _ => None,
        })
        .collect();
    let batch_ok = matches!(dims.first(), Some(None | Some(1)));
    match dims.len() {
        4 if batch_ok => {
            let c = dims[1].ok_or_else(|| {
                format!("graph input `{name}` has a free channel count; mafat needs it fixed")
            })?;
            let (h, w) = match (size, dims[2], dims[3]) {
                (Some((w, h)), _, _) => (h, w),
                (None, Some(h), Some(w)) => (h as usize, w as usize),
                _ => {
                    return Err(format!(
                        "graph input `{name}` has a free height or width: give --size WIDTHxHEIGHT"
                    ));
                }
            };
            let too_big = [c as usize, h, w].iter().any(|&d| d > tensor::MAX_ELEMENTS)
                || (c as usize)
                    .checked_mul(h)
                    .and_then(|n| n.checked_mul(w))
                    .is_none_or(|n| n > tensor::MAX_ELEMENTS);
            let shape = Shape::new(c as usize, h, w);
            if too_big {
                return Err(format!(
                    "graph input `{name}` of {c}x{h}x{w} holds more than {} values",
                    tensor::MAX_ELEMENTS
                ));
            }
            Ok((shape, Layout::Nchw, vec![1, c as usize, h, w]))
        }
        3 if dims.iter().all(Option::is_some) => {
            // A map without a batch axis, [C, H, W] (ONNX's node tests use such inputs).
            let d: Vec<usize> = dims.iter().map(|d| d.unwrap_or(1) as usize).collect();
            if size.is_some_and(|s| s != (d[2], d[1])) {
                return Err(format!(
                    "graph input `{name}` is a fixed [C, H, W] map: --size does not apply"
                ));
            }
            let too_big = d
                .iter()
                .try_fold(1usize, |n, &x| n.checked_mul(x))
                .is_none_or(|n| n > tensor::MAX_ELEMENTS);
            let shape = Shape::new(d[0], d[1], d[2]);
            if too_big {
                return Err(format!("graph input `{name}` is too large"));
            }
            Ok((shape, Layout::Chw, d))
        }
        2 if batch_ok => {
            let k =
                dims[1].ok_or_else(|| format!("graph input `{name}` has a free length"))? as usize;
            if size.is_some_and(|s| s != (1, 1)) {
                return Err(format!(
                    "graph input `{name}` is a vector of {k}: --size does not apply"
                ));
            }
            Ok((Shape::new(k, 1, 1), Layout::Nc, vec![1, k]))
        }
        _ => Err(format!(
            "graph input `{name}` has dimensions {dims:?}; mafat reads [N, C, H, W] or [N, K] inputs with N 1 or free"
        )),
    }
}

/// How a map's ONNX dimensions lie on mafat's C×H×W shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[1, C, H, W]`.
    Nchw,
    /// `[C, H, W]`: a map without a batch axis (elementwise operators only).
    Chw,
    /// `[1, C]`: a vector, held as C×1×1.
    Nc,
    /// `[1, L, K]`: rows of a detection head, held as L×1×K.
    Rows,
}

impl Layout {
    fn rank(self) -> usize {
        match self {
            Layout::Nchw => 4,
            Layout::Chw | Layout::Rows => 3,
            Layout::Nc => 2,
        }
    }
}

/// A map value: where it comes from, its shape and how its ONNX dimensions lie on the shape.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MapVal {
    src: Source,
    shape: Shape,
    layout: Layout,
}

#[derive(Debug, Clone)]
enum Val {
    Map(MapVal),
    Const(Constant),
    /// `[1, C, ΣL]`: [1, C, H, W] maps reshaped to `[1, C, H·W]` and joined along the last axis,
    /// as detection heads gather their scales before a `Transpose(0, 2, 1)` (held until then).
    Rows(Vec<MapVal>),
}

struct Importer<'a> {
    origin: &'a str,
    opset: i64,
    layers: Vec<Layer>,
    params: Vec<Option<ConvParams>>,
    values: HashMap<String, Val>,
    /// Readers of each value (node inputs and graph outputs).
    uses: HashMap<String, usize>,
    /// Gates waiting for their `Mul(x, ·)`: `Sigmoid(x)` (SiLU) or `HardSigmoid(x)` with
    /// HardSwish's α = 1/6, β = 0.5 (how opsets before 14 write HardSwish): gate output → (x, the
    /// activation `x·gate(x)` is).
    pending_swish: HashMap<String, (String, Activation)>,
    nodes: &'a [NodeProto],
}

/// What a node's attributes give, with the names the node may use.
struct Attrs<'n> {
    node: &'n NodeProto,
}

impl<'n> Attrs<'n> {
    fn get(&self, name: &str) -> Option<&'n onnx_pb::AttributeProto> {
        self.node.attribute.iter().find(|a| a.name() == name)
    }
    fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i())
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }
    fn float(&self, name: &str) -> Option<f32> {
        self.get(name).map(|a| a.f())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|a| String::from_utf8_lossy(a.s()).into_owned())
    }
}

impl<'a> Importer<'a> {
    fn err(&self, node: &NodeProto, message: impl std::fmt::Display) -> Error {
        let name = if node.name().is_empty() {
            node.output.first().map_or("", |s| s.as_str())
        } else {
            node.name()
        };
        onnx_error(
            self.origin,
            format!(
                "node `{}` ({}): {message}",
                short(name),
                short(node.op_type())
            ),
        )
    }

    fn node(&mut self, k: usize, node: &NodeProto) -> Result<()> {
        if !matches!(node.domain(), "" | "ai.onnx") {
            return Err(self.err(
                node,
                format!(
                    "operator domain `{}` is not ONNX's default; {SEE_SUPPORTED}",
                    short(node.domain())
                ),
            ));
        }
        let allowed: &[&str] = match node.op_type() {
            "Conv" => &[
                "kernel_shape",
                "strides",
                "pads",
                "dilations",
                "group",
                "auto_pad",
            ],
            "BatchNormalization" => &["epsilon", "momentum", "training_mode", "spatial"],
            "LeakyRelu" | "HardSigmoid" => &["alpha", "beta"],
            "Clip" => &["min", "max"],
            "Concat" | "Gather" => &["axis"],
            "MaxPool" => &[
                "kernel_shape",
                "strides",
                "pads",
                "dilations",
                "auto_pad",
                "ceil_mode",
                "storage_order",
            ],
            "AveragePool" => &[
                "kernel_shape",
                "strides",
                "pads",
                "dilations",
                "auto_pad",
                "ceil_mode",
                "count_include_pad",
            ],
            "Resize" => &[
                "mode",
                "coordinate_transformation_mode",
                "nearest_mode",
                "cubic_coeff_a",
                "exclude_outside",
                "extrapolation_value",
                "antialias",
            ],
            "Upsample" => &["mode", "scales"],
            "Flatten" | "Softmax" => &["axis"],
            "Reshape" => &["allowzero"],
            "Gemm" => &["alpha", "beta", "transA", "transB"],
            "Dropout" => &["ratio", "is_test", "seed"],
            "Constant" => &[
                "value",
                "value_float",
                "value_floats",
                "value_int",
                "value_ints",
            ],
            "Shape" => &["start", "end"],
            "Slice" => &["starts", "ends", "axes"],
            "Squeeze" | "Unsqueeze" => &["axes"],
            "Transpose" => &["perm"],
            "Pad" => &["mode", "pads", "value"],
            "Cast" => &["to", "saturate"],
            _ => &[],
        };
        if let Some(a) = node.attribute.iter().find(|a| !allowed.contains(&a.name())) {
            return Err(self.err(
                node,
                format!(
                    "attribute `{}` is not supported (this operator takes {})",
                    short(a.name()),
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ));
        }
        let a = Attrs { node };
        match node.op_type() {
            "Conv" => self.conv(node, &a),
            "BatchNormalization" => self.batch_norm(node, &a),
            "Relu" => self.activation(node, Activation::Relu),
            "LeakyRelu" => {
                let alpha = a.float("alpha").unwrap_or(0.01);
                let act = match alpha == 0.1 {
                    // Darknet's leaky: the same function.
                    true => Activation::Leaky,
                    false => Activation::LeakyRelu {
                        alpha: F32Bits::new(alpha),
                    },
                };
                self.activation(node, act)
            }
            "PRelu" => {
                let slope = self.const_input(node, 1)?;
                match slope {
                    Some(c) if c.len() == 1 => {
                        let alpha = F32Bits::new(c.floats()[0]);
                        self.activation(node, Activation::LeakyRelu { alpha })
                    }
                    _ => Err(self.err(
                        node,
                        "mafat's PRelu takes one constant slope for every channel",
                    )),
                }
            }
            "Sigmoid" => self.sigmoid(k, node),
            "HardSigmoid" => {
                let alpha = a.float("alpha").unwrap_or(0.2);
                let beta = a.float("beta").unwrap_or(0.5);
                // x·HardSigmoid(x) with HardSwish's constants is HardSwish, operation for operation.
                if alpha.to_bits() == HARD_SLOPE.to_bits()
                    && beta == 0.5
                    && self.gate(k, node, Activation::HardSwish)
                {
                    self.map_input(node, 0)?;
                    return Ok(());
                }
                let (alpha, beta) = (F32Bits::new(alpha), F32Bits::new(beta));
                self.activation(node, Activation::HardSigmoidOf { alpha, beta })
            }
            "HardSwish" => self.activation(node, Activation::HardSwish),
            "Clip" => self.clip(node, &a),
            "Add" | "Sub" | "Mul" | "Div" => self.arithmetic(node),
            "Concat" => self.concat(node, &a),
            "MaxPool" => self.maxpool(node, &a),
            "GlobalAveragePool" => self.global_average_pool(node),
            "AveragePool" => self.average_pool(node, &a),
            "Resize" | "Upsample" => self.resize(node, &a),
            "Flatten" => self.flatten(node, &a),
            "Reshape" => self.reshape(node, &a),
            "Gemm" | "MatMul" => self.gemm(node, &a),
            "Softmax" => self.softmax(node, &a),
            "Identity" => self.alias(node),
            "Dropout" => self.dropout(node),
            "Constant" => self.constant(node, &a),
            "Shape" => self.shape(node, &a),
            "Gather" => self.gather(node, &a),
            "Slice" => self.slice(node, &a),
            "Squeeze" | "Unsqueeze" => self.squeeze(node, &a),
            "Cast" => self.cast(node, &a),
            "Transpose" => self.transpose(node, &a),
            "Pad" => self.pad(node, &a),
            other => Err(self.err(
                node,
                format!(
                    "operator {} is not supported; {SEE_SUPPORTED}",
                    short(other)
                ),
            )),
        }
    }

    // ---- values -----------------------------------------------------------------------------

    fn input(&self, node: &NodeProto, i: usize) -> Result<Option<&Val>> {
        match node.input.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => self.values.get(name).map(Some).ok_or_else(|| {
                self.err(
                    node,
                    format!(
                        "input `{}` is made by no earlier node (the graph is not in topological order)",
                        short(name)
                    ),
                )
            }),
        }
    }

    fn map_input(&self, node: &NodeProto, i: usize) -> Result<MapVal> {
        match self.input(node, i)? {
            Some(Val::Map(m)) => Ok(*m),
            Some(Val::Const(_)) => Err(self.err(
                node,
                format!("input {i} is a constant where mafat expects a map computed from the network's input"),
            )),
            Some(Val::Rows(_)) => Err(self.err(node, ROWS_ONLY)),
            None => Err(self.err(node, format!("input {i} is missing"))),
        }
    }

    fn const_input(&self, node: &NodeProto, i: usize) -> Result<Option<Constant>> {
        match self.input(node, i)? {
            Some(Val::Const(c)) => Ok(Some(c.clone())),
            Some(Val::Map(_) | Val::Rows(_)) => Err(self.err(
                node,
                format!("input {i} must be a constant (an initializer or a Constant node); here it is computed from the network's input"),
            )),
            None => Ok(None),
        }
    }

    fn set(&mut self, node: &NodeProto, v: Val) -> Result<()> {
        for (j, o) in node.output.iter().enumerate() {
            if j > 0 && !o.is_empty() && self.uses.get(o).copied().unwrap_or(0) > 0 {
                return Err(self.err(
                    node,
                    format!(
                        "its output {j} (`{}`) is read, but mafat computes only the first output of this operator",
                        short(o)
                    ),
                ));
            }
        }
        let name = node
            .output
            .first()
            .ok_or_else(|| self.err(node, "it has no output"))?;
        self.values.insert(name.clone(), v);
        Ok(())
    }

    /// A layer of `kind` reading `x` alone, making `out` (laid out as `layout`): `node`'s output.
    fn push_map(
        &mut self,
        node: &NodeProto,
        kind: LayerKind,
        x: MapVal,
        out: Shape,
        layout: Layout,
    ) -> Result<()> {
        let src = self.push(node, kind, vec![x.src], x.shape, out, None)?;
        self.set_map(
            node,
            MapVal {
                src,
                shape: out,
                layout,
            },
        )
    }

    /// A pool's input map and its square window side (`kernel_shape`, no dilation).
    fn pool_window(&self, node: &NodeProto, a: &Attrs<'_>) -> Result<(MapVal, usize)> {
        let x = self.map_input(node, 0)?;
        if x.layout != Layout::Nchw {
            return Err(self.err(node, "mafat pools 2-D maps [1, C, H, W] only"));
        }
        let ks = a
            .ints("kernel_shape")
            .ok_or_else(|| self.err(node, "it has no kernel_shape"))?;
        let k = match ks[..] {
            [kh, kw] if kh == kw && kh >= 1 && kh <= MAX_SIDE as i64 => kh as usize,
            _ => {
                return Err(self.err(
                    node,
                    format!("kernel_shape {ks:?}: mafat pools square 2-D windows"),
                ));
            }
        };
        if a.ints("dilations")
            .is_some_and(|d| d.iter().any(|&v| v != 1))
        {
            return Err(self.err(node, "dilations other than 1 are not supported"));
        }
        Ok((x, k))
    }

    /// `node` folded into the layer making `x`, which it alone read as `name`: its output is that
    /// layer's now, and `name` (the value before the fold) no longer exists.
    fn folded(&mut self, node: &NodeProto, name: &str, x: MapVal) -> Result<()> {
        self.values.remove(name);
        self.set_map(node, x)
    }

    fn set_map(&mut self, node: &NodeProto, m: MapVal) -> Result<()> {
        self.set(node, Val::Map(m))
    }

    fn push(
        &mut self,
        node: &NodeProto,
        kind: LayerKind,
        sources: Vec<Source>,
        input: Shape,
        output: Shape,
        params: Option<ConvParams>,
    ) -> Result<Source> {
        let elements = output
            .c
            .checked_mul(output.h)
            .and_then(|n| n.checked_mul(output.w));
        if elements.is_none_or(|n| n == 0 || n > tensor::MAX_ELEMENTS) {
            return Err(self.err(
                node,
                format!("its output would be {output} (width x height x channels)"),
            ));
        }
        let index = self.layers.len();
        self.layers.push(Layer {
            index,
            kind,
            input,
            output,
            sources,
        });
        self.params.push(params);
        Ok(Source::Layer(index))
    }

    /// The conv layer making `m` when the node reading it may change that layer: a conv with no
    /// activation yet, whose output the node alone reads (`readers` of the value's readers are the
    /// node's own, e.g. 2 for SiLU's Sigmoid and Mul).
    fn foldable(&self, name: &str, m: MapVal, readers: usize) -> Option<usize> {
        let Source::Layer(l) = m.src else {
            return None;
        };
        let alone = self.uses.get(name).copied().unwrap_or(0) == readers;
        // Other names for the same map (an Identity before it) could be read elsewhere.
        let aliased = self
            .values
            .iter()
            .any(|(n, v)| n != name && matches!(v, Val::Map(o) if o.src == m.src));
        match &self.layers[l].kind {
            LayerKind::Conv(c) if c.activation == Activation::Linear && alone && !aliased => {
                Some(l)
            }
            _ => None,
        }
    }

    fn params_mut(&mut self, l: usize) -> &mut ConvParams {
        self.params[l]
            .as_mut()
            .expect("conv layers have parameters")
    }

    /// A per-channel affine layer `scale·x + bias` then `act` (a depthwise 1×1 convolution).
    fn affine(
        &mut self,
        node: &NodeProto,
        x: MapVal,
        scale: Vec<f32>,
        bias: Vec<f32>,
        act: Activation,
    ) -> Result<MapVal> {
        let c = x.shape.c;
        let params = ConvParams {
            weights: scale,
            bias,
        };
        self.push_conv(node, x, (c, 1, 1, 0, c), act, x.shape, params)
    }

    /// A convolution layer reading `x`: `(filters, size, stride, padding, groups)`, `act`, making
    /// `out` (its layout `x`'s) with `params` (a Conv, a Gemm as a 1×1, an affine as a depthwise
    /// 1×1).
    fn push_conv(
        &mut self,
        node: &NodeProto,
        x: MapVal,
        (filters, size, stride, padding, groups): (usize, usize, usize, usize, usize),
        activation: Activation,
        out: Shape,
        params: ConvParams,
    ) -> Result<MapVal> {
        let conv = Conv {
            filters,
            size,
            stride,
            padding,
            groups,
            batch_normalize: false,
            activation,
        };
        let kind = LayerKind::Conv(conv);
        let src = self.push(node, kind, vec![x.src], x.shape, out, Some(params))?;
        Ok(MapVal {
            src,
            shape: out,
            ..x
        })
    }

    /// `c` as one value per channel of `x` (a scalar, or `[C]`/`[1, C]` for a vector, `[C, 1, 1]`
    /// or `[1, C, 1, 1]` for a map); `None` when it broadcasts otherwise.
    fn per_channel(x: MapVal, c: &Constant) -> Option<Vec<f32>> {
        let v = c.floats();
        let dims: Vec<usize> = c.dims.iter().copied().skip_while(|&d| d == 1).collect();
        let ch = x.shape.c;
        if v.len() == 1 && c.dims.len() <= x.layout.rank() {
            return Some(vec![v[0]; ch]);
        }
        let ok = match x.layout {
            Layout::Nc => dims == [ch] && c.dims.len() <= 2,
            Layout::Nchw | Layout::Chw => dims == [ch, 1, 1] && c.dims.len() <= x.layout.rank(),
            Layout::Rows => false,
        };
        ok.then_some(v)
    }

    // ---- layers -----------------------------------------------------------------------------

    fn conv(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.map_input(node, 0)?;
        let w = self
            .const_input(node, 1)?
            .ok_or_else(|| self.err(node, "it has no weights"))?;
        let b = self.const_input(node, 2)?;
        if x.layout != Layout::Nchw {
            return Err(self.err(node, "mafat convolves 2-D maps [1, C, H, W] only"));
        }
        let [m, cg, kh, kw] = w.dims[..] else {
            return Err(self.err(
                node,
                format!(
                    "weights of dimensions {:?}: mafat convolves 2-D maps (weights [M, C/group, kH, kW])",
                    w.dims
                ),
            ));
        };
        let group = a.int("group").unwrap_or(1);
        let g = usize::try_from(group)
            .ok()
            .filter(|&g| {
                g >= 1 && x.shape.c.is_multiple_of(g) && m.is_multiple_of(g) && cg * g == x.shape.c
            })
            .ok_or_else(|| {
                self.err(
                    node,
                    format!(
                        "group {group} does not fit {} input channels and weights {:?}",
                        x.shape.c, w.dims
                    ),
                )
            })?;
        if kh != kw || kh == 0 || kh > MAX_SIDE {
            return Err(self.err(
                node,
                format!("a {kh}x{kw} kernel: mafat's convolutions have square kernels of 1 to {MAX_SIDE}"),
            ));
        }
        if let Some(ks) = a.ints("kernel_shape")
            && ks != [kh as i64, kw as i64]
        {
            return Err(self.err(
                node,
                format!("kernel_shape {ks:?} differs from its weights' {kh}x{kw}"),
            ));
        }
        let (stride, pads) = self.window_pads(node, a, x.shape, kh)?;
        // Uneven padding (TensorFlow's SAME with a stride, explicit pads): a padding layer first,
        // then the convolution without padding.
        let (x, pad) = match pads {
            [t, l, b, r] if t == l && t == b && t == r => (x, t),
            [top, left, bottom, right] => {
                let out = Shape::new(
                    x.shape.c,
                    x.shape.h + top + bottom,
                    x.shape.w + left + right,
                );
                let kind = LayerKind::Pad {
                    top,
                    left,
                    value: F32Bits::new(0.0),
                };
                let src = self.push(node, kind, vec![x.src], x.shape, out, None)?;
                (
                    MapVal {
                        src,
                        shape: out,
                        ..x
                    },
                    0,
                )
            }
        };
        if a.ints("dilations")
            .is_some_and(|d| d.iter().any(|&v| v != 1))
        {
            return Err(self.err(node, "dilations other than 1 are not supported"));
        }
        let bias = match b {
            Some(b) if b.len() == m => b.floats(),
            Some(b) => {
                return Err(self.err(
                    node,
                    format!("a bias of {} values for {m} filters", b.len()),
                ));
            }
            None => vec![0.0; m],
        };
        if w.len() != m * cg * kh * kw {
            return Err(self.err(node, "weights do not match their dimensions"));
        }
        let out = Shape::new(
            m,
            (x.shape.h + 2 * pad - kh) / stride + 1,
            (x.shape.w + 2 * pad - kw) / stride + 1,
        );
        let params = ConvParams {
            weights: w.floats(),
            bias,
        };
        let y = self.push_conv(
            node,
            x,
            (m, kh, stride, pad, g),
            Activation::Linear,
            out,
            params,
        )?;
        self.set_map(node, y)
    }

    /// Stride and pads `[top, left, bottom, right]` of a square window.
    fn window_pads(
        &self,
        node: &NodeProto,
        a: &Attrs<'_>,
        x: Shape,
        k: usize,
    ) -> Result<(usize, [usize; 4])> {
        let strides = a.ints("strides").unwrap_or_else(|| vec![1, 1]);
        if k == 0 || k > MAX_SIDE {
            return Err(self.err(
                node,
                format!("a {k}x{k} window: sides run from 1 to {MAX_SIDE}"),
            ));
        }
        let stride = match strides[..] {
            [s, t] if s == t && s >= 1 && s <= MAX_SIDE as i64 => s as usize,
            _ => {
                return Err(self.err(
                    node,
                    format!("strides {strides:?}: mafat's windows step alike on both axes"),
                ));
            }
        };
        let auto = a.string("auto_pad").unwrap_or_else(|| "NOTSET".into());
        let pads = match auto.as_str() {
            "NOTSET" => {
                let p = a.ints("pads").unwrap_or_else(|| vec![0; 4]);
                match p[..] {
                    [t, l, b, r] if p.iter().all(|&v| (0..=MAX_SIDE as i64).contains(&v)) => {
                        [t as usize, l as usize, b as usize, r as usize]
                    }
                    _ => {
                        return Err(self.err(
                            node,
                            format!("pads {p:?}: expected 4 non-negative values for a 2-D window"),
                        ));
                    }
                }
            }
            "VALID" => [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let total = |len: usize| {
                    let out = len.div_ceil(stride);
                    ((out - 1) * stride + k).saturating_sub(len)
                };
                let (th, tw) = (total(x.h), total(x.w));
                let split = |t: usize| match auto.as_str() {
                    "SAME_UPPER" => (t / 2, t - t / 2),
                    _ => (t - t / 2, t / 2),
                };
                let ((t, b), (l, r)) = (split(th), split(tw));
                [t, l, b, r]
            }
            other => {
                return Err(self.err(
                    node,
                    format!("auto_pad `{}` is not an ONNX value", short(other)),
                ));
            }
        };
        if pads.iter().any(|&p| p > MAX_SIDE) {
            return Err(self.err(node, format!("pads {pads:?} pass {MAX_SIDE}")));
        }
        if x.h + pads[0] + pads[2] < k || x.w + pads[1] + pads[3] < k {
            return Err(self.err(
                node,
                format!("a {k}x{k} window does not fit the padded {x} input"),
            ));
        }
        Ok((stride, pads))
    }

    fn batch_norm(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.map_input(node, 0)?;
        if x.layout == Layout::Chw {
            return Err(self.err(
                node,
                "its input [C, H, W] has no batch axis: batch norm's channels are axis 1 of [N, C, H, W]",
            ));
        }
        if a.int("training_mode").unwrap_or(0) != 0 || a.int("spatial").unwrap_or(1) != 1 {
            return Err(self.err(
                node,
                "training mode (or spatial = 0) is not inference: export the model for inference",
            ));
        }
        let eps = a.float("epsilon").unwrap_or(1e-5) as f64;
        let mut p = Vec::new();
        for i in 1..=4 {
            let c = self
                .const_input(node, i)?
                .ok_or_else(|| self.err(node, format!("input {i} is missing")))?;
            if c.len() != x.shape.c {
                return Err(self.err(
                    node,
                    format!(
                        "input {i} holds {} values for {} channels",
                        c.len(),
                        x.shape.c
                    ),
                ));
            }
            p.push(c.floats());
        }
        let (scale, b, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
        // y = scale·(x − mean)/sqrt(var + ε) + B = k·x + (B − k·mean), in f64 rounded once.
        let k: Vec<f64> = (0..x.shape.c)
            .map(|c| scale[c] as f64 / (var[c] as f64 + eps).sqrt())
            .collect();
        if k.iter().any(|v| !v.is_finite()) {
            return Err(self.err(node, "a variance makes the scale infinite or NaN"));
        }
        let name = node.input[0].clone();
        if let Some(l) = self.foldable(&name, x, 1) {
            let pm = self.params_mut(l);
            let per = pm.weights.len() / x.shape.c;
            for (j, w) in pm.weights.iter_mut().enumerate() {
                *w = (*w as f64 * k[j / per]) as f32;
            }
            for (c, bias) in pm.bias.iter_mut().enumerate() {
                *bias = ((*bias as f64 - mean[c] as f64) * k[c] + b[c] as f64) as f32;
            }
            return self.folded(node, &name, x);
        }
        let scale = k.iter().map(|&v| v as f32).collect();
        let bias = (0..x.shape.c)
            .map(|c| (b[c] as f64 - k[c] * mean[c] as f64) as f32)
            .collect();
        let y = self.affine(node, x, scale, bias, Activation::Linear)?;
        self.set_map(node, y)
    }

    fn activation(&mut self, node: &NodeProto, act: Activation) -> Result<()> {
        let x = self.map_input(node, 0)?;
        let name = node.input[0].clone();
        self.activate(node, &name, x, act, 1)
    }

    fn activate(
        &mut self,
        node: &NodeProto,
        name: &str,
        x: MapVal,
        act: Activation,
        readers: usize,
    ) -> Result<()> {
        if let Some(l) = self.foldable(name, x, readers) {
            if let LayerKind::Conv(c) = &mut self.layers[l].kind {
                c.activation = act;
            }
            return self.folded(node, name, x);
        }
        let ch = x.shape.c;
        let y = self.affine(node, x, vec![1.0; ch], vec![0.0; ch], act)?;
        self.set_map(node, y)
    }

    /// Whether `node` (a gate g of its input x) is the first half of `Mul(x, g(x))` with x read
    /// only by the two and g(x) only by the Mul: then it waits for the Mul as `product`.
    fn gate(&mut self, k: usize, node: &NodeProto, product: Activation) -> bool {
        let xname = node.input[0].clone();
        let sname = node.output.first().cloned().unwrap_or_default();
        let partner = self.nodes[k + 1..].iter().find(|n| {
            n.op_type() == "Mul"
                && n.input.len() == 2
                && n.input.contains(&xname)
                && n.input.contains(&sname)
        });
        let gated = partner.is_some()
            && self.uses.get(&xname).copied() == Some(2)
            && self.uses.get(&sname).copied() == Some(1)
            && node.output.len() == 1;
        if gated {
            self.pending_swish.insert(sname, (xname, product));
        }
        gated
    }

    fn sigmoid(&mut self, k: usize, node: &NodeProto) -> Result<()> {
        let x = self.map_input(node, 0)?;
        // SiLU: Mul(x, Sigmoid(x)) (in either order) folds into one activation.
        if self.gate(k, node, Activation::Swish) {
            return Ok(());
        }
        let xname = node.input[0].clone();
        self.activate(node, &xname, x, Activation::Logistic, 1)
    }

    fn clip(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let (lo, hi) = if self.opset < 11 {
            (
                a.float("min").unwrap_or(f32::MIN),
                a.float("max").unwrap_or(f32::MAX),
            )
        } else {
            let get = |i: usize| -> Result<Option<f32>> {
                match self.const_input(node, i)? {
                    Some(c) if c.len() == 1 => Ok(Some(c.floats()[0])),
                    Some(_) => Err(self.err(node, format!("input {i} is not a scalar"))),
                    None => Ok(None),
                }
            };
            (get(1)?.unwrap_or(f32::MIN), get(2)?.unwrap_or(f32::MAX))
        };
        if lo == 0.0 && (hi == f32::MAX || hi == f32::INFINITY) {
            return self.activation(node, Activation::Relu);
        }
        if lo.is_nan() || hi.is_nan() {
            return Err(self.err(node, "a bound is NaN"));
        }
        let (lo, hi) = (F32Bits::new(lo), F32Bits::new(hi));
        self.activation(node, Activation::Clip { lo, hi })
    }

    fn arithmetic(&mut self, node: &NodeProto) -> Result<()> {
        let op = node.op_type().to_string();
        if node.input.len() != 2 {
            return Err(self.err(node, "expected two inputs"));
        }
        if op == "Mul" {
            // SiLU's second half: Mul(x, Sigmoid(x)), the Sigmoid left pending.
            let (an, bn) = (node.input[0].clone(), node.input[1].clone());
            for (s, x) in [(&bn, &an), (&an, &bn)] {
                if let Some((gx, act)) = self.pending_swish.get(s).cloned()
                    && &gx == x
                {
                    self.pending_swish.remove(s);
                    let xm = self.map_input(node, usize::from(x == &bn))?;
                    return self.activate(node, &gx, xm, act, 2);
                }
            }
        }
        let (a, b) = (self.input(node, 0)?.cloned(), self.input(node, 1)?.cloned());
        let (Some(a), Some(b)) = (a, b) else {
            return Err(self.err(node, "an input is missing"));
        };
        match (a, b) {
            (Val::Const(a), Val::Const(b)) => {
                let c = const_arith(&op, &a, &b).map_err(|m| self.err(node, m))?;
                self.set(node, Val::Const(c))
            }
            (Val::Map(a), Val::Map(b)) => self.map_map(node, &op, a, b),
            (Val::Map(x), Val::Const(c)) => self.map_const(node, &op, x, &c, false),
            (Val::Const(c), Val::Map(x)) => self.map_const(node, &op, x, &c, true),
            (Val::Rows(_), _) | (_, Val::Rows(_)) => Err(self.err(node, ROWS_ONLY)),
        }
    }

    fn map_map(&mut self, node: &NodeProto, op: &str, a: MapVal, b: MapVal) -> Result<()> {
        if op == "Mul" {
            // A squeeze-and-excitation product: a map by a C×1×1 map.
            for (big, small) in [(a, b), (b, a)] {
                if small.shape == Shape::new(big.shape.c, 1, 1)
                    && small.layout == big.layout
                    && big.shape != small.shape
                {
                    let src = self.push(
                        node,
                        LayerKind::ScaleChannels,
                        vec![big.src, small.src],
                        big.shape,
                        big.shape,
                        None,
                    )?;
                    return self.set_map(node, MapVal { src, ..big });
                }
            }
            return Err(self.err(
                node,
                format!(
                    "a product of maps {} and {}: mafat multiplies a map by a per-channel map (C×1×1) or x by Sigmoid(x)",
                    a.shape, b.shape
                ),
            ));
        }
        if a.shape != b.shape || a.layout != b.layout {
            return Err(self.err(
                node,
                format!(
                    "maps {} and {} differ: mafat adds and subtracts maps of one shape",
                    a.shape, b.shape
                ),
            ));
        }
        let beta = match op {
            "Add" => 1.0,
            "Sub" => -1.0,
            _ => {
                return Err(self.err(node, "a quotient of two maps is not supported"));
            }
        };
        // The shortcut's `from` must be a layer; an Add may swap its operands (exactly).
        let (first, second) = match (a.src, b.src) {
            (_, Source::Layer(_)) => (a, b),
            (Source::Layer(_), Source::Input) if op == "Add" => (b, a),
            _ => {
                return Err(self.err(
                    node,
                    "it reads the network's input directly where mafat needs a layer's output",
                ));
            }
        };
        let Source::Layer(from) = second.src else {
            unreachable!("checked above")
        };
        let kind = LayerKind::Shortcut {
            from,
            activation: Activation::Linear,
            alpha: 1.0,
            beta,
        };
        let src = self.push(
            node,
            kind,
            vec![first.src, second.src],
            a.shape,
            a.shape,
            None,
        )?;
        self.set_map(node, MapVal { src, ..a })
    }

    fn map_const(
        &mut self,
        node: &NodeProto,
        op: &str,
        x: MapVal,
        c: &Constant,
        const_first: bool,
    ) -> Result<()> {
        let v = Self::per_channel(x, c).ok_or_else(|| {
            self.err(
                node,
                format!(
                    "a constant of dimensions {:?} does not broadcast per channel over a map {} (rank {}); mafat takes scalars and per-channel constants",
                    c.dims, x.shape, x.layout.rank()
                ),
            )
        })?;
        let ch = x.shape.c;
        // y = scale·x + shift per channel.
        let (scale, shift): (Vec<f32>, Vec<f32>) = match (op, const_first) {
            ("Add", _) => (vec![1.0; ch], v),
            ("Sub", false) => (vec![1.0; ch], v.iter().map(|&t| -t).collect()),
            ("Sub", true) => (vec![-1.0; ch], v),
            ("Mul", _) => (v, vec![0.0; ch]),
            ("Div", false) => (v.iter().map(|&t| 1.0 / t).collect(), vec![0.0; ch]),
            _ => {
                return Err(self.err(node, "a constant divided by a map is not supported"));
            }
        };
        let name = node.input[usize::from(const_first)].clone();
        if let Some(l) = self.foldable(&name, x, 1) {
            let pm = self.params_mut(l);
            let per = pm.weights.len() / ch;
            let scaled = scale.iter().any(|&s| s != 1.0);
            if scaled {
                for (j, w) in pm.weights.iter_mut().enumerate() {
                    *w *= scale[j / per];
                }
            }
            for (f, b) in pm.bias.iter_mut().enumerate() {
                *b = if scaled { *b * scale[f] } else { *b } + shift[f];
            }
            return self.folded(node, &name, x);
        }
        let y = self.affine(node, x, scale, shift, Activation::Linear)?;
        self.set_map(node, y)
    }

    fn concat(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let axis = a
            .int("axis")
            .ok_or_else(|| self.err(node, "it has no axis"))?;
        let mut vals = Vec::new();
        for i in 0..node.input.len() {
            match self.input(node, i)? {
                Some(v) => vals.push(v.clone()),
                None => return Err(self.err(node, format!("input {i} is missing"))),
            }
        }
        if vals.iter().all(|v| matches!(v, Val::Const(_))) {
            let consts: Vec<&Constant> = vals
                .iter()
                .filter_map(|v| match v {
                    Val::Const(c) => Some(c),
                    _ => None,
                })
                .collect();
            let c = const_concat(&consts, axis).map_err(|m| self.err(node, m))?;
            return self.set(node, Val::Const(c));
        }
        if vals.iter().all(|v| matches!(v, Val::Rows(_))) {
            // Views [1, C, L_i] joined along L.
            let parts: Vec<MapVal> = vals
                .iter()
                .flat_map(|v| match v {
                    Val::Rows(p) => p.clone(),
                    _ => Vec::new(),
                })
                .collect();
            if (axis != 2 && axis != -1) || parts.iter().any(|m| m.shape.c != parts[0].shape.c) {
                return Err(self.err(
                    node,
                    format!("axis {axis} of [1, C, L] views: mafat joins such views along L (axis 2) when their C agree"),
                ));
            }
            return self.set(node, Val::Rows(parts));
        }
        let maps: Vec<MapVal> = vals
            .iter()
            .map(|v| match v {
                Val::Map(m) => Ok(*m),
                Val::Rows(_) => Err(self.err(node, ROWS_ONLY)),
                Val::Const(_) => Err(self.err(
                    node,
                    "it joins constants and maps; mafat concatenates maps computed from the input",
                )),
            })
            .collect::<Result<_>>()?;
        let layout = maps[0].layout;
        let rank = layout.rank() as i64;
        // The channel axis: 1 of [1, C, H, W] and [1, C], 0 of [C, H, W] (and of [1, L, K] rows,
        // which are appended along L).
        let channel = i64::from(layout != Layout::Chw);
        let channel_axis = axis == channel || axis == channel - rank;
        let (h, w) = (maps[0].shape.h, maps[0].shape.w);
        if !channel_axis
            || maps
                .iter()
                .any(|m| m.layout != layout || m.shape.h != h || m.shape.w != w)
        {
            return Err(self.err(
                node,
                format!(
                    "axis {axis} over maps {}: mafat concatenates maps of one height and width along channels (axis 1)",
                    maps.iter().map(|m| m.shape.to_string()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let mut layers = Vec::new();
        for m in &maps {
            match m.src {
                Source::Layer(l) => layers.push(l),
                Source::Input => {
                    return Err(self.err(
                        node,
                        "it concatenates the network's input itself, which mafat cannot yet",
                    ));
                }
            }
        }
        let c: usize = maps.iter().map(|m| m.shape.c).sum();
        let out = Shape::new(c, h, w);
        let src = self.push(
            node,
            LayerKind::Route {
                layers: layers.clone(),
            },
            layers.iter().map(|&l| Source::Layer(l)).collect(),
            out,
            out,
            None,
        )?;
        self.set_map(
            node,
            MapVal {
                src,
                shape: out,
                layout,
            },
        )
    }

    fn maxpool(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let (x, k) = self.pool_window(node, a)?;
        if a.int("storage_order").unwrap_or(0) != 0 {
            return Err(self.err(node, "storage_order 1 is not supported"));
        }
        let ceil = a.int("ceil_mode").unwrap_or(0) != 0;
        if ceil && a.string("auto_pad").is_some_and(|p| p != "NOTSET") {
            return Err(self.err(
                node,
                "ceil_mode with auto_pad: ONNX leaves the pair undefined; give explicit pads",
            ));
        }
        let (s, [pt, pl, pb, pr]) = self.window_pads(node, a, x.shape, k)?;
        // ONNX's output size along an axis, and the total padding that gives it Darknet's way.
        let out_len = |len: usize, before: usize, after: usize| {
            let span = len + before + after - k;
            let mut o = if ceil { span.div_ceil(s) } else { span / s } + 1;
            // A window may not start in the padding after the map.
            if ceil && (o - 1) * s >= len + before {
                o -= 1;
            }
            o
        };
        let (oh, ow) = (out_len(x.shape.h, pt, pb), out_len(x.shape.w, pl, pr));
        // Darknet's pool: padding P, P/2 before; output (len + P − k)/s + 1. Padding past what
        // ONNX pads after the map changes nothing (padding never wins) but the output size.
        let fits = |len: usize, before: usize, o: usize, p: usize| {
            p / 2 == before && len + p >= k && (len + p - k) / s + 1 == o
        };
        let lo = (pt + pb).min(pl + pr);
        let padding =
            (lo..=lo + s + 1).find(|&p| fits(x.shape.h, pt, oh, p) && fits(x.shape.w, pl, ow, p));
        let Some(padding) = padding else {
            return Err(self.err(
                node,
                format!(
                    "pads [{pt}, {pl}, {pb}, {pr}] with stride {s}{}: mafat's pool pads the top and left alike and the bottom and right by at most one more",
                    if ceil { " in ceil mode" } else { "" }
                ),
            ));
        };
        let out = Shape::new(x.shape.c, oh, ow);
        let pool = MaxPool {
            size: k,
            stride: s,
            padding,
        };
        let src = self.push(
            node,
            LayerKind::MaxPool(pool),
            vec![x.src],
            x.shape,
            out,
            None,
        )?;
        self.set_map(
            node,
            MapVal {
                src,
                shape: out,
                layout: Layout::Nchw,
            },
        )
    }

    fn average_pool(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let (x, k) = self.pool_window(node, a)?;
        if a.int("ceil_mode").unwrap_or(0) != 0 {
            return Err(self.err(node, "ceil_mode 1 is not supported for average pools"));
        }
        let (s, pads) = self.window_pads(node, a, x.shape, k)?;
        if pads.iter().any(|&p| p >= k) {
            return Err(self.err(
                node,
                format!(
                    "pads {pads:?} reach past a {k}x{k} window: some windows would hold no cell"
                ),
            ));
        }
        let [pt, pl, pb, pr] = pads;
        let out = Shape::new(
            x.shape.c,
            (x.shape.h + pt + pb - k) / s + 1,
            (x.shape.w + pl + pr - k) / s + 1,
        );
        let kind = LayerKind::AvgPoolWindow {
            size: k,
            stride: s,
            pads,
            count_include_pad: a.int("count_include_pad").unwrap_or(0) != 0,
        };
        self.push_map(node, kind, x, out, Layout::Nchw)
    }

    /// `Pad` in constant mode on the height and width of a `[1, C, H, W]` map.
    fn pad(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.map_input(node, 0)?;
        let mode = a.string("mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" || x.layout != Layout::Nchw {
            return Err(self.err(
                node,
                format!(
                    "mode `{}` of {:?}: mafat pads [1, C, H, W] maps with a constant",
                    short(&mode),
                    dims_of(x)
                ),
            ));
        }
        let (pads, value, axes) = if self.opset < 11 {
            (a.ints("pads"), a.float("value").unwrap_or(0.0), None)
        } else {
            let pads = self
                .const_input(node, 1)?
                .and_then(|c| c.ints().map(<[i64]>::to_vec));
            let value = match self.const_input(node, 2)? {
                Some(c) if c.len() == 1 => c.floats()[0],
                Some(_) => return Err(self.err(node, "its constant_value is not a scalar")),
                None => 0.0,
            };
            let axes = self
                .const_input(node, 3)?
                .and_then(|c| c.ints().map(<[i64]>::to_vec));
            (pads, value, axes)
        };
        let pads = pads.ok_or_else(|| self.err(node, "its pads are not constant integers"))?;
        let axes: Vec<i64> = axes.unwrap_or_else(|| (0..4).collect());
        if pads.len() != 2 * axes.len() {
            return Err(self.err(node, format!("pads {pads:?} for axes {axes:?}")));
        }
        // Per axis of [N, C, H, W]: (before, after).
        let mut per = [(0i64, 0i64); 4];
        for (k, &ax) in axes.iter().enumerate() {
            let ax = if ax < 0 { ax + 4 } else { ax };
            if !(0..4).contains(&ax) {
                return Err(self.err(node, format!("axis {ax} of a 4-D map")));
            }
            per[ax as usize] = (pads[k], pads[k + axes.len()]);
        }
        let ok = per[0] == (0, 0)
            && per[1] == (0, 0)
            && per[2..].iter().all(|&(b, e)| {
                (0..=MAX_SIDE as i64).contains(&b) && (0..=MAX_SIDE as i64).contains(&e)
            });
        if !ok {
            return Err(self.err(
                node,
                format!("pads {pads:?}: mafat adds rows and columns (0 to {MAX_SIDE}) only, never crops or pads N or C"),
            ));
        }
        let [_, _, (top, bottom), (left, right)] = per.map(|(b, e)| (b as usize, e as usize));
        let out = Shape::new(
            x.shape.c,
            x.shape.h + top + bottom,
            x.shape.w + left + right,
        );
        let kind = LayerKind::Pad {
            top,
            left,
            value: F32Bits::new(value),
        };
        let src = self.push(node, kind, vec![x.src], x.shape, out, None)?;
        self.set_map(
            node,
            MapVal {
                src,
                shape: out,
                ..x
            },
        )
    }

    fn global_average_pool(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.map_input(node, 0)?;
        if x.layout != Layout::Nchw {
            return Err(self.err(node, "mafat pools 2-D maps [1, C, H, W] only"));
        }
        let out = Shape::new(x.shape.c, 1, 1);
        self.push_map(node, LayerKind::AvgPool, x, out, Layout::Nchw)
    }

    fn resize(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.map_input(node, 0)?;
        let mode = a.string("mode").unwrap_or_else(|| "nearest".into());
        if mode != "nearest" {
            return Err(self.err(
                node,
                format!(
                    "mode `{}`: mafat resizes by nearest neighbour only",
                    short(&mode)
                ),
            ));
        }
        let resize = node.op_type() == "Resize";
        if a.int("antialias").unwrap_or(0) != 0 {
            return Err(self.err(node, "antialias 1 is not supported"));
        }
        // How an output pixel finds its source: equal to floor(x / s) for an integer factor s?
        if resize && self.opset >= 11 {
            let ctm = a
                .string("coordinate_transformation_mode")
                .unwrap_or_else(|| "half_pixel".into());
            let nearest = a
                .string("nearest_mode")
                .unwrap_or_else(|| "round_prefer_floor".into());
            let floor_like = match ctm.as_str() {
                "asymmetric" => nearest == "floor",
                "half_pixel" | "pytorch_half_pixel" => {
                    nearest == "round_prefer_floor" || nearest == "round_prefer_ceil"
                }
                _ => false,
            };
            if !floor_like {
                return Err(self.err(
                    node,
                    format!(
                        "coordinate_transformation_mode `{}` with nearest_mode `{}`: mafat resizes as asymmetric/floor or half_pixel/round_prefer_floor do",
                        short(&ctm),
                        short(&nearest)
                    ),
                ));
            }
        }
        let (scales, sizes) = if !resize && self.opset < 9 {
            (a.get("scales").map(|s| s.floats.clone()), None)
        } else if resize && self.opset >= 11 {
            (
                self.const_input(node, 2)?
                    .filter(|c| !c.is_empty())
                    .map(|c| c.floats()),
                self.const_input(node, 3)?
                    .filter(|c| !c.is_empty())
                    .map(|c| c.floats()),
            )
        } else {
            (self.const_input(node, 1)?.map(|c| c.floats()), None)
        };
        let factor = |out: f32, len: usize| -> Option<usize> {
            (out >= 1.0
                && out.fract() == 0.0
                && out <= (MAX_SIDE * len) as f32
                && (out as usize).is_multiple_of(len))
            .then(|| out as usize / len)
            .filter(|&f| f <= MAX_SIDE)
        };
        let s = match (&scales, &sizes) {
            (Some(sc), _) if sc.len() == 4 && sc[0] == 1.0 && sc[1] == 1.0 && sc[2] == sc[3] => {
                factor(sc[2] * x.shape.h as f32, x.shape.h).filter(|&f| f as f32 == sc[2])
            }
            (_, Some(sz)) if sz.len() == 4 && sz[0] == 1.0 && sz[1] == x.shape.c as f32 => {
                match (factor(sz[2], x.shape.h), factor(sz[3], x.shape.w)) {
                    (Some(fh), Some(fw)) if fh == fw => Some(fh),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(s) = s.filter(|_| x.layout == Layout::Nchw) else {
            return Err(self.err(
                node,
                format!(
                    "scales {scales:?} / sizes {sizes:?}: mafat resizes [1, C, H, W] maps by one integer factor on both axes"
                ),
            ));
        };
        let out = Shape::new(x.shape.c, x.shape.h * s, x.shape.w * s);
        let kind = LayerKind::Upsample {
            stride: s,
            scale: 1.0,
        };
        self.push_map(node, kind, x, out, Layout::Nchw)
    }

    /// `x` as the vector `[1, C·H·W]`: the same values in the same order (a reshape layer unless
    /// the map already is one value per channel).
    fn flatten_map(&mut self, node: &NodeProto, x: MapVal) -> Result<MapVal> {
        let n = x.shape.len();
        if x.shape.h == 1 && x.shape.w == 1 {
            return Ok(MapVal {
                layout: Layout::Nc,
                ..x
            });
        }
        let out = Shape::new(n, 1, 1);
        let src = self.push(node, LayerKind::Reshape, vec![x.src], x.shape, out, None)?;
        Ok(MapVal {
            src,
            shape: out,
            layout: Layout::Nc,
        })
    }

    fn flatten(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let axis = a.int("axis").unwrap_or(1);
        match self.input(node, 0)?.cloned() {
            Some(Val::Map(x)) if (axis == 1 || axis == 0) && x.layout != Layout::Chw => {
                let y = self.flatten_map(node, x)?;
                self.set_map(node, y)
            }
            Some(Val::Const(c)) => {
                let r = c.dims.len() as i64;
                let ax = if axis < 0 { axis + r } else { axis };
                if !(0..=r).contains(&ax) {
                    return Err(self.err(node, format!("axis {axis} is outside rank {r}")));
                }
                let outer: usize = c.dims[..ax as usize].iter().product();
                let inner: usize = c.dims[ax as usize..].iter().product();
                self.set(
                    node,
                    Val::Const(Constant {
                        dims: vec![outer, inner],
                        ..c
                    }),
                )
            }
            _ => Err(self.err(
                node,
                format!("axis {axis}: mafat flattens a map to [1, C·H·W] (axis 1)"),
            )),
        }
    }

    fn reshape(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let target = self
            .const_input(node, 1)?
            .and_then(|c| c.ints().map(<[i64]>::to_vec))
            .ok_or_else(|| self.err(node, "its shape is not a constant int64 tensor"))?;
        let allowzero = a.int("allowzero").unwrap_or(0) != 0;
        let v = self
            .input(node, 0)?
            .cloned()
            .ok_or_else(|| self.err(node, "input 0 is missing"))?;
        let dims = match &v {
            Val::Map(m) => dims_of(*m),
            Val::Const(c) => c.dims.clone(),
            Val::Rows(_) => return Err(self.err(node, ROWS_ONLY)),
        };
        let new = reshape_dims(&dims, &target, allowzero).map_err(|m| self.err(node, m))?;
        match v {
            Val::Const(c) => self.set(node, Val::Const(Constant { dims: new, ..c })),
            Val::Rows(_) => Err(self.err(node, ROWS_ONLY)),
            Val::Map(x) => match new[..] {
                [1, n] if n == x.shape.len() => {
                    let y = self.flatten_map(node, x)?;
                    self.set_map(node, y)
                }
                [1, c, l] if x.layout == Layout::Nchw && c == x.shape.c && l == x.shape.h * x.shape.w => {
                    self.set(node, Val::Rows(vec![x]))
                }
                [1, c, h, w] if x.shape.h == h && x.shape.w == w && x.shape.c == c => {
                    self.set_map(node, MapVal { layout: Layout::Nchw, ..x })
                }
                [1, c, h, w] => {
                    let out = Shape::new(c, h, w);
                    let src =
                        self.push(node, LayerKind::Reshape, vec![x.src], x.shape, out, None)?;
                    self.set_map(
                        node,
                        MapVal {
                            src,
                            shape: out,
                            layout: Layout::Nchw,
                        },
                    )
                }
                _ => Err(self.err(
                    node,
                    format!(
                        "a map {dims:?} reshaped to {new:?}: mafat reshapes maps to [1, N] or [1, C, H, W]"
                    ),
                )),
            },
        }
    }

    fn gemm(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.map_input(node, 0)?;
        let b = self
            .const_input(node, 1)?
            .ok_or_else(|| self.err(node, "input 1 is missing"))?;
        let gemm = node.op_type() == "Gemm";
        let trans_a = a.int("transA").unwrap_or(0) != 0;
        let trans_b = gemm && a.int("transB").unwrap_or(0) != 0;
        let alpha = a.float("alpha").unwrap_or(1.0);
        let beta = a.float("beta").unwrap_or(1.0);
        let kdim = x.shape.c;
        if x.layout != Layout::Nc || trans_a {
            return Err(self.err(
                node,
                format!(
                    "its first input is {:?}{}: mafat multiplies a vector [1, K] by a constant matrix",
                    dims_of(x),
                    if trans_a { " transposed" } else { "" }
                ),
            ));
        }
        let (k, n) = match b.dims[..] {
            [r, c] if trans_b => (c, r),
            [r, c] => (r, c),
            _ => {
                return Err(self.err(
                    node,
                    format!(
                        "a constant of dimensions {:?} where a matrix is expected",
                        b.dims
                    ),
                ));
            }
        };
        if k != kdim {
            return Err(self.err(
                node,
                format!(
                    "a [1, {kdim}] vector times a {:?} matrix: the inner sizes differ (is --size the model's?)",
                    b.dims
                ),
            ));
        }
        let bv = b.floats();
        // Conv weights [filters = n][channels = k].
        let weights: Vec<f32> = (0..n)
            .flat_map(|j| {
                let bv = &bv;
                (0..k).map(move |i| {
                    if trans_b {
                        bv[j * k + i]
                    } else {
                        bv[i * n + j]
                    }
                })
            })
            .map(|w| if alpha == 1.0 { w } else { alpha * w })
            .collect();
        let bias = match self.const_input(node, 2)? {
            None => vec![0.0; n],
            Some(c) => {
                let v = c.floats();
                let dims: Vec<usize> = c.dims.iter().copied().skip_while(|&d| d == 1).collect();
                let v = if v.len() == 1 {
                    vec![v[0]; n]
                } else if dims == [n] {
                    v
                } else {
                    return Err(self.err(
                        node,
                        format!("a bias of dimensions {:?} for {n} outputs", c.dims),
                    ));
                };
                v.iter()
                    .map(|&t| if beta == 1.0 { t } else { beta * t })
                    .collect()
            }
        };
        let out = Shape::new(n, 1, 1);
        let params = ConvParams { weights, bias };
        let y = self.push_conv(node, x, (n, 1, 1, 0, 1), Activation::Linear, out, params)?;
        // A vector in, a vector out.
        self.set_map(
            node,
            MapVal {
                layout: Layout::Nc,
                ..y
            },
        )
    }

    fn softmax(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let x = self.map_input(node, 0)?;
        let default = if self.opset >= 13 { -1 } else { 1 };
        let axis = a.int("axis").unwrap_or(default);
        let over_channels = match x.layout {
            Layout::Nc => axis == 1 || axis == -1,
            Layout::Nchw => (axis == 1 || axis == -3) && x.shape.h == 1 && x.shape.w == 1,
            Layout::Chw | Layout::Rows => false,
        };
        if !over_channels {
            return Err(self.err(
                node,
                format!(
                    "axis {axis} of {:?}: mafat's softmax runs over a vector [1, N]",
                    dims_of(x)
                ),
            ));
        }
        let kind = LayerKind::Softmax {
            groups: 1,
            temperature: 1.0,
        };
        let src = self.push(node, kind, vec![x.src], x.shape, x.shape, None)?;
        self.set_map(node, MapVal { src, ..x })
    }

    /// `Transpose(0, 2, 1)` of a `[1, C, L]` view: each map as H·W rows of C values, the rows
    /// of all maps appended (a route).
    fn transpose(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let perm = a.ints("perm");
        let parts = match self.input(node, 0)?.cloned() {
            Some(Val::Rows(parts)) if perm.as_deref() == Some(&[0, 2, 1]) => parts,
            _ => {
                return Err(self.err(
                    node,
                    format!(
                        "perm {perm:?}: mafat transposes only a detection head's [1, C, L] (Reshape'd maps) to [1, L, C]"
                    ),
                ));
            }
        };
        let c = parts[0].shape.c;
        let mut rows = Vec::new();
        for m in &parts {
            let out = Shape::new(m.shape.h * m.shape.w, 1, c);
            let src = self.push(node, LayerKind::Transpose, vec![m.src], m.shape, out, None)?;
            rows.push((src, out));
        }
        let total: usize = rows.iter().map(|(_, o)| o.c).sum();
        let out = Shape::new(total, 1, c);
        let src = match rows[..] {
            [(src, _)] => src,
            _ => {
                let layers: Vec<usize> = rows
                    .iter()
                    .filter_map(|(s, _)| match s {
                        Source::Layer(l) => Some(*l),
                        Source::Input => None,
                    })
                    .collect();
                let sources = layers.iter().map(|&l| Source::Layer(l)).collect();
                self.push(node, LayerKind::Route { layers }, sources, out, out, None)?
            }
        };
        self.set_map(
            node,
            MapVal {
                src,
                shape: out,
                layout: Layout::Rows,
            },
        )
    }

    fn alias(&mut self, node: &NodeProto) -> Result<()> {
        let v = self
            .input(node, 0)?
            .cloned()
            .ok_or_else(|| self.err(node, "input 0 is missing"))?;
        // A value read by this node alone is renamed, so that what follows may still fold.
        let name = &node.input[0];
        if self.uses.get(name).copied() == Some(1) {
            self.values.remove(name);
        }
        self.set(node, v)
    }

    fn dropout(&mut self, node: &NodeProto) -> Result<()> {
        if let Some(c) = self.const_input_opt(node, 2)?
            && c.ints().is_some_and(|v| v.iter().any(|&t| t != 0))
        {
            return Err(self.err(
                node,
                "training_mode is true: export the model for inference",
            ));
        }
        self.alias(node)
    }

    /// Input `i` as a constant when it is one (a map there is an error).
    fn const_input_opt(&self, node: &NodeProto, i: usize) -> Result<Option<Constant>> {
        self.const_input(node, i)
    }

    // ---- constants --------------------------------------------------------------------------

    fn constant(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let c = if let Some(t) = a.get("value").and_then(|v| v.t.as_ref()) {
            tensor::decode(t).map_err(|m| self.err(node, m))?
        } else if let Some(f) = a.get("value_float") {
            Constant::f32(vec![], vec![f.f()])
        } else if let Some(f) = a.get("value_floats") {
            Constant::f32(vec![f.floats.len()], f.floats.clone())
        } else if let Some(i) = a.get("value_int") {
            Constant::i64(vec![], vec![i.i()])
        } else if let Some(i) = a.get("value_ints") {
            Constant::i64(vec![i.ints.len()], i.ints.clone())
        } else {
            return Err(self.err(node, "it has no value mafat reads"));
        };
        self.set(node, Val::Const(c))
    }

    fn shape(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let dims = match self.input(node, 0)? {
            Some(Val::Map(m)) => dims_of(*m),
            Some(Val::Const(c)) => c.dims.clone(),
            Some(Val::Rows(parts)) => vec![
                1,
                parts[0].shape.c,
                parts.iter().map(|m| m.shape.h * m.shape.w).sum(),
            ],
            None => return Err(self.err(node, "input 0 is missing")),
        };
        let r = dims.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let start = clamp(a.int("start").unwrap_or(0));
        let end = clamp(a.int("end").unwrap_or(r)).max(start);
        let v: Vec<i64> = dims[start..end].iter().map(|&d| d as i64).collect();
        self.set(node, Val::Const(Constant::i64(vec![v.len()], v)))
    }

    fn gather(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let (Some(data), Some(idx)) = (self.const_input(node, 0)?, self.const_input(node, 1)?)
        else {
            return Err(self.err(node, "mafat gathers from constants only"));
        };
        let axis = a.int("axis").unwrap_or(0);
        let (Some(ix), [n]) = (idx.ints(), &data.dims[..]) else {
            return Err(self.err(node, "mafat gathers from 1-D constants by integer indices"));
        };
        if axis != 0 && axis != -1 {
            return Err(self.err(node, format!("axis {axis} of a 1-D constant")));
        }
        let n = *n as i64;
        let picks: Vec<usize> = ix
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + n } else { i };
                (0..n).contains(&j).then_some(j as usize)
            })
            .collect::<Option<_>>()
            .ok_or_else(|| self.err(node, "an index is outside the data"))?;
        let values = match &data.values {
            Values::F32(v) => Values::F32(picks.iter().map(|&j| v[j]).collect()),
            Values::I64(v) => Values::I64(picks.iter().map(|&j| v[j]).collect()),
        };
        self.set(
            node,
            Val::Const(Constant {
                dims: idx.dims.clone(),
                values,
            }),
        )
    }

    fn slice(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let data = self.const_input_or_map_err(node)?;
        let ints = |v: Option<Constant>| v.and_then(|c| c.ints().map(<[i64]>::to_vec));
        let (starts, ends, axes, steps) = if self.opset < 10 {
            (a.ints("starts"), a.ints("ends"), a.ints("axes"), None)
        } else {
            (
                ints(self.const_input(node, 1)?),
                ints(self.const_input(node, 2)?),
                ints(self.const_input(node, 3)?),
                ints(self.const_input(node, 4)?),
            )
        };
        let (Some(starts), Some(ends)) = (starts, ends) else {
            return Err(self.err(node, "its starts and ends are not constant integers"));
        };
        let Some(data) = data else {
            let x = self.map_input(node, 0)?;
            return self.slice_map(node, x, &starts, &ends, axes, steps);
        };
        if data.dims.len() != 1
            || axes.as_ref().is_some_and(|x| x != &[0] && x != &[-1])
            || starts.len() != 1
            || ends.len() != 1
            || steps.as_ref().is_some_and(|s| s != &[1])
        {
            return Err(self.err(node, "mafat slices 1-D constants with step 1"));
        }
        let n = data.dims[0] as i64;
        let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
        let (s, e) = (clamp(starts[0]), clamp(ends[0]));
        let e = e.max(s);
        let values = match &data.values {
            Values::F32(v) => Values::F32(v[s..e].to_vec()),
            Values::I64(v) => Values::I64(v[s..e].to_vec()),
        };
        self.set(
            node,
            Val::Const(Constant {
                dims: vec![e - s],
                values,
            }),
        )
    }

    /// A strided slice of a map on its height and width axes (slices of the batch or channel
    /// axes must take everything); a slice of a slice that it alone reads joins it.
    fn slice_map(
        &mut self,
        node: &NodeProto,
        x: MapVal,
        starts: &[i64],
        ends: &[i64],
        axes: Option<Vec<i64>>,
        steps: Option<Vec<i64>>,
    ) -> Result<()> {
        if x.layout != Layout::Nchw {
            return Err(self.err(node, "mafat slices [1, C, H, W] maps only"));
        }
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if axes.len() != starts.len() || ends.len() != starts.len() || steps.len() != starts.len() {
            return Err(self.err(node, "its starts, ends, axes and steps differ in length"));
        }
        let dims = dims_of(x);
        // Per axis: (first, step, count).
        let mut cut = [(0usize, 1usize, 0usize); 4];
        for (a, d) in cut.iter_mut().zip(&dims) {
            *a = (0, 1, *d);
        }
        for k in 0..starts.len() {
            let axis = if axes[k] < 0 { axes[k] + 4 } else { axes[k] };
            let (step, dim) = (
                steps[k],
                dims.get(axis as usize).copied().unwrap_or(0) as i64,
            );
            if !(0..4).contains(&axis) || step < 1 {
                return Err(self.err(
                    node,
                    format!(
                        "axis {} with step {step}: mafat slices forward (step ≥ 1) along the axes of [1, C, H, W]",
                        axes[k]
                    ),
                ));
            }
            let clamp = |v: i64| (if v < 0 { v.saturating_add(dim) } else { v }).clamp(0, dim);
            let (first, end) = (clamp(starts[k]), clamp(ends[k]));
            let count = if end > first {
                1 + (end - first - 1) / step
            } else {
                0
            };
            cut[axis as usize] = (first as usize, step as usize, count as usize);
        }
        if cut[0] != (0, 1, 1) || cut[1] != (0, 1, x.shape.c) {
            return Err(self.err(
                node,
                "it slices the batch or channel axis; mafat slices height and width only",
            ));
        }
        let ((y0, sy, h), (x0, sx, w)) = (cut[2], cut[3]);
        if h == 0 || w == 0 {
            return Err(self.err(node, "the slice is empty"));
        }
        let out = Shape::new(x.shape.c, h, w);
        // A slice of a slice that only this node reads: one layer taking both.
        let name = node.input[0].clone();
        if let Source::Layer(l) = x.src
            && self.uses.get(&name).copied() == Some(1)
            && !self
                .values
                .iter()
                .any(|(n, v)| n != &name && matches!(v, Val::Map(o) if o.src == x.src))
            && let LayerKind::Slice {
                y0: py,
                x0: px,
                stride_y,
                stride_x,
            } = self.layers[l].kind
        {
            self.layers[l].kind = LayerKind::Slice {
                y0: py + y0 * stride_y,
                x0: px + x0 * stride_x,
                stride_y: stride_y * sy,
                stride_x: stride_x * sx,
            };
            self.layers[l].output = out;
            let y = MapVal { shape: out, ..x };
            return self.folded(node, &name, y);
        }
        let kind = LayerKind::Slice {
            y0,
            x0,
            stride_y: sy,
            stride_x: sx,
        };
        let src = self.push(node, kind, vec![x.src], x.shape, out, None)?;
        self.set_map(
            node,
            MapVal {
                src,
                shape: out,
                ..x
            },
        )
    }

    /// Input 0 as a constant; `None` when it is a map.
    fn const_input_or_map_err(&self, node: &NodeProto) -> Result<Option<Constant>> {
        match self.input(node, 0)? {
            Some(Val::Const(c)) => Ok(Some(c.clone())),
            Some(Val::Map(_)) => Ok(None),
            Some(Val::Rows(_)) => Err(self.err(node, ROWS_ONLY)),
            None => Err(self.err(node, "input 0 is missing")),
        }
    }

    fn squeeze(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        let Some(c) = self.const_input_or_map_err(node)? else {
            return Err(self.err(node, "mafat squeezes and unsqueezes constants only"));
        };
        let axes = if self.opset < 13 {
            a.ints("axes")
        } else {
            self.const_input(node, 1)?
                .and_then(|c| c.ints().map(<[i64]>::to_vec))
        };
        let unsqueeze = node.op_type() == "Unsqueeze";
        let mut dims = c.dims.clone();
        match (unsqueeze, axes) {
            (true, Some(axes)) => {
                let r = (dims.len() + axes.len()) as i64;
                let mut ax: Vec<usize> = axes
                    .iter()
                    .map(|&x| (if x < 0 { x + r } else { x }) as usize)
                    .collect();
                ax.sort_unstable();
                if ax.windows(2).any(|w| w[0] == w[1]) {
                    return Err(self.err(node, "it names an axis twice"));
                }
                for x in ax {
                    if x > dims.len() {
                        return Err(self.err(node, "an axis is outside the result"));
                    }
                    dims.insert(x, 1);
                }
            }
            (true, None) => return Err(self.err(node, "it has no axes")),
            (false, None) => dims.retain(|&d| d != 1),
            (false, Some(axes)) => {
                let r = dims.len() as i64;
                let ax: Vec<usize> = axes
                    .iter()
                    .map(|&x| (if x < 0 { x + r } else { x }) as usize)
                    .collect();
                if ax.iter().any(|&x| dims.get(x) != Some(&1)) {
                    return Err(self.err(node, "it squeezes an axis that is not 1"));
                }
                dims = dims
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !ax.contains(i))
                    .map(|(_, &d)| d)
                    .collect();
            }
        }
        self.set(node, Val::Const(Constant { dims, ..c }))
    }

    fn cast(&mut self, node: &NodeProto, a: &Attrs<'_>) -> Result<()> {
        use onnx_pb::tensor_proto::DataType;
        let to = a.int("to").unwrap_or(0) as i32;
        match self.input(node, 0)?.cloned() {
            Some(Val::Const(c)) => {
                let values = if to == DataType::Float as i32 || to == DataType::Double as i32 {
                    Values::F32(c.floats())
                } else if to == DataType::Int64 as i32 || to == DataType::Int32 as i32 {
                    let narrow = to == DataType::Int32 as i32;
                    let v: Vec<i64> = match &c.values {
                        // To INT32 an integer wraps, as NumPy's astype does.
                        Values::I64(v) if narrow => v.iter().map(|&x| x as i32 as i64).collect(),
                        Values::I64(v) => v.clone(),
                        Values::F32(v) => {
                            let limit = if narrow {
                                i32::MAX as f32
                            } else {
                                i64::MAX as f32
                            };
                            if v.iter().any(|x| !x.is_finite() || x.abs() >= limit) {
                                return Err(self.err(
                                    node,
                                    "a float past the integer type's range (the cast is undefined there)",
                                ));
                            }
                            v.iter().map(|&x| x as i64).collect()
                        }
                    };
                    Values::I64(v)
                } else {
                    return Err(self.err(node, format!("a cast to type {to}")));
                };
                self.set(
                    node,
                    Val::Const(Constant {
                        dims: c.dims,
                        values,
                    }),
                )
            }
            Some(Val::Map(_)) if to == DataType::Float as i32 => self.alias(node),
            _ => Err(self.err(node, format!("a cast of a map to type {to}"))),
        }
    }
}

/// `Reshape`'s target dimensions for `dims` (0 copies a dimension unless `allowzero`, one −1 takes
/// the rest).
fn reshape_dims(
    dims: &[usize],
    target: &[i64],
    allowzero: bool,
) -> std::result::Result<Vec<usize>, String> {
    let total = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("{dims:?} holds too many values"))?;
    let mut out = Vec::with_capacity(target.len());
    let mut free = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if free.is_none() => {
                free = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(
                *dims
                    .get(i)
                    .ok_or_else(|| format!("shape {target:?} copies a dimension {dims:?} lacks"))?,
            ),
            t if t >= 0 => out.push(t as usize),
            _ => return Err(format!("shape {target:?} is not a valid target")),
        }
    }
    let known = out
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {target:?} holds too many values"))?;
    if let Some(i) = free {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("{dims:?} cannot be reshaped to {target:?}"));
        }
        out[i] = total / known;
    }
    if out.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) != Some(total) {
        return Err(format!("{dims:?} cannot be reshaped to {target:?}"));
    }
    Ok(out)
}

/// Elementwise arithmetic of two constants (same dimensions, or one a scalar).
fn const_arith(op: &str, a: &Constant, b: &Constant) -> std::result::Result<Constant, String> {
    let dims = if a.len() == 1 && b.dims.len() >= a.dims.len() {
        b.dims.clone()
    } else if b.len() == 1 && a.dims.len() >= b.dims.len() || a.dims == b.dims {
        a.dims.clone()
    } else {
        return Err(format!(
            "constants of dimensions {:?} and {:?}: mafat computes these only elementwise or by a scalar",
            a.dims, b.dims
        ));
    };
    let n: usize = dims.iter().product();
    let at = |c: &Constant, i: usize| if c.len() == 1 { 0 } else { i };
    Ok(match (&a.values, &b.values) {
        (Values::I64(x), Values::I64(y)) => {
            let f = |p: i64, q: i64| -> Option<i64> {
                match op {
                    "Add" => p.checked_add(q),
                    "Sub" => p.checked_sub(q),
                    "Mul" => p.checked_mul(q),
                    _ => p.checked_div(q),
                }
            };
            let v = (0..n)
                .map(|i| f(x[at(a, i)], y[at(b, i)]))
                .collect::<Option<Vec<i64>>>()
                .ok_or("an integer constant overflows or divides by zero")?;
            Constant::i64(dims, v)
        }
        _ => {
            let (x, y) = (a.floats(), b.floats());
            let f = |p: f32, q: f32| match op {
                "Add" => p + q,
                "Sub" => p - q,
                "Mul" => p * q,
                _ => p / q,
            };
            Constant::f32(dims, (0..n).map(|i| f(x[at(a, i)], y[at(b, i)])).collect())
        }
    })
}

/// Concatenation of 1-D constants (shape arithmetic).
fn const_concat(cs: &[&Constant], axis: i64) -> std::result::Result<Constant, String> {
    if cs.iter().any(|c| c.dims.len() != 1) || (axis != 0 && axis != -1) {
        return Err("mafat concatenates constants only when they are 1-D".into());
    }
    let n = cs.iter().map(|c| c.len()).sum();
    if cs.iter().all(|c| c.ints().is_some()) {
        let v: Vec<i64> = cs
            .iter()
            .flat_map(|c| c.ints().unwrap_or(&[]).to_vec())
            .collect();
        Ok(Constant::i64(vec![n], v))
    } else {
        let v: Vec<f32> = cs.iter().flat_map(|c| c.floats()).collect();
        Ok(Constant::f32(vec![n], v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_targets() {
        assert_eq!(
            reshape_dims(&[1, 16, 4, 4], &[1, -1], false).unwrap(),
            [1, 256]
        );
        assert_eq!(
            reshape_dims(&[1, 16, 4, 4], &[0, -1], false).unwrap(),
            [1, 256]
        );
        assert_eq!(
            reshape_dims(&[16, 4, 4, 10], &[256, 10], false).unwrap(),
            [256, 10]
        );
        assert!(reshape_dims(&[1, 16], &[3, -1], false).is_err());
        assert!(reshape_dims(&[1, 16], &[-1, -1], false).is_err());
    }
}
