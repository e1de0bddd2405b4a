//! Whole networks on the GPU in both untiled modes: agreement with the CPU reference, exact memory
//! accounting (pool peak == plan), layerwise ≤ naive, budgets and device limits as errors.

mod common;
mod gpu_common;

use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use mafat::plan::{Config, DeviceLimits, Mode, Planner, Residency};
use mafat::{Error, reference};

fn check_network(name: &str, size: (usize, usize)) {
    let Some(g) = gpu_common::gpu(name) else {
        return;
    };
    let net = model::load(name, Some(size)).unwrap();
    let heads = net.outputs();
    let mut peaks = Vec::new();
    for (ws, xs, exact) in [
        (WeightSource::Int(5), InputSource::Int(6), true),
        (WeightSource::Random(7), InputSource::Random(8), false),
    ] {
        let weights = ws.load(&net).unwrap();
        let x = xs.load(net.input).unwrap();
        let cpu = reference::forward(&net, &weights, &x, &heads).unwrap();
        for mode in [Mode::Layerwise, Mode::Naive] {
            let (out, plan, stats) = g.run(&net, &weights, &x, mode, None).unwrap();
            // Every byte the pool held is in the plan, and nothing else.
            assert_eq!(
                stats.peak,
                plan.peak_bytes(),
                "{name} {mode:?}: pool peak vs plan"
            );
            // Released buffers stay held for reuse; nothing beyond the plan was ever created.
            assert_eq!(stats.held, plan.peak_bytes(), "{name}");
            assert!(plan.bytes_of(mafat::plan::memory::BufferKind::Arena) >= plan.live_peak);
            peaks.push((mode, stats.peak));
            assert_eq!(out.len(), cpu.len(), "{name}");
            for (o, c) in out.iter().zip(&cpu) {
                if exact {
                    // Same order of operations on both sides: identical bits.
                    gpu_common::assert_bit_exact(&format!("{name} {mode:?} int"), o, c);
                } else {
                    // Random floats: the same order of operations too, but an adapter may contract
                    // a·b + c into one rounding (FMA); 1e-4 relative covers that over these depths.
                    let d = gpu_common::max_rel_diff(o, c);
                    assert!(d <= 1e-4, "{name} {mode:?}: relative difference {d}");
                }
            }
        }
    }
    let layerwise = peaks.iter().find(|p| p.0 == Mode::Layerwise).unwrap().1;
    let naive = peaks.iter().find(|p| p.0 == Mode::Naive).unwrap().1;
    assert!(
        layerwise <= naive,
        "{name}: layerwise {layerwise} > naive {naive}"
    );
}

#[test]
fn yolov2_16_at_160() {
    check_network("yolov2-16", (160, 160));
}

#[test]
fn yolov2_tiny() {
    check_network("yolov2-tiny", (160, 160));
}

#[test]
fn yolov3_tiny() {
    check_network("yolov3-tiny", (128, 128));
}

#[test]
fn full_yolov2_with_route_and_reorg() {
    check_network("yolov2", (128, 128));
}

/// Adapter limits for planning without a GPU.
fn limits(max_buffer_size: u64, max_storage_buffer_binding_size: u64) -> DeviceLimits {
    DeviceLimits {
        max_buffer_size,
        max_storage_buffer_binding_size,
        min_uniform_buffer_offset_alignment: 256,
        min_storage_buffer_offset_alignment: 256,
        max_compute_workgroups_per_dimension: 65535,
        timestamps: false,
    }
}

#[test]
fn layerwise_reuses_buffers_and_naive_does_not() {
    let limits = limits(1 << 40, 1 << 40);
    let net = model::load("yolov2-16", None).unwrap();
    let lw = Planner::new(&net, &limits)
        .unwrap()
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)
        .unwrap();
    let nv = Planner::new(&net, &limits)
        .unwrap()
        .plan(&Config::untiled(), Mode::Naive, Residency::Resident)
        .unwrap();
    let arena = mafat::plan::memory::BufferKind::Arena;
    // Naive: input + 16 layer outputs, each its own space (all multiples of 256 bytes here).
    let all: u64 = net.input.bytes() + net.layers.iter().map(|l| l.output.bytes()).sum::<u64>();
    assert_eq!(nv.bytes_of(arena), all);
    // Layerwise at 608x608: layer 0's output (608·608·32·4 B) plus layer 1's (304·304·32·4 B) is the
    // largest pair alive at once, and the arena is exactly that.
    assert_eq!(lw.live_peak, 608 * 608 * 32 * 4 + 304 * 304 * 32 * 4);
    assert_eq!(lw.bytes_of(arena), lw.live_peak);
    assert!(lw.peak_bytes() < nv.peak_bytes());
    assert_eq!(
        lw.bytes_of(mafat::plan::memory::BufferKind::Weights),
        nv.bytes_of(mafat::plan::memory::BufferKind::Weights)
    );
}

#[test]
fn budget_overflow_is_an_error_not_a_panic() {
    let Some(g) = gpu_common::gpu("budget_overflow_is_an_error_not_a_panic") else {
        return;
    };
    let net = model::load("yolov2-tiny", Some((96, 96))).unwrap();
    let weights = WeightSource::Random(1).load(&net).unwrap();
    let x = InputSource::Random(1).load(net.input).unwrap();
    let plan = g
        .planner(&net)
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)
        .unwrap();
    let need = plan.peak_bytes();
    // One byte short: the pool refuses the allocation that would pass the budget.
    match g.run(&net, &weights, &x, Mode::Layerwise, Some(need - 1)) {
        Err(Error::Budget {
            budget,
            request,
            held,
            ..
        }) => {
            assert_eq!(budget, need - 1);
            assert!(held + request > budget && held <= budget);
        }
        other => panic!("expected a budget error, got {:?}", other.map(|r| r.2)),
    }
    // Exactly enough: runs, and the pool peak is the budget.
    let (_, _, stats) = g
        .run(&net, &weights, &x, Mode::Layerwise, Some(need))
        .unwrap();
    assert_eq!(stats.peak, need);
}

#[test]
fn maps_past_the_binding_limit_are_refused_before_running() {
    let limits = limits(1 << 31, 128 << 20);
    // Layer 0 of yolov2-16 at 1280x1280 is 1280·1280·32·4 B = 200 MiB.
    let net = model::load("yolov2-16", Some((1280, 1280))).unwrap();
    let e = Planner::new(&net, &limits)
        .unwrap()
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer 0's output") && e.contains("max_storage_buffer_binding_size"),
        "{e}"
    );
}

#[test]
fn the_pool_recycles_instead_of_recreating() {
    let Some(g) = gpu_common::gpu("the_pool_recycles_instead_of_recreating") else {
        return;
    };
    use wgpu::BufferUsages as U;
    let mut pool = mafat::gpu::BufferPool::new(Some(3 << 20));
    let usage = U::STORAGE | U::COPY_DST;
    let a = pool.acquire(g.ctx(), 1 << 20, usage, "a").unwrap();
    let b = pool.acquire(g.ctx(), 1 << 20, usage, "b").unwrap();
    pool.release(a);
    // The idle buffer of the same size and usage is handed out again.
    let c = pool.acquire(g.ctx(), 1 << 20, usage, "c").unwrap();
    let stats = pool.stats();
    assert_eq!((stats.created, stats.reused), (2, 1));
    assert_eq!(
        (stats.in_use, stats.held, stats.peak),
        (2 << 20, 2 << 20, 2 << 20)
    );
    // Past the budget: refused, naming the buffer, with nothing allocated.
    pool.release(b);
    let e = pool
        .acquire(g.ctx(), 3 << 20, usage, "big")
        .unwrap_err()
        .to_string();
    assert!(e.contains("big") && e.contains("budget"), "{e}");
    pool.release(c);
    pool.trim();
    assert_eq!(pool.stats().held, 0);
}

#[test]
fn huge_maps_stay_within_the_workgroup_limit_per_dimension() {
    let limits = limits(1 << 40, 1 << 40);
    // Layer 0 of yolov2-16 at 8192x8192: 1024 runs of 8 pixels × 8192 rows = 131,072 workgroups of
    // 64 — over 65,535 in one dimension, so the conv spreads them over x and y.
    let net = model::load("yolov2-16", Some((8192, 8192))).unwrap();
    Planner::new(&net, &limits)
        .unwrap()
        .plan(&Config::untiled(), Mode::Naive, Residency::Resident)
        .unwrap();
    let conv = mafat::kernel::select(&net, 0).unwrap().kernel().unwrap();
    let wg = conv.workgroups(&mafat::kernel::Work::untiled(&net, 0, conv)[0], 0);
    assert!(wg.iter().all(|&d| d <= 65535), "{wg:?}");
    assert!(wg[0] as u64 * wg[1] as u64 * 64 >= 1024 * 8192);
}

/// A network that cannot run untiled on the adapter (a map past its binding limit) cannot have its
/// kernels timed: the tuned choice is the default kernels, said as such, and tiled runs go on.
#[test]
fn kernels_of_a_network_too_big_to_run_untiled_are_the_defaults() {
    let Some(g) = gpu_common::gpu("kernels_of_a_network_too_big_to_run_untiled") else {
        return;
    };
    let limit = g.limits().max_storage_buffer_binding_size as usize;
    // One 3x3 conv whose 32-channel output is past the binding limit.
    let w = 2048;
    let h = (limit / (4 * 32 * w)) + 16;
    let text = format!(
        "[net]\nwidth={w}\nheight={h}\nchannels=3\n[convolutional]\nfilters=32\nsize=3\nstride=1\npad=1\nactivation=leaky\n[maxpool]\nsize=2\nstride=2\n"
    );
    let net = mafat::model::cfg::parse(&text, "too big", None).unwrap();
    let choice = mafat::tune::choice::measure_choice(&g.session, &net, &mut |_| {}).unwrap();
    assert_eq!(choice.timing, "none");
    assert_eq!(
        choice.ops(&net).unwrap(),
        mafat::kernel::select_all(&net).unwrap()
    );
    assert!(choice.layers.iter().all(|l| l.candidates.is_empty()));
}
