//! Storage precision: how feature maps and weights are stored on the device. Arithmetic
//! accumulates in f32 either way; `f16` halves every map and weight buffer the predictor counts
//! (needs the adapter's `shader-f16`: WGSL `enable f16;` with 16-bit storage).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How maps and weights are stored on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 4-byte floats (the default).
    #[default]
    F32,
    /// 2-byte IEEE half floats: values round to nearest, ties to even, where they are stored.
    F16,
}

impl Precision {
    /// Both, `f32` first.
    pub const BOTH: [Precision; 2] = [Precision::F32, Precision::F16];

    /// Bytes of one stored element.
    pub fn bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    /// The largest finite value it stores (f16: 65504).
    pub fn max_finite(self) -> f32 {
        match self {
            Precision::F32 => f32::MAX,
            Precision::F16 => half::f16::MAX.to_f32(),
        }
    }

    /// `f32` or `f16`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// `bytes` of f32 elements (a packed weight buffer) at this precision.
    pub fn of_f32_bytes(self, bytes: u64) -> u64 {
        bytes / 4 * self.bytes()
    }

    /// The WGSL every kernel starts with for this precision: `Store`/`Store4`, the stored map
    /// scalar and vec4 types, and `Weight`/`Weight4`, the stored weight types (the same;
    /// `enable f16;` first for f16).
    pub fn wgsl_header(self) -> &'static str {
        match self {
            Precision::F32 => {
                "alias Store = f32;\nalias Store4 = vec4<f32>;\nalias Weight = f32;\nalias Weight4 = vec4<f32>;\n"
            }
            Precision::F16 => {
                "enable f16;\nalias Store = f16;\nalias Store4 = vec4<f16>;\nalias Weight = f16;\nalias Weight4 = vec4<f16>;\n"
            }
        }
    }

    /// `values` as this precision's bytes (f16: each rounded to nearest, ties to even).
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Precision::F32 => bytemuck::cast_slice(values).to_vec(),
            Precision::F16 => values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
                .collect(),
        }
    }

    /// Stored bytes back to f32 values.
    pub fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Precision::F32 => bytemuck::pod_collect_to_vec(bytes),
            Precision::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
                .collect(),
        }
    }

    /// `v` as stored and read back (f16: rounded to nearest, ties to even).
    pub fn round(self, v: f32) -> f32 {
        match self {
            Precision::F32 => v,
            Precision::F16 => half::f16::from_f32(v).to_f32(),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            other => Err(Error::Usage(format!(
                "unknown precision `{}`: f32 or f16",
                crate::units::prefix(other)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounds_to_nearest_even_and_round_trips() {
        let p = Precision::F16;
        // 1 + 2^-11 is halfway between 1 and the next f16 (1 + 2^-10): ties to even gives 1.
        assert_eq!(p.round(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(
            p.round(1.0 + 3.0 * 2f32.powi(-11)),
            1.0 + 2.0 * 2f32.powi(-10)
        );
        let v = [0.0, -0.0, 1.5, -2048.0, 65504.0, 1e-8];
        let back = p.decode(&p.encode(&v));
        assert_eq!(back.len(), v.len());
        for (a, b) in back.iter().zip(v) {
            assert_eq!(a.to_bits(), p.round(b).to_bits());
        }
        assert_eq!(Precision::F32.decode(&Precision::F32.encode(&v)), v);
        assert_eq!(p.of_f32_bytes(400), 200);
        assert_eq!(p.max_finite(), 65504.0);
        assert!(p.round(65520.0).is_infinite());
        assert!("f64".parse::<Precision>().is_err());
    }
}
