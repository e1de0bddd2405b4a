//! Tiling plans without a GPU: the multiply-accumulates a config computes (against an independent
//! count), nothing allocated per tile, and device limits refused before anything runs.

mod chains;

use chains::{Lcg, all_configs, limits, random_chain, random_config};
use mafat::plan::{
    BufferKind, Config, DeviceLimits, Group, ItemKind, Mode, Planner, Residency, geometry::Grid,
};
use mafat::{LayerKind, Network, model};

/// DeepThings' cut of `0..len` into `parts` ceil-sized ranges, written out again.
fn cut(len: usize, parts: usize) -> Vec<(usize, usize)> {
    let step = len.div_ceil(parts);
    (0..parts)
        .map(|i| (i * step, ((i + 1) * step).min(len) - 1))
        .collect()
}

/// The inclusive range of inputs that outputs `lo..=hi` read, enumerated tap by tap.
fn taps(lo: usize, hi: usize, k: usize, s: usize, before: usize, len: usize) -> (usize, usize) {
    let mut seen: Vec<usize> = Vec::new();
    for o in lo..=hi {
        for t in 0..k {
            let i = (o * s + t) as isize - before as isize;
            if i >= 0 && (i as usize) < len {
                seen.push(i as usize);
            }
        }
    }
    (*seen.iter().min().unwrap(), *seen.iter().max().unwrap())
}

/// Multiply-accumulates per output pixel of a layer, from its definition.
fn per_pixel(net: &Network, i: usize) -> u64 {
    let l = &net.layers[i];
    match &l.kind {
        LayerKind::Conv(c) => (c.filters * (l.input.c / c.groups) * c.size * c.size) as u64,
        _ => 0,
    }
}

/// Independent count: every tile's regions traced back by enumerating kernel taps.
fn brute_force_macs(net: &Network, config: &Config) -> u64 {
    let n = net.layers.len();
    let mut groups = config.groups.clone();
    let (first, end) = groups
        .first()
        .map_or((n, n), |g| (g.start, groups.last().unwrap().end));
    groups.extend((0..first).chain(end..n).map(|l| Group {
        start: l,
        end: l + 1,
        grid: Grid { rows: 1, cols: 1 },
    }));
    let mut macs = 0;
    for g in groups {
        let o = net.layers[g.end - 1].output;
        for &(y0, y1) in &cut(o.h, g.grid.rows) {
            for &(x0, x1) in &cut(o.w, g.grid.cols) {
                let (mut rows, mut cols) = ((y0, y1), (x0, x1));
                for i in (g.start..g.end).rev() {
                    let l = &net.layers[i];
                    macs +=
                        ((rows.1 - rows.0 + 1) * (cols.1 - cols.0 + 1)) as u64 * per_pixel(net, i);
                    let (k, s, before) = match &l.kind {
                        LayerKind::Conv(c) => (c.size, c.stride, c.padding),
                        LayerKind::MaxPool(m) => (m.size, m.stride, m.padding / 2),
                        _ => break,
                    };
                    rows = taps(rows.0, rows.1, k, s, before, l.input.h);
                    cols = taps(cols.0, cols.1, k, s, before, l.input.w);
                }
            }
        }
    }
    macs
}

fn check_macs(net: &Network, config: &Config) -> f64 {
    let p = Planner::new(net, &limits())
        .unwrap()
        .plan(config, Mode::Layerwise, Residency::Resident)
        .unwrap();
    let from_dispatches: u64 = p.dispatches().map(|d| d.macs).sum();
    assert_eq!(p.macs, from_dispatches);
    assert_eq!(
        p.macs,
        brute_force_macs(net, config),
        "{} {config}",
        net.name
    );
    p.mac_ratio(net)
}

#[test]
fn mac_ratio_matches_an_independent_count() {
    let net = model::load("yolov2-16", Some((416, 416))).unwrap();
    assert_eq!(check_macs(&net, &Config::untiled()), 1.0);
    for n in 1..=7 {
        let r = check_macs(&net, &Config::single(0, 16, Grid { rows: n, cols: n }));
        assert!(r >= 1.0);
    }
    for text in [
        "0..8:3x3,8..16:2x2",
        "0..4:5x5,4..12:2x3,12..16:1x1",
        "3..9:4x1",
    ] {
        assert!(check_macs(&net, &Config::parse(text).unwrap()) > 1.0);
    }
    let net = model::load("yolov3-tiny", Some((416, 416))).unwrap();
    check_macs(
        &net,
        &Config::parse("0..9:4x4,9..14:2x2,14..16:2x2").unwrap(),
    );
    let mut r = Lcg(7);
    let mut checked = 0;
    while checked < 300 {
        let Some(net) = random_chain(&mut r) else {
            continue;
        };
        let config = random_config(&mut r, &net);
        check_macs(&net, &config);
        checked += 1;
    }
}

/// Tile buffers are sized to the group's largest tile and reused by every tile: the buffer list is
/// the same for every grid (only the parameter blocks grow with the number of dispatches).
#[test]
fn nothing_is_allocated_per_tile() {
    let net = model::load("yolov2-16", Some((416, 416))).unwrap();
    let plans: Vec<_> = (1..=6)
        .map(|n| {
            Planner::new(&net, &limits())
                .unwrap()
                .plan(
                    &Config::single(0, 16, Grid { rows: n, cols: n }),
                    Mode::Layerwise,
                    Residency::Resident,
                )
                .unwrap()
        })
        .collect();
    for (k, p) in plans.iter().enumerate() {
        let tiles = (k + 1) * (k + 1);
        assert_eq!(p.buffers.len(), plans[0].buffers.len());
        assert_eq!(p.items.len(), plans[0].items.len());
        let tile_items: Vec<_> = p
            .items
            .iter()
            .filter(|i| i.kind == ItemKind::Tile)
            .collect();
        assert_eq!(tile_items.len(), 2, "two ping-pong tile buffers");
        assert_eq!(p.groups[0].steps.len(), tiles * 16);
        // Every tile of layer 0 writes the same ping buffer, sized to the largest such tile.
        let ping = tile_items[0];
        let writes: Vec<u64> = p
            .dispatches()
            .filter(|d| d.layer == 0)
            .map(|d| {
                assert_eq!(d.output.offset, ping.offset);
                d.output.bytes()
            })
            .collect();
        assert_eq!(writes.len(), tiles);
        assert_eq!(ping.bytes, *writes.iter().max().unwrap());
    }
    // Finer grids: a smaller arena.
    let arena: Vec<u64> = plans
        .iter()
        .map(|p| p.bytes_of(BufferKind::Arena))
        .collect();
    assert!(arena.windows(2).all(|w| w[1] <= w[0]), "{arena:?}");
    // Naive keeps every map and tile buffer apart; liveness reuse never needs more.
    let c = Config::parse("0..8:3x3,8..16:2x2").unwrap();
    let naive = Planner::new(&net, &limits())
        .unwrap()
        .plan(&c, Mode::Naive, Residency::Resident)
        .unwrap();
    let lw = Planner::new(&net, &limits())
        .unwrap()
        .plan(&c, Mode::Layerwise, Residency::Resident)
        .unwrap();
    assert!(lw.peak_bytes() <= naive.peak_bytes());
    // A chain of groups: the arena is exactly the fullest moment, nothing wasted.
    assert_eq!(lw.live_peak, lw.bytes_of(BufferKind::Arena));
    assert_eq!(lw.breakdown().arena_slack, 0);
}

#[test]
fn device_limits_are_refused_before_running() {
    let net = model::load("yolov2-16", Some((3840, 2160))).unwrap();
    let e = Planner::new(&net, &limits())
        .unwrap()
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)
        .map(|_| ())
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("layer 0's output needs 1061683200 bytes, past the adapter's max_storage_buffer_binding_size"),
        "{e}"
    );
    // Fused over the big maps, it fits.
    let ok = Planner::new(&net, &limits())
        .unwrap()
        .plan(
            &Config::parse("0..8:8x8,8..16:2x2").unwrap(),
            Mode::Layerwise,
            Residency::Resident,
        )
        .unwrap();
    assert!(ok.peak_bytes() < 512 << 20);
    // A group ending on a map too big to bind.
    let e = Planner::new(&net, &limits())
        .unwrap()
        .plan(
            &Config::parse("0..5:8x8,5..16:4x4").unwrap(),
            Mode::Layerwise,
            Residency::Resident,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 4's output needs"), "{e}");
    // A grid too coarse for its tile buffers.
    let e = Planner::new(&net, &limits())
        .unwrap()
        .plan(
            &Config::parse("0..8:1x2,8..16:2x2").unwrap(),
            Mode::Layerwise,
            Residency::Resident,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tile buffer") && e.contains("use a finer grid for that group"),
        "{e}"
    );
    // Workgroups per dimension.
    let small = DeviceLimits {
        max_compute_workgroups_per_dimension: 16,
        ..limits()
    };
    let net = model::load("yolov2-16", Some((160, 160))).unwrap();
    let e = Planner::new(&net, &small)
        .unwrap()
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)
        .map(|_| ())
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("max_compute_workgroups_per_dimension of 16"),
        "{e}"
    );
}

#[test]
fn min_peak_is_the_exhaustive_minimum_on_small_chains() {
    use mafat::plan::search::min_peak_for;
    let mut r = Lcg(99);
    let mut checked = 0;
    while checked < 25 {
        let Some(net) = chains::random_small_chain(&mut r, 3) else {
            continue;
        };
        let lim = DeviceLimits {
            timestamps: r.next(2) == 0,
            min_storage_buffer_offset_alignment: [4, 256][r.next(2)],
            ..limits()
        };
        for residency in [Residency::Resident, Residency::PerGroup] {
            let exhaustive = all_configs(&net, 8)
                .iter()
                .map(|c| {
                    Planner::new(&net, &lim)
                        .unwrap()
                        .plan(c, Mode::Layerwise, residency)
                        .unwrap()
                        .peak_bytes()
                })
                .min()
                .unwrap();
            let (found, config) =
                min_peak_for(&Planner::new(&net, &lim).unwrap(), residency).unwrap();
            assert_eq!(found, exhaustive, "{net:?} {residency:?} {config}");
        }
        checked += 1;
    }
}

#[test]
fn min_peak_of_yolov2_16_beats_every_sampled_config() {
    use mafat::plan::search::min_peak;
    let net = model::load("yolov2-16", Some((608, 608))).unwrap();
    let (min, config, residency) = min_peak(&Planner::new(&net, &limits()).unwrap()).unwrap();
    let p = Planner::new(&net, &limits())
        .unwrap()
        .plan(&config, Mode::Layerwise, residency)
        .unwrap();
    assert_eq!(p.peak_bytes(), min);
    let b = Planner::new(&net, &limits())
        .unwrap()
        .plan(&config, Mode::Layerwise, residency)
        .map(|p| p.breakdown())
        .unwrap();
    assert_eq!(b.peak_bytes, min);
    // The breakdown adds up: weights + maps + tiles + padding + slack make the arena and resident
    // weights, plus parameters and staging.
    assert_eq!(
        b.weights + b.maps + b.tiles + b.alignment_padding + b.arena_slack + b.params + b.staging,
        min
    );
    let untiled = Planner::new(&net, &limits())
        .unwrap()
        .plan(&Config::untiled(), Mode::Layerwise, Residency::Resident)
        .unwrap();
    assert!(
        min < untiled.peak_bytes() / 2,
        "{min} vs {}",
        untiled.peak_bytes()
    );
    let mut r = Lcg(3);
    for _ in 0..300 {
        let c = random_config(&mut r, &net);
        for res in [Residency::Resident, Residency::PerGroup] {
            let peak = Planner::new(&net, &limits())
                .unwrap()
                .plan(&c, Mode::Layerwise, res)
                .map(|p| p.peak_bytes())
                .unwrap_or(u64::MAX);
            assert!(peak >= min, "{c} {res:?}: {peak} < {min} ({config})");
        }
    }
}

/// A kernel whose weights would not fit one storage binding is refused for that layer, and is not
/// a candidate when kernels are chosen: yolov2's layer 29 (1280 → 1024, 3x3) transformed for
/// Winograd F(4x4) is 36 · 1280 · 1024 · 4 bytes, past 128 MiB.
#[test]
fn kernels_whose_weights_pass_the_binding_limit_are_refused() {
    let net = model::load("yolov2", Some((608, 608))).unwrap();
    let f4 = mafat::kernel::named("conv2d_winograd4").unwrap();
    let max = limits().max_storage_buffer_binding_size;
    assert!(f4.weight_bytes(&net, 29) > max);
    let ops = mafat::kernel::pinned(&net, f4).unwrap();
    let e = Planner::with_ops(&net, &limits(), ops)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    let first = (0..net.layers.len())
        .find(|&i| f4.supports(&net, i) && f4.weight_bytes(&net, i) > max)
        .unwrap();
    assert!(
        e.contains(&format!("layer {first}'s weights as conv2d_winograd4 take")),
        "{e}"
    );
    assert!(e.contains("max_storage_buffer_binding_size"), "{e}");
    let caps = mafat::kernel::ShaderCaps {
        subgroups: true,
        fast_workgroup_memory: true,
    };
    let all = mafat::tune::choice::assignments(&net, max, caps, mafat::Precision::F32).unwrap();
    for a in &all {
        Planner::with_ops(&net, &limits(), a.clone()).unwrap();
        assert_ne!(a[29], mafat::kernel::Op::Dispatch(f4));
    }
    assert!(all.iter().any(|a| a[2] == mafat::kernel::Op::Dispatch(f4)));
    // A kernel built around workgroup memory is a candidate only where that memory is fast.
    let gemm = mafat::kernel::Op::Dispatch(mafat::kernel::named("conv2d_gemm").unwrap());
    assert!(all.iter().any(|a| a[2] == gemm));
    let cpu = mafat::kernel::ShaderCaps {
        fast_workgroup_memory: false,
        ..caps
    };
    let all = mafat::tune::choice::assignments(&net, max, cpu, mafat::Precision::F32).unwrap();
    assert!(all.iter().all(|a| a[2] != gemm));
}
