//! ONNX's own backend node tests (PyPI `onnx==1.22.0`, `onnx/backend/test/data/node/test_*`,
//! fetched by `scripts/fetch-onnx.sh`): every test the importer accepts runs on the CPU reference
//! and on the GPU (untiled), and each output must match ONNX's expected output within 1e-4 of its
//! absmax, with ONNX's dimensions. A test the importer refuses counts as unsupported (its error
//! must be one line naming the node); the counts per operator are printed
//! (`cargo test --release --test onnx_nodes -- --nocapture`).
//!
//! The graph's first input is the network's input; the others (weights, scales, shapes, which the
//! node tests feed from `input_N.pb`) are given to the importer as constants.

mod common;
mod gpu_common;

use mafat::Tensor;
use mafat::model::onnx::{self, Constant, Values};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Tolerance: of the expected output's absmax.
const TOLERANCE: f32 = 1e-4;

/// Tests that must pass (a regression to "unsupported" or "failed" fails the test).
const MUST_PASS: &[&str] = &[
    "test_averagepool_2d_default",
    "test_averagepool_2d_pads",
    "test_averagepool_2d_pads_count_include_pad",
    "test_averagepool_2d_precomputed_pads",
    "test_averagepool_2d_precomputed_pads_count_include_pad",
    "test_averagepool_2d_precomputed_same_upper",
    "test_averagepool_2d_precomputed_strides",
    "test_averagepool_2d_same_lower",
    "test_averagepool_2d_same_upper",
    "test_averagepool_2d_strides",
    "test_basic_conv_with_padding",
    "test_basic_conv_without_padding",
    "test_clip",
    "test_clip_default_max",
    "test_clip_default_min",
    "test_constant_pad",
    "test_constant_pad_axes",
    "test_constant_pad_negative_axes",
    "test_conv_with_autopad_same",
    "test_conv_with_strides_and_asymmetric_padding",
    "test_conv_with_strides_no_padding",
    "test_conv_with_strides_padding",
    "test_dropout_default",
    "test_dropout_default_ratio",
    "test_dropout_random_old",
    "test_globalaveragepool",
    "test_globalaveragepool_precomputed",
    "test_hardsigmoid",
    "test_hardsigmoid_default",
    "test_hardswish",
    "test_hardswish_expanded",
    "test_identity",
    "test_leakyrelu",
    "test_leakyrelu_default",
    "test_maxpool_2d_ceil",
    "test_maxpool_2d_ceil_output_size_reduce_by_one",
    "test_maxpool_2d_default",
    "test_maxpool_2d_pads",
    "test_maxpool_2d_precomputed_pads",
    "test_maxpool_2d_precomputed_same_upper",
    "test_maxpool_2d_precomputed_strides",
    "test_maxpool_2d_same_upper",
    "test_maxpool_2d_strides",
    "test_relu",
    "test_reshape_negative_extended_dims",
    "test_sigmoid",
    "test_softmax_example",
];

#[derive(Default)]
struct Count {
    passed: usize,
    failed: usize,
    unsupported: usize,
}

enum Outcome {
    Passed,
    Failed(String),
    Unsupported(String),
}

fn tensor_file(path: &Path) -> Option<Constant> {
    onnx::read_tensor(path).ok()
}

fn absmax(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// Compare `got` with the expected tensor; `None` when within the tolerance.
fn differ(what: &str, got: &[f32], want: &[f32]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!(
            "{what}: {} values, expected {}",
            got.len(),
            want.len()
        ));
    }
    let scale = absmax(want).max(f32::MIN_POSITIVE);
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| {
            if a.is_nan() || b.is_nan() {
                f32::INFINITY
            } else {
                (a - b).abs()
            }
        })
        .fold(0.0f32, f32::max);
    (worst > TOLERANCE * scale)
        .then(|| format!("{what}: max |diff| {worst:e} past {TOLERANCE:e} of absmax {scale:e}"))
}

fn run_one(dir: &Path, gpu: Option<&gpu_common::Gpu>) -> Outcome {
    let origin = dir.join("model.onnx");
    let model = match onnx::read_model(&origin) {
        Ok(m) => m,
        Err(e) => return Outcome::Unsupported(e.to_string()),
    };
    let Some(graph) = model.graph.as_ref() else {
        return Outcome::Unsupported("no graph".into());
    };
    let data = dir.join("test_data_set_0");
    let mut fed = HashMap::new();
    let mut first = None;
    for (k, vi) in graph.input.iter().enumerate() {
        let Some(c) = tensor_file(&data.join(format!("input_{k}.pb"))) else {
            return Outcome::Unsupported(format!("input_{k}.pb is not a tensor mafat reads"));
        };
        if k == 0 {
            first = Some(c);
        } else {
            fed.insert(vi.name().to_string(), c);
        }
    }
    let Some(x) = first else {
        return Outcome::Unsupported("the graph has no input".into());
    };
    let im = match onnx::import(&model, &origin.display().to_string(), None, &fed) {
        Ok(im) => im,
        Err(e) => {
            let text = e.to_string();
            assert!(
                !text.contains('\n'),
                "{}: a multi-line error: {text}",
                dir.display()
            );
            return Outcome::Unsupported(text);
        }
    };
    let net = &im.network;
    let Values::F32(xv) = x.values else {
        return Outcome::Unsupported("integer input".into());
    };
    if x.dims != im.input_dims {
        return Outcome::Unsupported(format!(
            "input dims {:?} vs the imported {:?}",
            x.dims, im.input_dims
        ));
    }
    let input = Tensor::from_vec(net.input, xv);
    let mut want = Vec::new();
    for (k, o) in im.outputs.iter().enumerate() {
        let Some(c) = tensor_file(&data.join(format!("output_{k}.pb"))) else {
            return Outcome::Unsupported(format!("output_{k}.pb is not a tensor mafat reads"));
        };
        if c.dims != o.dims {
            return Outcome::Failed(format!(
                "output {k} `{}` has dimensions {:?}, expected {:?}",
                o.name, o.dims, c.dims
            ));
        }
        let Values::F32(v) = c.values else {
            return Outcome::Unsupported("integer output".into());
        };
        want.push(v);
    }
    let heads = net.outputs();
    let cpu = match mafat::reference::forward(net, &im.weights, &input, &heads) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("CPU reference: {e}")),
    };
    for (k, (got, w)) in cpu.iter().zip(&want).enumerate() {
        if let Some(d) = differ(&format!("CPU output {k}"), &got.data, w) {
            return Outcome::Failed(d);
        }
    }
    if let Some(g) = gpu {
        let out = match g.session.run_untiled(net, &im.weights, &input) {
            Ok(o) => o,
            Err(e) => return Outcome::Failed(format!("GPU: {e}")),
        };
        for (k, (got, w)) in out.iter().zip(&want).enumerate() {
            if let Some(d) = differ(&format!("GPU output {k}"), &got.data, w) {
                return Outcome::Failed(d);
            }
        }
    }
    Outcome::Passed
}

/// The operator a test is counted under: its one node's, or "(graphs of several nodes)".
fn op_of(dir: &Path) -> String {
    match onnx::read_model(&dir.join("model.onnx")) {
        Ok(m) => match m.graph.as_ref().map(|g| &g.node[..]) {
            Some([one]) => one.op_type().to_string(),
            _ => "(graphs of several nodes)".into(),
        },
        Err(_) => "(unreadable)".into(),
    }
}

#[test]
fn onnx_backend_node_tests() {
    let test = "onnx_backend_node_tests";
    let data = match common::onnx_data() {
        Ok(d) => d,
        Err(e) => return common::skip(test, &e),
    };
    let Some(gpu) = gpu_common::gpu(test) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&data.node)
        .expect("the node test folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("test_"))
        })
        .collect();
    dirs.sort();
    assert!(dirs.len() > 1000, "only {} node tests found", dirs.len());
    let mut counts: BTreeMap<String, Count> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut passed = Vec::new();
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let op = op_of(dir);
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_one(dir, Some(gpu))))
                .unwrap_or_else(|_| Outcome::Failed("panicked".into()));
        let c = counts.entry(op.clone()).or_default();
        match outcome {
            Outcome::Passed => {
                c.passed += 1;
                passed.push(name);
            }
            Outcome::Failed(why) => {
                c.failed += 1;
                failures.push(format!("{name}: {why}"));
            }
            Outcome::Unsupported(why) => {
                c.unsupported += 1;
                reasons
                    .entry(op)
                    .or_default()
                    .push(format!("{name}: {why}"));
            }
        }
    }
    let supported: Vec<&str> = onnx::SUPPORTED
        .split(", ")
        .flat_map(|s| s.split(['(', '/']).next())
        .map(str::trim)
        .collect();
    println!(
        "ONNX node tests ({} dirs): per operator passed / failed / unsupported",
        dirs.len()
    );
    let mut others = Count::default();
    for (op, c) in &counts {
        if supported.iter().any(|s| op.starts_with(s)) || c.passed + c.failed > 0 {
            println!(
                "  {op:<28} {:>3} / {:>3} / {:>3}",
                c.passed, c.failed, c.unsupported
            );
            if let Some(r) = reasons.get(op) {
                for line in r.iter().take(40) {
                    println!("      unsupported {line}");
                }
            }
        } else {
            others.passed += c.passed;
            others.failed += c.failed;
            others.unsupported += c.unsupported;
        }
    }
    println!(
        "  {:<28} {:>3} / {:>3} / {:>3}",
        "(every other operator)", others.passed, others.failed, others.unsupported
    );
    let total = |f: fn(&Count) -> usize| counts.values().map(f).sum::<usize>();
    println!(
        "  total: {} passed, {} failed, {} unsupported",
        total(|c| c.passed),
        total(|c| c.failed),
        total(|c| c.unsupported)
    );
    println!("  passed: {}", passed.join(" "));
    for f in &failures {
        println!("  FAILED {f}");
    }
    assert!(
        failures.is_empty(),
        "{} node tests failed: {failures:#?}",
        failures.len()
    );
    let missing: Vec<&&str> = MUST_PASS
        .iter()
        .filter(|t| !passed.iter().any(|p| p == **t))
        .collect();
    assert!(
        missing.is_empty(),
        "these node tests no longer pass: {missing:?}"
    );
}
