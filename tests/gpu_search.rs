//! Calibrate on the adapter, search for budgets from the minimum to unconstrained, and run each pick:
//! the measured peak equals the predicted one and fits the budget, and the output equals the untiled
//! run's bit for bit.

mod common;
mod gpu_common;

use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use mafat::plan::search::min_peak;
use mafat::plan::{Config, Mode, fastest};
use mafat::tune::{KernelPolicy, Progress, calibrate};

#[test]
fn search_picks_run_within_their_budgets_and_bit_exact() {
    let Some(g) = gpu_common::gpu("search_picks_run_within_their_budgets") else {
        return;
    };
    for (name, size) in [("yolov2-16", (96, 96)), ("yolov2-tiny", (64, 96))] {
        let net = model::load(name, Some(size)).unwrap();
        let mut steps = Vec::new();
        let cost = calibrate(&g.session, &net, KernelPolicy::Tuned, &mut |p: Progress<
            '_,
        >| {
            steps.push((p.done, p.total))
        })
        .unwrap();
        // Progress went from 0 to done, one step at a time.
        assert_eq!(steps.first().map(|s| s.0), Some(0));
        assert!(steps.last().is_some_and(|s| s.0 == s.1), "{steps:?}");
        cost.validate(&net).unwrap();
        // Every layer the GPU runs got positive times (heads run on the CPU: none).
        for l in &cost.layers {
            let gpu = !mafat::kernel::is_cpu_head(&net.layers[l.layer].kind);
            assert_eq!(!l.points.is_empty(), gpu, "layer {}", l.layer);
            assert!(l.points.iter().all(|p| p.ms > 0.0 && p.invocations > 0.0));
        }
        assert!(cost.layers[0].points.len() >= 3, "{:?}", cost.layers[0]);

        // The search runs on the kernels the calibration chose; untiled on the same ones.
        let ops = cost.ops(&net).unwrap();
        let planner = mafat::plan::Planner::with_ops(&net, &g.limits(), ops.clone()).unwrap();
        let w = WeightSource::Int(1).load(&net).unwrap();
        let x = InputSource::Int(2).load(net.input).unwrap();
        let untiled = g.session.run_untiled_on(&net, &w, &x, ops.clone()).unwrap();
        let (min, _, _) = min_peak(&planner).unwrap();
        let top = planner
            .plan(
                &Config::untiled(),
                Mode::Layerwise,
                mafat::plan::Residency::Resident,
            )
            .unwrap()
            .peak_bytes();
        for k in 0..5 {
            let budget = min + (top - min) * k / 4;
            let choice = fastest(&planner, budget, &cost).unwrap();
            assert!(choice.peak_bytes <= budget);
            let plan = planner
                .plan(&choice.config, Mode::Layerwise, choice.residency)
                .unwrap();
            let (out, _, stats) = g.run_plan(&net, &w, &x, plan, Some(budget)).unwrap();
            assert_eq!(stats.peak, choice.peak_bytes, "{name} {}", choice.config);
            assert_eq!(out.len(), untiled.len());
            for (a, b) in out.iter().zip(&untiled) {
                gpu_common::assert_bit_exact(&format!("{name} {}", choice.config), a, b);
            }
        }
    }
}
