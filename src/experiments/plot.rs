//! Latency against device-memory peak of a sweep as an SVG plot (plotters, no font files),
//! readable without the CSV.

use crate::error::{Error, Result};
use crate::experiments::report::MIB;
use crate::experiments::sweep::{METHODS, SweepRow};
use plotters::prelude::*;
use std::path::Path;

fn color(method: &str) -> RGBColor {
    match method {
        "mafat" => RGBColor(214, 39, 40),
        "ftp" => RGBColor(31, 119, 180),
        "halo" => RGBColor(44, 160, 44),
        "layerwise" => RGBColor(255, 127, 14),
        _ => RGBColor(90, 90, 90),
    }
}

fn label(method: &str) -> &'static str {
    match method {
        "mafat" => "mafat (search)",
        "ftp" => "single-group FTP (DeepThings)",
        "halo" => "whole-network halo tiling",
        "layerwise" => "layerwise (untiled, liveness reuse)",
        _ => "naive (untiled, every map alive)",
    }
}

/// A method's distinct points: (measured peak MiB, median, first and third quartile ms), in budget
/// order.
fn points(fit: &[&SweepRow], method: &str) -> Vec<(f64, f64, f64, f64)> {
    let mut pts: Vec<(f64, f64, f64, f64)> = Vec::new();
    for r in fit.iter().filter(|r| r.method == method) {
        let p = (
            r.measured_peak_bytes as f64 / MIB,
            r.latency_ms,
            r.latency_q1_ms,
            r.latency_q3_ms,
        );
        if pts.last() != Some(&p) {
            pts.push(p);
        }
    }
    pts
}

/// The methods that fit no budget, with the least each needs.
fn missing(rows: &[SweepRow], fit: &[&SweepRow]) -> Vec<(&'static str, u64)> {
    METHODS
        .into_iter()
        .filter(|m| !fit.iter().any(|r| r.method == *m))
        .map(|m| {
            let need = rows
                .iter()
                .filter(|r| r.method == m)
                .map(|r| r.method_min_bytes)
                .min()
                .unwrap_or(0);
            (m, need)
        })
        .collect()
}

/// Plot measured latency against measured peak device memory, one series per method (its points in
/// budget order), with a dotted marker at every budget. `title` heads the plot.
pub fn write_svg(path: &Path, title: &str, rows: &[SweepRow]) -> Result<()> {
    let err = |e: String| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let mut budgets: Vec<u64> = rows.iter().map(|r| r.budget_bytes).collect();
    budgets.sort();
    budgets.dedup();
    let fit: Vec<&SweepRow> = rows
        .iter()
        .filter(|r| r.fits && r.latency_ms.is_finite())
        .collect();
    let xs = fit
        .iter()
        .map(|r| r.measured_peak_bytes as f64 / MIB)
        .chain(budgets.iter().map(|&b| b as f64 / MIB));
    let (x_lo, x_hi) = xs.fold((f64::MAX, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let y_hi = fit.iter().map(|r| r.latency_q3_ms).fold(0.0f64, f64::max);
    if fit.is_empty() || x_hi <= 0.0 {
        return Err(err("nothing fits any budget: no point to plot".into()));
    }
    // Headroom above the highest whisker for the legend and the budget labels.
    let y_top = y_hi * 1.45;
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    let e = |x: DrawingAreaErrorKind<_>| err(x.to_string());
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d((x_lo * 0.85..x_hi * 1.15).log_scale(), 0.0..y_top)
        .map_err(|x| err(x.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("peak device memory, MiB (measured by the buffer pool; log scale)")
        .y_desc("latency, ms (median of timed runs)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| err(x.to_string()))?;
    // Budget markers: a dotted vertical line and the budget's value at its foot.
    let grey = RGBColor(170, 170, 170);
    for &b in &budgets {
        let x = b as f64 / MIB;
        let dots: Vec<(f64, f64)> = (0..60).map(|k| (x, y_top * k as f64 / 60.0)).collect();
        let marker = chart
            .draw_series(
                dots.chunks(2)
                    .map(|seg| PathElement::new(vec![seg[0], (x, seg[0].1 + y_top / 120.0)], grey)),
            )
            .map_err(|x| err(x.to_string()))?;
        if b == budgets[0] {
            marker
                .label("budget (MiB, value at its foot)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
        }
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{x:.1}"),
                (x, y_top * 0.015),
                ("sans-serif", 11)
                    .into_font()
                    .color(&RGBColor(110, 110, 110)),
            )))
            .map_err(|x| err(x.to_string()))?;
    }
    for method in METHODS {
        let pts = points(&fit, method);
        if pts.is_empty() {
            continue;
        }
        let c = color(method);
        let style = ShapeStyle::from(&c).stroke_width(2);
        chart
            .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), style))
            .map_err(|x| err(x.to_string()))?
            .label(label(method))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        // Quartiles as whiskers, medians as dots.
        chart
            .draw_series(
                pts.iter()
                    .map(|p| PathElement::new(vec![(p.0, p.2), (p.0, p.3)], c.stroke_width(1))),
            )
            .map_err(|x| err(x.to_string()))?;
        chart
            .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled())))
            .map_err(|x| err(x.to_string()))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|x| err(x.to_string()))?;
    // Methods that fit no budget have no point: say what they would need.
    for (k, (method, need)) in missing(rows, &fit).into_iter().enumerate() {
        root.draw(&Text::new(
            format!(
                "{method} needs {:.1} MiB: fits no budget",
                need as f64 / MIB
            ),
            (712, 150 + 16 * k as i32),
            ("sans-serif", 12).into_font().color(&color(method)),
        ))
        .map_err(|x| err(x.to_string()))?;
    }
    root.present().map_err(|x| err(x.to_string()))?;
    Ok(())
}
