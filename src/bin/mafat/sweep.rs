//! `mafat sweep`: latency against memory for mafat and every baseline, measured, with CSV and SVG.

use crate::args::{BudgetRange, CalibrationArgs, DeviceArgs, KernelArgs, ModelArgs};
use crate::output::{Report, check_writable, emit};
use crate::progress;
use mafat::experiments::sweep::{METHODS, SweepRow, sweep};
use mafat::plan::search::min_peak;
use mafat::plan::{Config, Mode, Residency};
use mafat::tune::Measurer;
use mafat::{Error, Result};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Instant;

/// `mafat sweep --model M [--size WxH] [--budgets LO..HI:STEPS] ...`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// LO..HI[:STEPS], geometric steps; LO may be `min` (the smallest peak mafat reaches) and HI
    /// `untiled` (the untiled layerwise peak).
    #[arg(long, default_value = "8MiB..96MiB:12")]
    budgets: String,
    /// Timed runs per distinct configuration, taken in turns with the others (median, quartiles).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Write every number here as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write the latency-against-memory plot here as SVG.
    #[arg(long)]
    svg: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    calibration: CalibrationArgs,
    #[command(flatten)]
    kernels: KernelArgs,
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct SweepReport {
    model: String,
    input: [usize; 3],
    adapter: String,
    runs: usize,
    rows: Vec<SweepRow>,
    seconds: f64,
    #[serde(skip)]
    title: String,
    #[serde(skip)]
    budgets: Vec<u64>,
    #[serde(skip)]
    wrote: Vec<String>,
}

impl Report for SweepReport {
    fn text(&self) -> String {
        let mut s = format!(
            "{} (median ms of {} runs @ measured peak MiB)\n",
            self.title, self.runs
        );
        let _ = write!(s, "{:>10}", "budget");
        for m in METHODS {
            let _ = write!(s, " {m:>19}");
        }
        let _ = writeln!(s, " {:>10}", "vs best");
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        for &b in &self.budgets {
            let _ = write!(s, "{:>6.2} MiB", mib(b));
            let of = |m: &str| {
                self.rows
                    .iter()
                    .find(|r| r.budget_bytes == b && r.method == m)
            };
            for m in METHODS {
                let cell = match of(m) {
                    Some(r) if r.fits => format!(
                        "{:>8.0} ms @{:>6.2}",
                        r.latency_ms,
                        mib(r.measured_peak_bytes)
                    ),
                    Some(r) => format!("needs {:.2}", mib(r.method_min_bytes)),
                    None => String::new(),
                };
                let _ = write!(s, " {cell:>19}");
            }
            // mafat against the fastest baseline that fits.
            let best = METHODS[1..]
                .iter()
                .filter_map(|m| of(m).filter(|r| r.fits).map(|r| r.latency_ms))
                .fold(f64::INFINITY, f64::min);
            let _ = match of("mafat").filter(|r| r.fits) {
                Some(r) if best.is_finite() => writeln!(s, " {:>9.2}x", best / r.latency_ms),
                Some(_) => writeln!(s, " {:>10}", "only mafat"),
                None => writeln!(s),
            };
        }
        for p in &self.wrote {
            let _ = writeln!(s, "wrote {p}");
        }
        let _ = writeln!(s, "{:.0} s", self.seconds);
        s
    }
}

/// Run `mafat sweep`.
pub fn main(a: Args) -> Result<()> {
    let net = a.model.load()?;
    let range = BudgetRange::parse(&a.budgets)?;
    let runs = crate::args::check_runs(a.runs, crate::args::MAX_RUNS_PER_CONFIG)?;
    // Output paths are checked before minutes of measuring.
    for p in [&a.csv, &a.svg].into_iter().flatten() {
        check_writable(p)?;
    }
    let session = a.device.session()?;
    let planner = session.planner_on(&net, a.kernels.ops(&session, &net)?)?;
    let (min, min_config, min_residency) = min_peak(&planner)?;
    let untiled = planner
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)?
        .peak_bytes();
    let budgets = range.resolve(min, untiled)?;
    // mafat needs the least of all methods: when it fits no budget, say so before calibrating.
    let most = budgets.iter().copied().max().unwrap_or(0);
    if most < min {
        return Err(Error::NoFit {
            model: net.name.clone(),
            budget: most,
            minimum: min,
            config: min_config.to_string(),
            residency: min_residency.as_str().into(),
        });
    }
    let (cost, _) = a.calibration.cost_model(&session, &net, &a.kernels)?;
    let measurer = Measurer::new(&session, &net)?.with_ops(cost.ops(&net)?)?;
    let t0 = Instant::now();
    let rows = sweep(
        &measurer,
        &net,
        &cost,
        &budgets,
        runs,
        &mut progress::reporter("sweep".into()),
    )?;
    let title = format!(
        "{} {}x{} on {}: latency against device memory",
        net.name,
        net.input.w,
        net.input.h,
        session.adapter_name()
    );
    // The results are printed even if a file cannot be written; the command then fails.
    let mut failed: Option<Error> = None;
    let mut wrote = Vec::new();
    if let Some(p) = &a.csv {
        match mafat::experiments::report::write_csv(p, &rows) {
            Ok(()) => wrote.push(p.display().to_string()),
            Err(e) => failed = Some(e),
        }
    }
    if let Some(p) = &a.svg {
        match mafat::experiments::plot::write_svg(p, &title, &rows) {
            Ok(()) => wrote.push(p.display().to_string()),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    let report = SweepReport {
        model: net.name.clone(),
        input: [net.input.c, net.input.h, net.input.w],
        adapter: session.adapter_name(),
        runs,
        rows,
        seconds: t0.elapsed().as_secs_f64(),
        title,
        budgets,
        wrote,
    };
    emit(&report, a.json)?;
    failed.map_or(Ok(()), Err)
}
