//! `mafat regret`: the search's pick against the best measured configuration of a reference grid.

use crate::args::{BudgetRange, CalibrationArgs, DeviceArgs, KernelArgs, ModelArgs};
use crate::output::{Report, check_writable, emit, to_json, write_file};
use crate::progress;
use mafat::experiments::regret::{BudgetRow, ReferenceGrid, RegretOptions, regret};
use mafat::plan::{Config, Mode, Residency};
use mafat::tune::Measurer;
use mafat::{Error, Result, units};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Instant;

/// `mafat regret --model M [--size WxH] [--budgets ...] [--cuts ...] ...`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// LO..HI[:STEPS], geometric steps; LO may be `min` (the smallest peak in the reference grid)
    /// and HI `untiled` (the untiled layerwise peak).
    #[arg(long, default_value = "min..untiled:6")]
    budgets: String,
    /// Cut positions of the reference grid: `all`, or a list like 2,4,8,12.
    #[arg(long, default_value = "all")]
    cuts: String,
    /// Most cuts in one reference configuration.
    #[arg(long, default_value_t = 2)]
    max_cuts: usize,
    /// Largest square grid side of the reference grid.
    #[arg(long, default_value_t = 6)]
    grids: usize,
    /// Timed runs per whole configuration, taken in turns (median).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Reference configurations run whole per budget (the best by composed latency).
    #[arg(long, default_value_t = 3)]
    top: usize,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    calibration: CalibrationArgs,
    #[command(flatten)]
    kernels: KernelArgs,
    /// Also write every number as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Grid {
    cuts: Vec<usize>,
    forced_cuts: Vec<usize>,
    max_cuts: usize,
    grids: usize,
    configurations: usize,
}

#[derive(Serialize)]
struct RegretReport {
    model: String,
    input: [usize; 3],
    adapter: String,
    calibration: String,
    reference_grid: Grid,
    runs: usize,
    budgets: Vec<BudgetRow>,
    max_regret_pct: f64,
    seconds: f64,
    #[serde(skip)]
    cuts_text: String,
    #[serde(skip)]
    wrote: Option<String>,
}

impl Report for RegretReport {
    fn text(&self) -> String {
        let g = &self.reference_grid;
        let mut s = format!(
            "{}: input {}x{}x{} on {}: search pick vs best of {} reference configurations (<= {} cuts at {}{}, grids 1x1..{n}x{n}, both residencies); median of {} runs\n",
            self.model,
            self.input[2],
            self.input[1],
            self.input[0],
            self.adapter,
            g.configurations,
            g.max_cuts,
            self.cuts_text,
            if g.forced_cuts.is_empty() {
                String::new()
            } else {
                format!(" besides the forced cuts at {:?}", g.forced_cuts)
            },
            self.runs,
            n = g.grids
        );
        let _ = writeln!(
            s,
            "{:>10} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>17}  pick / best reference",
            "budget",
            "fits",
            "untiled",
            "pick",
            "predicted",
            "best ref",
            "composed",
            "regret",
            "quartiles"
        );
        for r in &self.budgets {
            let _ = writeln!(
                s,
                "{:>10} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7.2}% {:>17}  {} {} / {} {}",
                units::human(r.budget_bytes),
                r.fitting,
                r.untiled_ms,
                r.pick.measured_ms,
                r.pick.estimate_ms,
                r.best.measured_ms,
                r.best.estimate_ms,
                r.regret_pct,
                format!("{:+.1}%..{:+.1}%", r.regret_iqr_pct.0, r.regret_iqr_pct.1),
                r.pick.config,
                r.pick.residency.as_str(),
                r.best.config,
                r.best.residency.as_str()
            );
        }
        s.push_str("(ms: untiled, pick and best ref are medians of whole runs taken in turns; predicted = cost model; composed = sum of measured group times; regret = median over rounds of pick/best − 1, with its quartiles)\n");
        if let Some(p) = &self.wrote {
            let _ = writeln!(s, "wrote {p}");
        }
        s
    }
}

/// The cut positions `--cuts` names.
fn parse_cuts(text: &str, n: usize) -> Result<Vec<usize>> {
    if text.trim() == "all" {
        return Ok((1..n).collect());
    }
    text.split(',')
        .map(|c| {
            c.trim().parse::<usize>().ok().filter(|&k| k > 0 && k < n).ok_or_else(|| {
                Error::Usage(format!(
                    "--cuts: `{}` is not a cut position (1..{}); give `all` or a list like 2,4,8,12",
                    units::prefix(c),
                    n.saturating_sub(1)
                ))
            })
        })
        .collect()
}

/// Run `mafat regret`.
pub fn main(a: Args) -> Result<()> {
    let net = a.model.load()?;
    // Every number and the output path are checked before any device work.
    let cuts = parse_cuts(&a.cuts, net.layers.len())?;
    let grid = ReferenceGrid::new(&net, &cuts, a.max_cuts, a.grids)?;
    let range = BudgetRange::parse(&a.budgets)?;
    let runs = crate::args::check_runs(a.runs, crate::args::MAX_RUNS_PER_CONFIG)?;
    RegretOptions {
        budgets: Vec::new(),
        runs,
        top: a.top,
    }
    .validate()?;
    if let Some(p) = &a.out {
        check_writable(p)?;
    }
    let session = a.device.session()?;
    let (cost, source) = a.calibration.cost_model(&session, &net, &a.kernels)?;
    let measurer = Measurer::new(&session, &net)?.with_ops(cost.ops(&net)?)?;
    let planner = measurer.planner();
    let references = grid.plan(
        planner,
        &net,
        &mut progress::reporter("reference grid".into()),
    );
    // Budget keywords: the smallest reference peak and the untiled layerwise peak.
    let min = references
        .iter()
        .map(|r| r.peak_bytes)
        .min()
        .ok_or_else(|| {
            Error::Usage(format!(
                "no configuration of the reference grid plans for {} (cuts {}, grids up to {g}x{g}): give other --cuts or --grids",
                net.name,
                a.cuts,
                g = a.grids
            ))
        })?;
    let untiled = planner
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)?
        .peak_bytes();
    let opts = RegretOptions {
        budgets: range.resolve(min, untiled)?,
        runs,
        top: a.top,
    };
    let t0 = Instant::now();
    let (rows, refs) = regret(
        &measurer,
        &net,
        &cost,
        &opts,
        &grid,
        &references,
        &mut progress::reporter("regret".into()),
    )?;
    let mut report = RegretReport {
        model: net.name.clone(),
        input: [net.input.c, net.input.h, net.input.w],
        adapter: session.adapter_name(),
        calibration: source
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        reference_grid: Grid {
            cuts: grid.cuts.clone(),
            forced_cuts: grid.forced.clone(),
            max_cuts: grid.max_cuts,
            grids: grid.grids,
            configurations: refs.len(),
        },
        runs: opts.runs,
        max_regret_pct: rows
            .iter()
            .map(|r| r.regret_pct)
            .fold(f64::NEG_INFINITY, f64::max),
        budgets: rows,
        seconds: t0.elapsed().as_secs_f64(),
        cuts_text: a.cuts.clone(),
        wrote: None,
    };
    // The results are printed even if the file cannot be written; the command then fails.
    let written = match &a.out {
        Some(p) => {
            let w = write_file(p, &(to_json(&report) + "\n"));
            if w.is_ok() {
                report.wrote = Some(p.display().to_string());
            }
            w
        }
        None => Ok(()),
    };
    emit(&report, a.json)?;
    written
}
