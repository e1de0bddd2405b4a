//! Regions of feature maps: inclusive rectangles in map coordinates (every channel). Shared by the
//! kernels (what a dispatch computes and what its bindings hold) and the planner (tile geometry).

use crate::error::{Error, Result};
use crate::network::{LayerKind, Shape};
use serde::Serialize;
use std::fmt;

/// An inclusive rectangle of a feature map: rows `y0..=y1`, columns `x0..=x1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Region {
    /// First row (inclusive).
    pub y0: usize,
    /// Last row (inclusive).
    pub y1: usize,
    /// First column (inclusive).
    pub x0: usize,
    /// Last column (inclusive).
    pub x1: usize,
}

impl Region {
    /// The whole `h × w` map.
    pub fn full(h: usize, w: usize) -> Self {
        Region {
            y0: 0,
            y1: h - 1,
            x0: 0,
            x1: w - 1,
        }
    }
    /// Rows: `y1 − y0 + 1`.
    pub fn height(&self) -> usize {
        self.y1 - self.y0 + 1
    }
    /// Columns: `x1 − x0 + 1`.
    pub fn width(&self) -> usize {
        self.x1 - self.x0 + 1
    }
    /// Elements of the region over `c` channels.
    pub fn len(&self, c: usize) -> usize {
        c * self.height() * self.width()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rows {}..={}, cols {}..={}",
            self.y0, self.y1, self.x0, self.x1
        )
    }
}

/// Window of a layer along one axis: (kernel, stride, padding before the first input).
pub(crate) fn window(kind: &LayerKind) -> Option<(usize, usize, usize)> {
    match kind {
        LayerKind::Conv(c) => Some((c.size, c.stride, c.padding)),
        LayerKind::MaxPool(m) => Some((m.size, m.stride, m.pad_before())),
        _ => None,
    }
}

/// Inclusive input range read by outputs `o0..=o1` of a window (k, s, p) over an input of `len`.
fn back(o0: usize, o1: usize, (k, s, p): (usize, usize, usize), len: usize) -> (usize, usize) {
    let start = (o0 * s).saturating_sub(p);
    let end = (o1 * s + k - 1).saturating_sub(p).min(len - 1);
    (start.min(end), end)
}

/// The input region a conv or maxpool layer reads to produce `out` (clamped to its input map).
pub fn input_region(kind: &LayerKind, input: Shape, out: Region) -> Result<Region> {
    let w = window(kind).ok_or_else(|| {
        Error::Unsupported(format!(
            "a [{}] layer cannot be part of a tiled group (only convolutions and max pools)",
            kind.name()
        ))
    })?;
    let (y0, y1) = back(out.y0, out.y1, w, input.h);
    let (x0, x1) = back(out.x0, out.x1, w, input.w);
    Ok(Region { y0, y1, x0, x1 })
}
