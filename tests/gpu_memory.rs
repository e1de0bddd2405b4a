//! The memory predictor is exact, storing f32 and f16: for randomized configurations over yolov2-16,
//! yolov2-tiny and random
//! conv/pool chains, under both weight-residency policies, the pool's measured peak equals the plan's
//! predicted peak to the byte — and the output still equals the untiled run's bit for bit.

mod chains;
mod common;
mod gpu_common;

use chains::{Lcg, random_chain, random_config};
use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use mafat::plan::{BufferKind, Config, Mode, Residency};
use mafat::{Network, Tensor};

#[test]
fn predicted_peak_equals_measured_peak_over_random_configs() {
    let Some(g) = gpu_common::gpu("predicted_peak_equals_measured_peak") else {
        return;
    };
    predicted_equals_measured(g, 23, 400);
}

/// The same with maps and weights stored as f16 (random floats: integer data deep in a network
/// passes f16's largest value).
#[test]
fn f16_predicted_peak_equals_measured_peak_over_random_configs() {
    let Some(g) = gpu_common::gpu_f16("f16_predicted_peak_equals_measured_peak") else {
        return;
    };
    predicted_equals_measured(g, 13, 200);
}

/// Over the three backbones and random chains up to `networks` networks, 10 configurations each
/// under both residencies: at least `at_least` runs checked.
fn predicted_equals_measured(g: &gpu_common::Gpu, networks: usize, at_least: usize) {
    let f16 = g.session.precision() == mafat::Precision::F16;
    let mut r = Lcg(5);
    let mut nets: Vec<Network> = vec![
        model::load("yolov2-16", Some((96, 96))).unwrap(),
        model::load("yolov2-16", Some((128, 160))).unwrap(),
        model::load("yolov2-tiny", Some((128, 128))).unwrap(),
    ];
    while nets.len() < networks {
        if let Some(n) = random_chain(&mut r) {
            nets.push(n);
        }
    }
    let mut checked = 0;
    for (k, net) in nets.iter().enumerate() {
        let (w, x) = match f16 {
            false => (WeightSource::Int(1), InputSource::Int(2)),
            true => (WeightSource::Random(1), InputSource::Random(2)),
        };
        let (w, x) = (w.load(net).unwrap(), x.load(net.input).unwrap());
        // Every other network on a kernel variant per layer drawn at random (Winograd's workspace
        // and transformed weights are part of the plan).
        let ops = match k % 2 {
            0 => mafat::kernel::select_all(net).unwrap(),
            _ => gpu_common::random_ops(net, &mut |n| r.next(n)),
        };
        let planner = g.session.planner_on(net, ops.clone()).unwrap();
        let (untiled, _, _) = g
            .run_ops(net, &w, &x, &ops, &Config::untiled(), Mode::Layerwise)
            .unwrap();
        // 10 configs per network (the first untiled), each under both residencies.
        for c in 0..10 {
            let config = if c == 0 {
                Config::untiled()
            } else if k < 3 && net.layers.len() > 14 {
                // The backbones: cut their conv/pool prefix (the tiny head's region layer stays untiled).
                let end = if net.layers.len() == 16 && net.name.contains("tiny") {
                    15
                } else {
                    16
                };
                random_config(&mut r, &chain_prefix(net, end))
            } else {
                random_config(&mut r, net)
            };
            for residency in [Residency::Resident, Residency::PerGroup] {
                let plan = planner
                    .plan(&config, Mode::Layerwise, residency)
                    .unwrap_or_else(|e| panic!("{} {config}: {e}", net.name));
                let predicted = plan.peak_bytes();
                let (out, plan, stats) = g
                    .run_plan(net, &w, &x, plan, None)
                    .unwrap_or_else(|e| panic!("{} {config} {residency:?}: {e}", net.name));
                assert_eq!(
                    stats.peak, predicted,
                    "{} {config} {residency:?}: measured vs predicted",
                    net.name
                );
                let b = plan.breakdown();
                match residency {
                    Residency::Resident => {
                        assert_eq!(b.weights, plan.bytes_of(BufferKind::Weights))
                    }
                    Residency::PerGroup => assert_eq!(plan.bytes_of(BufferKind::Weights), 0),
                }
                assert_eq!(out.len(), untiled.len());
                for (o, u) in out.iter().zip(&untiled) {
                    gpu_common::assert_bit_exact(
                        &format!("{} {config} {residency:?}", net.name),
                        o,
                        u,
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= at_least, "{checked}");
}

/// The first `end` layers of a network (for random configs over a backbone).
fn chain_prefix(net: &Network, end: usize) -> Network {
    let mut n = net.clone();
    n.layers.truncate(end);
    n
}

/// Per-group residency holds less (the largest group's weights instead of all of them) and gives the
/// same output.
#[test]
fn per_group_residency_holds_less() {
    let Some(g) = gpu_common::gpu("per_group_residency_holds_less") else {
        return;
    };
    let net = model::load("yolov2-16", Some((160, 160))).unwrap();
    let w = WeightSource::Random(1).load(&net).unwrap();
    let x: Tensor = InputSource::Random(2).load(net.input).unwrap();
    let config = Config::parse("0..8:2x2,8..12:1x1,12..16:1x1").unwrap();
    let resident = g
        .planner(&net)
        .plan(&config, Mode::Layerwise, Residency::Resident)
        .unwrap();
    let per_group = g
        .planner(&net)
        .plan(&config, Mode::Layerwise, Residency::PerGroup)
        .unwrap();
    assert!(per_group.peak_bytes() < resident.peak_bytes());
    let (a, _, sa) = g.run_plan(&net, &w, &x, resident, None).unwrap();
    let (b, _, sb) = g.run_plan(&net, &w, &x, per_group, None).unwrap();
    assert!(sb.peak < sa.peak);
    gpu_common::assert_bit_exact("per-group vs resident", &b[0], &a[0]);
}
