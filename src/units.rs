//! Byte sizes as the CLI reads and prints them: `123`, `64KiB`, `48MiB`, `1.5GiB`, `50MB`.

use crate::error::{Error, Result};

/// Parse a byte count. Binary units (KiB, MiB, GiB) are powers of 1024, decimal ones (KB, MB, GB)
/// powers of 1000; a bare number is bytes. Fractions are allowed with a unit and rounded down.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let bad = || {
        Error::Usage(format!(
            "`{}`: expected a byte size such as 123, 64KiB, 48MiB, 1.5GiB or 50MB",
            prefix(s)
        ))
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    if num.is_empty() {
        return Err(bad());
    }
    if mult == 1 {
        return num.parse::<u64>().map_err(|_| bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    let bytes = v * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// At most the first 40 characters of a user's value, for quoting it in an error message (a bad
/// value may be a whole file pasted into an option).
pub fn prefix(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// A path or configuration quoted in an error: whole up to 160 characters, else its first 100 and
/// last 50 (a file name at the end stays readable).
pub fn shorten(s: &str) -> String {
    let n = s.chars().count();
    if n <= 160 {
        return s.to_string();
    }
    let head: String = s.chars().take(100).collect();
    let tail: String = s.chars().skip(n - 50).collect();
    format!("{head}…{tail}")
}

/// `12.3 MiB`-style rendering for reports.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else if bytes >= 1 << 20 {
        format!("{:.2} MiB", b / (1u64 << 20) as f64)
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("123").unwrap(), 123);
        assert_eq!(parse_bytes("64KiB").unwrap(), 65536);
        assert_eq!(parse_bytes("48MiB").unwrap(), 48 << 20);
        assert_eq!(parse_bytes("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("50MB").unwrap(), 50_000_000);
        for bad in ["", "MiB", "12XB", "-5", "1.5", "1e3"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(human(3 << 20), "3.00 MiB");
    }
}
