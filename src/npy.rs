//! NumPy `.npy` files of floats: the writer of every output mafat saves and the reader of tensor
//! inputs (`--input FILE.npy`), so results can be compared with any other engine.
//!
//! Written: version 1.0, little-endian f32 (`<f4`), C order. Read: versions 1.0–3.0, `<f4` or
//! `<f8` (rounded to f32), C order, with the header and the data length checked against the shape.

/// The `.npy` bytes of `data` with dimensions `dims` (f32, C order).
pub fn write(dims: &[usize], data: &[f32]) -> Vec<u8> {
    let shape = match dims {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // magic(6) + version(2) + header length(2) + dict + padding + '\n' is a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let header = format!("{dict}{}\n", " ".repeat(pad));
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(bytemuck::cast_slice(data));
    out
}

/// Largest header read (NumPy itself refuses headers past 10,000 bytes by default).
const MAX_HEADER: usize = 1 << 16;

/// Dimensions and values of `.npy` bytes; `Err` says in a sentence what is wrong.
pub fn read(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!(".npy version {v} is not one mafat reads (1, 2, 3)")),
    };
    if header_len > MAX_HEADER || start + header_len > bytes.len() {
        return Err(format!(
            "its header of {header_len} bytes is longer than the file or {MAX_HEADER} bytes"
        ));
    }
    let header = std::str::from_utf8(&bytes[start..start + header_len])
        .map_err(|_| "its header is not text".to_string())?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))?;
        let rest = header[at + key.len() + 2..]
            .trim_start()
            .strip_prefix(':')?;
        Some(rest.trim_start())
    };
    let descr = field("descr")
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.split('\'').next())
        .ok_or("its header has no 'descr'")?;
    let width = match descr {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(format!(
                "dtype '{}' is not one mafat reads: save float32 (or float64) data",
                crate::units::prefix(other)
            ));
        }
    };
    if !field("fortran_order").is_some_and(|r| r.starts_with("False")) {
        return Err("it is in Fortran order (or says no order): save it in C order".into());
    }
    let shape = field("shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or("its header has no 'shape'")?;
    let mut dims = Vec::new();
    let mut count: usize = 1;
    for d in shape.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let d: usize = d
            .parse()
            .map_err(|_| format!("shape ({shape}) is not a list of sizes"))?;
        count = count
            .checked_mul(d)
            .ok_or_else(|| format!("shape ({shape}) overflows"))?;
        dims.push(d);
    }
    let data = &bytes[start + header_len..];
    if Some(data.len()) != count.checked_mul(width) {
        return Err(format!(
            "shape ({shape}) of {descr} needs {} bytes of data but the file holds {}",
            count.saturating_mul(width),
            data.len()
        ));
    }
    let values = match width {
        4 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        _ => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
    };
    Ok((dims, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_does_not_fit() {
        let bytes = write(&[1, 2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        assert_eq!(bytes.len() % 64, 24);
        let (dims, v) = read(&bytes).unwrap();
        assert_eq!(dims, [1, 2, 3]);
        assert_eq!(v, [1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        let (dims, _) = read(&write(&[4], &[0.0; 4])).unwrap();
        assert_eq!(dims, [4]);
        assert!(
            read(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .contains("needs 24 bytes")
        );
        assert!(read(b"hello world").unwrap_err().contains("magic"));
        let mut ints = bytes.clone();
        let at = ints.windows(3).position(|w| w == b"<f4").unwrap();
        ints[at + 1] = b'i';
        assert!(read(&ints).unwrap_err().contains("'<i4'"));
    }
}
