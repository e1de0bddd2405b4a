//! Searching the configuration space without a GPU.
//!
//! The space: every partition of the network's layers into groups the rules allow (see
//! [`crate::plan::config`]), every grid up to 8x8 per group (non-square too), and both weight
//! residencies. For a *chain* (every layer reads only the previous one; a detection head may end it)
//! the arena is exactly the largest per-group footprint `m(g)` (group input + output + tile buffers
//! [+ the group's weights]), so a plan's peak is
//! `constant + max_g m(g) + Σ_g a(g)` with `a(g)` the group's parameter blocks and timestamp slots.
//! [`min_peak`] minimizes that exactly: for every threshold M among the `m` values, a shortest path
//! over cut positions using only groups with `m ≤ M` minimizes `Σ a`; the best `M + Σ a` wins.
//!
//! Networks with routes (yolov3-tiny): `m(g)` also counts every map made before the group and read
//! at or after it (or read back at the end), so it is the bytes alive while the group runs. The
//! planner's two-ended arena may still leave gaps between them, so every pick is re-planned: its
//! peak is always the planner's exact figure, and when gaps push it past the budget the search
//! tightens and tries again. There the pick fits for certain but is optimal only when the arena
//! packs without gaps.

use crate::error::{Error, Result};
use crate::kernel::Op;
use crate::network::{LayerKind, Source};
use crate::plan::config::{Config, Group};
use crate::plan::cost::CostModel;
use crate::plan::geometry::{Grid, Region, tiles};
use crate::plan::lifetimes::workspace_bytes;
use crate::plan::lower::group_works;
use crate::plan::memory::{BufferKind, Mode, Residency};
use crate::plan::planner::Planner;

/// Largest grid side the search tries.
pub const MAX_GRID: usize = 8;

/// Networks with routes: how many times the search tightens its cap after the planner packs a pick
/// less tightly than its footprints promised (by the least overshoot of the paths tried).
const MAX_RETRIES: usize = 8;

/// Networks with routes: how many of the fastest paths within a cap are planned exactly before
/// the cap is tightened.
const MAX_TRIES: usize = 64;

/// One group the search may use, with its footprint and additive costs.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The group, with its grid.
    pub group: Group,
    /// Aligned arena bytes alive while the group runs.
    pub footprint: u64,
    /// Bytes of parameter blocks and timestamp slots it adds.
    pub additive: u64,
    /// Dispatches it records.
    pub dispatches: u64,
    /// Per-group residency: bytes of weights uploaded when it starts.
    pub upload_bytes: u64,
    /// Predicted milliseconds it adds (0 without a cost model).
    pub ms: f64,
}

/// Whether every layer reads only its predecessor (the first reads the input); a CPU detection head
/// may end the network.
pub fn is_chain(p: &Planner<'_>) -> bool {
    let net = p.net();
    (0..net.layers.len()).all(|i| {
        let want = if i == 0 {
            Source::Input
        } else {
            Source::Layer(i - 1)
        };
        net.sources(i) == vec![want] && (p.op(i) != Op::CpuHead || i + 1 == net.layers.len())
    })
}

/// Every group allowed on the network with its grids (up to [`MAX_GRID`]), footprints and costs.
pub fn candidates(p: &Planner<'_>, residency: Residency) -> Result<Vec<Candidate>> {
    candidates_with(p, residency, MAX_GRID, None)
}

/// Per layer range start: the aligned bytes of the maps alive from before it (made earlier and read
/// at or after it, or read back at the end). For a chain that is the group's input alone.
fn live_in_bytes(p: &Planner<'_>) -> Vec<u64> {
    let net = p.net();
    let n = net.layers.len();
    let mut last_reader: std::collections::HashMap<Source, usize> =
        std::collections::HashMap::new();
    for j in 0..n {
        for s in net.sources(j) {
            let e = last_reader.entry(s).or_insert(j);
            *e = (*e).max(j);
        }
    }
    for s in p.read_back() {
        last_reader.insert(s, usize::MAX);
    }
    (0..n)
        .map(|start| {
            last_reader
                .iter()
                .filter(|&(s, &last)| {
                    let produced_before = match *s {
                        Source::Input => true,
                        Source::Layer(l) => l < start,
                    };
                    produced_before && last >= start
                })
                .map(|(s, _)| p.aligned(p.map_bytes(net.shape_of(*s))))
                .sum()
        })
        .collect()
}

/// Aligned bytes of a fused group's two tile buffers (`None` when one passes the binding limit).
fn tile_buffer_bytes(p: &Planner<'_>, g: &Group, regions: &[Vec<Region>]) -> Option<u64> {
    let net = p.net();
    let mut total = 0;
    for parity in 0..2 {
        let largest = (g.start..g.last())
            .filter(|i| (i - g.start) % 2 == parity)
            .flat_map(|i| {
                let c = net.layers[i].output.c;
                regions
                    .iter()
                    .map(move |r| p.region_bytes(r[i - g.start], c))
            })
            .max();
        if let Some(m) = largest {
            if m > p.limits().max_storage_buffer_binding_size {
                return None;
            }
            total += p.aligned(m);
        }
    }
    Some(total)
}

/// The grids the search tries for a group ending at `last`: every `R×C` up to `max_grid` leaving
/// no tile empty when the group can be tiled, else `1x1` alone.
fn grids_for(p: &Planner<'_>, tileable: bool, last: usize, max_grid: usize) -> Vec<Grid> {
    let o = p.net().layers[last].output;
    if !tileable {
        return vec![Grid { rows: 1, cols: 1 }];
    }
    (1..=max_grid.min(o.h))
        .flat_map(|r| (1..=max_grid.min(o.w)).map(move |c| Grid { rows: r, cols: c }))
        .filter(|&g| tiles(o.h, o.w, g).is_ok())
        .collect()
}

/// One group as a candidate, or `None` when a tile buffer or its per-group weights would pass the
/// binding limit.
fn candidate(
    p: &Planner<'_>,
    group: Group,
    input_bytes: u64,
    residency: Residency,
    cost: Option<&CostModel>,
) -> Result<Option<Candidate>> {
    let net = p.net();
    let (start, end, last) = (group.start, group.end, group.last());
    let head = p.op(last) == Op::CpuHead;
    let weights: u64 = match residency {
        Residency::Resident => 0,
        Residency::PerGroup => (start..end).map(|i| p.aligned(p.weight_bytes(i))).sum(),
    };
    // A group's uploaded weights are one buffer, bound whole: it must fit one binding.
    if weights > p.limits().max_storage_buffer_binding_size {
        return Ok(None);
    }
    let regions = p.tile_regions(&group)?;
    let tile_bytes = match group.is_fused() {
        true => match tile_buffer_bytes(p, &group, &regions) {
            Some(b) => b,
            None => return Ok(None),
        },
        false => 0,
    };
    let works = group_works(p, &group, &regions);
    let dispatches: u64 = works.iter().map(|(k, w)| k.stages(w) as u64).sum();
    let workspace: u64 = workspace_bytes(p, &group, &regions)
        .into_iter()
        .map(|b| p.aligned(b))
        .sum();
    let ms = match cost {
        Some(c) => {
            let work: f64 = works
                .iter()
                .map(|(k, w)| c.dispatch_ms(w.layer, k.invocations(w) as f64))
                .sum();
            work + c.transition_ms(start, works.len() as u64, weights)
        }
        None => 0.0,
    };
    let output = if head {
        0
    } else {
        p.aligned(p.map_bytes(net.layers[last].output))
    };
    let ts = if p.limits().timestamps { 32 } else { 0 };
    Ok(Some(Candidate {
        group,
        footprint: input_bytes + output + tile_bytes + workspace + weights,
        additive: p.limits().params_stride() * dispatches + if dispatches > 0 { ts } else { 0 },
        dispatches,
        upload_bytes: weights,
        ms,
    }))
}

/// Every group allowed on the network with grids up to `max_grid`, their footprints, additive bytes
/// and, with a cost model, predicted milliseconds.
pub fn candidates_with(
    p: &Planner<'_>,
    residency: Residency,
    max_grid: usize,
    cost: Option<&CostModel>,
) -> Result<Vec<Candidate>> {
    let net = p.net();
    let n = net.layers.len();
    let fusable = |i: usize| {
        matches!(
            net.layers[i].kind,
            LayerKind::Conv(_) | LayerKind::MaxPool(_)
        )
    };
    let read_back = p.read_back();
    // Inside a fused group only the last layer's output exists as a full map.
    let read_outside = |i: usize, end: usize| {
        read_back.contains(&Source::Layer(i))
            || (end..n).any(|j| net.sources(j).contains(&Source::Layer(i)))
    };
    let live_in = live_in_bytes(p);
    let mut out = Vec::new();
    for (start, &input_bytes) in live_in.iter().enumerate() {
        for end in start + 1..=n {
            // A fused group is a chain: every layer after the first reads the one before.
            if end - start > 1 && (!(start..end).all(fusable) || !net.reads_previous(end - 1)) {
                break;
            }
            if (start..end - 1).any(|i| read_outside(i, end)) {
                continue;
            }
            for grid in grids_for(p, fusable(start), end - 1, max_grid) {
                let group = Group { start, end, grid };
                if let Some(c) = candidate(p, group, input_bytes, residency, cost)? {
                    out.push(c);
                }
            }
        }
    }
    Ok(out)
}

/// The smallest predicted peak in the search space and a configuration that reaches it, for one
/// residency (exact for chains; see the module docs).
pub fn min_peak_for(p: &Planner<'_>, residency: Residency) -> Result<(u64, Config)> {
    let cands = candidates(p, residency)?;
    let (peak, path) = min_peak_path(p, residency, &cands)?;
    Ok((peak, compact(config_of(&cands, &path))))
}

fn config_of(cands: &[Candidate], path: &[usize]) -> Config {
    Config {
        groups: path.iter().map(|&k| cands[k].group).collect(),
    }
}

/// The minimum-peak path over `cands` (indices, in order) and its exact peak from the planner.
fn min_peak_path(
    p: &Planner<'_>,
    residency: Residency,
    cands: &[Candidate],
) -> Result<(u64, Vec<usize>)> {
    let net = p.net();
    let n = net.layers.len();
    // Per (start, end): candidates sorted by footprint with prefix minima of the additive cost.
    let mut by_range: Vec<Vec<(u64, u64, usize)>> = vec![Vec::new(); n * (n + 1)];
    for (k, c) in cands.iter().enumerate() {
        by_range[c.group.start * (n + 1) + c.group.end].push((c.footprint, c.additive, k));
    }
    for v in by_range.iter_mut() {
        v.sort();
        let mut best = (u64::MAX, usize::MAX);
        for e in v.iter_mut() {
            if e.1 < best.0 {
                best = (e.1, e.2);
            }
            e.1 = best.0;
            e.2 = best.1;
        }
    }
    let mut thresholds: Vec<u64> = cands.iter().map(|c| c.footprint).collect();
    thresholds.push(p.aligned(p.map_bytes(net.input)));
    thresholds.sort();
    thresholds.dedup();
    // Per threshold: the path and its total by footprints (for a chain, the planner's exact peak
    // less the constant; with routes a lower bound on it).
    let mut paths: Vec<(u64, Vec<usize>)> = Vec::new();
    for &m in &thresholds {
        // Shortest path over cut positions using groups with footprint ≤ m.
        let mut cost = vec![u64::MAX; n + 1];
        let mut via = vec![usize::MAX; n + 1];
        cost[0] = 0;
        for j in 1..=n {
            for i in 0..j {
                if cost[i] == u64::MAX {
                    continue;
                }
                let v = &by_range[i * (n + 1) + j];
                let p = v.partition_point(|e| e.0 <= m);
                if p == 0 {
                    continue;
                }
                let (_, a, k) = v[p - 1];
                if cost[i] + a < cost[j] {
                    cost[j] = cost[i] + a;
                    via[j] = k;
                }
            }
        }
        if cost[n] == u64::MAX {
            continue;
        }
        let mut path = Vec::new();
        let mut j = n;
        while j > 0 {
            let k = via[j];
            path.push(k);
            j = cands[k].group.start;
        }
        path.reverse();
        let footprint = path.iter().map(|&k| cands[k].footprint).max().unwrap_or(0);
        paths.push((footprint + cost[n], path));
    }
    paths.sort_by_key(|p| p.0);
    // The exact peak from the planner itself: for a chain, of the best path; with routes, the least
    // over the paths in order until the lower bound passes the best exact peak found.
    let chain = is_chain(p);
    let mut best: Option<(u64, Vec<usize>, u64)> = None;
    for (total, path) in paths {
        if let Some(b) = &best
            && (chain || total + b.2 >= b.0)
        {
            break;
        }
        let plan = p.plan(&config_of(cands, &path), Mode::Layerwise, residency)?;
        let peak = plan.peak_bytes();
        // What the planner adds besides the footprints (staging, resident weights, gaps excluded).
        let constant = peak
            - plan.bytes_of(BufferKind::Arena)
            - path.iter().map(|&k| cands[k].additive).sum::<u64>();
        if best.as_ref().is_none_or(|b| peak < b.0) {
            best = Some((peak, path, constant));
        }
    }
    let (peak, path, _) = best.ok_or_else(|| {
        Error::DeviceLimit(format!(
            "no configuration of {} fits the adapter's limits",
            net.name
        ))
    })?;
    Ok((peak, path))
}

/// The smallest predicted peak over both residencies.
pub fn min_peak(p: &Planner<'_>) -> Result<(u64, Config, Residency)> {
    let a = min_peak_for(p, Residency::Resident)?;
    let b = min_peak_for(p, Residency::PerGroup)?;
    Ok(if b.0 < a.0 {
        (b.0, b.1, Residency::PerGroup)
    } else {
        (a.0, a.1, Residency::Resident)
    })
}

/// Drop trailing and leading untiled single-layer groups (they are what the config text implies).
fn compact(mut c: Config) -> Config {
    while c.groups.last().is_some_and(|g| !g.is_fused()) {
        c.groups.pop();
    }
    while c.groups.first().is_some_and(|g| !g.is_fused()) {
        c.groups.remove(0);
    }
    c
}

/// What the search chose for a budget.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Choice {
    /// The configuration, without leading or trailing untiled single-layer groups.
    pub config: Config,
    /// Where conv weights live.
    pub residency: Residency,
    /// Predicted peak device bytes (from the planner).
    pub peak_bytes: u64,
    /// Predicted latency in milliseconds (from the cost model).
    pub predicted_ms: f64,
}

/// The configuration with the least predicted latency whose predicted peak fits `budget`, over every
/// partition the rules allow, every grid up to [`MAX_GRID`]x[`MAX_GRID`] and both residencies.
/// When nothing fits, the error names the smallest budget that does.
pub fn fastest(p: &Planner<'_>, budget: u64, cost: &CostModel) -> Result<Choice> {
    fastest_with(p, budget, cost, MAX_GRID, &Residency::BOTH)
}

/// A pick of [`fastest_over_kernels`]: the kernels, the cost model for them, the choice.
pub type KernelPick = (Vec<Op>, CostModel, Choice);

/// The fastest configuration that fits `budget` over kernel assignments: `cost`'s own kernels (the
/// tuned ones), then, step by step, the layer whose kernel needs the most memory beyond its entry in
/// `defaults` (transformed weights, workspace) back on its default, down to `defaults`; the fastest
/// predicted pick of any step that fits (a kernel faster untiled may tile worse, or leave too little
/// of the budget for the rest). When no step fits, the last step's error (the defaults' minimum).
pub fn fastest_over_kernels(
    p: &Planner<'_>,
    defaults: &[Op],
    budget: u64,
    cost: &CostModel,
    max_grid: usize,
    residencies: &[Residency],
) -> Result<KernelPick> {
    let net = p.net();
    let tuned = cost.ops(net)?;
    // A layer's extra bytes depend on its own kernels only, so the steps are known up front: the
    // differing layers by extra bytes (most first; ties by index), demoted one more per step.
    let mut order: Vec<usize> = (0..tuned.len())
        .filter(|&i| tuned[i] != defaults[i])
        .collect();
    order.sort_by_key(|&i| {
        (
            std::cmp::Reverse(extra_bytes(p, tuned[i], defaults[i], i)),
            i,
        )
    });
    let steps: Vec<Vec<Op>> = (0..=order.len())
        .map(|k| {
            let mut ops = tuned.clone();
            for &i in &order[..k] {
                ops[i] = defaults[i];
            }
            ops
        })
        .collect();
    // Each step's search is independent: spread them over the CPU's threads.
    let search = |ops: &Vec<Op>| -> Result<(CostModel, Result<Choice>)> {
        let planner = p.with_ops_like(ops.clone())?;
        let c = cost.for_ops(net, ops);
        let r = fastest_with(&planner, budget, &c, max_grid, residencies);
        Ok((c, r))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = steps.len().div_ceil(threads).max(1);
    let results: Vec<Result<(CostModel, Result<Choice>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = steps
            .chunks(per)
            .map(|chunk| s.spawn(move || chunk.iter().map(search).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a search thread panicked"))
            .collect()
    });
    let mut best: Option<KernelPick> = None;
    let mut no_fit: Option<Error> = None;
    for (ops, r) in steps.into_iter().zip(results) {
        let (c, r) = r?;
        match r {
            Ok(choice) => {
                if best
                    .as_ref()
                    .is_none_or(|b| choice.predicted_ms < b.2.predicted_ms)
                {
                    best = Some((ops, c, choice));
                }
            }
            Err(e @ Error::NoFit { .. }) => no_fit = Some(e),
            Err(e) => return Err(e),
        }
    }
    let Some((ops, c, choice)) = best else {
        return Err(no_fit.expect("a search ran"));
    };
    let choice = prefer_untiled(
        &p.with_ops_like(ops.clone())?,
        budget,
        &c,
        choice,
        residencies,
    );
    Ok((ops, c, choice))
}

/// Predicted gains smaller than this fraction do not buy tiling over the untiled run: the cost
/// model is not that precise (measured picks that fuse or tile for a predicted 0.5 % ran 4–9 %
/// slower than untiled on lavapipe).
pub const SIMPLER_WITHIN: f64 = 0.01;

/// `choice`, or the untiled layerwise run (either residency allowed) when it fits `budget` and is
/// predicted within [`SIMPLER_WITHIN`] of it.
fn prefer_untiled(
    p: &Planner<'_>,
    budget: u64,
    cost: &CostModel,
    choice: Choice,
    residencies: &[Residency],
) -> Choice {
    if choice.config.is_untiled() {
        return choice;
    }
    let mut best = choice;
    for &r in residencies {
        let Ok(plan) = p.plan(&Config::untiled(), Mode::Layerwise, r) else {
            continue;
        };
        let ms = cost.plan_ms(p.net(), &plan);
        if plan.peak_bytes() <= budget && ms <= best.predicted_ms * (1.0 + SIMPLER_WITHIN) {
            best = Choice {
                config: Config::untiled(),
                residency: r,
                peak_bytes: plan.peak_bytes(),
                predicted_ms: ms,
            };
        }
    }
    best
}

/// Bytes layer `i` needs on `op` beyond what it needs on `default`: weights, and the workspace of
/// its untiled run (0 when `op` needs less).
fn extra_bytes(p: &Planner<'_>, op: Op, default: Op, i: usize) -> u64 {
    let net = p.net();
    let need = |op: Op| -> u64 {
        op.kernel().map_or(0, |k| {
            let work: u64 = crate::kernel::Work::untiled(net, i, k)
                .iter()
                .map(|w| k.workspace(w).iter().sum::<u64>())
                .max()
                .unwrap_or(0);
            k.weight_bytes(net, i) + work
        })
    };
    need(op).saturating_sub(need(default))
}

/// [`fastest`] with grids up to `max_grid` per side and the given residencies only.
///
/// Exact for chains: a plan's peak is `constant + max_g footprint(g) + Σ_g additive(g)` and its
/// predicted latency `Σ_g ms(g)`, so a label-setting dynamic program over cut positions, keeping at
/// every position the labels `(max footprint, Σ additive, Σ ms)` no other label beats in all three,
/// and dropping any whose bytes already pass the budget, ends with the optimum among all
/// configurations.
pub fn fastest_with(
    p: &Planner<'_>,
    budget: u64,
    cost: &CostModel,
    max_grid: usize,
    residencies: &[Residency],
) -> Result<Choice> {
    let net = p.net();
    cost.validate(net)?;
    let chain = is_chain(p);
    let mut best: Option<Choice> = None;
    let mut smallest: Option<(u64, Config, Residency)> = None;
    for &residency in residencies {
        let cands = candidates_with(p, residency, max_grid, Some(cost))?;
        let (min_peak, min_path) = match min_peak_path(p, residency, &cands) {
            Ok(v) => v,
            Err(Error::DeviceLimit(_)) => continue,
            Err(e) => return Err(e),
        };
        if smallest.as_ref().is_none_or(|s| min_peak < s.0) {
            smallest = Some((min_peak, compact(config_of(&cands, &min_path)), residency));
        }
        // With routes a configuration below the minimum found may still fit: search anyway.
        if min_peak > budget && chain {
            continue;
        }
        // The part of the peak no configuration changes (resident weights, staging buffers).
        let min_plan = p.plan(&config_of(&cands, &min_path), Mode::Layerwise, residency)?;
        let constant = min_peak
            - min_plan.bytes_of(BufferKind::Arena)
            - min_path.iter().map(|&k| cands[k].additive).sum::<u64>();
        // For a chain the first answer is exact. With routes the planner's two-ended arena can leave
        // gaps the footprints do not see: tighten the cap by the overshoot and search again.
        let Some(mut cap) = budget.checked_sub(constant) else {
            continue;
        };
        let mut found = None;
        'tighten: for _ in 0..MAX_RETRIES {
            let paths = cheapest_paths(net.layers.len(), &cands, cap);
            let mut least_over = u64::MAX;
            for (path, bytes) in paths.into_iter().take(MAX_TRIES) {
                let config = config_of(&cands, &path);
                let plan = p.plan(&config, Mode::Layerwise, residency)?;
                let peak = plan.peak_bytes();
                if peak <= budget && (peak == constant + bytes || !chain) {
                    found = Some((config, plan));
                    break 'tighten;
                }
                if chain {
                    return Err(Error::Unsupported(format!(
                        "search: the planner puts {config} at {peak} bytes where the search expected {}; please report this",
                        constant + bytes
                    )));
                }
                log::debug!(
                    "search: {config} needs {peak} bytes, {} more than its footprints",
                    peak - (constant + bytes)
                );
                least_over = least_over.min(peak - budget);
            }
            match cap.checked_sub(least_over) {
                Some(c) if least_over != u64::MAX => cap = c,
                _ => break,
            }
        }
        // With routes the tightening may stop short of the minimum-peak configuration, which fits
        // whenever the minimum does: it is always an answer then.
        if found.is_none() && min_peak <= budget {
            found = Some((config_of(&cands, &min_path), min_plan));
        }
        let Some((config, plan)) = found else {
            continue;
        };
        let peak = plan.peak_bytes();
        let ms = cost.plan_ms(net, &plan);
        let better = match &best {
            None => true,
            Some(b) => ms < b.predicted_ms || (ms == b.predicted_ms && peak < b.peak_bytes),
        };
        if better {
            best = Some(Choice {
                config: compact(config),
                residency,
                peak_bytes: peak,
                predicted_ms: ms,
            });
        }
    }
    match (best, smallest) {
        (Some(b), _) => Ok(b),
        (None, Some((minimum, config, residency))) => Err(Error::NoFit {
            model: net.name.clone(),
            budget,
            minimum,
            config: config.to_string(),
            residency: residency.as_str().into(),
        }),
        (None, None) => Err(Error::DeviceLimit(format!(
            "no configuration of {} fits the adapter's limits",
            net.name
        ))),
    }
}

/// One partial configuration in [`cheapest_paths`]: the largest footprint and summed additive bytes
/// and milliseconds of its groups, its last candidate and the label before it.
struct Label {
    footprint: u64,
    additive: u64,
    ms: f64,
    cand: usize,
    prev: usize,
}

/// Keep only the labels no other label matches or beats in footprint, additive bytes and ms.
fn pareto(ids: &mut Vec<usize>, labels: &[Label]) {
    ids.sort_by(|&x, &y| {
        let (a, b) = (&labels[x], &labels[y]);
        (a.additive, a.footprint)
            .cmp(&(b.additive, b.footprint))
            .then(a.ms.total_cmp(&b.ms))
    });
    // Staircase of kept (footprint → ms), ms strictly falling as footprint grows; every kept label
    // so far has additive ≤ the current one.
    let mut stairs: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    ids.retain(|&id| {
        let l = &labels[id];
        if let Some((_, &ms)) = stairs.range(..=l.footprint).next_back()
            && ms <= l.ms
        {
            return false;
        }
        let worse: Vec<u64> = stairs
            .range(l.footprint..)
            .take_while(|(_, ms)| **ms >= l.ms)
            .map(|(f, _)| *f)
            .collect();
        for f in worse {
            stairs.remove(&f);
        }
        stairs.insert(l.footprint, l.ms);
        true
    });
}

/// The paths of candidates over cut positions `0..n` with `max footprint + Σ additive ≤ cap` that
/// no other beats in all of footprint, additive bytes and ms, least ms first: the candidate
/// indices in order and those bytes.
fn cheapest_paths(n: usize, cands: &[Candidate], cap: u64) -> Vec<(Vec<usize>, u64)> {
    // Within one layer range, a grid that is no better in any of the three is never needed.
    let mut by_range: std::collections::HashMap<(usize, usize), Vec<usize>> =
        std::collections::HashMap::new();
    for (k, c) in cands.iter().enumerate() {
        if c.footprint + c.additive <= cap {
            by_range
                .entry((c.group.start, c.group.end))
                .or_default()
                .push(k);
        }
    }
    let mut by_start: Vec<Vec<usize>> = vec![Vec::new(); n];
    for ((start, _), mut ks) in by_range {
        ks.sort_by(|&x, &y| {
            let (a, b) = (&cands[x], &cands[y]);
            (a.footprint, a.additive)
                .cmp(&(b.footprint, b.additive))
                .then(a.ms.total_cmp(&b.ms))
        });
        let mut kept: Vec<usize> = Vec::new();
        for k in ks {
            let c = &cands[k];
            if !kept
                .iter()
                .any(|&j| cands[j].additive <= c.additive && cands[j].ms <= c.ms)
            {
                kept.push(k);
            }
        }
        by_start[start].extend(kept);
    }
    let mut labels = vec![Label {
        footprint: 0,
        additive: 0,
        ms: 0.0,
        cand: usize::MAX,
        prev: usize::MAX,
    }];
    let mut at: Vec<Vec<usize>> = vec![Vec::new(); n + 1];
    at[0].push(0);
    for p in 0..n {
        let mut here = std::mem::take(&mut at[p]);
        pareto(&mut here, &labels);
        for &li in &here {
            for &k in &by_start[p] {
                let c = &cands[k];
                let (f0, a0, ms0) = (labels[li].footprint, labels[li].additive, labels[li].ms);
                let footprint = f0.max(c.footprint);
                let additive = a0 + c.additive;
                if footprint + additive > cap {
                    continue;
                }
                at[c.group.end].push(labels.len());
                labels.push(Label {
                    footprint,
                    additive,
                    ms: ms0 + c.ms,
                    cand: k,
                    prev: li,
                });
            }
        }
    }
    let mut ends = std::mem::take(&mut at[n]);
    ends.sort_by(|&x, &y| {
        let (a, b) = (&labels[x], &labels[y]);
        a.ms.total_cmp(&b.ms)
            .then((a.footprint + a.additive).cmp(&(b.footprint + b.additive)))
    });
    ends.into_iter()
        .map(|end| {
            let bytes = labels[end].footprint + labels[end].additive;
            let mut path = Vec::new();
            let mut li = end;
            while labels[li].cand != usize::MAX {
                path.push(labels[li].cand);
                li = labels[li].prev;
            }
            path.reverse();
            (path, bytes)
        })
        .collect()
}
