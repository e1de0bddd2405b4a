//! Darknet `.weights`: reader, writer, batch-norm folding and synthetic parameters.
//!
//! Layout (little-endian): `int32 major, minor, revision`, then `seen` (8 bytes when
//! `major·10 + minor ≥ 2` and both are below 1000, else 4), then for every `[convolutional]` in network
//! order: `biases[n]`, if `batch_normalize`: `scales[n]`, `rolling_mean[n]`, `rolling_variance[n]`, then
//! `weights[n · c/groups · k · k]`, all f32.

use crate::error::{Error, Result};
use crate::network::{Conv, LayerKind, Network};
use crate::rng::Rng;
use std::path::Path;

/// Darknet's batch-norm epsilon, added *outside* the square root.
pub const BN_EPSILON: f64 = 0.000001;

/// Batch-norm statistics of one conv layer, as stored in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// Per-filter scale (γ).
    pub scales: Vec<f32>,
    /// Per-filter rolling mean.
    pub mean: Vec<f32>,
    /// Per-filter rolling variance (never negative in a file that loads).
    pub variance: Vec<f32>,
}

/// One conv layer's parameters exactly as stored in a `.weights` file.
#[derive(Debug, Clone, PartialEq)]
pub struct DarknetConv {
    /// Layer index in the network.
    pub layer: usize,
    /// One bias per filter.
    pub biases: Vec<f32>,
    /// Present when the layer has `batch_normalize=1`.
    pub batch_norm: Option<BatchNorm>,
    /// `[filters][c/groups][k][k]`.
    pub weights: Vec<f32>,
}

/// The contents of a `.weights` file.
#[derive(Debug, Clone, PartialEq)]
pub struct DarknetWeights {
    /// Format version, major part.
    pub major: i32,
    /// Format version, minor part.
    pub minor: i32,
    /// Format version, revision part.
    pub revision: i32,
    /// Training images seen (stored in 8 bytes when `major·10 + minor ≥ 2`, else in 4; see the
    /// module docs).
    pub seen: u64,
    /// Every conv layer's record, in network order.
    pub convs: Vec<DarknetConv>,
}

/// A conv layer's parameters as every executor uses them: batch norm folded in.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvParams {
    /// `[filters][c/groups][k][k]`.
    pub weights: Vec<f32>,
    /// One per filter.
    pub bias: Vec<f32>,
}

/// Folded parameters of a network, indexed by layer (`None` for layers without parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// One entry per network layer: `Some` for each conv layer, `None` for every other layer.
    pub layers: Vec<Option<ConvParams>>,
}

impl Weights {
    /// The parameters of conv layer `i`. Panics if layer `i` has none, which a `Weights` built for the
    /// same network never does.
    pub fn conv(&self, i: usize) -> &ConvParams {
        self.layers[i]
            .as_ref()
            .expect("weights were built for this network")
    }
}

/// Where parameters come from: `FILE`, `random[:SEED]` or `int[:SEED]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightSource {
    /// A Darknet `.weights` file, which must hold exactly the network's parameters, or the
    /// `.onnx` model the network was imported from (its initializers).
    File(std::path::PathBuf),
    /// Deterministic random floats, variance-scaled so deep stacks neither explode nor vanish; the
    /// seed (see [`DarknetWeights::random`]).
    Random(u64),
    /// Sparse small integers (weights in −2..=2, biases in −1..=1), for exact-arithmetic tests; the
    /// seed (see [`int_weights`]).
    Int(u64),
}

impl WeightSource {
    /// Parse `random`, `random:SEED`, `int`, `int:SEED` or a file path.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match parse_seeded(s, "random")? {
            Some(seed) => WeightSource::Random(seed),
            None => match parse_seeded(s, "int")? {
                Some(seed) => WeightSource::Int(seed),
                None => WeightSource::File(s.into()),
            },
        })
    }

    /// Build the folded parameters for `net`.
    pub fn load(&self, net: &Network) -> Result<Weights> {
        match self {
            WeightSource::File(p) if super::onnx::is_onnx_path(&p.to_string_lossy()) => {
                super::onnx::load_weights(p, net)
            }
            WeightSource::File(p) => DarknetWeights::load(p, net)?.fold(net),
            WeightSource::Random(seed) => DarknetWeights::random(net, *seed).fold(net),
            WeightSource::Int(seed) => Ok(int_weights(net, *seed)),
        }
    }
}

/// `name` → `Some(0)`, `name:SEED` → `Some(SEED)`, anything else → `None`.
pub(crate) fn parse_seeded(s: &str, name: &str) -> Result<Option<u64>> {
    if s == name {
        return Ok(Some(0));
    }
    match s.strip_prefix(name).and_then(|r| r.strip_prefix(':')) {
        Some(seed) => seed.parse().map(Some).map_err(|_| {
            Error::Usage(format!(
                "`{s}`: expected {name}:SEED with SEED a non-negative integer"
            ))
        }),
        None => Ok(None),
    }
}

fn conv_layers(net: &Network) -> impl Iterator<Item = (usize, &Conv)> {
    net.layers.iter().filter_map(|l| match &l.kind {
        LayerKind::Conv(c) => Some((l.index, c)),
        _ => None,
    })
}

/// f32 count of one conv layer's record in the file.
fn conv_record_len(net: &Network, i: usize, c: &Conv) -> u64 {
    let n = c.filters as u64;
    let w = n * (net.layers[i].input.c / c.groups) as u64 * (c.size * c.size) as u64;
    n + if c.batch_normalize { 3 * n } else { 0 } + w
}

fn header_len(major: i32, minor: i32) -> usize {
    // Darknet's test, in i64: a corrupt header's version must not overflow it.
    if major as i64 * 10 + minor as i64 >= 2 && major < 1000 && minor < 1000 {
        20
    } else {
        16
    }
}

impl DarknetWeights {
    /// Bytes a `.weights` file for `net` has after the header.
    pub fn body_bytes(net: &Network) -> u64 {
        4 * conv_layers(net)
            .map(|(i, c)| conv_record_len(net, i, c))
            .sum::<u64>()
    }

    /// Read a `.weights` file for `net`. The file must hold exactly the network's parameters.
    pub fn load(path: &Path, net: &Network) -> Result<Self> {
        // A weights file's exact size is known: never read past it (`/dev/zero`, a wrong huge file).
        let expected = 20 + Self::body_bytes(net);
        match super::read_bytes_capped(path, expected).map_err(|e| Error::io(path, e))? {
            Some(bytes) => Self::from_bytes(&bytes, net, &path.display().to_string()),
            None => Err(Error::Weights {
                path: path.display().to_string(),
                message: format!(
                    "too long: expected at most {expected} bytes for {} (a 16- or 20-byte header + {} bytes of parameters), the file has more; is it the weights of another network?",
                    net.name,
                    expected - 20
                ),
            }),
        }
    }

    /// Parse the bytes of a `.weights` file; `origin` names it in errors.
    pub fn from_bytes(bytes: &[u8], net: &Network, origin: &str) -> Result<Self> {
        let err = |message: String| Error::Weights {
            path: origin.to_string(),
            message,
        };
        let body = Self::body_bytes(net);
        if bytes.len() < 12 {
            return Err(err(format!(
                "file is {} bytes, too short for a Darknet weights header (expected {} bytes for {}: a 16- or 20-byte header + {body} bytes of parameters)",
                bytes.len(),
                20 + body,
                net.name
            )));
        }
        let int = |o: usize| i32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let (major, minor, revision) = (int(0), int(4), int(8));
        let header = header_len(major, minor);
        let expected = header as u64 + body;
        if bytes.len() as u64 != expected {
            let what = if (bytes.len() as u64) < expected {
                "truncated"
            } else {
                "too long"
            };
            return Err(err(format!(
                "{what}: expected {expected} bytes for {} ({header}-byte header for version {major}.{minor}.{revision} + {body} bytes of parameters for {} conv layers), the file has {} bytes",
                net.name,
                conv_layers(net).count(),
                bytes.len()
            )));
        }
        let seen = if header == 20 {
            u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"))
        } else {
            u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as u64
        };
        let mut pos = header;
        let mut take = |n: usize| -> Vec<f32> {
            let v = bytes[pos..pos + 4 * n]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect();
            pos += 4 * n;
            v
        };
        let mut convs = Vec::new();
        for (i, c) in conv_layers(net) {
            let n = c.filters;
            let biases = take(n);
            let batch_norm = c.batch_normalize.then(|| BatchNorm {
                scales: take(n),
                mean: take(n),
                variance: take(n),
            });
            let weights = take(n * (net.layers[i].input.c / c.groups) * c.size * c.size);
            convs.push(DarknetConv {
                layer: i,
                biases,
                batch_norm,
                weights,
            });
        }
        let w = DarknetWeights {
            major,
            minor,
            revision,
            seen,
            convs,
        };
        w.validate(origin)?;
        Ok(w)
    }

    /// Reject values that would silently poison every output: NaN/infinite numbers, negative variances.
    fn validate(&self, origin: &str) -> Result<()> {
        for c in &self.convs {
            let mut arrays: Vec<(&str, &[f32])> =
                vec![("biases", &c.biases), ("weights", &c.weights)];
            if let Some(bn) = &c.batch_norm {
                arrays.push(("scales", &bn.scales));
                arrays.push(("rolling_mean", &bn.mean));
                arrays.push(("rolling_variance", &bn.variance));
            }
            for (name, a) in arrays {
                if let Some(j) = a.iter().position(|x| !x.is_finite()) {
                    return Err(Error::Weights {
                        path: origin.to_string(),
                        message: format!(
                            "layer {}: {name}[{j}] is {} (every parameter must be a finite number)",
                            c.layer, a[j]
                        ),
                    });
                }
            }
            if let Some(bn) = &c.batch_norm
                && let Some(j) = bn.variance.iter().position(|&v| v < 0.0)
            {
                return Err(Error::Weights {
                    path: origin.to_string(),
                    message: format!(
                        "layer {}: rolling_variance[{j}] = {} is negative",
                        c.layer, bn.variance[j]
                    ),
                });
            }
        }
        Ok(())
    }

    /// Serialize in Darknet's format under this record's version (`seen` in 8 or 4 bytes, as
    /// [`DarknetWeights::seen`] says; [`DarknetWeights::random`] makes version 0.2.0).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [self.major, self.minor, self.revision] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if header_len(self.major, self.minor) == 20 {
            out.extend_from_slice(&self.seen.to_le_bytes());
        } else {
            out.extend_from_slice(&(self.seen as u32).to_le_bytes());
        }
        let mut put = |a: &[f32]| {
            for v in a {
                out.extend_from_slice(&v.to_le_bytes());
            }
        };
        for c in &self.convs {
            put(&c.biases);
            if let Some(bn) = &c.batch_norm {
                put(&bn.scales);
                put(&bn.mean);
                put(&bn.variance);
            }
            put(&c.weights);
        }
        out
    }

    /// Write a `.weights` file.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_bytes()).map_err(|e| Error::io(path, e))
    }

    /// Deterministic random parameters in Darknet's raw form. Weights are uniform with He variance
    /// (2 / fan-in) and the batch-norm statistics stay near identity, so activations keep their scale
    /// through deep leaky-ReLU stacks.
    pub fn random(net: &Network, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let convs = conv_layers(net)
            .map(|(i, c)| {
                let n = c.filters;
                let fan_in = (net.layers[i].input.c / c.groups) * c.size * c.size;
                let a = (6.0 / fan_in as f32).sqrt();
                let len = n * fan_in;
                let biases = (0..n).map(|_| rng.uniform(-0.1, 0.1)).collect();
                let batch_norm = c.batch_normalize.then(|| BatchNorm {
                    scales: (0..n).map(|_| rng.uniform(0.8, 1.2)).collect(),
                    mean: (0..n).map(|_| rng.uniform(-0.1, 0.1)).collect(),
                    variance: (0..n).map(|_| rng.uniform(0.8, 1.2)).collect(),
                });
                let weights = (0..len).map(|_| rng.uniform(-a, a)).collect();
                DarknetConv {
                    layer: i,
                    biases,
                    batch_norm,
                    weights,
                }
            })
            .collect();
        DarknetWeights {
            major: 0,
            minor: 2,
            revision: 0,
            seen: 0,
            convs,
        }
    }

    /// Fold batch norm into weights and biases, as Darknet computes inference:
    /// `scale·(conv − mean)/(sqrt(var) + 1e-6) + bias` = `k·conv + (bias − k·mean)` with
    /// `k = scale/(sqrt(var) + 1e-6)`. Computed in f64, rounded once to f32.
    pub fn fold(&self, net: &Network) -> Result<Weights> {
        let mut layers = vec![None; net.layers.len()];
        for c in &self.convs {
            let n = c.biases.len();
            let per = c.weights.len() / n.max(1);
            let params = match &c.batch_norm {
                None => ConvParams {
                    weights: c.weights.clone(),
                    bias: c.biases.clone(),
                },
                Some(bn) => {
                    let k: Vec<f64> = (0..n)
                        .map(|f| {
                            bn.scales[f] as f64 / ((bn.variance[f] as f64).sqrt() + BN_EPSILON)
                        })
                        .collect();
                    ConvParams {
                        weights: c
                            .weights
                            .iter()
                            .enumerate()
                            .map(|(j, &w)| (w as f64 * k[j / per]) as f32)
                            .collect(),
                        bias: (0..n)
                            .map(|f| (c.biases[f] as f64 - k[f] * bn.mean[f] as f64) as f32)
                            .collect(),
                    }
                }
            };
            let slot = layers.get_mut(c.layer).ok_or_else(|| Error::Weights {
                path: "weights".into(),
                message: format!("parameters for layer {} which the network lacks", c.layer),
            })?;
            *slot = Some(params);
        }
        Ok(Weights { layers })
    }
}

/// Sparse small-integer folded parameters: each weight is 0, or ±1/±2 with probability about
/// 3/fan-in, biases in −1..=1. Sums of integer inputs stay exact integers in f32 (far below 2^24), so
/// any summation order gives the same bits until an activation produces a fraction.
pub fn int_weights(net: &Network, seed: u64) -> Weights {
    let mut rng = Rng::new(seed ^ 0x1234_5678);
    let mut layers = vec![None; net.layers.len()];
    for (i, c) in conv_layers(net) {
        let fan_in = (net.layers[i].input.c / c.groups) * c.size * c.size;
        let density = (3.0 / fan_in as f32).min(1.0);
        let weights = (0..c.filters * fan_in)
            .map(|_| {
                if rng.unit() < density {
                    [-2.0, -1.0, 1.0, 2.0][rng.int(0, 3) as usize]
                } else {
                    0.0
                }
            })
            .collect();
        let bias = (0..c.filters).map(|_| rng.int(-1, 1) as f32).collect();
        layers[i] = Some(ConvParams { weights, bias });
    }
    Weights { layers }
}
