//! Every layer kind and parameter mix on the GPU against the CPU reference, on every kernel variant
//! that can run it: bit-for-bit on `int:` data (for a kernel that reorders the arithmetic, such as
//! Winograd's, where its inputs are integers and its weights multiples of what it needs: 9 for
//! F(4x4) — integer data with the weights scaled by 9 covers it; elsewhere within 1e-5 of the output's
//! absmax), within 1e-4 relative on random floats (Winograd: 1e-5 of the absmax).

mod common;
mod gpu_common;

use mafat::Precision;
use mafat::input::InputSource;
use mafat::model::cfg;
use mafat::model::weights::WeightSource;
use mafat::plan::{Config, Mode};
use mafat::reference;

/// The largest relative difference from the CPU reference on random floats, and where a kernel
/// reorders the arithmetic (Winograd) on non-integer data, the largest difference over the output's
/// absmax. In f16 a stored value that an ordering difference moves across a rounding boundary is
/// one f16 ulp (2^-10 relative) off; Winograd's transformed weights are stored as f16 too, and
/// F(4x4)'s (sixths and their products) carry that rounding into 36 products per tile: worst seen
/// 5.9e-3 of the absmax (a logistic on integer data), 3.7e-3 on a linear conv.
fn bounds(precision: Precision) -> (f32, f32) {
    match precision {
        Precision::F32 => (1e-4, 1e-5),
        Precision::F16 => (2e-3, 1e-2),
    }
}

/// One network per case: `[net]` of the given size, then the layer sections.
fn check(name: &str, w: usize, h: usize, c: usize, layers: &str) {
    let Some(g) = gpu_common::gpu(name) else {
        return;
    };
    check_on(g, name, w, h, c, layers);
    // Maps and weights stored as f16, against the f16 CPU reference.
    if let Some(half) = gpu_common::gpu_f16(name) {
        check_on(half, &format!("{name} (f16)"), w, h, c, layers);
    }
    if g.ctx().subgroups {
        // The portable conv kernel too.
        if let Some(plain) = gpu_common::gpu_without_subgroups(name) {
            assert!(!plain.ctx().subgroups);
            check_on(plain, &format!("{name} (no subgroups)"), w, h, c, layers);
        }
    }
}

fn check_on(g: &gpu_common::Gpu, name: &str, w: usize, h: usize, c: usize, layers: &str) {
    // exp-based functions (logistic, mish, softmax) are the same operations on both sides, but an
    // adapter that fuses multiply-adds rounds the exp polynomial differently: allow 2 ulp there.
    let exp_based = ["logistic", "mish", "swish", "[softmax]"]
        .iter()
        .any(|f| layers.contains(f));
    let max_ulps = if exp_based && gpu_common::contracts_multiply_add(g) {
        2
    } else {
        0
    };
    let text = format!("[net]\nwidth={w}\nheight={h}\nchannels={c}\n{layers}");
    let net = cfg::parse(&text, name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    // Integer data, random floats, and where a kernel is exact only on weights that are multiples
    // of some integer (Winograd F(4x4): 9), integer data with the weights scaled to that.
    let multiple = mafat::kernel::REGISTRY
        .iter()
        .filter(|k| (0..net.layers.len()).any(|i| k.supports(&net, i)))
        .map(|k| k.exact_weight_multiple())
        .max()
        .unwrap_or(1);
    let mut sets = vec![
        (WeightSource::Int(1), 1.0, InputSource::Int(2), true),
        (WeightSource::Random(3), 1.0, InputSource::Random(4), false),
    ];
    if multiple > 1 {
        sets.push((
            WeightSource::Int(1),
            multiple as f32,
            InputSource::Int(2),
            true,
        ));
    }
    for (ws, scale, xs, exact) in sets {
        let weights = gpu_common::scaled_weights(&ws.load(&net).unwrap(), scale);
        let x = xs.load(net.input).unwrap();
        let heads = net.outputs();
        let precision = g.session.precision();
        let cpu = reference::forward_at(&net, &weights, &x, &heads, precision).unwrap();
        let (random_rel, reordered) = bounds(precision);
        // Every kernel variant that can run a layer of the case, on its own.
        let runs = gpu_common::assignments(&net)
            .into_iter()
            .flat_map(|(what, ops)| {
                let modes = match what.as_str() {
                    "default kernels" => vec![Mode::Layerwise, Mode::Naive],
                    _ => vec![Mode::Layerwise],
                };
                modes
                    .into_iter()
                    .map(move |m| (what.clone(), ops.clone(), m))
            });
        for (what, ops, mode) in runs {
            let name = format!("{name} {what}");
            let (out, _, _) = g
                .run_ops(&net, &weights, &x, &ops, &Config::untiled(), mode)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out.len(), cpu.len());
            // A kernel that reorders the arithmetic (Winograd) is exact only where its inputs are
            // integers: elsewhere (after a leaky activation, say) it gets the random-float bound.
            let reordered_exact = gpu_common::reordering_sees_integers(&net, &weights, &x, &ops);
            for (o, c) in out.iter().zip(&cpu) {
                if exact && !reordered_exact {
                    let d = gpu_common::max_diff_over_absmax(o, c);
                    assert!(
                        d <= reordered,
                        "{name} {mode:?} int, reordered on non-integers: {d} of the absmax"
                    );
                } else if exact && max_ulps == 0 {
                    gpu_common::assert_bit_exact(&format!("{name} {mode:?} int"), o, c);
                } else if exact {
                    assert_eq!(o.shape, c.shape, "{name} {mode:?}");
                    let worst = o
                        .data
                        .iter()
                        .zip(&c.data)
                        .map(|(a, b)| gpu_common::ulps(*a, *b))
                        .max();
                    assert!(
                        worst <= Some(max_ulps),
                        "{name} {mode:?} int: {worst:?} ulp apart"
                    );
                } else if !reordered_exact {
                    let d = gpu_common::max_diff_over_absmax(o, c);
                    assert!(
                        d <= reordered,
                        "{name} {mode:?} random, reordered: {d} of the absmax"
                    );
                } else {
                    let d = gpu_common::max_rel_diff(o, c);
                    assert!(
                        d <= random_rel,
                        "{name} {mode:?} random: max relative difference {d}"
                    );
                }
            }
        }
    }
}

fn conv(filters: usize, size: usize, stride: usize, pad: &str, groups: usize, act: &str) -> String {
    format!(
        "[convolutional]\nfilters={filters}\nsize={size}\nstride={stride}\n{pad}\ngroups={groups}\nactivation={act}\n"
    )
}

#[test]
fn conv_kernels_strides_and_padding() {
    for k in [1usize, 3, 5, 7] {
        for s in [1usize, 2] {
            for (pad, label) in [
                ("pad=1", "same"),
                ("padding=0", "valid"),
                ("padding=1", "p1"),
            ] {
                for (w, h) in [(13, 11), (16, 16)] {
                    if w + 2 < k {
                        continue;
                    }
                    let name = format!("conv k{k} s{s} {label} {w}x{h}");
                    check(&name, w, h, 5, &conv(6, k, s, pad, 1, "leaky"));
                }
            }
        }
    }
}

#[test]
fn conv_activations_batchnorm_and_filter_counts() {
    for act in [
        "linear",
        "leaky",
        "relu",
        "logistic",
        "mish",
        "swish",
        "hardsigmoid",
        "hardswish",
    ] {
        check(
            &format!("conv {act}"),
            9,
            7,
            3,
            &conv(8, 3, 1, "pad=1", 1, act),
        );
    }
    for filters in [1usize, 3, 4, 5, 13] {
        check(
            &format!("conv {filters} filters"),
            10,
            9,
            4,
            &format!(
                "[convolutional]\nbatch_normalize=1\nfilters={filters}\nsize=3\npad=1\nactivation=leaky\n"
            ),
        );
    }
}

#[test]
fn grouped_and_depthwise_conv() {
    check(
        "depthwise 3x3",
        12,
        11,
        6,
        &conv(6, 3, 1, "pad=1", 6, "leaky"),
    );
    check(
        "depthwise 3x3 s2",
        12,
        11,
        6,
        &conv(6, 3, 2, "pad=1", 6, "relu"),
    );
    check(
        "groups 2, 2 filters each",
        9,
        9,
        4,
        &conv(4, 3, 1, "pad=1", 2, "linear"),
    );
    check(
        "groups 2, 8 filters each",
        9,
        9,
        4,
        &conv(16, 1, 1, "padding=0", 2, "leaky"),
    );
}

#[test]
fn maxpool_variants() {
    for (size, stride) in [(2usize, 2usize), (2, 1), (3, 2), (3, 1), (5, 1)] {
        for (w, h) in [(13, 13), (16, 12), (7, 9)] {
            check(
                &format!("maxpool {size}x{size}/{stride} on {w}x{h}"),
                w,
                h,
                3,
                &format!("[maxpool]\nsize={size}\nstride={stride}\n"),
            );
        }
    }
    check(
        "maxpool padding=0",
        8,
        8,
        2,
        "[maxpool]\nsize=2\nstride=2\npadding=0\n",
    );
    // A window far larger than the map (Darknet pads by size − 1): only the map's cells count. The
    // kernel once looped over size² cells and returned wrong values (−FLT_MAX) at 65536.
    for size in [40, 10_000, 100_000] {
        check(
            &format!("maxpool {size}x{size}/1 on 9x7"),
            9,
            7,
            2,
            &format!("[maxpool]\nsize={size}\nstride=1\n"),
        );
    }
}

#[test]
fn route_upsample_reorg_shortcut() {
    check(
        "route + upsample",
        10,
        8,
        3,
        &format!(
            "{}[maxpool]\nsize=2\nstride=2\n{}[upsample]\nstride=2\n[route]\nlayers=-1,0\n{}",
            conv(4, 3, 1, "pad=1", 1, "leaky"),
            conv(5, 1, 1, "padding=0", 1, "leaky"),
            conv(3, 3, 1, "pad=1", 1, "linear")
        ),
    );
    check(
        "reorg",
        8,
        6,
        4,
        &format!(
            "{}[reorg]\nstride=2\n{}",
            conv(8, 3, 1, "pad=1", 1, "leaky"),
            conv(4, 1, 1, "padding=0", 1, "linear")
        ),
    );
    check(
        "shortcut",
        9,
        7,
        3,
        &format!(
            "{}{}[shortcut]\nfrom=-2\nactivation=leaky\n",
            conv(4, 3, 1, "pad=1", 1, "leaky"),
            conv(4, 3, 1, "pad=1", 1, "linear")
        ),
    );
    check(
        "shortcut from a larger map",
        8,
        8,
        3,
        &format!(
            "{}{}[shortcut]\nfrom=-2\n",
            conv(4, 3, 1, "pad=1", 1, "leaky"),
            conv(4, 3, 2, "pad=1", 1, "linear")
        ),
    );
    check(
        "upsample scale",
        5,
        4,
        2,
        "[upsample]\nstride=3\nscale=0.5\n",
    );
}

#[test]
fn avgpool_softmax_and_heads() {
    check(
        "avgpool + softmax",
        7,
        5,
        3,
        &format!(
            "{}[avgpool]\n[softmax]\n",
            conv(10, 3, 1, "pad=1", 1, "leaky")
        ),
    );
    check(
        "region head",
        6,
        6,
        3,
        &format!(
            "{}[region]\nclasses=3\ncoords=4\nnum=2\nsoftmax=1\n",
            conv(16, 1, 1, "padding=0", 1, "linear")
        ),
    );
    check(
        "yolo head",
        6,
        6,
        3,
        &format!(
            "{}[yolo]\nclasses=2\nnum=2\nmask=0,1\n",
            conv(14, 1, 1, "padding=0", 1, "linear")
        ),
    );
}

#[test]
fn lavapipe_keeps_multiply_and_add_separate() {
    let Some(g) = gpu_common::gpu("lavapipe_keeps_multiply_and_add_separate") else {
        return;
    };
    if !g.ctx().info.name.contains("llvmpipe") {
        return common_skip_not_lavapipe(&g.ctx().info.name);
    }
    // So the exp-based activations must match the CPU bit for bit there (max_ulps = 0 above).
    assert!(!gpu_common::contracts_multiply_add(g));
}

fn common_skip_not_lavapipe(name: &str) {
    let test = "lavapipe_keeps_multiply_and_add_separate";
    eprintln!("SKIPPED {test}: adapter is {name}, not lavapipe");
    gpu_common::log_skip(test, &format!("adapter is {name}, not lavapipe"));
}
