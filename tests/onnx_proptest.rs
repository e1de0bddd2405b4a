//! Property-based tests (proptest) of the ONNX reader: whatever the bytes of a model, a tensor
//! file or an `.npy`, and whatever values its nodes' attributes and its tensors' dimensions hold,
//! the reader imports a consistent network or refuses with one readable line — it never panics,
//! and what it accepts runs on the CPU reference with outputs of the declared dimensions.

mod onnx_build;

use mafat::model::onnx;
use mafat::model::onnx_pb::{ModelProto, TensorProto};
use onnx_build::{G, attr_i, attr_ints};
use proptest::prelude::*;
use prost::Message;
use std::collections::HashMap;

fn readable(e: &mafat::Error) -> bool {
    let m = e.to_string();
    !m.contains('\n') && m.len() < 2000
}

/// A small network: conv (SiLU), pool, residual add, concat, flatten, Gemm, softmax.
fn small(seed: u64) -> ModelProto {
    let mut g = G {
        seed,
        ..Default::default()
    };
    let a = g.conv("x", 2, 4, 3, 1, 1);
    let a = g.silu(&a);
    let p = g.op(
        "MaxPool",
        &[&a],
        vec![
            attr_ints("kernel_shape", &[2, 2]),
            attr_ints("strides", &[2, 2]),
        ],
    );
    let b = g.conv(&p, 4, 4, 3, 1, 1);
    let s = g.op("Add", &[&p, &b], vec![]);
    let cat = g.op("Concat", &[&s, &p], vec![attr_i("axis", 1)]);
    let f = g.op("Flatten", &[&cat], vec![]);
    let w = g.ints(3 * 128);
    let w = g.init_f(&[3, 128], w);
    let fc = g.op("Gemm", &[&f, &w], vec![attr_i("transB", 1)]);
    let sm = g.op("Softmax", &[&fc], vec![]);
    g.model(&[1, 2, 8, 8], &[&sm])
}

/// Import `m`: accepted ⇒ runs on the CPU reference with outputs of the declared sizes; refused
/// ⇒ one readable line.
fn import_checked(m: &ModelProto) -> Result<(), TestCaseError> {
    match onnx::import(m, "model.onnx", None, &HashMap::new()) {
        Ok(im) => {
            let net = &im.network;
            prop_assume!(net.input.len() <= 1 << 16);
            prop_assume!(net.layers.iter().all(|l| l.output.len() <= 1 << 18));
            let x = mafat::input::InputSource::Int(1).load(net.input).unwrap();
            let out =
                mafat::reference::forward(net, &im.weights, &x, &net.outputs()).map_err(|e| {
                    TestCaseError::fail(format!("accepted, then the reference failed: {e}"))
                })?;
            for (o, t) in im.outputs.iter().zip(&out) {
                prop_assert_eq!(o.dims.iter().product::<usize>(), t.data.len());
            }
            Ok(())
        }
        Err(e) => {
            prop_assert!(readable(&e), "{e}");
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Truncated and byte-flipped models: decoded and imported or refused, never a panic.
    #[test]
    fn corrupt_model_bytes(seed in 0u64..4, cut in 0.0f64..1.0, flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 0..8)) {
        let mut bytes = small(seed).encode_to_vec();
        for (at, b) in flips {
            let i = ((bytes.len() - 1) as f64 * at) as usize;
            bytes[i] ^= b;
        }
        bytes.truncate(((bytes.len() as f64) * (0.5 + cut / 2.0)) as usize);
        if let Ok(m) = ModelProto::decode(bytes.as_slice()) {
            import_checked(&m)?;
        }
    }

    /// Hostile attribute values and tensor dimensions in an otherwise valid graph.
    #[test]
    fn hostile_attributes_and_dimensions(
        seed in 0u64..4,
        node in 0usize..16,
        value in prop::sample::select(vec![i64::MIN, -1, 0, 1, 2, 3, 7, 1 << 20, 1 << 40, i64::MAX]),
        which in 0usize..6,
    ) {
        let mut m = small(seed);
        let g = m.graph.as_mut().unwrap();
        let n = node % g.node.len();
        match which {
            0..=3 => {
                let names = ["strides", "pads", "kernel_shape", "group"];
                let name = names[which];
                let nd = &mut g.node[n];
                nd.attribute.retain(|a| a.name() != name);
                nd.attribute.push(if name == "group" {
                    attr_i(name, value)
                } else {
                    attr_ints(name, &[value; 4][..if name == "pads" { 4 } else { 2 }])
                });
            }
            4 => {
                let k = n % g.initializer.len();
                let t = &mut g.initializer[k];
                if let Some(d) = t.dims.first_mut() {
                    *d = value;
                }
            }
            _ => {
                let k = n % g.initializer.len();
                g.initializer[k].dims.push(value);
            }
        }
        import_checked(&m)?;
    }

    /// Arbitrary bytes as a `.pb` tensor and as an `.npy`: read or refused in one line.
    #[test]
    fn tensor_files(bytes in prop::collection::vec(any::<u8>(), 0..256), dims in prop::collection::vec(-2i64..5, 0..5)) {
        let t = TensorProto {
            dims,
            data_type: Some(1),
            raw_data: Some(bytes.clone()),
            ..Default::default()
        };
        match onnx::tensor::decode(&t) {
            Ok(c) => prop_assert_eq!(c.len(), c.dims.iter().product::<usize>()),
            Err(m) => prop_assert!(!m.contains('\n')),
        }
        let _ = TensorProto::decode(bytes.as_slice());
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend_from_slice(&bytes);
        if let Err(m) = mafat::npy::read(&npy) {
            prop_assert!(!m.contains('\n'));
        }
    }
}

/// The unmutated networks import and run (so the properties above start from valid models).
#[test]
fn the_small_networks_import() {
    for seed in 0..4 {
        let im = onnx::import(&small(seed), "small.onnx", None, &HashMap::new())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(im.outputs[0].dims, [1, 3]);
        let x = mafat::input::InputSource::Int(1)
            .load(im.network.input)
            .unwrap();
        let out =
            mafat::reference::forward(&im.network, &im.weights, &x, &im.network.outputs()).unwrap();
        assert!((out[0].data.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
