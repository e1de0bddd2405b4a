//! Reports of a sweep: every number as CSV (the plot is [`crate::experiments::plot`], with the
//! `plot` feature).

use crate::error::{Error, Result};
use crate::experiments::sweep::SweepRow;
use std::path::Path;

pub(crate) const MIB: f64 = (1u64 << 20) as f64;

/// Write every row as CSV (one line per budget and method, a header first).
pub fn write_csv(path: &Path, rows: &[SweepRow]) -> Result<()> {
    let mut s = String::from(
        "budget_bytes,budget_mib,method,fits,method_min_bytes,config,mode,residency,kernels,precision,predicted_peak_bytes,measured_peak_bytes,predicted_ms,latency_ms,latency_q1_ms,latency_q3_ms,runs,mac_ratio\n",
    );
    let num = |v: f64| {
        if v.is_finite() {
            format!("{v:.3}")
        } else {
            String::new()
        }
    };
    for r in rows {
        s += &format!(
            "{},{:.3},{},{},{},\"{}\",{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.budget_bytes,
            r.budget_bytes as f64 / MIB,
            r.method,
            r.fits,
            if r.fits {
                String::new()
            } else {
                r.method_min_bytes.to_string()
            },
            r.config,
            r.mode,
            r.residency,
            r.kernels,
            r.precision,
            r.predicted_peak_bytes,
            r.measured_peak_bytes,
            num(r.predicted_ms),
            num(r.latency_ms),
            num(r.latency_q1_ms),
            num(r.latency_q3_ms),
            r.runs,
            if r.mac_ratio.is_finite() {
                format!("{:.4}", r.mac_ratio)
            } else {
                String::new()
            },
        );
    }
    std::fs::write(path, s).map_err(|e| Error::io(path, e))
}
