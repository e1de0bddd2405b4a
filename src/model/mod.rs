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
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Cfg {
        origin: model.to_string(),
        line: 0,
        message: "not a text file (expected a Darknet .cfg in UTF-8/ASCII)".into(),
    })?;
    cfg::parse(&text, model, size)
}

/// Parse `WxH` (e.g. `416x416`).
pub fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::Usage(format!("--size {s}: expected WIDTHxHEIGHT, e.g. 416x416"));
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: usize = w.trim().parse().map_err(|_| bad())?;
    let h: usize = h.trim().parse().map_err(|_| bad())?;
    if w == 0 || h == 0 {
        return Err(bad());
    }
    Ok((w, h))
}
