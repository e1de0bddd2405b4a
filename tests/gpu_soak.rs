//! Repetition: 1000 runs of one prepared network and 200 prepare/run/drop cycles keep the device
//! allocator and the process's resident memory flat, with bit-identical outputs every time.
//!
//! One test in its own binary, so that no other test's allocations move the resident set size.

mod common;

use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use mafat::plan::search::min_peak;
use mafat::plan::{Mode, Residency};
use mafat::{Session, SessionOptions, host};

/// Resident-set growth allowed over the steady phase (after the first runs and cycles have warmed
/// the driver's and allocator's caches): a leak of one 4 KiB page per run would pass it 4×.
const RSS_GROWTH_BOUND: u64 = 1 << 20;

const RUNS: usize = 1000;
const CYCLES: usize = 200;
/// Runs and cycles before the baseline is taken (pipeline caches, allocator blocks, Mesa's own).
const WARM_UP: usize = 20;

#[test]
fn thousand_runs_and_two_hundred_cycles_stay_flat() {
    let test = "thousand_runs_and_two_hundred_cycles_stay_flat";
    let session = match Session::new(&SessionOptions::default()) {
        Ok(s) => s,
        Err(e) => return common::skip(test, &e.to_string()),
    };
    let ctx = session.context();
    let Some(_) = ctx.allocator_bytes() else {
        return common::skip(test, "the backend gives no allocator report");
    };
    let Some(_) = host::rss_bytes() else {
        return common::skip(test, "no /proc/self/status on this platform");
    };
    // A tiled plan at its minimum budget (every kind of buffer: tiles, weights, staging).
    let net = model::load("yolov2-16", Some((64, 48))).unwrap();
    let w = WeightSource::Int(5).load(&net).unwrap();
    let x = InputSource::Int(6).load(net.input).unwrap();
    let planner = session.planner(&net).unwrap();
    let (budget, config, residency) = min_peak(&planner).unwrap();
    assert!(!config.is_untiled());
    let plan = planner.plan(&config, Mode::Layerwise, residency).unwrap();
    let idle = ctx.allocator_bytes().unwrap();

    // 1000 runs on one prepared network.
    let prepared = session
        .prepare(&net, &w, plan.clone(), Some(budget))
        .unwrap();
    let first = prepared.run(&x).unwrap().outputs;
    let mut base = None;
    for k in 1..RUNS {
        let out = prepared.run(&x).unwrap().outputs;
        assert!(mafat::session::bit_identical(&out, &first), "run {k}");
        if k == WARM_UP {
            base = Some((ctx.allocator_bytes().unwrap(), host::rss_bytes().unwrap()));
        }
    }
    let (alloc0, rss0) = base.unwrap();
    let (alloc1, rss1) = (ctx.allocator_bytes().unwrap(), host::rss_bytes().unwrap());
    assert_eq!(prepared.pool_stats().peak, budget);
    drop(prepared);
    eprintln!(
        "{RUNS} runs: allocator (allocated, reserved) {alloc0:?} -> {alloc1:?}; RSS {rss0} -> {rss1} B ({:+} B)",
        rss1 as i64 - rss0 as i64
    );
    assert_eq!(alloc1, alloc0, "the allocator grew over {RUNS} runs");
    assert!(
        rss1 <= rss0 + RSS_GROWTH_BOUND,
        "RSS grew {} B over {RUNS} runs (bound {RSS_GROWTH_BOUND})",
        rss1 - rss0
    );

    // 200 prepare/run/drop cycles, alternating both residencies (each leaves the host allocator
    // at its own level, so levels are compared over pairs); the allocator returns to idle.
    let mut rss = Vec::with_capacity(CYCLES);
    let mut alloc0 = None;
    for k in 0..CYCLES {
        let res = if k % 2 == 0 {
            residency
        } else {
            match residency {
                Residency::Resident => Residency::PerGroup,
                Residency::PerGroup => Residency::Resident,
            }
        };
        let plan = planner.plan(&config, Mode::Layerwise, res).unwrap();
        let p = session.prepare(&net, &w, plan, None).unwrap();
        let out = p.run(&x).unwrap().outputs;
        assert!(mafat::session::bit_identical(&out, &first), "cycle {k}");
        drop(p);
        rss.push(host::rss_bytes().unwrap());
        if k == WARM_UP {
            alloc0 = Some(ctx.allocator_bytes().unwrap());
        }
    }
    let alloc0 = alloc0.unwrap();
    let alloc1 = ctx.allocator_bytes().unwrap();
    let rss0 = rss[WARM_UP].max(rss[WARM_UP + 1]);
    let rss1 = rss[CYCLES - 2].max(rss[CYCLES - 1]);
    let steady = &rss[WARM_UP..];
    eprintln!(
        "{CYCLES} cycles: allocator idle {idle:?}, after warm-up {alloc0:?} -> {alloc1:?}; RSS {rss0} -> {rss1} B ({:+} B; {}..{} B after warm-up)",
        rss1 as i64 - rss0 as i64,
        steady.iter().min().unwrap(),
        steady.iter().max().unwrap()
    );
    assert_eq!(alloc1, alloc0, "the allocator grew over {CYCLES} cycles");
    assert!(
        alloc1.0 <= idle.0,
        "buffers left allocated after every prepared network dropped: {} B, {} B before any",
        alloc1.0,
        idle.0
    );
    assert!(
        rss1 <= rss0 + RSS_GROWTH_BOUND,
        "RSS grew {} B over {CYCLES} cycles (bound {RSS_GROWTH_BOUND})",
        rss1 - rss0
    );
}
