//! ONNX `TensorProto`s as mafat uses them: constants (initializers, `Constant` nodes, the node tests'
//! fed inputs) and tensor files (`.pb`), decoded to f32 or i64 values after checking that the data
//! holds exactly what the dimensions say.

use super::super::onnx_pb::TensorProto;
use super::super::onnx_pb::tensor_proto::DataType;

/// The values of a constant tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Floating-point data (FLOAT; DOUBLE and FLOAT16 converted to f32).
    F32(Vec<f32>),
    /// Integer data (INT64, INT32, INT8, UINT8, BOOL as 0/1).
    I64(Vec<i64>),
}

/// A constant tensor: dimensions (row-major, the last fastest) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    /// Dimensions; empty for a scalar.
    pub dims: Vec<usize>,
    /// The values, `dims`' product of them.
    pub values: Values,
}

impl Constant {
    /// A float constant.
    pub fn f32(dims: Vec<usize>, values: Vec<f32>) -> Self {
        Constant {
            dims,
            values: Values::F32(values),
        }
    }

    /// An integer constant.
    pub fn i64(dims: Vec<usize>, values: Vec<i64>) -> Self {
        Constant {
            dims,
            values: Values::I64(values),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match &self.values {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    /// True when it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32 (integers converted).
    pub fn floats(&self) -> Vec<f32> {
        match &self.values {
            Values::F32(v) => v.clone(),
            Values::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as integers; `None` for float data.
    pub fn ints(&self) -> Option<&[i64]> {
        match &self.values {
            Values::I64(v) => Some(v),
            Values::F32(_) => None,
        }
    }

    /// The ONNX name of its element type.
    pub fn type_name(&self) -> &'static str {
        match self.values {
            Values::F32(_) => "float",
            Values::I64(_) => "int64",
        }
    }
}

/// Largest tensor decoded, in elements (1 GiB of f32): a corrupt or hostile file cannot make the
/// importer allocate more than it holds.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// Decode `t`: its dimensions must be non-negative, their product within [`MAX_ELEMENTS`], and its
/// data (`raw_data`, little-endian, or the typed field) exactly that many values. `Err` says what is
/// wrong in a sentence.
pub fn decode(t: &TensorProto) -> Result<Constant, String> {
    if !t.external_data.is_empty() || t.data_location == Some(1) {
        return Err(
            "its data is stored outside the model (external data); save the model with its data inside (onnx.save_model(..., save_as_external_data=False))"
                .into(),
        );
    }
    if t.segment.is_some() {
        return Err("it is a segment of a larger tensor, which mafat does not read".into());
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    let mut count: usize = 1;
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| format!("dimension {d} is negative"))?;
        count = count
            .checked_mul(d)
            .filter(|&c| c <= MAX_ELEMENTS)
            .ok_or_else(|| {
                format!(
                    "dimensions {:?} hold more than {MAX_ELEMENTS} values, past what mafat reads",
                    t.dims
                )
            })?;
        dims.push(d);
    }
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let ty = t.data_type.unwrap_or(0);
    let name = DataType::try_from(ty).map_or_else(|_| format!("{ty}"), |d| d.as_str_name().into());
    let wrong = |have: usize, unit: &str| {
        format!("its dimensions {dims:?} make {count} values but its data holds {have} {unit}")
    };
    let from_raw = |width: usize| -> Result<&[u8], String> {
        let r = raw.unwrap_or(&[]);
        if r.len() != count * width {
            return Err(wrong(r.len(), "bytes of raw data"));
        }
        Ok(r)
    };
    let typed = |have: usize| {
        if have != count {
            Err(wrong(have, "values"))
        } else {
            Ok(())
        }
    };
    let values = match DataType::try_from(ty) {
        Ok(DataType::Float) => Values::F32(if raw.is_some() || count == 0 {
            from_raw(4)?
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        } else {
            typed(t.float_data.len())?;
            t.float_data.clone()
        }),
        Ok(DataType::Double) => Values::F32(if raw.is_some() || count == 0 {
            from_raw(8)?
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect()
        } else {
            typed(t.double_data.len())?;
            t.double_data.iter().map(|&x| x as f32).collect()
        }),
        Ok(DataType::Float16) => Values::F32(if raw.is_some() || count == 0 {
            from_raw(2)?
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect()
        } else {
            // FLOAT16 values sit in int32_data, one per entry, as their bits.
            typed(t.int32_data.len())?;
            t.int32_data
                .iter()
                .map(|&x| half::f16::from_bits(x as u16).to_f32())
                .collect()
        }),
        Ok(DataType::Int64) => Values::I64(if raw.is_some() || count == 0 {
            from_raw(8)?
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect()
        } else {
            typed(t.int64_data.len())?;
            t.int64_data.clone()
        }),
        Ok(DataType::Int32) => Values::I64(if raw.is_some() || count == 0 {
            from_raw(4)?
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                .collect()
        } else {
            typed(t.int32_data.len())?;
            t.int32_data.iter().map(|&x| x as i64).collect()
        }),
        Ok(DataType::Int8 | DataType::Uint8 | DataType::Bool) => {
            let signed = ty == DataType::Int8 as i32;
            Values::I64(if raw.is_some() || count == 0 {
                from_raw(1)?
                    .iter()
                    .map(|&b| if signed { b as i8 as i64 } else { b as i64 })
                    .collect()
            } else {
                typed(t.int32_data.len())?;
                t.int32_data.iter().map(|&x| x as i64).collect()
            })
        }
        _ => {
            return Err(format!(
                "its element type {name} is not one mafat reads (FLOAT, DOUBLE, FLOAT16, INT64, INT32, INT8, UINT8, BOOL)"
            ));
        }
    };
    Ok(Constant { dims, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(dims: &[i64], ty: DataType) -> TensorProto {
        TensorProto {
            dims: dims.to_vec(),
            data_type: Some(ty as i32),
            ..Default::default()
        }
    }

    #[test]
    fn decodes_raw_and_typed_data() {
        let mut t = tensor(&[2, 2], DataType::Float);
        t.raw_data = Some(
            [1.0f32, 2.0, 3.0, -4.5]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        );
        assert_eq!(
            decode(&t).unwrap(),
            Constant::f32(vec![2, 2], vec![1.0, 2.0, 3.0, -4.5])
        );
        let mut t = tensor(&[3], DataType::Int64);
        t.int64_data = vec![1, -1, 7];
        assert_eq!(decode(&t).unwrap(), Constant::i64(vec![3], vec![1, -1, 7]));
        let mut t = tensor(&[], DataType::Float);
        t.float_data = vec![0.25];
        assert_eq!(decode(&t).unwrap(), Constant::f32(vec![], vec![0.25]));
    }

    #[test]
    fn refuses_data_that_does_not_match_the_dimensions() {
        let mut t = tensor(&[2, 3], DataType::Float);
        t.raw_data = Some(vec![0; 20]);
        assert!(
            decode(&t)
                .unwrap_err()
                .contains("make 6 values but its data holds 20 bytes")
        );
        t.raw_data = None;
        t.float_data = vec![1.0; 5];
        assert!(decode(&t).unwrap_err().contains("holds 5 values"));
        let t = tensor(&[-1], DataType::Float);
        assert!(decode(&t).unwrap_err().contains("negative"));
        let t = tensor(&[1 << 20, 1 << 20], DataType::Float);
        assert!(decode(&t).unwrap_err().contains("more than"));
        let t = tensor(&[1], DataType::String);
        assert!(decode(&t).unwrap_err().contains("STRING"));
    }
}
