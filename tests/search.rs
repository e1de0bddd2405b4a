//! The latency search without a GPU: exact against brute force on small chains, consistent with the
//! planner and the cost model on yolov2-16, and clear when nothing fits.

mod chains;

use chains::{Lcg, all_configs, limits, random_small_chain, random_small_routed};
use mafat::plan::cost::{CalibrationKey, CostModel, CostPoint, LayerCost};
use mafat::plan::search::{fastest, fastest_with, min_peak};

/// Grid sides the brute force enumerates (8 would make it hours long on 5-layer chains).
const GRID: usize = 4;
const BOTH: [Residency; 2] = [Residency::Resident, Residency::PerGroup];
use mafat::plan::{Config, DeviceLimits, Mode, Planner, Residency};
use mafat::{Error, Network, model};

/// A made-up but GPU-like cost model: per layer a fixed dispatch cost, a flat stretch until the
/// "machine" is full, then time in proportion to workgroups (piecewise linear, several points).
fn synthetic_cost(net: &Network, r: &mut Lcg) -> CostModel {
    let layers = net
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let fixed = 0.01 + r.next(100) as f64 * 0.001;
            let full = [1.0, 4.0, 16.0, 64.0][r.next(4)];
            let per = 0.001 + r.next(50) as f64 * 0.0005;
            let points = [1.0, full, 4.0 * full, 1000.0 * full]
                .iter()
                .map(|&w| CostPoint {
                    invocations: w * 64.0,
                    ms: fixed + per * (w - full).max(0.0),
                })
                .collect();
            LayerCost {
                layer: i,
                kind: l.kind.name().into(),
                kernel: mafat::kernel::select(net, i).unwrap().name().into(),
                points,
                candidates: Vec::new(),
            }
        })
        .collect();
    CostModel {
        key: CalibrationKey {
            adapter: "synthetic".into(),
            driver: String::new(),
            backend: String::new(),
            model: net.name.clone(),
            input: [net.input.c, net.input.h, net.input.w],
            network_hash: mafat::plan::cost::network_hash(net),
            mafat: env!("CARGO_PKG_VERSION").into(),
            kernels: "default".into(),
            precision: mafat::Precision::F32,
        },
        timing: "synthetic".into(),
        layers,
        pass_gap_ms: r.next(20) as f64 * 0.002,
        upload_ms: r.next(20) as f64 * 0.01,
        upload_ms_per_mib: r.next(20) as f64 * 0.1,
    }
}

/// Every configuration (grids up to `grid`) and residency of `net`: its exact peak, predicted
/// latency and name, from the planner. Configurations the rules forbid fail the test unless
/// `skip_illegal`.
fn brute_force(
    net: &Network,
    lim: &DeviceLimits,
    cost: &CostModel,
    grid: usize,
    skip_illegal: bool,
) -> Vec<(u64, f64, String)> {
    let mut all = Vec::new();
    for c in all_configs(net, grid) {
        for res in BOTH {
            match Planner::new(net, lim)
                .unwrap()
                .plan(&c, Mode::Layerwise, res)
            {
                Ok(p) => all.push((
                    p.peak_bytes(),
                    cost.plan_ms(net, &p),
                    format!("{c} {res:?}"),
                )),
                Err(e) if !skip_illegal => panic!("{c}: {e}"),
                Err(_) => {}
            }
        }
    }
    all
}

/// The smallest peak of `all`, and budgets to try: it, the largest, one byte under it and `random`
/// more between.
fn budgets(r: &mut Lcg, all: &[(u64, f64, String)], random: usize) -> (u64, Vec<u64>) {
    let lo = all.iter().map(|a| a.0).min().unwrap();
    let hi = all.iter().map(|a| a.0).max().unwrap();
    let mut v = vec![lo, hi, lo - 1];
    for _ in 0..random {
        v.push(lo + r.next((hi - lo) as usize + 1) as u64);
    }
    (lo, v)
}

#[test]
fn search_finds_the_brute_force_optimum_on_small_chains() {
    let mut r = Lcg(2026);
    let mut checked = 0;
    let mut budgets_checked = 0;
    while checked < 30 {
        let Some(net) = random_small_chain(&mut r, 4) else {
            continue;
        };
        let lim = DeviceLimits {
            timestamps: r.next(2) == 0,
            min_storage_buffer_offset_alignment: [4, 256][r.next(2)],
            ..limits()
        };
        let cost = synthetic_cost(&net, &mut r);
        let all = brute_force(&net, &lim, &cost, GRID, false);
        let (lo, budgets) = budgets(&mut r, &all, 6);
        for budget in budgets {
            let best = all
                .iter()
                .filter(|a| a.0 <= budget)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match (
                best,
                fastest_with(
                    &Planner::new(&net, &lim).unwrap(),
                    budget,
                    &cost,
                    GRID,
                    &BOTH,
                ),
            ) {
                (None, Err(Error::NoFit { minimum, .. })) => assert_eq!(minimum, lo),
                (Some(b), Ok(choice)) => {
                    assert!(choice.peak_bytes <= budget);
                    assert!(
                        (choice.predicted_ms - b.1).abs() <= 1e-9 * b.1.max(1.0),
                        "budget {budget}: search {} ({} ms) vs brute force {} ({} ms)\n{net:?}",
                        choice.config,
                        choice.predicted_ms,
                        b.2,
                        b.1
                    );
                    // The choice's figures are the planner's and the model's own.
                    let p = Planner::new(&net, &lim)
                        .unwrap()
                        .plan(&choice.config, Mode::Layerwise, choice.residency)
                        .unwrap();
                    assert_eq!(p.peak_bytes(), choice.peak_bytes);
                    assert_eq!(cost.plan_ms(&net, &p), choice.predicted_ms);
                    budgets_checked += 1;
                }
                (b, c) => panic!("budget {budget}: brute force {b:?}, search {c:?}"),
            }
        }
        checked += 1;
    }
    assert!(budgets_checked > 150, "{budgets_checked}");
}

/// Networks with routes: the pick always fits and its figures are the planner's; a "nothing fits"
/// names a configuration that truly needs what it says. The arena can leave gaps the search's
/// footprints do not see, so optimality is not guaranteed there: against brute force over every
/// configuration it must find the optimum for at least 97 % of the budgets that fit (150 networks:
/// 892 of 900; the worst miss 68 % slower).
#[test]
fn search_handles_routes_close_to_the_brute_force_optimum() {
    let mut r = Lcg(7);
    let (mut checked, mut fits, mut optimal, mut missed) = (0, 0, 0, 0);
    let (mut worst, mut worst_miss) = (0.0f64, 0.0f64);
    while checked < 60 {
        let Some(net) = random_small_routed(&mut r) else {
            continue;
        };
        let lim = DeviceLimits {
            timestamps: r.next(2) == 0,
            ..limits()
        };
        let cost = synthetic_cost(&net, &mut r);
        // Groups over a route or across a map read later are not allowed: skipped.
        let all = brute_force(&net, &lim, &cost, 2, true);
        let (lo, budgets) = budgets(&mut r, &all, 4);
        for budget in budgets {
            let best = all
                .iter()
                .filter(|a| a.0 <= budget)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match (
                best,
                fastest_with(&Planner::new(&net, &lim).unwrap(), budget, &cost, 2, &BOTH),
            ) {
                (
                    _,
                    Err(Error::NoFit {
                        minimum,
                        config,
                        residency,
                        ..
                    }),
                ) => {
                    assert!(minimum > budget);
                    let res = if residency == "per-group" {
                        Residency::PerGroup
                    } else {
                        Residency::Resident
                    };
                    let c = Config::parse(&config).unwrap();
                    assert_eq!(
                        Planner::new(&net, &lim)
                            .unwrap()
                            .plan(&c, Mode::Layerwise, res)
                            .unwrap()
                            .peak_bytes(),
                        minimum
                    );
                    if best.is_some() {
                        missed += 1;
                        worst_miss = worst_miss.max(minimum as f64 / lo as f64 - 1.0);
                    }
                }
                (Some(b), Ok(choice)) => {
                    let p = Planner::new(&net, &lim)
                        .unwrap()
                        .plan(&choice.config, Mode::Layerwise, choice.residency)
                        .unwrap();
                    assert_eq!(p.peak_bytes(), choice.peak_bytes);
                    assert!(choice.peak_bytes <= budget);
                    assert_eq!(cost.plan_ms(&net, &p), choice.predicted_ms);
                    fits += 1;
                    if (choice.predicted_ms - b.1).abs() <= 1e-9 * b.1.max(1.0) {
                        optimal += 1;
                    }
                    worst = worst.max(choice.predicted_ms / b.1 - 1.0);
                }
                (b, c) => panic!("budget {budget}: brute force {b:?}, search {c:?}\n{net:?}"),
            }
        }
        checked += 1;
    }
    eprintln!(
        "routed networks: {fits} fitting picks, {optimal} optimal, worst {:.1} % slower; {missed} budgets with a fit missed, worst minimum {:.1} % high",
        worst * 100.0,
        worst_miss * 100.0
    );
    assert!(fits > 200, "{fits}");
    assert!(
        optimal * 100 >= (fits + missed) * 97,
        "optimal {optimal} of {}",
        fits + missed
    );
}

/// yolov3-tiny (routes, upsample, two heads): from its smallest budget to its untiled peak the search
/// picks fitting configurations, and the smallest is named when nothing fits.
#[test]
fn yolov3_tiny_search_fits_every_budget_from_the_minimum() {
    let net = model::load("yolov3-tiny", Some((416, 416))).unwrap();
    let lim = limits();
    let cost = synthetic_cost(&net, &mut Lcg(5));
    let (min, config, residency) = min_peak(&Planner::new(&net, &lim).unwrap()).unwrap();
    let untiled = Planner::new(&net, &lim)
        .unwrap()
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)
        .unwrap()
        .peak_bytes();
    assert!(min < untiled * 6 / 10, "{min} vs untiled {untiled}");
    let p = Planner::new(&net, &lim)
        .unwrap()
        .plan(&config, Mode::Layerwise, residency)
        .unwrap();
    assert_eq!(p.peak_bytes(), min);
    match fastest(&Planner::new(&net, &lim).unwrap(), min - 1, &cost) {
        Err(Error::NoFit { minimum, .. }) => assert_eq!(minimum, min),
        other => panic!("{other:?}"),
    }
    for k in 0..=8 {
        let budget = min + (untiled - min) * k / 8;
        let c = fastest(&Planner::new(&net, &lim).unwrap(), budget, &cost).unwrap();
        let p = Planner::new(&net, &lim)
            .unwrap()
            .plan(&c.config, Mode::Layerwise, c.residency)
            .unwrap();
        assert_eq!(p.peak_bytes(), c.peak_bytes);
        assert!(c.peak_bytes <= budget, "{budget}: {}", c.config);
        assert_eq!(cost.plan_ms(&net, &p), c.predicted_ms);
    }
}

#[test]
fn yolov2_16_search_is_consistent_from_the_minimum_to_unconstrained() {
    let net = model::load("yolov2-16", Some((608, 608))).unwrap();
    let lim = limits();
    let cost = synthetic_cost(&net, &mut Lcg(5));
    let (min, _, _) = min_peak(&Planner::new(&net, &lim).unwrap()).unwrap();
    let untiled = Planner::new(&net, &lim)
        .unwrap()
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)
        .unwrap()
        .peak_bytes();
    let mut last_ms = f64::INFINITY;
    let steps = 8;
    for k in 0..=steps {
        // Geometric steps from the minimum to twice the untiled peak.
        let budget =
            (min as f64 * ((2 * untiled) as f64 / min as f64).powf(k as f64 / steps as f64)) as u64;
        let c = fastest(&Planner::new(&net, &lim).unwrap(), budget.max(min), &cost).unwrap();
        assert!(c.peak_bytes <= budget.max(min));
        let p = Planner::new(&net, &lim)
            .unwrap()
            .plan(&c.config, Mode::Layerwise, c.residency)
            .unwrap();
        assert_eq!(p.peak_bytes(), c.peak_bytes);
        assert_eq!(cost.plan_ms(&net, &p), c.predicted_ms);
        // More memory never makes the optimum slower.
        assert!(
            c.predicted_ms <= last_ms,
            "{budget}: {} > {last_ms}",
            c.predicted_ms
        );
        last_ms = c.predicted_ms;
        // And it is at least as fast as every untiled baseline that fits.
        for res in [Residency::Resident, Residency::PerGroup] {
            let u = Planner::new(&net, &lim)
                .unwrap()
                .plan(&Config::untiled(), Mode::Layerwise, res)
                .unwrap();
            if u.peak_bytes() <= budget {
                assert!(c.predicted_ms <= cost.plan_ms(&net, &u));
            }
        }
    }
}

#[test]
fn an_impossible_budget_names_the_minimum() {
    let net = model::load("yolov2-16", Some((608, 608))).unwrap();
    let lim = limits();
    let cost = synthetic_cost(&net, &mut Lcg(6));
    let (min, config, residency) = min_peak(&Planner::new(&net, &lim).unwrap()).unwrap();
    let e = fastest(&Planner::new(&net, &lim).unwrap(), min - 1, &cost).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("smallest needs {min} bytes"))
            && text.contains(&config.to_string())
            && text.contains(residency.as_str()),
        "{text}"
    );
    // The minimum itself fits.
    assert_eq!(
        fastest(&Planner::new(&net, &lim).unwrap(), min, &cost)
            .unwrap()
            .peak_bytes,
        min
    );
}

#[test]
fn a_calibration_for_another_network_is_refused() {
    let net = model::load("yolov2-16", Some((160, 160))).unwrap();
    let tiny = model::load("yolov2-tiny", Some((160, 160))).unwrap();
    let cost = synthetic_cost(&tiny, &mut Lcg(7));
    let e = fastest(&Planner::new(&net, &limits()).unwrap(), 1 << 30, &cost)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("calibration") && e.contains("recalibrate"),
        "{e}"
    );
}

#[test]
fn a_calibration_survives_its_json_exactly() {
    // A cached calibration must plan exactly like the one measured (serde_json's float_roundtrip).
    let net = model::load("yolov2-16", Some((160, 160))).unwrap();
    let mut cost = synthetic_cost(&net, &mut Lcg(8));
    let mut r = Lcg(9);
    for l in &mut cost.layers {
        for p in &mut l.points {
            p.ms *= 1.0 + r.next(1 << 20) as f64 / 3.0e6;
        }
    }
    let back: CostModel = serde_json::from_str(&serde_json::to_string(&cost).unwrap()).unwrap();
    assert_eq!(back, cost);
}

/// Moving a layer to another kernel rescales its measured points in time (by the two kernels'
/// untiled times) and in size (kernels count work in their own units): the untiled dispatch on the
/// new kernel is predicted at exactly its measured untiled time.
#[test]
fn cost_model_for_other_kernels_predicts_their_untiled_times() {
    use mafat::kernel::{Op, Work, named};
    use mafat::plan::cost::KernelTime;
    let net = model::load("yolov2-16", Some((96, 96))).unwrap();
    let mut r = Lcg(3);
    let mut cost = synthetic_cost(&net, &mut r);
    let (wino, direct) = (named("conv2d_winograd4").unwrap(), named("conv2d").unwrap());
    let untiled_inv = |k: mafat::kernel::KernelRef| -> f64 {
        Work::untiled(&net, 2, k)
            .iter()
            .map(|w| k.invocations(w) as f64)
            .sum()
    };
    // Layer 2 measured on Winograd: points through its untiled size; both kernels timed untiled.
    let l = &mut cost.layers[2];
    l.kernel = wino.name().into();
    let w_inv = untiled_inv(wino);
    l.points = vec![
        CostPoint {
            invocations: w_inv / 16.0,
            ms: 2.0,
        },
        CostPoint {
            invocations: w_inv,
            ms: 12.0,
        },
    ];
    l.candidates = vec![
        KernelTime {
            kernel: direct.name().into(),
            ms: 30.0,
        },
        KernelTime {
            kernel: wino.name().into(),
            ms: 12.0,
        },
    ];
    let mut ops = mafat::kernel::select_all(&net).unwrap();
    ops[2] = Op::Dispatch(direct);
    let moved = cost.for_ops(&net, &ops);
    assert_eq!(moved.layers[2].kernel, "conv2d");
    let predicted = moved.dispatch_ms(2, untiled_inv(direct));
    assert!((predicted - 30.0).abs() < 1e-9, "{predicted}");
    // Layers whose kernel stays keep their points.
    assert_eq!(moved.layers[0].points, cost.layers[0].points);
}

/// The search over kernel steps: from the tuned kernels (here Winograd F(4x4) on every 3x3/1 conv,
/// whose transformed weights are 4x) layer by layer back to the defaults. Every pick fits its budget
/// and re-plans to the same peak; a budget the tuned kernels cannot meet still finds a pick (with
/// layers back on the default), down to the defaults' own minimum; below it, nothing fits and the
/// error names that minimum.
#[test]
fn fastest_over_kernels_steps_back_to_the_defaults() {
    use mafat::kernel::{Op, named, select_all};
    use mafat::plan::search::{fastest_over_kernels, min_peak};
    let net = model::load("yolov2-16", Some((96, 96))).unwrap();
    let mut r = Lcg(9);
    let mut cost = synthetic_cost(&net, &mut r);
    let f4 = named("conv2d_winograd4").unwrap();
    let mut tuned = select_all(&net).unwrap();
    for (i, op) in tuned.iter_mut().enumerate() {
        if f4.supports(&net, i) {
            *op = Op::Dispatch(f4);
            cost.layers[i].kernel = f4.name().into();
        }
    }
    let defaults = select_all(&net).unwrap();
    let lim = limits();
    let on_tuned = Planner::with_ops(&net, &lim, tuned.clone()).unwrap();
    let on_defaults = Planner::with_ops(&net, &lim, defaults.clone()).unwrap();
    let (tuned_min, _, _) = min_peak(&on_tuned).unwrap();
    let (default_min, _, _) = min_peak(&on_defaults).unwrap();
    assert!(default_min < tuned_min, "{default_min} vs {tuned_min}");
    for budget in [
        default_min,
        (default_min + tuned_min) / 2,
        tuned_min,
        4 * tuned_min,
    ] {
        let (ops, _, c) =
            fastest_over_kernels(&on_tuned, &defaults, budget, &cost, 8, &Residency::BOTH).unwrap();
        assert!(c.peak_bytes <= budget);
        let plan = Planner::with_ops(&net, &lim, ops.clone())
            .unwrap()
            .plan(&c.config, Mode::Layerwise, c.residency)
            .unwrap();
        assert_eq!(plan.peak_bytes(), c.peak_bytes, "{budget}: re-planned");
        if budget < tuned_min {
            assert_ne!(ops, tuned, "{budget}: below the tuned minimum");
        }
        // Tiling is kept only for a predicted gain past the model's resolution.
        let p = Planner::with_ops(&net, &lim, ops.clone()).unwrap();
        let moved = cost.for_ops(&net, &ops);
        for res in Residency::BOTH {
            let u = p.plan(&Config::untiled(), Mode::Layerwise, res).unwrap();
            if !c.config.is_untiled() && u.peak_bytes() <= budget {
                let ms = moved.plan_ms(&net, &u);
                assert!(
                    ms > c.predicted_ms * (1.0 + mafat::plan::search::SIMPLER_WITHIN),
                    "{budget}: untiled {ms} vs {}",
                    c.predicted_ms
                );
            }
        }
    }
    match fastest_over_kernels(
        &on_tuned,
        &defaults,
        default_min - 1,
        &cost,
        8,
        &Residency::BOTH,
    ) {
        Err(Error::NoFit { minimum, .. }) => assert_eq!(minimum, default_min),
        other => panic!("{other:?}"),
    }
}

/// Full yolov2 (routes, a reorg, and groups whose weights pass the 128 MiB binding limit when
/// uploaded per group): the search fits every budget from its minimum to past the untiled peak; it
/// never picks a group whose per-group weights cannot be bound (it once failed at 198 MiB with
/// "group 17..25:1x1 weights needs 136339456 bytes").
#[test]
fn yolov2_search_skips_groups_whose_weights_pass_the_binding_limit() {
    let net = model::load("yolov2", Some((128, 128))).unwrap();
    let lim = limits();
    let cost = synthetic_cost(&net, &mut Lcg(7));
    let p = Planner::new(&net, &lim).unwrap();
    let (min, _, _) = min_peak(&p).unwrap();
    let untiled = p
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)
        .unwrap()
        .peak_bytes();
    for budget in [
        min,
        (min + untiled) / 2,
        untiled,
        untiled + (1 << 20),
        2 * untiled,
    ] {
        let c = fastest(&p, budget, &cost).unwrap_or_else(|e| panic!("{budget}: {e}"));
        let plan = p.plan(&c.config, Mode::Layerwise, c.residency).unwrap();
        assert_eq!(plan.peak_bytes(), c.peak_bytes);
        assert!(c.peak_bytes <= budget, "{budget}: {}", c.config);
    }
}

/// The regret harness's reference grid on every built-in model: the cuts the network forces
/// (around routes, reorgs, upsamples and heads) are made in every configuration, every configuration
/// resolves and plans, and impossible sizes are refused before any work, naming the limit.
#[test]
fn reference_grids_cover_every_builtin_model() {
    use mafat::experiments::regret::{ReferenceGrid, forced_cuts};
    let lim = limits();
    for (name, size) in [
        ("yolov2-16", 96),
        ("yolov2-tiny", 96),
        ("yolov3-tiny", 96),
        ("yolov2", 128),
    ] {
        let net = model::load(name, Some((size, size))).unwrap();
        let n = net.layers.len();
        let all: Vec<usize> = (1..n).collect();
        let grid = ReferenceGrid::new(&net, &all, 2, 3).unwrap();
        assert_eq!(grid.forced, forced_cuts(&net));
        assert!(grid.cuts.iter().all(|c| !grid.forced.contains(c)));
        let configs = grid.configs(&net);
        assert!(!configs.is_empty(), "{name}");
        assert!(configs.len() as u64 <= grid.count().unwrap(), "{name}");
        let p = Planner::new(&net, &lim).unwrap();
        for c in &configs {
            c.resolve(&net)
                .unwrap_or_else(|e| panic!("{name} {c}: {e}"));
            for f in &grid.forced {
                assert!(
                    c.groups.iter().any(|g| g.start == *f),
                    "{name} {c}: no cut at {f}"
                );
            }
        }
        let planned = grid.plan(&p, &net, &mut |_| {});
        assert!(!planned.is_empty(), "{name}");
        for r in planned.iter().take(50) {
            let plan = p.plan(&r.config, Mode::Layerwise, r.residency).unwrap();
            assert_eq!(plan.peak_bytes(), r.peak_bytes);
        }
        // Refused before any work, naming the limit.
        for (cuts, max_cuts, grids, needle) in [
            (&all[..], 2, 0, "--grids 0"),
            (&all[..], 2, 33, "--grids 33"),
            (&all[..], n, 8, "more than"),
            (&[0][..], 2, 2, "not a cut position"),
            (&[n][..], 2, 2, "not a cut position"),
        ] {
            let e = ReferenceGrid::new(&net, cuts, max_cuts, grids)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{name}: {e}");
        }
    }
}
