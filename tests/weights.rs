//! `.weights`: round trip, size errors, batch-norm folding, synthetic parameters, real weights.

mod common;

use mafat::model::weights::{DarknetWeights, WeightSource, int_weights};
use mafat::model::{self, cfg};

#[test]
fn round_trip_is_identical() {
    for name in ["yolov2-16", "yolov3-tiny"] {
        let net = model::load(name, Some((64, 64))).unwrap();
        let w = DarknetWeights::random(&net, 7);
        let bytes = w.to_bytes();
        assert_eq!(bytes.len() as u64, 20 + DarknetWeights::body_bytes(&net));
        let back = DarknetWeights::from_bytes(&bytes, &net, "mem").unwrap();
        assert_eq!(back, w);
        // Through a real file as well.
        let path = common::scratch("weights-roundtrip").join(format!("{name}.weights"));
        w.save(&path).unwrap();
        assert_eq!(DarknetWeights::load(&path, &net).unwrap(), w);
        let _ = std::fs::remove_file(path);
    }
}

/// A corrupt header's version numbers (found by proptest: major·10 + minor overflowed i32 and
/// panicked in debug builds) are refused by size, never panic.
#[test]
fn corrupt_header_versions_do_not_overflow() {
    let net = model::load("yolov2-tiny", None).unwrap();
    let mut bytes = DarknetWeights::random(&net, 1).to_bytes();
    for (major, minor) in [
        (i32::MAX, 0),
        (i32::MIN, i32::MIN),
        (214_748_365, 7),
        (-1, i32::MAX),
    ] {
        bytes[0..4].copy_from_slice(&major.to_le_bytes());
        bytes[4..8].copy_from_slice(&minor.to_le_bytes());
        let e = DarknetWeights::from_bytes(&bytes, &net, "corrupt.weights")
            .unwrap_err()
            .to_string();
        assert!(e.contains("too long"), "{major}.{minor}: {e}");
    }
}

#[test]
fn truncated_and_oversized_files_state_byte_counts() {
    let net = model::load("yolov2-tiny", None).unwrap();
    let bytes = DarknetWeights::random(&net, 1).to_bytes();
    let expected = bytes.len();
    let e = DarknetWeights::from_bytes(&bytes[..expected - 3], &net, "x.weights")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("x.weights: truncated"), "{e}");
    assert!(e.contains(&format!("expected {expected} bytes")), "{e}");
    assert!(
        e.contains(&format!("the file has {} bytes", expected - 3)),
        "{e}"
    );

    let mut long = bytes.clone();
    long.extend_from_slice(&[0; 8]);
    let e = DarknetWeights::from_bytes(&long, &net, "x.weights")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("too long") && e.contains(&format!("the file has {} bytes", expected + 8)),
        "{e}"
    );

    let e = DarknetWeights::from_bytes(&bytes[..5], &net, "x.weights")
        .unwrap_err()
        .to_string();
    assert!(e.contains("file is 5 bytes"), "{e}");
}

#[test]
fn old_header_has_a_4_byte_seen() {
    let net = cfg::parse(
        "[net]\nwidth=4\nheight=4\nchannels=1\n[convolutional]\nfilters=1\nsize=1\n",
        "t",
        None,
    )
    .unwrap();
    // version 0.1.0 → 4-byte `seen`: 16-byte header, then bias (1) + weight (1).
    let mut bytes = Vec::new();
    for v in [0i32, 1, 0, 123] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&0.5f32.to_le_bytes());
    bytes.extend_from_slice(&2.0f32.to_le_bytes());
    let w = DarknetWeights::from_bytes(&bytes, &net, "old").unwrap();
    assert_eq!(w.seen, 123);
    assert_eq!(w.convs[0].biases, vec![0.5]);
    assert_eq!(w.convs[0].weights, vec![2.0]);
    assert_eq!(w.to_bytes(), bytes);
}

#[test]
fn batch_norm_folds_with_epsilon_outside_the_sqrt() {
    let net = cfg::parse(
        "[net]\nwidth=3\nheight=3\nchannels=1\n[convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\nactivation=linear\n",
        "t",
        None,
    )
    .unwrap();
    // Layout: biases[2], scales[2], mean[2], variance[2], weights[2].
    let vals: [f32; 10] = [0.5, -1.0, 2.0, 3.0, 1.0, -2.0, 4.0, 0.0001, 3.0, -1.0];
    let mut bytes = Vec::new();
    for v in [0i32, 2, 0] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&0u64.to_le_bytes());
    for v in vals {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let folded = DarknetWeights::from_bytes(&bytes, &net, "t")
        .unwrap()
        .fold(&net)
        .unwrap();
    let p = folded.conv(0);
    // filter 0: k = 2 / (sqrt(4) + 1e-6); w' = 3·k; b' = 0.5 − k·1
    let k0 = 2.0f64 / (2.0 + 1e-6);
    // filter 1: k = 3 / (sqrt(0.0001) + 1e-6); w' = −1·k; b' = −1 − k·(−2)
    let k1 = 3.0f64 / ((0.0001f32 as f64).sqrt() + 1e-6);
    assert_eq!(p.weights, vec![(3.0 * k0) as f32, (-k1) as f32]);
    assert_eq!(p.bias, vec![(0.5 - k0) as f32, (-1.0 + 2.0 * k1) as f32]);
    // Not the same as epsilon inside the sqrt (the difference is visible in f32 here).
    assert_ne!(p.weights[1], (-3.0f64 / (0.0001f64 + 1e-6).sqrt()) as f32);
    assert!(
        (p.weights[1] + 3.0 / 0.010001).abs() < 1e-3,
        "{}",
        p.weights[1]
    );
}

#[test]
fn non_finite_and_negative_variance_are_rejected() {
    let net = cfg::parse(
        "[net]\nwidth=3\nheight=3\nchannels=1\n[convolutional]\nbatch_normalize=1\nfilters=1\nsize=1\n",
        "t",
        None,
    )
    .unwrap();
    let mut w = DarknetWeights::random(&net, 3);
    w.convs[0].batch_norm.as_mut().unwrap().variance[0] = -1.0;
    let e = DarknetWeights::from_bytes(&w.to_bytes(), &net, "t")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer 0: rolling_variance[0] = -1 is negative"),
        "{e}"
    );
    w.convs[0].batch_norm.as_mut().unwrap().variance[0] = 1.0;
    w.convs[0].weights[0] = f32::NAN;
    let e = DarknetWeights::from_bytes(&w.to_bytes(), &net, "t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 0: weights[0] is NaN"), "{e}");
}

#[test]
fn synthetic_sources() {
    assert_eq!(
        WeightSource::parse("random").unwrap(),
        WeightSource::Random(0)
    );
    assert_eq!(
        WeightSource::parse("random:42").unwrap(),
        WeightSource::Random(42)
    );
    assert_eq!(WeightSource::parse("int:3").unwrap(), WeightSource::Int(3));
    assert!(WeightSource::parse("int:x").is_err());
    assert_eq!(
        WeightSource::parse("a.weights").unwrap(),
        WeightSource::File("a.weights".into())
    );

    let net = model::load("yolov2-16", Some((32, 32))).unwrap();
    let a = WeightSource::Random(5).load(&net).unwrap();
    assert_eq!(
        a,
        WeightSource::Random(5).load(&net).unwrap(),
        "deterministic"
    );
    assert_ne!(a, WeightSource::Random(6).load(&net).unwrap());

    let w = int_weights(&net, 1);
    for (i, p) in w.layers.iter().enumerate() {
        let Some(p) = p else { continue };
        assert_eq!(
            p.weights.len() as u64 * 4 + p.bias.len() as u64 * 4,
            net.layers[i].weight_bytes()
        );
        assert!(p.weights.iter().all(|v| v.fract() == 0.0 && v.abs() <= 2.0));
        assert!(p.weights.iter().any(|&v| v != 0.0), "layer {i} all zero");
        assert!(p.bias.iter().all(|v| v.fract() == 0.0 && v.abs() <= 1.0));
    }
}

#[test]
fn missing_file_names_the_path() {
    let net = model::load("yolov2-tiny", None).unwrap();
    let e = WeightSource::parse("/nonexistent/x.weights")
        .unwrap()
        .load(&net)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/x.weights:"), "{e}");
}

#[test]
fn real_yolov3_tiny_weights_load() {
    let dir = match common::yolov3_tiny_real() {
        Ok(d) => d,
        Err(why) => return common::skip("real_yolov3_tiny_weights_load", &why),
    };
    let net = model::load(dir.join("yolov3-tiny.cfg").to_str().unwrap(), None).unwrap();
    let raw = DarknetWeights::load(&dir.join("yolov3-tiny.weights"), &net).unwrap();
    assert_eq!(raw.convs.len(), 13);
    // The writer reproduces the file byte for byte.
    assert_eq!(
        raw.to_bytes(),
        std::fs::read(dir.join("yolov3-tiny.weights")).unwrap()
    );
}
