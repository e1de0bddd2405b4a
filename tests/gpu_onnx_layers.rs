//! ONNX graphs built here (with prost's types), imported, and run on the GPU against the CPU
//! reference on small-integer weights and input: every layer an ONNX model brings (Focus slices,
//! SiLU, squeeze-and-excitation, residual adds, SPP pools and concats, nearest resizes, standalone
//! activations and per-channel affines, flatten + Gemm/MatMul + Softmax, a detection head's
//! Reshape/Concat/Transpose) equals the reference bit for bit (exp-based activations: within 2 ulp
//! on an adapter that contracts multiply-adds), untiled and at the smallest budget the search
//! reaches (which must equal the untiled run bit for bit).

mod common;
mod gpu_common;

mod onnx_build;

use mafat::input::InputSource;
use mafat::model::onnx::{self, Imported};
use mafat::model::onnx_pb::ModelProto;
use mafat::plan::Mode;
use mafat::plan::search::min_peak;
use onnx_build::{G, attr_f, attr_i, attr_ints, attr_s};
use std::collections::HashMap;

/// Focus (four strided slices joined on channels), a conv with SiLU, and a standalone ReLU.
fn focus() -> ModelProto {
    let mut g = G {
        seed: 1,
        ..Default::default()
    };
    let big = i64::MAX;
    let mut parts = Vec::new();
    for (ys, xs) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let (s0, e, a2, st) = (
            g.init_i(&[1], &[ys]),
            g.init_i(&[1], &[big]),
            g.init_i(&[1], &[2]),
            g.init_i(&[1], &[2]),
        );
        let rows = g.op("Slice", &["x", &s0, &e, &a2, &st], vec![]);
        let (s1, a3) = (g.init_i(&[1], &[xs]), g.init_i(&[1], &[3]));
        parts.push(g.op("Slice", &[&rows, &s1, &e, &a3, &st], vec![]));
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let cat = g.op("Concat", &refs, vec![attr_i("axis", 1)]);
    let c = g.conv(&cat, 12, 8, 3, 1, 1);
    let y = g.silu(&c);
    let p = g.op(
        "MaxPool",
        &[&y],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    let r = g.op("Relu", &[&p], vec![]);
    g.model(&[1, 3, 20, 18], &[&r])
}

/// A residual block, SPP (pools 5/9/13 stride 1 of one input, joined), a nearest ×2 resize and a
/// per-channel affine (Mul and Add by constants after a concat).
fn residual_spp() -> ModelProto {
    let mut g = G {
        seed: 2,
        ..Default::default()
    };
    let a = g.conv("x", 3, 6, 3, 2, 1);
    let a = g.op("LeakyRelu", &[&a], vec![attr_f("alpha", 0.1)]);
    let b = g.conv(&a, 6, 6, 1, 1, 0);
    let b = g.op("Relu", &[&b], vec![]);
    let b = g.conv(&b, 6, 6, 3, 1, 1);
    let sum = g.op("Add", &[&a, &b], vec![]);
    let mut pools = vec![sum.clone()];
    for k in [5i64, 9, 13] {
        pools.push(g.op(
            "MaxPool",
            &[&sum],
            vec![
                attr_ints("kernel_shape", &[k, k]),
                attr_ints("strides", &[1, 1]),
                attr_ints("pads", &[k / 2; 4]),
            ],
        ));
    }
    let refs: Vec<&str> = pools.iter().map(String::as_str).collect();
    let spp = g.op("Concat", &refs, vec![attr_i("axis", 1)]);
    let scale = g.ints(24);
    let scale = g.init_f(&[1, 24, 1, 1], scale);
    let scaled = g.op("Mul", &[&spp, &scale], vec![]);
    let shift = g.ints(24);
    let shift = g.init_f(&[24, 1, 1], shift);
    let shifted = g.op("Add", &[&scaled, &shift], vec![]);
    let c = g.conv(&shifted, 24, 4, 1, 1, 0);
    let scales = g.init_f(&[4], vec![1.0, 1.0, 2.0, 2.0]);
    let up = g.op(
        "Resize",
        &[&c, "", &scales],
        vec![
            attr_s("mode", "nearest"),
            attr_s("coordinate_transformation_mode", "asymmetric"),
            attr_s("nearest_mode", "floor"),
        ],
    );
    let d = g.conv(&up, 4, 5, 3, 1, 1);
    let sub = g.op("Sub", &[&d, &d], vec![]);
    let out = g.op("Add", &[&sub, &d], vec![]);
    g.model(&[1, 3, 17, 21], &[&out, &c])
}

/// A squeeze-and-excitation block with HardSwish, then a classifier: average pool, flatten, Gemm,
/// a Reshape'd map into MatMul, Softmax.
fn se_classifier() -> ModelProto {
    let mut g = G {
        seed: 3,
        ..Default::default()
    };
    let a = g.conv("x", 2, 8, 3, 1, 1);
    let a = g.op("HardSwish", &[&a], vec![]);
    let dw = {
        let w = g.ints(8 * 9);
        let w = g.init_f(&[8, 1, 3, 3], w);
        g.op(
            "Conv",
            &[&a, &w],
            vec![attr_i("group", 8), attr_ints("pads", &[1, 1, 1, 1])],
        )
    };
    let pooled = g.op("GlobalAveragePool", &[&dw], vec![]);
    let s = g.conv(&pooled, 8, 4, 1, 1, 0);
    let s = g.op("Relu", &[&s], vec![]);
    let s = g.conv(&s, 4, 8, 1, 1, 0);
    let s = g.op(
        "HardSigmoid",
        &[&s],
        vec![attr_f("alpha", 1.0 / 6.0), attr_f("beta", 0.5)],
    );
    let se = g.op("Mul", &[&dw, &s], vec![]);
    let p = g.op(
        "MaxPool",
        &[&se],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("strides", &[3, 3]),
        ],
    );
    // 8×4×4 flattened, then Gemm with transB.
    let flat = g.op("Flatten", &[&p], vec![attr_i("axis", 1)]);
    let w = g.ints(10 * 128);
    let w = g.init_f(&[10, 128], w);
    let b = g.ints(10);
    let b = g.init_f(&[10], b);
    let fc = g.op("Gemm", &[&flat, &w, &b], vec![attr_i("transB", 1)]);
    let shape = g.init_i(&[2], &[1, -1]);
    let v = g.op("Reshape", &[&fc, &shape], vec![]);
    let m = g.ints(10 * 6);
    let m = g.init_f(&[10, 6], m);
    let mm = g.op("MatMul", &[&v, &m], vec![]);
    let sm = g.op("Softmax", &[&mm], vec![attr_i("axis", -1)]);
    g.model(&[1, 2, 12, 12], &[&sm, &fc])
}

/// A detection head: two scales, each Reshape'd to [1, C, H·W], joined and transposed.
fn head() -> ModelProto {
    let mut g = G {
        seed: 4,
        ..Default::default()
    };
    let a = g.conv("x", 3, 6, 3, 1, 1);
    let b = g.conv(&a, 6, 6, 3, 2, 1);
    let b = g.op("Sigmoid", &[&b], vec![]);
    let shape = g.init_i(&[3], &[1, 6, -1]);
    let ra = g.op("Reshape", &[&a, &shape], vec![]);
    let rb = g.op("Reshape", &[&b, &shape], vec![]);
    let cat = g.op("Concat", &[&ra, &rb], vec![attr_i("axis", 2)]);
    let t = g.op("Transpose", &[&cat], vec![attr_ints("perm", &[0, 2, 1])]);
    g.model(&[1, 3, 10, 14], &[&t])
}

/// Parameterized activations (LeakyRelu of another slope, PRelu with one slope, ReLU6 (Clip) after
/// a conv and standalone, HardSigmoid of any alpha and beta), windowed average pools, a constant
/// pad, an unevenly padded convolution, and HardSwish written as `x·HardSigmoid(x)`.
fn activations() -> ModelProto {
    let mut g = G {
        seed: 5,
        ..Default::default()
    };
    let a = g.conv("x", 3, 4, 3, 1, 1);
    let a = g.op("LeakyRelu", &[&a], vec![attr_f("alpha", 0.25)]);
    let b = g.conv(&a, 4, 4, 3, 1, 1);
    let (lo, hi) = (g.init_f(&[], vec![0.0]), g.init_f(&[], vec![6.0]));
    let b = g.op("Clip", &[&b, &lo, &hi], vec![]);
    let c = g.conv(&b, 4, 4, 1, 1, 0);
    let slope = g.init_f(&[1], vec![-0.5]);
    let c = g.op("PRelu", &[&c, &slope], vec![]);
    let p = g.op(
        "MaxPool",
        &[&c],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    let (lo, hi) = (g.init_f(&[], vec![-1.5]), g.init_f(&[], vec![2.0]));
    let q = g.op("Clip", &[&p, &lo, &hi], vec![]);
    // Average pools: padded cells left out of the divisor, then counted.
    let q = g.op(
        "AveragePool",
        &[&q],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("pads", &[1, 1, 1, 1]),
        ],
    );
    let q = g.op(
        "AveragePool",
        &[&q],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("pads", &[1, 0, 1, 1]),
            attr_i("count_include_pad", 1),
        ],
    );
    // A constant pad, then a convolution padded unevenly (a pad layer before it).
    let pads = g.init_i(&[8], &[0, 0, 1, 2, 0, 0, 0, 1]);
    let value = g.init_f(&[], vec![1.5]);
    let q = g.op("Pad", &[&q, &pads, &value], vec![]);
    let w = g.ints(4 * 4 * 9);
    let w = g.init_f(&[4, 4, 3, 3], w);
    let q = g.op(
        "Conv",
        &[&q, &w],
        vec![
            attr_ints("pads", &[1, 0, 2, 1]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    // HardSwish as opsets before 14 write it: x·HardSigmoid(x) with α = 1/6, β = 0.5.
    let hs = g.op(
        "HardSigmoid",
        &[&q],
        vec![attr_f("alpha", 1.0 / 6.0), attr_f("beta", 0.5)],
    );
    let q = g.op("Mul", &[&hs, &q], vec![]);
    let d = g.conv(&q, 4, 3, 3, 1, 1);
    let d = g.op(
        "HardSigmoid",
        &[&d],
        vec![attr_f("alpha", 0.2), attr_f("beta", 0.5)],
    );
    g.model(&[1, 3, 12, 10], &[&d])
}

fn import(name: &str, m: &ModelProto) -> Imported {
    onnx::import(m, name, None, &HashMap::new()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn exp_based(im: &Imported) -> bool {
    use mafat::network::Activation::{Logistic, Swish};
    im.network.layers.iter().any(|l| match &l.kind {
        mafat::LayerKind::Conv(c) => matches!(c.activation, Logistic | Swish),
        mafat::LayerKind::Softmax { .. } => true,
        _ => false,
    })
}

#[test]
fn onnx_layers_on_the_gpu_equal_the_reference() {
    let test = "onnx_layers_on_the_gpu_equal_the_reference";
    let Some(g) = gpu_common::gpu(test) else {
        return;
    };
    for (name, model) in [
        ("focus", focus()),
        ("residual_spp", residual_spp()),
        ("se_classifier", se_classifier()),
        ("head", head()),
        ("activations", activations()),
    ] {
        let im = import(name, &model);
        let net = &im.network;
        let x = InputSource::Int(7).load(net.input).unwrap();
        let heads = net.outputs();
        let cpu = mafat::reference::forward(net, &im.weights, &x, &heads).unwrap();
        let (gpu, _, _) = g
            .run(net, &im.weights, &x, Mode::Layerwise, None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ulps = if exp_based(&im) && gpu_common::contracts_multiply_add(g) {
            2
        } else {
            0
        };
        for (k, (a, b)) in gpu.iter().zip(&cpu).enumerate() {
            assert_eq!(a.shape, b.shape, "{name} output {k}");
            let worst = a
                .data
                .iter()
                .zip(&b.data)
                .map(|(p, q)| gpu_common::ulps(*p, *q))
                .max()
                .unwrap_or(0);
            assert!(
                worst <= ulps,
                "{name} output {k}: {worst} ulp from the reference"
            );
        }
        // The smallest budget the search reaches: bit-exact with the untiled run.
        let planner = g.planner(net);
        let (min, config, residency) = min_peak(&planner).unwrap();
        let plan = planner.plan(&config, Mode::Layerwise, residency).unwrap();
        let (tiled, plan, stats) = g.run_plan(net, &im.weights, &x, plan, Some(min)).unwrap();
        assert_eq!(stats.peak, plan.peak_bytes(), "{name}");
        for (k, (a, b)) in tiled.iter().zip(&gpu).enumerate() {
            assert!(
                a.data
                    .iter()
                    .zip(&b.data)
                    .all(|(p, q)| p.to_bits() == q.to_bits()),
                "{name} output {k}: {config} differs from the untiled run"
            );
        }
        println!(
            "{name}: {} layers, outputs equal the reference; minimum budget {min} B with {config}",
            net.layers.len()
        );
    }
}
