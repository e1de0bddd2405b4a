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
        let dict = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}, {}), }}",
            self.shape.c, self.shape.h, self.shape.w
        );
        // magic(6) + version(2) + header length(2) + dict + padding + '\n' is a multiple of 64.
        let unpadded = 10 + dict.len() + 1;
        let pad = (64 - unpadded % 64) % 64;
        let header = format!("{dict}{}\n", " ".repeat(pad));
        let mut out = Vec::with_capacity(10 + header.len() + 4 * self.data.len());
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(bytemuck::cast_slice(&self.data));
        out
    }

    /// Write [`Tensor::to_npy`]'s bytes to `path` (an I/O failure is [`Error::Io`]).
    pub fn write_npy(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_npy()).map_err(|e| Error::io(path, e))
    }
}
