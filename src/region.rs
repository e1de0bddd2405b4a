//! Regions of feature maps: inclusive rectangles in map coordinates (every channel). Shared by the
//! kernels (what a dispatch computes and what its bindings hold) and the planner (tile geometry).

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
