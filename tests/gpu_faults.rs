//! Faults and sharing: two threads running two budgeted networks on one device, a device destroyed
//! under a prepared network, a device without timestamps (the wall-clock timing path), and wgpu
//! errors kept to the thread that caused them.
//!
//! Each test opens its own device, so a destroyed device or a deliberate error stays in its test.

mod common;
mod gpu_common;

use mafat::gpu::executor::Timing;
use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use mafat::plan::search::min_peak;
use mafat::plan::{Config, Mode, Residency};
use mafat::{Network, Session, SessionOptions};

fn session(test: &str) -> Option<Session> {
    match Session::new(&SessionOptions::default()) {
        Ok(s) => Some(s),
        Err(e) => {
            common::skip(test, &e.to_string());
            None
        }
    }
}

/// Two threads, two networks, two budgets, one device: each network stays inside its own budget
/// and equals the CPU reference bit for bit on every frame while the other runs.
#[test]
fn two_threads_keep_two_budgets_on_one_device() {
    let Some(s) = session("two_threads_keep_two_budgets_on_one_device") else {
        return;
    };
    let nets: Vec<Network> = vec![
        model::load("yolov2-16", Some((64, 48))).unwrap(),
        model::load("yolov2-tiny", Some((64, 64))).unwrap(),
    ];
    std::thread::scope(|scope| {
        let handles: Vec<_> = nets
            .iter()
            .enumerate()
            .map(|(k, net)| {
                let s = s.clone();
                scope.spawn(move || {
                    let w = WeightSource::Int(10 + k as u64).load(net).unwrap();
                    let planner = s.planner(net).unwrap();
                    let (budget, config, residency) = min_peak(&planner).unwrap();
                    let plan = planner.plan(&config, Mode::Layerwise, residency).unwrap();
                    let prepared = s.prepare(net, &w, plan, Some(budget)).unwrap();
                    for frame in 0..4 {
                        let x = InputSource::Int(frame).load(net.input).unwrap();
                        let cpu = mafat::reference::forward(net, &w, &x, &net.outputs()).unwrap();
                        let out = prepared.run(&x).unwrap();
                        assert_eq!(out.outputs.len(), cpu.len());
                        for (g, c) in out.outputs.iter().zip(&cpu) {
                            gpu_common::assert_bit_exact(
                                &format!("{} frame {frame}", net.name),
                                g,
                                c,
                            );
                        }
                        s.context().check("the other thread's run").unwrap();
                    }
                    let stats = prepared.pool_stats();
                    assert_eq!(stats.peak, budget, "{}", net.name);
                    budget
                })
            })
            .collect();
        let budgets: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_ne!(budgets[0], budgets[1], "two different budgets");
    });
}

/// A device destroyed under a prepared network: running it, preparing another and the untiled run
/// all return an error, none hangs or panics.
#[test]
fn a_destroyed_device_gives_errors_not_hangs() {
    let Some(s) = session("a_destroyed_device_gives_errors_not_hangs") else {
        return;
    };
    let net = model::load("yolov2-16", Some((64, 48))).unwrap();
    let w = WeightSource::Int(1).load(&net).unwrap();
    let x = InputSource::Int(2).load(net.input).unwrap();
    let plan = s
        .plan(
            &net,
            &Config::untiled(),
            Mode::Layerwise,
            Residency::Resident,
        )
        .unwrap();
    let prepared = s.prepare(&net, &w, plan.clone(), None).unwrap();
    prepared.run(&x).unwrap();
    s.context().device.destroy();
    let e = prepared
        .run(&x)
        .expect_err("a run on a destroyed device fails");
    eprintln!("run: {e}");
    assert!(matches!(e, mafat::Error::Gpu { .. }), "{e:?}");
    let e = s
        .prepare(&net, &w, plan, None)
        .err()
        .expect("preparing on a destroyed device fails");
    eprintln!("prepare: {e}");
    let e = s
        .run_untiled(&net, &w, &x)
        .expect_err("the untiled run on a destroyed device fails");
    eprintln!("untiled: {e}");
    drop(prepared);
}

/// A device without timestamp queries: the planner reserves no timestamp buffers, runs are timed by
/// the wall clock (whole and per group), and the outputs are the same as with timestamps.
#[test]
fn without_timestamps_runs_are_timed_by_the_wall_clock() {
    let test = "without_timestamps_runs_are_timed_by_the_wall_clock";
    let Some(with) = session(test) else {
        return;
    };
    let Some((device, queue)) = gpu_common::callers_device(wgpu::Features::empty()) else {
        return common::skip(test, "no GPU adapter");
    };
    let without = Session::from_device(device, queue, &SessionOptions::default());
    assert!(!without.context().timestamps);
    let net = model::load("yolov2-16", Some((64, 48))).unwrap();
    let w = WeightSource::Random(3).load(&net).unwrap();
    let x = InputSource::Random(4).load(net.input).unwrap();
    let planner = without.planner(&net).unwrap();
    let (budget, config, residency) = min_peak(&planner).unwrap();
    let plan = planner.plan(&config, Mode::Layerwise, residency).unwrap();
    assert!(
        !plan
            .buffers
            .iter()
            .any(|b| b.kind == mafat::plan::BufferKind::TimestampResolve),
        "a timestamp buffer on a device without timestamps"
    );
    let prepared = without.prepare(&net, &w, plan, Some(budget)).unwrap();
    let out = prepared.run(&x).unwrap();
    assert_eq!(out.timing, Timing::WallClock);
    assert!(out.compute_ms > 0.0);
    let groups = prepared.run_timing_groups(&x).unwrap();
    assert_eq!(groups.timing, Timing::WallClock);
    // One time per group, the groups in order covering every layer.
    let ends: Vec<(usize, usize)> = groups
        .group_ms
        .iter()
        .map(|(r, _)| (r.start, r.end))
        .collect();
    assert_eq!(ends.first().map(|e| e.0), Some(0), "{ends:?}");
    assert_eq!(ends.last().map(|e| e.1), Some(net.layers.len()), "{ends:?}");
    assert!(ends.windows(2).all(|w| w[0].1 == w[1].0), "{ends:?}");
    assert!(
        groups.group_ms.iter().all(|(_, ms)| *ms > 0.0),
        "{:?}",
        groups.group_ms
    );
    assert_eq!(prepared.pool_stats().peak, budget);
    // The same plan where timestamps exist (if they do) computes the same bits.
    let plan = with
        .planner(&net)
        .unwrap()
        .plan(&config, Mode::Layerwise, residency)
        .unwrap();
    let timed = with.prepare(&net, &w, plan, None).unwrap().run(&x).unwrap();
    assert!(mafat::session::bit_identical(&timed.outputs, &out.outputs));
    assert!(mafat::session::bit_identical(&groups.outputs, &out.outputs));
}

/// A wgpu error outside any error scope is reported to the thread whose call caused it, not to
/// another thread sharing the device (two tests, or an app's two threads).
#[test]
fn an_uncaptured_error_stays_with_its_thread() {
    let Some(s) = session("an_uncaptured_error_stays_with_its_thread") else {
        return;
    };
    let ctx = s.context();
    ctx.check("before").unwrap();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // MAP_READ with STORAGE is invalid: an uncaptured validation error on this thread.
                let _bad = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("invalid on purpose"),
                    size: 16,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                });
                scope
                    .spawn(|| {
                        ctx.check("another thread")
                            .expect("not this thread's error")
                    })
                    .join()
                    .unwrap();
                let e = ctx.check("the thread that caused it").unwrap_err();
                assert!(e.to_string().contains("invalid on purpose"), "{e}");
                ctx.check("after it was reported").unwrap();
            })
            .join()
            .unwrap();
    });
    ctx.check("the main thread").unwrap();
}
