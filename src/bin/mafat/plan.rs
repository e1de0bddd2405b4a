//! `mafat plan`: the fastest configuration for a budget (`--budget`), the smallest budget any
//! configuration needs (`--min-budget`), or a given configuration's tiles (`--groups`).

use crate::args::{self, CalibrationArgs, DeviceArgs, KernelArgs, ModelArgs};
use crate::output::{Report, check_writable, emit};
use crate::progress;
use mafat::plan::file::PlanFile;
use mafat::plan::geometry::tiles;
use mafat::plan::search::min_peak;
use mafat::plan::{Config, MemoryBreakdown, Mode, Planner, Residency};
use mafat::region::Region;
use mafat::{BudgetOptions, Error, Result, units};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Instant;

/// `mafat plan --model M [--size WxH] (--budget B | --min-budget | --groups CONFIG) ...`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Device-memory budget (e.g. 16MiB) the plan's predicted peak must fit.
    #[arg(long, conflicts_with_all = ["min_budget", "groups"])]
    budget: Option<String>,
    /// Report the smallest predicted peak in the search space and the config that reaches it.
    #[arg(long, conflicts_with = "groups")]
    min_budget: bool,
    /// Show a configuration's tiles instead: per group its grid and, per tile, the output region and
    /// the input region traced back to the group's first layer, with their bytes.
    #[arg(long)]
    groups: Option<String>,
    /// With --groups: where conv weights live (default: resident).
    #[arg(long, value_parser = args::residency, requires = "groups")]
    residency: Option<Residency>,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    calibration: CalibrationArgs,
    #[command(flatten)]
    kernels: KernelArgs,
    /// Save the plan (for mafat run --plan).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// Run `mafat plan`.
pub fn main(a: Args) -> Result<()> {
    let net = a.model.load()?;
    let only_budget = |what: &str| {
        Error::Usage(format!(
            "--out and --calibration go with --budget, not {what}"
        ))
    };
    if let Some(groups) = &a.groups {
        if a.out.is_some() || a.calibration.calibration.is_some() {
            return Err(only_budget("--groups"));
        }
        let config = Config::parse(groups)?;
        let session = a.device.session()?;
        let report = geometry(
            &session.planner_on(&net, a.kernels.ops(&session, &net)?)?,
            &config,
            a.residency.unwrap_or(Residency::Resident),
        )?;
        return emit(&report, a.json);
    }
    if a.min_budget {
        if a.out.is_some() || a.calibration.calibration.is_some() {
            return Err(only_budget("--min-budget"));
        }
        let session = a.device.session()?;
        let planner = session.planner_on(&net, a.kernels.lean_ops(&session, &net)?)?;
        return emit(&min_budget(&planner)?, a.json);
    }
    let Some(budget) = &a.budget else {
        return Err(Error::Usage(
            "mafat plan needs --budget BYTES (the fastest plan that fits), --min-budget (the smallest budget any plan fits) or --groups CONFIG (its tiles)".into(),
        ));
    };
    let budget = units::parse_bytes(budget)?;
    if let Some(out) = &a.out {
        check_writable(out)?;
    }
    let session = a.device.session()?;
    let options = BudgetOptions {
        calibration: a.calibration.calibration.as_deref(),
        kernels: a.kernels.policy()?,
        ..BudgetOptions::default()
    };
    let mut progress = progress::calibration(&net, &session);
    let planned = session.plan_for_budget(&net, budget, &options, &mut progress)?;
    let file = PlanFile::of(&net, &planned.choice, &planned.plan, &planned.cost, budget);
    if let Some(path) = &a.out {
        file.write(path)?;
    }
    let untiled = session
        .plan(
            &net,
            &Config::untiled(),
            Mode::Layerwise,
            Residency::Resident,
        )
        .ok();
    let report = BudgetReport {
        adapter: session.adapter_name(),
        search_ms: planned.search_ms,
        calibration: planned.calibration.to_string(),
        dispatches: planned.plan.dispatches().count(),
        untiled_peak_bytes: untiled.as_ref().map(|p| p.peak_bytes()),
        untiled_latency_ms: untiled.as_ref().map(|p| planned.cost.plan_ms(&net, p)),
        kernels: planned.plan.ops.iter().map(|o| o.name()).collect(),
        wrote: a.out.as_ref().map(|p| p.display().to_string()),
        input_text: net.input.to_string(),
        breakdown: planned.plan.breakdown(),
        file,
    };
    emit(&report, a.json)
}

/// `mafat plan --budget`.
#[derive(Serialize)]
struct BudgetReport {
    #[serde(flatten)]
    file: PlanFile,
    adapter: String,
    search_ms: f64,
    calibration: String,
    dispatches: usize,
    untiled_peak_bytes: Option<u64>,
    untiled_latency_ms: Option<f64>,
    /// Per layer, the kernel it runs on.
    kernels: Vec<&'static str>,
    #[serde(skip)]
    wrote: Option<String>,
    #[serde(skip)]
    input_text: String,
    #[serde(skip)]
    breakdown: MemoryBreakdown,
}

impl Report for BudgetReport {
    fn text(&self) -> String {
        let (f, b) = (&self.file, &self.breakdown);
        let h = units::human;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: input {} on {}, budget {} ({} B):",
            f.model,
            self.input_text,
            self.adapter,
            h(f.budget_bytes),
            f.budget_bytes
        );
        let _ = writeln!(
            s,
            "  config:            --groups {} --residency {}",
            f.config,
            f.residency.as_str()
        );
        let _ = writeln!(
            s,
            "  predicted peak:    {} ({} B): weights {}, maps {}, tiles {}, params {}, staging {}, padding {}",
            h(f.predicted_peak_bytes),
            f.predicted_peak_bytes,
            h(b.weights),
            h(b.maps),
            h(b.tiles),
            h(b.params),
            h(b.staging),
            h(b.alignment_padding + b.arena_slack)
        );
        let _ = writeln!(
            s,
            "  predicted latency: {:.1} ms ({} dispatches, mac_ratio {:.3})",
            f.predicted_latency_ms, self.dispatches, f.mac_ratio
        );
        if let (Some(up), Some(ums)) = (self.untiled_peak_bytes, self.untiled_latency_ms) {
            let _ = writeln!(
                s,
                "  untiled layerwise: {} ({up} B), predicted {ums:.1} ms",
                h(up)
            );
        }
        let _ = writeln!(
            s,
            "  searched in {:.0} ms; calibration: {}",
            self.search_ms, self.calibration
        );
        if let Some(p) = &self.wrote {
            let _ = writeln!(s, "  wrote {p}");
        }
        s
    }
}

/// `mafat plan --min-budget`.
#[derive(Serialize)]
struct MinBudgetReport {
    model: String,
    input: [usize; 3],
    min_budget_bytes: u64,
    config: String,
    residency: Residency,
    predicted_peak_bytes: u64,
    breakdown: MemoryBreakdown,
    mac_ratio: f64,
    untiled_peak_bytes: Option<u64>,
    search_ms: f64,
    #[serde(skip)]
    input_text: String,
}

fn min_budget(p: &Planner<'_>) -> Result<MinBudgetReport> {
    let net = p.net();
    let t0 = Instant::now();
    let (peak, config, residency) = min_peak(p)?;
    let search_ms = t0.elapsed().as_secs_f64() * 1e3;
    let plan = p.plan(&config, Mode::Layerwise, residency)?;
    let untiled = p
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)
        .map(|p| p.peak_bytes())
        .ok();
    Ok(MinBudgetReport {
        model: net.name.clone(),
        input: [net.input.c, net.input.h, net.input.w],
        min_budget_bytes: peak,
        config: config.to_string(),
        residency,
        predicted_peak_bytes: peak,
        breakdown: plan.breakdown(),
        mac_ratio: plan.mac_ratio(net),
        untiled_peak_bytes: untiled,
        search_ms,
        input_text: net.input.to_string(),
    })
}

impl Report for MinBudgetReport {
    fn text(&self) -> String {
        let mut s = format!(
            "{}: input {}: smallest predicted peak {} ({} B) with --groups {} --residency {} (mac_ratio {:.3}; found in {:.0} ms)\n",
            self.model,
            self.input_text,
            units::human(self.min_budget_bytes),
            self.min_budget_bytes,
            self.config,
            self.residency.as_str(),
            self.mac_ratio,
            self.search_ms
        );
        if let Some(u) = self.untiled_peak_bytes {
            let _ = writeln!(s, "  untiled layerwise peak: {} ({u} B)", units::human(u));
        }
        s
    }
}

/// A region of a map with its bytes.
#[derive(Serialize)]
struct Extent {
    layer: usize,
    region: Region,
    /// Width × height × channels, as Darknet writes shapes.
    shape: String,
    bytes: u64,
}

impl Extent {
    fn of(layer: usize, region: Region, channels: usize) -> Self {
        Extent {
            layer,
            region,
            shape: format!("{}x{}x{channels}", region.width(), region.height()),
            bytes: 4 * region.len(channels) as u64,
        }
    }
}

/// One tile of a group: the region its last layer produces and the one of the group's input it
/// reads, and the largest region any of its inner layers produces.
#[derive(Serialize)]
struct TileReport {
    index: usize,
    row: usize,
    col: usize,
    output: Extent,
    input: Extent,
    largest_intermediate_bytes: u64,
}

#[derive(Serialize)]
struct GroupReport {
    layers: String,
    grid: String,
    fused: bool,
    tiles: Vec<TileReport>,
}

/// `mafat plan --groups`.
#[derive(Serialize)]
struct GeometryReport {
    model: String,
    input: [usize; 3],
    config: String,
    residency: Residency,
    predicted_peak_bytes: u64,
    breakdown: MemoryBreakdown,
    mac_ratio: f64,
    dispatches: usize,
    kernels: Vec<&'static str>,
    groups: Vec<GroupReport>,
}

fn group_report(p: &Planner<'_>, g: &mafat::plan::Group) -> Result<GroupReport> {
    let net = p.net();
    let first = &net.layers[g.start];
    let o = net.layers[g.last()].output;
    let mut out = Vec::new();
    for (index, t) in tiles(o.h, o.w, g.grid)?.into_iter().enumerate() {
        let (produced, input) = if g.is_fused() {
            p.trace(g.start, g.last(), t)?
        } else {
            (vec![t], Region::full(first.input.h, first.input.w))
        };
        let largest = (g.start..g.last())
            .map(|i| 4 * produced[i - g.start].len(net.layers[i].output.c) as u64)
            .max()
            .unwrap_or(0);
        out.push(TileReport {
            index,
            row: index / g.grid.cols,
            col: index % g.grid.cols,
            output: Extent::of(g.last(), t, o.c),
            input: Extent::of(g.start, input, first.input.c),
            largest_intermediate_bytes: largest,
        });
    }
    Ok(GroupReport {
        layers: format!("{}..{}", g.start, g.end),
        grid: g.grid.to_string(),
        fused: g.is_fused(),
        tiles: out,
    })
}

fn geometry(p: &Planner<'_>, config: &Config, residency: Residency) -> Result<GeometryReport> {
    let net = p.net();
    let plan = p.plan(config, Mode::Layerwise, residency)?;
    let groups = config
        .resolve(net)?
        .iter()
        .filter(|g| g.is_fused())
        .map(|g| group_report(p, g))
        .collect::<Result<Vec<_>>>()?;
    Ok(GeometryReport {
        model: net.name.clone(),
        input: [net.input.c, net.input.h, net.input.w],
        config: config.to_string(),
        residency,
        predicted_peak_bytes: plan.peak_bytes(),
        breakdown: plan.breakdown(),
        mac_ratio: plan.mac_ratio(net),
        dispatches: plan.dispatches().count(),
        kernels: plan.ops.iter().map(|o| o.name()).collect(),
        groups,
    })
}

impl Report for GeometryReport {
    fn text(&self) -> String {
        let mut s = format!(
            "{} at {}x{}, --groups {} --residency {}: predicted peak {} ({} B), {} dispatches, mac_ratio {:.3}\n",
            self.model,
            self.input[2],
            self.input[1],
            self.config,
            self.residency.as_str(),
            units::human(self.predicted_peak_bytes),
            self.predicted_peak_bytes,
            self.dispatches,
            self.mac_ratio
        );
        let rows = |r: &Region| {
            format!(
                "rows {:>4}..={:<4} cols {:>4}..={:<4}",
                r.y0, r.y1, r.x0, r.x1
            )
        };
        for g in &self.groups {
            let _ = writeln!(s, "group {} on a {} grid:", g.layers, g.grid);
            for t in &g.tiles {
                let _ = writeln!(
                    s,
                    "  tile {:>3} ({},{}): out at layer {} {} {:>12} {:>10} B <- in at layer {} {} {:>12} {:>10} B; largest inner {} B",
                    t.index,
                    t.row,
                    t.col,
                    t.output.layer,
                    rows(&t.output.region),
                    t.output.shape,
                    t.output.bytes,
                    t.input.layer,
                    rows(&t.input.region),
                    t.input.shape,
                    t.input.bytes,
                    t.largest_intermediate_bytes
                );
            }
        }
        if self.groups.is_empty() {
            s.push_str("every layer untiled\n");
        }
        s
    }
}
