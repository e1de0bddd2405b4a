//! Darknet `.cfg` parser and shape inference.
//!
//! Lines are read as Darknet reads them: all whitespace inside a line is removed, a line starting with
//! `#` or `;` is a comment, `[name]` opens a section, anything else is `key=value`. An inline comment
//! (`filters=32 # note`) is dropped too. Unlike Darknet, anything it would silently misread is an error
//! that names the file, the line and what was expected: unknown sections and keys, malformed numbers,
//! routes to later layers, zero or impossible sizes. Training-only keys are accepted and ignored.

use crate::error::{Error, Result};
use crate::network::{
    Activation, Conv, Layer, LayerKind, MaxPool, Network, Region, Shape, Source, Yolo,
};

/// Largest width, height, channel or filter count accepted (anything larger is surely a typo).
const MAX_DIM: i64 = 1 << 20;
/// Largest number of f32 elements in one feature map (64 GiB).
const MAX_TENSOR_ELEMS: u64 = 1 << 34;
/// Largest number of weights in one layer (8 GiB of f32).
const MAX_WEIGHT_ELEMS: u64 = 1 << 31;

/// Keys Darknet reads for training or bookkeeping only; accepted and ignored.
const NET_IGNORED: &[&str] = &[
    "batch",
    "subdivisions",
    "momentum",
    "decay",
    "angle",
    "saturation",
    "exposure",
    "hue",
    "learning_rate",
    "burn_in",
    "max_batches",
    "policy",
    "steps",
    "scales",
    "step",
    "scale",
    "gamma",
    "power",
    "max_crop",
    "min_crop",
    "max_ratio",
    "min_ratio",
    "aspect",
    "center",
    "clip",
    "time_steps",
    "notruth",
    "random",
    "adam",
    "B1",
    "B2",
    "eps",
    "flip",
    "mosaic",
    "letter_box",
];
const CONV_IGNORED: &[&str] = &["flipped", "dot", "stopbackward"];
const DETECTION_IGNORED: &[&str] = &[
    "jitter",
    "rescore",
    "object_scale",
    "noobject_scale",
    "class_scale",
    "coord_scale",
    "bias_match",
    "absolute",
    "thresh",
    "random",
    "ignore_thresh",
    "truth_thresh",
    "log",
    "sqrt",
    "max",
    "focus",
    "map",
    "iou_normalizer",
    "cls_normalizer",
    "scale_x_y",
    "iou_loss",
    "nms_kind",
    "beta_nms",
];

struct Entry {
    line: usize,
    value: String,
    used: bool,
}

struct Section {
    name: String,
    line: usize,
    options: Vec<(String, Entry)>,
}

struct Ctx<'a> {
    origin: &'a str,
}

impl Ctx<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> Error {
        Error::Cfg {
            origin: self.origin.to_string(),
            line,
            message: message.into(),
        }
    }
}

impl Section {
    fn take(&mut self, key: &str) -> Option<(usize, String)> {
        self.options
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, e)| {
                e.used = true;
                (e.line, e.value.clone())
            })
    }

    fn int(
        &mut self,
        cx: &Ctx,
        key: &str,
        default: Option<i64>,
        min: i64,
        max: i64,
    ) -> Result<i64> {
        let Some((line, v)) = self.take(key) else {
            return default.ok_or_else(|| {
                cx.err(
                    self.line,
                    format!("[{}] needs `{key}=N` (an integer)", self.name),
                )
            });
        };
        let n: i64 = v.parse().map_err(|_| {
            cx.err(
                line,
                format!("{key}={v}: expected an integer in {min}..={max}"),
            )
        })?;
        if n < min || n > max {
            return Err(cx.err(
                line,
                format!("{key}={v}: expected an integer in {min}..={max}"),
            ));
        }
        Ok(n)
    }

    fn uint(&mut self, cx: &Ctx, key: &str, default: Option<usize>, min: usize) -> Result<usize> {
        Ok(self.int(cx, key, default.map(|d| d as i64), min as i64, MAX_DIM)? as usize)
    }

    fn flag(&mut self, cx: &Ctx, key: &str) -> Result<bool> {
        Ok(self.int(cx, key, Some(0), 0, 1)? == 1)
    }

    fn float(&mut self, cx: &Ctx, key: &str, default: f32) -> Result<f32> {
        let Some((line, v)) = self.take(key) else {
            return Ok(default);
        };
        match v.parse::<f32>() {
            Ok(f) if f.is_finite() => Ok(f),
            _ => Err(cx.err(line, format!("{key}={v}: expected a finite number"))),
        }
    }

    fn list<T: std::str::FromStr>(
        &mut self,
        cx: &Ctx,
        key: &str,
        what: &str,
    ) -> Result<Option<(usize, Vec<T>)>> {
        let Some((line, v)) = self.take(key) else {
            return Ok(None);
        };
        let items: std::result::Result<Vec<T>, _> = v
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<T>())
            .collect();
        match items {
            Ok(items) if !items.is_empty() => Ok(Some((line, items))),
            _ => Err(cx.err(
                line,
                format!("{key}={v}: expected a comma-separated list of {what}"),
            )),
        }
    }

    fn activation(&mut self, cx: &Ctx, default: Activation) -> Result<Activation> {
        match self.take("activation") {
            None => Ok(default),
            Some((line, v)) => Activation::parse(&v).ok_or_else(|| {
                cx.err(
                    line,
                    format!(
                        "activation={v}: unsupported; expected one of linear, leaky, relu, logistic, mish, swish, hardsigmoid, hardswish"
                    ),
                )
            }),
        }
    }

    /// Reject keys this section does not know; accept the listed training-only ones.
    fn finish(&self, cx: &Ctx, ignored: &[&str]) -> Result<()> {
        for (k, e) in &self.options {
            if !e.used && !ignored.contains(&k.as_str()) {
                return Err(cx.err(
                    e.line,
                    format!(
                        "unknown key `{k}` in [{}] (mafat does not support it)",
                        self.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn read_sections(cx: &Ctx, text: &str) -> Result<Vec<Section>> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(cx.err(
                    line_no,
                    format!("`{line}`: expected a section header like [convolutional]"),
                ));
            };
            if name.is_empty() {
                return Err(cx.err(line_no, "empty section name `[]`"));
            }
            sections.push(Section {
                name: name.to_string(),
                line: line_no,
                options: Vec::new(),
            });
            continue;
        }
        let line = line.split('#').next().unwrap_or("");
        let Some((key, value)) = line.split_once('=') else {
            return Err(cx.err(line_no, format!("`{line}`: expected `key=value`")));
        };
        if key.is_empty() || value.is_empty() {
            return Err(cx.err(
                line_no,
                format!("`{line}`: expected `key=value` with both parts"),
            ));
        }
        let Some(section) = sections.last_mut() else {
            return Err(cx.err(
                line_no,
                format!("`{line}` before any section: the file must start with [net]"),
            ));
        };
        if section.options.iter().any(|(k, _)| k == key) {
            return Err(cx.err(
                line_no,
                format!("`{key}` given twice in [{}]", section.name),
            ));
        }
        section.options.push((
            key.to_string(),
            Entry {
                line: line_no,
                value: value.to_string(),
                used: false,
            },
        ));
    }
    Ok(sections)
}

/// Resolve a Darknet layer reference (negative = relative to `current`) to an earlier layer index.
fn resolve(cx: &Ctx, line: usize, key: &str, v: i64, current: usize) -> Result<usize> {
    let abs = if v < 0 { current as i64 + v } else { v };
    if abs < 0 || abs >= current as i64 {
        return Err(cx.err(
            line,
            format!(
                "{key}: {v} refers to layer {abs}, but layer {current} can only use layers 0..={}",
                current as i64 - 1
            ),
        ));
    }
    Ok(abs as usize)
}

fn checked_shape(cx: &Ctx, line: usize, index: usize, s: Shape) -> Result<Shape> {
    let elems = (s.c as u64)
        .checked_mul(s.h as u64)
        .and_then(|x| x.checked_mul(s.w as u64));
    match elems {
        Some(0) => Err(cx.err(line, format!("layer {index}: output shape {s} is empty"))),
        Some(n) if n <= MAX_TENSOR_ELEMS => Ok(s),
        _ => Err(cx.err(
            line,
            format!("layer {index}: output shape {s} is too large (over 2^34 elements)"),
        )),
    }
}

/// Parse a `.cfg` text into a network. `origin` (a path or a built-in name) is used in error messages.
/// `size` overrides `[net] width,height`.
pub fn parse(text: &str, origin: &str, size: Option<(usize, usize)>) -> Result<Network> {
    parse_prefix(text, origin, size, usize::MAX)
}

/// Like [`parse`], but build only the first `max_layers` layers (the rest must still be well-formed
/// sections; their shapes are not inferred, so an input size that suits only the prefix is fine).
pub fn parse_prefix(
    text: &str,
    origin: &str,
    size: Option<(usize, usize)>,
    max_layers: usize,
) -> Result<Network> {
    let cx = Ctx { origin };
    let mut sections = read_sections(&cx, text)?;
    if sections.is_empty() {
        return Err(cx.err(0, "no sections: a Darknet cfg starts with [net]"));
    }
    let mut net = sections.remove(0);
    if net.name != "net" && net.name != "network" {
        return Err(cx.err(
            net.line,
            format!("first section is [{}]; expected [net]", net.name),
        ));
    }
    let mut w = net.uint(&cx, "width", None, 1)?;
    let mut h = net.uint(&cx, "height", None, 1)?;
    let c = net.uint(&cx, "channels", None, 1)?;
    net.finish(&cx, NET_IGNORED)?;
    if let Some((sw, sh)) = size {
        if sw == 0 || sh == 0 || sw as i64 > MAX_DIM || sh as i64 > MAX_DIM {
            return Err(Error::Usage(format!(
                "--size {sw}x{sh}: width and height must be in 1..={MAX_DIM}"
            )));
        }
        w = sw;
        h = sh;
    }
    let input = checked_shape(&cx, net.line, 0, Shape::new(c, h, w))?;

    let mut layers: Vec<Layer> = Vec::with_capacity(sections.len());
    for (index, mut s) in sections.into_iter().take(max_layers).enumerate() {
        let prev = layers.last().map_or(input, |l| l.output);
        let line = s.line;
        let (kind, in_shape, out) = match s.name.as_str() {
            "convolutional" | "conv" => conv_layer(&cx, &mut s, prev, index)?,
            "maxpool" | "max" => maxpool_layer(&cx, &mut s, prev, index)?,
            "avgpool" | "avg" => avgpool_layer(&cx, &mut s, prev)?,
            "softmax" | "soft" => softmax_layer(&cx, &mut s, prev, index)?,
            "route" => route_layer(&cx, &mut s, index, &layers)?,
            "upsample" => upsample_layer(&cx, &mut s, prev)?,
            "reorg" => reorg_layer(&cx, &mut s, prev, index)?,
            "shortcut" => shortcut_layer(&cx, &mut s, prev, index, &layers)?,
            "region" => region_layer(&cx, &mut s, prev, index)?,
            "yolo" => yolo_layer(&cx, &mut s, prev, index)?,
            "net" | "network" => {
                return Err(cx.err(line, "[net] may appear only once, as the first section"));
            }
            other => {
                return Err(cx.err(line, format!(
                    "unsupported section [{other}]; mafat supports [convolutional] [maxpool] [avgpool] [softmax] [route] [upsample] [reorg] [shortcut] [region] [yolo]"
                )));
            }
        };
        let out = checked_shape(&cx, line, index, out)?;
        layers.push(Layer {
            index,
            sources: Source::darknet(index, &kind),
            kind,
            input: in_shape,
            output: out,
        });
    }
    if layers.is_empty() {
        return Err(cx.err(0, "the cfg has no layers after [net]"));
    }
    Ok(Network {
        name: origin.to_string(),
        input,
        layers,
        declared_outputs: Vec::new(),
    })
}

/// A layer from a `[convolutional]` section: its kind, input shape and output shape.
fn conv_layer(
    cx: &Ctx<'_>,
    s: &mut Section,
    prev: Shape,
    index: usize,
) -> Result<(LayerKind, Shape, Shape)> {
    let line = s.line;
    let filters = s.uint(cx, "filters", Some(1), 1)?;
    let size = s.uint(cx, "size", Some(1), 1)?;
    let stride = s.uint(cx, "stride", Some(1), 1)?;
    let pad = s.flag(cx, "pad")?;
    let padding = s.uint(cx, "padding", Some(0), 0)?;
    let padding = if pad { size / 2 } else { padding };
    let groups = s.uint(cx, "groups", Some(1), 1)?;
    let batch_normalize = s.flag(cx, "batch_normalize")?;
    let activation = s.activation(cx, Activation::Logistic)?;
    for key in ["binary", "xnor"] {
        if s.flag(cx, key)? {
            return Err(cx.err(line, format!("[{}] {key}=1 is not supported", s.name)));
        }
    }
    for key in ["stride_x", "stride_y"] {
        if let Some((l, v)) = s.take(key)
            && v != stride.to_string()
        {
            return Err(cx.err(
                l,
                format!("{key}={v}: only square strides are supported (stride={stride})"),
            ));
        }
    }
    if let Some((l, v)) = s.take("dilation")
        && v != "1"
    {
        return Err(cx.err(l, format!("dilation={v}: only dilation=1 is supported")));
    }
    s.finish(cx, CONV_IGNORED)?;
    if !prev.c.is_multiple_of(groups) || filters % groups != 0 {
        return Err(cx.err(line, format!(
            "layer {index}: groups={groups} must divide both the input channels ({}) and filters ({filters})",
            prev.c
        )));
    }
    if prev.h + 2 * padding < size || prev.w + 2 * padding < size {
        return Err(cx.err(line, format!(
            "layer {index}: kernel {size}x{size} is larger than the padded input {}x{} (padding {padding})",
            prev.w + 2 * padding, prev.h + 2 * padding
        )));
    }
    let weights = (filters as u64) * (prev.c / groups) as u64 * (size * size) as u64;
    if weights > MAX_WEIGHT_ELEMS {
        return Err(cx.err(
            line,
            format!("layer {index}: {weights} weights is too many (over 2^31)"),
        ));
    }
    let oh = (prev.h + 2 * padding - size) / stride + 1;
    let ow = (prev.w + 2 * padding - size) / stride + 1;
    let conv = Conv {
        filters,
        size,
        stride,
        padding,
        groups,
        batch_normalize,
        activation,
    };
    Ok((LayerKind::Conv(conv), prev, Shape::new(filters, oh, ow)))
}

/// A layer from a `[maxpool]` (Darknet padding) section: its kind, input shape and output shape.
fn maxpool_layer(
    cx: &Ctx<'_>,
    s: &mut Section,
    prev: Shape,
    index: usize,
) -> Result<(LayerKind, Shape, Shape)> {
    let line = s.line;
    let stride = s.uint(cx, "stride", Some(1), 1)?;
    let size = s.uint(cx, "size", Some(stride), 1)?;
    let padding = s.uint(cx, "padding", Some(size - 1), 0)?;
    s.finish(cx, &[])?;
    if prev.h + padding < size || prev.w + padding < size {
        return Err(cx.err(
            line,
            format!(
                "layer {index}: pool window {size}x{size} is larger than the padded input {}x{}",
                prev.w + padding,
                prev.h + padding
            ),
        ));
    }
    let oh = (prev.h + padding - size) / stride + 1;
    let ow = (prev.w + padding - size) / stride + 1;
    Ok((
        LayerKind::MaxPool(MaxPool {
            size,
            stride,
            padding,
        }),
        prev,
        Shape::new(prev.c, oh, ow),
    ))
}

/// A layer from a `[avgpool]` section: its kind, input shape and output shape.
fn avgpool_layer(cx: &Ctx<'_>, s: &mut Section, prev: Shape) -> Result<(LayerKind, Shape, Shape)> {
    s.finish(cx, &[])?;
    Ok((LayerKind::AvgPool, prev, Shape::new(prev.c, 1, 1)))
}

/// A layer from a `[softmax]` section: its kind, input shape and output shape.
fn softmax_layer(
    cx: &Ctx<'_>,
    s: &mut Section,
    prev: Shape,
    index: usize,
) -> Result<(LayerKind, Shape, Shape)> {
    let line = s.line;
    let groups = s.uint(cx, "groups", Some(1), 1)?;
    let temperature = s.float(cx, "temperature", 1.0)?;
    s.finish(cx, &[])?;
    if !prev.len().is_multiple_of(groups) {
        return Err(cx.err(
            line,
            format!(
                "layer {index}: groups={groups} does not divide the {} inputs",
                prev.len()
            ),
        ));
    }
    if temperature == 0.0 {
        return Err(cx.err(line, "temperature=0: expected a non-zero number"));
    }
    Ok((
        LayerKind::Softmax {
            groups,
            temperature,
        },
        prev,
        prev,
    ))
}

/// A layer from a `[route]` section: its kind, input shape and output shape.
fn route_layer(
    cx: &Ctx<'_>,
    s: &mut Section,
    index: usize,
    layers: &[Layer],
) -> Result<(LayerKind, Shape, Shape)> {
    let line = s.line;
    let Some((l, refs)) = s.list::<i64>(cx, "layers", "layer indices")? else {
        return Err(cx.err(line, "[route] needs `layers=...` (layer indices)"));
    };
    s.finish(cx, &[])?;
    let mut resolved = Vec::with_capacity(refs.len());
    let mut c = 0usize;
    let mut hw: Option<(usize, usize)> = None;
    for &r in &refs {
        let src = resolve(cx, l, "layers", r, index)?;
        let sh = layers[src].output;
        if let Some((hh, ww)) = hw
            && (hh, ww) != (sh.h, sh.w)
        {
            return Err(cx.err(l, format!(
                    "layer {index}: route inputs differ in size: layer {src} is {sh}, the first is {ww}x{hh}"
                )));
        }
        hw = Some((sh.h, sh.w));
        c += sh.c;
        resolved.push(src);
    }
    let (hh, ww) = hw.unwrap_or((0, 0));
    let shape = Shape::new(c, hh, ww);
    Ok((LayerKind::Route { layers: resolved }, shape, shape))
}

/// A layer from a `[upsample]` section: its kind, input shape and output shape.
fn upsample_layer(cx: &Ctx<'_>, s: &mut Section, prev: Shape) -> Result<(LayerKind, Shape, Shape)> {
    let stride = s.uint(cx, "stride", Some(2), 1)?;
    let scale = s.float(cx, "scale", 1.0)?;
    s.finish(cx, &[])?;
    Ok((
        LayerKind::Upsample { stride, scale },
        prev,
        Shape::new(prev.c, prev.h * stride, prev.w * stride),
    ))
}

/// A layer from a `[reorg]` section: its kind, input shape and output shape.
fn reorg_layer(
    cx: &Ctx<'_>,
    s: &mut Section,
    prev: Shape,
    index: usize,
) -> Result<(LayerKind, Shape, Shape)> {
    let line = s.line;
    let stride = s.uint(cx, "stride", Some(1), 1)?;
    for key in ["reverse", "flatten", "extra"] {
        if s.flag(cx, key)? {
            return Err(cx.err(line, format!("[reorg] {key}=1 is not supported")));
        }
    }
    s.finish(cx, &[])?;
    if !prev.h.is_multiple_of(stride)
        || !prev.w.is_multiple_of(stride)
        || !prev.c.is_multiple_of(stride * stride)
    {
        return Err(cx.err(line, format!(
            "layer {index}: reorg stride {stride} needs width and height divisible by {stride} and channels by {}; input is {prev}",
            stride * stride
        )));
    }
    Ok((
        LayerKind::Reorg { stride },
        prev,
        Shape::new(prev.c * stride * stride, prev.h / stride, prev.w / stride),
    ))
}

/// A layer from a `[shortcut]` section: its kind, input shape and output shape.
fn shortcut_layer(
    cx: &Ctx<'_>,
    s: &mut Section,
    prev: Shape,
    index: usize,
    layers: &[Layer],
) -> Result<(LayerKind, Shape, Shape)> {
    let line = s.line;
    let (l, from) = match s.take("from") {
        Some((l, v)) => (
            l,
            v.parse::<i64>()
                .map_err(|_| cx.err(l, format!("from={v}: expected a layer index")))?,
        ),
        None => return Err(cx.err(line, "[shortcut] needs `from=N` (a layer index)")),
    };
    let from = resolve(cx, l, "from", from, index)?;
    let activation = s.activation(cx, Activation::Linear)?;
    let alpha = s.float(cx, "alpha", 1.0)?;
    let beta = s.float(cx, "beta", 1.0)?;
    s.finish(cx, &[])?;
    let add = layers[from].output;
    let scales = |a: usize, b: usize| b > 0 && a.is_multiple_of(b);
    let fits = (scales(add.w, prev.w) && scales(add.h, prev.h) && add.w / prev.w == add.h / prev.h)
        || (scales(prev.w, add.w) && scales(prev.h, add.h) && prev.w / add.w == prev.h / add.h);
    if !fits {
        return Err(cx.err(line, format!(
            "layer {index}: shortcut adds layer {from} ({add}) to {prev}; their widths and heights must be equal or differ by one integer factor"
        )));
    }
    Ok((
        LayerKind::Shortcut {
            from,
            activation,
            alpha,
            beta,
        },
        prev,
        prev,
    ))
}

/// A head's `anchors=`: 2·`num` numbers, or none.
fn anchors(cx: &Ctx<'_>, s: &mut Section, num: usize) -> Result<Vec<f32>> {
    match s.list::<f32>(cx, "anchors", "numbers")? {
        Some((l, a)) if a.len() != 2 * num => Err(cx.err(
            l,
            format!(
                "anchors: {} numbers given, expected 2·num = {}",
                a.len(),
                2 * num
            ),
        )),
        Some((_, a)) => Ok(a),
        None => Ok(Vec::new()),
    }
}

/// A layer from a `[region]` section: its kind, input shape and output shape.
fn region_layer(
    cx: &Ctx<'_>,
    s: &mut Section,
    prev: Shape,
    index: usize,
) -> Result<(LayerKind, Shape, Shape)> {
    let line = s.line;
    let classes = s.uint(cx, "classes", Some(20), 0)?;
    let coords = s.uint(cx, "coords", Some(4), 0)?;
    let num = s.uint(cx, "num", Some(1), 1)?;
    let softmax = s.flag(cx, "softmax")?;
    let background = s.flag(cx, "background")?;
    let anchors = anchors(cx, s, num)?;
    if s.take("tree").is_some() {
        return Err(cx.err(
            line,
            "[region] tree= (YOLO9000 softmax trees) is not supported",
        ));
    }
    s.finish(cx, DETECTION_IGNORED)?;
    let want = num * (coords + classes + 1);
    if prev.c != want {
        return Err(cx.err(line, format!(
            "layer {index}: region expects num·(coords+classes+1) = {want} input channels, got {}",
            prev.c
        )));
    }
    Ok((
        LayerKind::Region(Region {
            classes,
            coords,
            num,
            softmax,
            background,
            anchors,
        }),
        prev,
        prev,
    ))
}

/// A layer from a `[yolo]` section: its kind, input shape and output shape.
fn yolo_layer(
    cx: &Ctx<'_>,
    s: &mut Section,
    prev: Shape,
    index: usize,
) -> Result<(LayerKind, Shape, Shape)> {
    let line = s.line;
    let classes = s.uint(cx, "classes", Some(20), 0)?;
    let total = s.uint(cx, "num", Some(1), 1)?;
    let anchors = anchors(cx, s, total)?;
    let mask = match s.list::<usize>(cx, "mask", "anchor indices")? {
        Some((l, m)) => {
            if let Some(bad) = m.iter().find(|&&i| i >= total) {
                return Err(cx.err(l, format!("mask: index {bad} is not below num={total}")));
            }
            m
        }
        None => (0..total).collect(),
    };
    s.finish(cx, DETECTION_IGNORED)?;
    let want = mask.len() * (classes + 5);
    if prev.c != want {
        return Err(cx.err(
            line,
            format!(
                "layer {index}: yolo expects masks·(classes+5) = {want} input channels, got {}",
                prev.c
            ),
        ));
    }
    Ok((
        LayerKind::Yolo(Yolo {
            classes,
            mask,
            anchors,
        }),
        prev,
        prev,
    ))
}
