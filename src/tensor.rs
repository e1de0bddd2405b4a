//! A dense f32 tensor, C×H×W, batch 1, and `.npy` output.

use crate::error::{Error, Result};
use crate::network::Shape;
use std::path::Path;

/// A dense f32 tensor of one feature map, laid out C×H×W (row-major, channel planes one after the
/// other).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Channels, height and width.
    pub shape: Shape,
    /// The `shape.len()` elements; element `(c, y, x)` is at index `(c·h + y)·w + x`.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of `shape` filled with 0.
    pub fn zeros(shape: Shape) -> Self {
        Tensor {
            shape,
            data: vec![0.0; shape.len()],
        }
    }

    /// Wrap `data`; its length must be `shape.len()`.
    pub fn from_vec(shape: Shape, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            shape.len(),
            "tensor data does not match {shape}"
        );
        Tensor { shape, data }
    }

    /// The element at channel `c`, row `y`, column `x` (no per-axis bounds check).
    #[inline]
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.shape.h + y) * self.shape.w + x]
    }

    /// One channel plane.
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.shape.h * self.shape.w;
        &self.data[c * n..(c + 1) * n]
    }

    /// Largest absolute difference to `other` (same shape), NaN if either holds a NaN.
    pub fn max_abs_diff(&self, other: &Tensor) -> f32 {
        assert_eq!(self.shape, other.shape);
        self.data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, |m, d| {
                if d.is_nan() || m.is_nan() {
                    f32::NAN
                } else {
                    m.max(d)
                }
            })
    }

    /// `.npy` (version 1.0, little-endian f32, C order, shape `(C, H, W)`).
    pub fn to_npy(&self) -> Vec<u8> {
        crate::npy::write(&[self.shape.c, self.shape.h, self.shape.w], &self.data)
    }

    /// Write [`Tensor::to_npy`]'s bytes to `path` (an I/O failure is [`Error::Io`]).
    pub fn write_npy(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_npy()).map_err(|e| Error::io(path, e))
    }
}
