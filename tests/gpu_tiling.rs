//! Fused tile partitioning on the GPU: tiled output equals the untiled output bit for bit (and the
//! CPU reference on integer data), for one, two and three groups, the tiny YOLO backbones, random
//! conv/pool chains, and an input whose untiled maps are past the device's limits. Every run also
//! checks that the pool's peak equals the plan's.

mod chains;
mod common;
mod gpu_common;

use chains::{Lcg, random_chain, random_config};
use gpu_common::{Gpu, assert_bit_exact};
use mafat::input::InputSource;
use mafat::kernel::Op;
use mafat::model::{self, weights::WeightSource, weights::Weights};
use mafat::plan::{Config, MemoryPlan, Mode, Planner, Residency, geometry::Grid};
use mafat::{Network, Tensor, reference};

/// Run `config` and compare with `untiled` bit for bit; returns the plan.
fn check(
    g: &Gpu,
    net: &Network,
    w: &Weights,
    x: &Tensor,
    untiled: &[Tensor],
    config: &Config,
) -> MemoryPlan {
    let ops = mafat::kernel::select_all(net).unwrap();
    check_ops(g, net, w, x, untiled, config, &ops, Residency::Resident)
}

/// [`check`] with the layers on `ops` (`untiled` ran on the same kernels) and the conv weights held
/// as `residency` says.
#[allow(clippy::too_many_arguments)]
fn check_ops(
    g: &Gpu,
    net: &Network,
    w: &Weights,
    x: &Tensor,
    untiled: &[Tensor],
    config: &Config,
    ops: &[Op],
    residency: Residency,
) -> MemoryPlan {
    let plan = g
        .session
        .planner_on(net, ops.to_vec())
        .and_then(|p| p.plan(config, Mode::Layerwise, residency))
        .unwrap_or_else(|e| panic!("{} {config} on {ops:?}: {e}", net.name));
    let (out, plan, stats) = g
        .run_plan(net, w, x, plan, None)
        .unwrap_or_else(|e| panic!("{} {config} on {ops:?}: {e}", net.name));
    assert_eq!(out.len(), untiled.len());
    assert_eq!(
        stats.peak,
        plan.peak_bytes(),
        "{} {config}: pool peak vs plan",
        net.name
    );
    assert_eq!(out.len(), untiled.len());
    for (o, u) in out.iter().zip(untiled) {
        assert_bit_exact(
            &format!(
                "{} {}x{} {config} {} on {ops:?} ({})",
                net.name,
                net.input.w,
                net.input.h,
                residency.as_str(),
                plan.precision
            ),
            o,
            u,
        );
    }
    plan
}

/// Network, integer weights and input, and the untiled GPU output (itself checked against the CPU
/// reference bit for bit).
fn setup(g: &Gpu, net: Network) -> (Network, Weights, Tensor, Vec<Tensor>) {
    let w = WeightSource::Int(11).load(&net).unwrap();
    let x = InputSource::Int(12).load(net.input).unwrap();
    let heads = net.outputs();
    let cpu = reference::forward(&net, &w, &x, &heads).unwrap();
    let (untiled, _, _) = g.run(&net, &w, &x, Mode::Layerwise, None).unwrap();
    // An adapter that contracts a·b + c into an FMA rounds mafat's exp (logistic) differently from
    // the CPU (see tests/gpu_layers.rs); everything else is exact on integer data.
    let fma = gpu_common::contracts_multiply_add(g);
    assert_eq!(untiled.len(), cpu.len());
    for (u, c) in untiled.iter().zip(&cpu) {
        if fma {
            let d = gpu_common::max_rel_diff(u, c);
            assert!(
                d <= 1e-4,
                "{} untiled vs CPU: relative difference {d}",
                net.name
            );
        } else {
            assert_bit_exact(&format!("{} untiled vs CPU", net.name), u, c);
        }
    }
    (net, w, x, untiled)
}

fn grid(rows: usize, cols: usize) -> Grid {
    Grid { rows, cols }
}

fn one_group_every_grid(size: usize) {
    let Some(g) = gpu_common::gpu("one_group_every_grid") else {
        return;
    };
    let (net, w, x, untiled) = setup(g, model::load("yolov2-16", Some((size, size))).unwrap());
    let mut grids: Vec<Grid> = (1..=6).map(|n| grid(n, n)).collect();
    grids.extend([grid(2, 3), grid(5, 1)]);
    let last = net.layers[15].output;
    let mut ratios = Vec::new();
    for gr in grids {
        if mafat::plan::geometry::tiles(last.h, last.w, gr).is_err() {
            // At 160x160 the last map is 10x10: ceil-sized rows of 2 fill it in 5, so 6x6 leaves a
            // tile empty and is refused with the largest legal grid.
            let e = g
                .planner(&net)
                .plan(
                    &Config::single(0, 16, gr),
                    Mode::Layerwise,
                    Residency::Resident,
                )
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("the largest grid with no empty tile is 5x5"),
                "{e}"
            );
            ratios.push(f64::INFINITY);
            continue;
        }
        let plan = check(g, &net, &w, &x, &untiled, &Config::single(0, 16, gr));
        ratios.push(plan.mac_ratio(&net));
    }
    // Finer grids recompute more halo: 1x1 computes exactly the untiled work.
    assert_eq!(ratios[0], 1.0);
    assert!(ratios[..6].windows(2).all(|r| r[0] < r[1]), "{ratios:?}");
    if size == 160 {
        assert!(
            ratios[5].is_infinite(),
            "6x6 on a 10x10 map must be refused"
        );
    }
}

#[test]
fn yolov2_16_one_group_every_grid_160() {
    one_group_every_grid(160);
}

#[test]
fn yolov2_16_one_group_every_grid_416() {
    one_group_every_grid(416);
}

#[test]
fn yolov2_16_two_groups_every_cut() {
    let Some(g) = gpu_common::gpu("two_groups_every_cut") else {
        return;
    };
    let (net, w, x, untiled) = setup(g, model::load("yolov2-16", Some((160, 160))).unwrap());
    // Every cut position, each group at every square grid 1x1..4x4, and across the cuts every pair
    // of grids: at cut c the pairs are (a, (a + c) mod 4 + 1) for a = 1..4.
    let mut pairs = std::collections::HashSet::new();
    for cut in 1..16 {
        for a in 1..=4 {
            let b = (a + cut) % 4 + 1;
            pairs.insert((a, b));
            let config = Config {
                groups: vec![
                    mafat::plan::Group {
                        start: 0,
                        end: cut,
                        grid: grid(a, a),
                    },
                    mafat::plan::Group {
                        start: cut,
                        end: 16,
                        grid: grid(b, b),
                    },
                ],
            };
            check(g, &net, &w, &x, &untiled, &config);
        }
    }
    assert_eq!(pairs.len(), 16);
}

#[test]
fn yolov2_16_three_groups() {
    let Some(g) = gpu_common::gpu("three_groups") else {
        return;
    };
    let (net, w, x, untiled) = setup(g, model::load("yolov2-16", Some((160, 160))).unwrap());
    for text in [
        "0..4:4x4,4..10:3x3,10..16:2x2",
        "0..2:6x6,2..12:2x3,12..16:3x1",
        "0..1:5x2,1..15:2x2,15..16:4x4",
        "0..8:1x1,8..9:3x3,9..16:1x2",
    ] {
        check(g, &net, &w, &x, &untiled, &Config::parse(text).unwrap());
    }
}

#[test]
fn tiny_yolo_backbones() {
    let Some(g) = gpu_common::gpu("tiny_yolo_backbones") else {
        return;
    };
    // yolov2-tiny ends in a 2x2/1 max pool (layer 11) and the region head; yolov3-tiny routes layers
    // 8 and 13 and upsamples, so groups end at them.
    for (name, configs) in [
        (
            "yolov2-tiny",
            vec![
                "0..15:3x3",
                "0..6:4x4,6..15:2x2",
                "0..11:2x2,11..12:3x3,12..14:2x1",
            ],
        ),
        (
            "yolov3-tiny",
            vec![
                "0..9:4x4,9..14:2x2,14..16:2x2",
                "0..9:3x3,9..14:1x1,14..16:2x1,16..17:1x1,17..18:1x1,18..19:2x2,19..20:1x1,20..21:1x1,21..23:3x3",
            ],
        ),
    ] {
        let (net, w, x, untiled) = setup(g, model::load(name, Some((224, 224))).unwrap());
        for text in configs {
            check(g, &net, &w, &x, &untiled, &Config::parse(text).unwrap());
        }
    }
}

#[test]
fn random_chains_tiled_equal_untiled() {
    let Some(g) = gpu_common::gpu("random_chains") else {
        return;
    };
    let mut r = Lcg(2026);
    let mut checked = 0;
    while checked < 150 {
        let Some(net) = random_chain(&mut r) else {
            continue;
        };
        let (net, w, x, untiled) = setup(g, net);
        for _ in 0..3 {
            let config = random_config(&mut r, &net);
            check(g, &net, &w, &x, &untiled, &config);
        }
        // A kernel variant per layer, drawn at random: untiled and tiled on the same assignment.
        let ops = gpu_common::random_ops(&net, &mut |n| r.next(n));
        let (untiled, _, _) = g
            .run_ops(&net, &w, &x, &ops, &Config::untiled(), Mode::Layerwise)
            .unwrap();
        let cpu = reference::forward(&net, &w, &x, &net.outputs()).unwrap();
        assert_eq!(untiled.len(), cpu.len());
        for (u, c) in untiled.iter().zip(&cpu) {
            let d = gpu_common::max_rel_diff(u, c);
            assert!(d <= 1e-4, "{} on {ops:?}: {d} from the CPU", net.name);
        }
        for _ in 0..2 {
            let config = random_config(&mut r, &net);
            check_ops(
                g,
                &net,
                &w,
                &x,
                &untiled,
                &config,
                &ops,
                Residency::Resident,
            );
        }
        checked += 1;
    }
}

/// Maps and weights stored as f16: tiled equals untiled bit for bit on random chains (random
/// kernels, both residencies) and yolov3-tiny, on random floats (int data deep in a chain passes
/// f16's 65504); the untiled run stays within f16 rounding of the f16 CPU reference, and every
/// pool peak equals its plan's.
#[test]
fn f16_tiled_equal_untiled() {
    let test = "f16_tiled_equal_untiled";
    let Some(g) = gpu_common::gpu_f16(test) else {
        return;
    };
    let untiled_on = |net: &Network, w: &Weights, x: &Tensor, ops: &[Op]| {
        let (untiled, plan, stats) = g
            .run_ops(net, w, x, ops, &Config::untiled(), Mode::Layerwise)
            .unwrap();
        assert_eq!(plan.precision, mafat::Precision::F16);
        assert_eq!(stats.peak, plan.peak_bytes());
        let heads = net.outputs();
        let cpu = reference::forward_at(net, w, x, &heads, mafat::Precision::F16).unwrap();
        assert_eq!(untiled.len(), cpu.len());
        for (u, c) in untiled.iter().zip(&cpu) {
            assert!(u.data.iter().all(|v| v.is_finite()), "{}", net.name);
            let d = gpu_common::max_diff_over_absmax(u, c);
            assert!(
                d <= 1e-2,
                "{} on {ops:?}: {d} of the absmax from the CPU",
                net.name
            );
        }
        untiled
    };
    let mut r = Lcg(1616);
    let mut checked = 0;
    while checked < 100 {
        let Some(net) = random_chain(&mut r) else {
            continue;
        };
        let w = WeightSource::Random(21).load(&net).unwrap();
        let x = InputSource::Random(22).load(net.input).unwrap();
        let ops = gpu_common::random_ops(&net, &mut |n| r.next(n));
        let untiled = untiled_on(&net, &w, &x, &ops);
        for residency in Residency::BOTH {
            let config = random_config(&mut r, &net);
            check_ops(g, &net, &w, &x, &untiled, &config, &ops, residency);
        }
        checked += 1;
    }
    let net = model::load("yolov3-tiny", Some((224, 224))).unwrap();
    let w = WeightSource::Random(23).load(&net).unwrap();
    let x = InputSource::Random(24).load(net.input).unwrap();
    let ops = mafat::kernel::select_all(&net).unwrap();
    let untiled = untiled_on(&net, &w, &x, &ops);
    for text in [
        "0..9:4x4,9..14:2x2,14..16:2x2",
        "0..9:3x3,9..14:1x1,14..16:2x1,16..17:1x1,17..18:1x1,18..19:2x2,19..20:1x1,20..21:1x1,21..23:3x3",
    ] {
        let config = Config::parse(text).unwrap();
        for residency in Residency::BOTH {
            check_ops(g, &net, &w, &x, &untiled, &config, &ops, residency);
        }
    }
}

/// yolov2-16 on a 3840x2160 input: untiled, layer 0's output alone (1.06 GB) is past the adapter's
/// storage-binding limit; with a fine first group it runs and matches the CPU reference.
#[test]
fn yolov2_16_at_3840x2160() {
    let Some(g) = gpu_common::gpu("yolov2_16_at_3840x2160") else {
        return;
    };
    let net = model::load("yolov2-16", Some((3840, 2160))).unwrap();
    let limits = g.limits();
    let untiled = Planner::new(&net, &limits).unwrap().plan(
        &Config::untiled(),
        Mode::Layerwise,
        Residency::Resident,
    );
    if net.layers[0].output.bytes() > limits.max_storage_buffer_binding_size {
        let e = untiled.unwrap_err().to_string();
        assert!(e.contains("max_storage_buffer_binding_size"), "{e}");
    }
    let w = WeightSource::Random(3).load(&net).unwrap();
    let x = InputSource::Random(4).load(net.input).unwrap();
    let config = Config::parse("0..8:8x8,8..16:2x2").unwrap();
    let cpu = reference::forward(&net, &w, &x, &net.outputs()).unwrap();
    // The default kernels, then the fastest variant of every layer (Winograd on the 3x3s, the
    // matrix-product 1x1s): each within 1e-4 of the CPU.
    let fast = ["conv2d_winograd", "conv2d_1x1", "maxpool_2x2"];
    let mut fast_ops = mafat::kernel::select_all(&net).unwrap();
    for name in fast {
        let k = mafat::kernel::named(name).unwrap();
        for (i, op) in fast_ops.iter_mut().enumerate() {
            if k.supports(&net, i) {
                *op = Op::Dispatch(k);
            }
        }
    }
    for ops in [mafat::kernel::select_all(&net).unwrap(), fast_ops] {
        let (out, plan, stats) = g
            .run_ops(&net, &w, &x, &ops, &config, Mode::Layerwise)
            .unwrap();
        assert_eq!(stats.peak, plan.peak_bytes());
        let d = gpu_common::max_rel_diff(&out[0], &cpu[0]);
        eprintln!(
            "yolov2-16 3840x2160 {config} on {ops:?}: peak {} B, mac_ratio {:.4}, max rel diff {d:e}",
            plan.peak_bytes(),
            plan.mac_ratio(&net)
        );
        assert!(d <= 1e-4, "relative difference {d}");
    }
}
