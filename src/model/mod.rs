//! Model formats: Darknet `.cfg` (network description) and `.weights` (parameters), and the built-in
//! models bundled with the crate.

pub mod builtin;
pub mod cfg;
pub mod weights;

use crate::error::{Error, Result};
use crate::network::Network;
use std::path::Path;

/// Load a network by built-in name (`yolov2`, `yolov2-16`, `yolov2-tiny`, `yolov3-tiny`) or from a
/// `.cfg` path. `size` = `(width, height)` overrides the cfg's input size.
pub fn load(model: &str, size: Option<(usize, usize)>) -> Result<Network> {
    if let Some((text, keep)) = builtin::lookup(model) {
        return cfg::parse_prefix(text, model, size, keep.unwrap_or(usize::MAX));
    }
    let path = Path::new(model);
    if !path.exists() {
        return Err(Error::UnknownModel(model.to_string()));
    }
    let text = read_capped(path, MAX_CFG_BYTES, "a Darknet .cfg").map_err(|e| match e {
        CappedRead::Io(e) => Error::io(path, e),
        CappedRead::Refused(message) => Error::Cfg {
            origin: model.to_string(),
            line: 0,
            message,
        },
    })?;
    cfg::parse(&text, model, size)
}

/// Largest `.cfg` file read, in bytes (Darknet's largest are ~30 KiB).
pub const MAX_CFG_BYTES: u64 = 4 << 20;

/// Read a text file of at most `cap` bytes (`what` names the expected content in errors): a larger
/// file, or one that is not UTF-8, is refused with the path, without reading past the cap.
pub fn read_text_capped(path: &Path, cap: u64, what: &str) -> Result<String> {
    read_capped(path, cap, what).map_err(|e| match e {
        CappedRead::Io(e) => Error::io(path, e),
        CappedRead::Refused(m) => Error::Usage(format!("{}: {m}", path.display())),
    })
}

/// Read at most `cap` bytes of a file: `Ok(None)` when the file holds more (nothing past the cap is
/// read, so `/dev/zero` or a wrong multi-gigabyte file costs at most `cap + 1` bytes).
pub fn read_bytes_capped(path: &Path, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= cap).then_some(bytes))
}

enum CappedRead {
    Io(std::io::Error),
    Refused(String),
}

fn read_capped(path: &Path, cap: u64, what: &str) -> std::result::Result<String, CappedRead> {
    let bytes = read_bytes_capped(path, cap)
        .map_err(CappedRead::Io)?
        .ok_or_else(|| {
            CappedRead::Refused(format!("larger than {cap} bytes: too large for {what}"))
        })?;
    String::from_utf8(bytes)
        .map_err(|_| CappedRead::Refused(format!("not a text file (expected {what} in UTF-8)")))
}

/// Parse `WxH` (e.g. `416x416`).
pub fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || {
        Error::Usage(format!(
            "--size {}: expected WIDTHxHEIGHT, e.g. 416x416",
            crate::units::prefix(s)
        ))
    };
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: usize = w.trim().parse().map_err(|_| bad())?;
    let h: usize = h.trim().parse().map_err(|_| bad())?;
    if w == 0 || h == 0 {
        return Err(bad());
    }
    Ok((w, h))
}
