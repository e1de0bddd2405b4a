//! The calibration cache: one JSON file per adapter, driver, backend, network and input size under
//! the user's cache directory (`MAFAT_CACHE_DIR`, else `$XDG_CACHE_HOME/mafat` or `~/.cache/mafat`
//! on Linux, `~/Library/Caches/mafat` on macOS, `%LOCALAPPDATA%\\mafat` on Windows), and reading or
//! calibrating the latency model.

use crate::error::{Error, Result};
use crate::network::Network;
use crate::plan::cost::{CalibrationKey, CostModel, fnv1a};
use crate::session::Session;
use crate::tune::calibrate::{calibrate, calibration_key};
use crate::tune::{KernelPolicy, Progress};
use std::path::{Path, PathBuf};

/// Largest calibration file read, in bytes (a real one is a few hundred KiB).
pub const MAX_CALIBRATION_BYTES: u64 = 64 << 20;

/// The cache directory: `MAFAT_CACHE_DIR`, else the platform's user cache directory + `mafat`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("MAFAT_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    user_cache_dir().map(|d| d.join("mafat"))
}

/// The platform's per-user cache directory.
fn user_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if cfg!(target_os = "windows") {
        return env("LOCALAPPDATA");
    }
    if cfg!(target_os = "macos") {
        return env("HOME").map(|h| h.join("Library/Caches"));
    }
    env("XDG_CACHE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
}

/// Where the calibration for `key` is cached.
pub fn cache_path(key: &CalibrationKey) -> Option<PathBuf> {
    cached_file("calibration", key)
}

/// Where the `what` (`calibration`, `kernels`) for `key` is cached.
pub fn cached_file(what: &str, key: &CalibrationKey) -> Option<PathBuf> {
    let h = fnv1a(&serde_json::to_string(key).expect("keys serialize"));
    let model: String = Path::new(&key.model)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache_dir().map(|d| {
        d.join(format!(
            "{what}-{model}-{}x{}-{h:016x}.json",
            key.input[2], key.input[1]
        ))
    })
}

/// Read a calibration file.
pub fn read_calibration(path: &Path) -> Result<CostModel> {
    let text = crate::model::read_text_capped(path, MAX_CALIBRATION_BYTES, "a calibration")?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{}: not a mafat calibration ({e}); delete it or point --calibration elsewhere",
            path.display()
        ))
    })
}

/// Write a calibration file (through a temporary file, so a reader never sees half of one).
pub fn write_calibration(path: &Path, model: &CostModel) -> Result<()> {
    write_atomically(
        path,
        &serde_json::to_string_pretty(model).expect("models serialize"),
    )
}

/// Write `text` to `path` through a temporary file beside it (a reader never sees half of it).
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Fail now, naming `path`, if a calibration could not be written there later (before minutes of
/// measuring).
fn check_writable(path: &Path) -> Result<()> {
    let refused = |e: std::io::Error| {
        Error::Usage(format!(
            "cannot write the calibration {}: {e} (checked before calibrating: give a file in a writable folder)",
            path.display()
        ))
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(refused)?;
    }
    let probe = path.with_extension(format!("probe{}", std::process::id()));
    std::fs::File::create(&probe).map_err(refused)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Where a cost model came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalibrationSource {
    /// Read from this file (pinned or cached).
    File(PathBuf),
    /// Measured now (and written to this file, when there was one to write).
    Measured(Option<PathBuf>),
}

impl CalibrationSource {
    /// The file it was read from or written to, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            CalibrationSource::File(p) | CalibrationSource::Measured(Some(p)) => Some(p),
            CalibrationSource::Measured(None) => None,
        }
    }
}

impl std::fmt::Display for CalibrationSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CalibrationSource::File(p) => write!(f, "read from {}", p.display()),
            CalibrationSource::Measured(Some(p)) => {
                write!(f, "measured now, saved to {}", p.display())
            }
            CalibrationSource::Measured(None) => f.write_str("measured now (not saved)"),
        }
    }
}

/// The cost model for `net` on `ctx`'s adapter: from `pinned` when given (calibrated and written
/// there when the file does not exist yet), else from the cache, else calibrated now and cached.
/// A pinned file for another network is refused; one from another adapter is used with a warning.
pub fn load_or_calibrate(
    session: &Session,
    net: &Network,
    policy: KernelPolicy,
    pinned: Option<&Path>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(CostModel, CalibrationSource)> {
    let key = calibration_key(session.context(), net, policy, session.precision());
    if let Some(path) = pinned {
        if path.exists() {
            let model = read_calibration(path)?;
            model
                .validate(net)
                .map_err(|e| Error::Usage(format!("--calibration {}: {e}", path.display())))?;
            if model.key.kernels != key.kernels {
                log::warn!(
                    "{} chose kernels as `{}`, not as `{}`: its kernels are used",
                    path.display(),
                    model.key.kernels,
                    key.kernels
                );
            }
            if (&model.key.adapter, &model.key.driver, &model.key.backend)
                != (&key.adapter, &key.driver, &key.backend)
            {
                log::warn!(
                    "{} was calibrated on {} ({}, {}), not on this adapter, {} ({}, {})",
                    path.display(),
                    model.key.adapter,
                    model.key.driver,
                    model.key.backend,
                    key.adapter,
                    key.driver,
                    key.backend
                );
            }
            return Ok((model, CalibrationSource::File(path.to_path_buf())));
        }
        check_writable(path)?;
        let model = calibrate(session, net, policy, progress)?;
        write_calibration(path, &model)?;
        return Ok((model, CalibrationSource::Measured(Some(path.to_path_buf()))));
    }
    let cached = cache_path(&key);
    if let Some(path) = &cached
        && path.exists()
    {
        match read_calibration(path) {
            Ok(model) if model.key == key && model.validate(net).is_ok() => {
                return Ok((model, CalibrationSource::File(path.clone())));
            }
            _ => log::warn!(
                "ignoring the stale or unreadable calibration {}",
                path.display()
            ),
        }
    }
    let model = calibrate(session, net, policy, progress)?;
    let written = cached.and_then(|path| match write_calibration(&path, &model) {
        Ok(()) => Some(path),
        Err(e) => {
            log::warn!("could not cache the calibration: {e}");
            None
        }
    });
    Ok((model, CalibrationSource::Measured(written)))
}
