//! An application that already renders with wgpu shares its device with mafat: it opens the device
//! itself, keeps its own buffers on it (here a frame buffer it writes every frame and a small
//! uniform it never lets mafat touch), hands the device to a mafat `Session`, and runs a network
//! under a budget on a video-like sequence of frames, printing latency percentiles.
//!
//! `cargo run --release --example shared_device -- [MODEL] [WxH] [FRAMES] [BUDGET]`
//! (defaults: yolov2-16 224x224, 100 frames, 60 % of the untiled peak; the first run calibrates
//! the latency model for the budget search and caches it).

use mafat::plan::{Config, Mode, Residency};
use mafat::{BudgetOptions, Session, SessionOptions, Shape, Tensor, model, units};
use std::time::Instant;

/// Frame `k` of a synthetic video: a bright square sliding over a slowly changing gradient.
fn frame(shape: Shape, k: usize) -> Tensor {
    let mut t = Tensor::zeros(shape);
    let side = shape.h.min(shape.w) / 4;
    let (x0, y0) = ((k * 3) % (shape.w - side), (k * 2) % (shape.h - side));
    for c in 0..shape.c {
        for y in 0..shape.h {
            for x in 0..shape.w {
                let inside = (x0..x0 + side).contains(&x) && (y0..y0 + side).contains(&y);
                let g = (x + y + k + c * 17) as f32 / (shape.w + shape.h) as f32;
                t.data[(c * shape.h + y) * shape.w + x] =
                    if inside { 1.0 } else { g.fract() * 0.5 };
            }
        }
    }
    t
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> mafat::Result<()> {
    let arg = |k: usize| std::env::args().nth(k);
    let net = model::load(
        &arg(1).unwrap_or_else(|| "yolov2-16".into()),
        Some(model::parse_size(
            &arg(2).unwrap_or_else(|| "224x224".into()),
        )?),
    )?;
    let frames: usize = arg(3).and_then(|f| f.parse().ok()).unwrap_or(100).max(1);

    // The application's own device and buffers.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .map_err(|e| mafat::Error::NoAdapter(format!("no adapter: {e}")))?;
    // Timestamps and subgroups where the adapter has them (mafat uses what the device was opened with).
    let features =
        adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP);
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("the app's device"),
        required_features: features,
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .map_err(|e| mafat::Error::NoAdapter(format!("cannot open the device: {e}")))?;
    let frame_bytes = net.input.bytes();
    let app_frame = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app frame"),
        size: frame_bytes,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let app_marker = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app marker"),
        size: 16,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    queue.write_buffer(&app_marker, 0, bytemuck::cast_slice(&[1u32, 2, 3, 4]));

    // mafat on the same device, under a budget.
    let session = Session::from_device(device.clone(), queue.clone(), &SessionOptions::default());
    let untiled = session
        .plan(
            &net,
            &Config::untiled(),
            Mode::Layerwise,
            Residency::Resident,
        )?
        .peak_bytes();
    let budget = match arg(4) {
        Some(b) => units::parse_bytes(&b)?,
        None => untiled * 6 / 10,
    };
    let weights = model::weights::WeightSource::Random(0).load(&net)?;
    let planned = session.plan_for_budget(&net, budget, &BudgetOptions::default(), &mut |_| {})?;
    let prepared = session.prepare(&net, &weights, planned.plan, Some(budget))?;
    println!(
        "{} {}x{} on {} (the app's device): --groups {} --residency {}, peak {} of budget {} (untiled {})",
        net.name,
        net.input.w,
        net.input.h,
        session.adapter_name(),
        planned.choice.config,
        planned.choice.residency.as_str(),
        units::human(planned.choice.peak_bytes),
        units::human(budget),
        units::human(untiled)
    );

    let mut wall = Vec::with_capacity(frames);
    let mut gpu = Vec::with_capacity(frames);
    prepared.run(&frame(net.input, 0))?; // warm-up: the first dispatches compile shaders
    for k in 0..frames {
        let x = frame(net.input, k);
        queue.write_buffer(&app_frame, 0, bytemuck::cast_slice(&x.data)); // the app's own work
        let t0 = Instant::now();
        let out = prepared.run(&x)?;
        wall.push(t0.elapsed().as_secs_f64() * 1e3);
        gpu.push(out.compute_ms);
    }
    // The app's buffers are untouched by mafat.
    let slice = app_marker.slice(..);
    slice.map_async(wgpu::MapMode::Read, |_| {});
    let _ = device.poll(wgpu::PollType::wait_indefinitely());
    let marker: Vec<u32> =
        bytemuck::pod_collect_to_vec(&slice.get_mapped_range().map_err(|e| mafat::Error::Gpu {
            during: "reading the app's buffer".into(),
            message: e.to_string(),
        })?);
    assert_eq!(
        marker,
        [1, 2, 3, 4],
        "mafat must not touch the app's buffers"
    );
    wall.sort_by(f64::total_cmp);
    gpu.sort_by(f64::total_cmp);
    let pool = prepared.pool_stats();
    println!(
        "{frames} frames: per-frame latency (upload + compute + readback) p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms; compute p50 {:.1} ms ({}); device memory peak {} (budget {})",
        percentile(&wall, 0.5),
        percentile(&wall, 0.9),
        percentile(&wall, 0.99),
        percentile(&gpu, 0.5),
        if session.context().timestamps {
            "GPU timestamps"
        } else {
            "wall clock"
        },
        units::human(pool.peak),
        units::human(budget)
    );
    Ok(())
}
