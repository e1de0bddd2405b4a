//! The library front door: a `Session` on a device the caller opened (as an app that renders with
//! wgpu would), a budgeted network prepared, run and dropped on it, the caller's own buffers
//! untouched, and results equal to the CPU reference bit for bit on small-integer data.

mod common;
mod gpu_common;

use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};
use mafat::plan::search::min_peak;
use mafat::plan::{Config, Mode, Residency};
use mafat::{Session, SessionOptions};

/// The caller's own device: the first adapter of the environment, every limit, timestamps if it
/// has them.
fn callers_device() -> Option<(wgpu::Device, wgpu::Queue)> {
    gpu_common::callers_device(wgpu::Features::TIMESTAMP_QUERY)
}

fn read_buffer(device: &wgpu::Device, buffer: &wgpu::Buffer) -> Vec<u32> {
    let slice = buffer.slice(..);
    slice.map_async(wgpu::MapMode::Read, |_| {});
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let v = bytemuck::pod_collect_to_vec(&slice.get_mapped_range().unwrap());
    buffer.unmap();
    v
}

#[test]
fn a_session_on_the_callers_device_runs_a_budgeted_network() {
    let test = "a_session_on_the_callers_device_runs_a_budgeted_network";
    let Some((device, queue)) = callers_device() else {
        return common::skip(test, "no GPU adapter");
    };
    // The caller's own buffer, written before and checked after.
    let mine = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("caller's buffer"),
        size: 64,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let pattern: Vec<u32> = (0..16).map(|i| 0xC0DE_0000 + i).collect();
    queue.write_buffer(&mine, 0, bytemuck::cast_slice(&pattern));

    let session = Session::from_device(device.clone(), queue.clone(), &SessionOptions::default());
    assert!(
        !session.context().subgroups,
        "the caller asked for no subgroups"
    );
    let net = model::load("yolov2-16", Some((64, 48))).unwrap();
    let w = WeightSource::Int(3).load(&net).unwrap();
    let planner = session.planner(&net).unwrap();
    let (budget, config, residency) = min_peak(&planner).unwrap();
    assert!(!config.is_untiled());
    let plan = planner.plan(&config, Mode::Layerwise, residency).unwrap();
    let prepared = session.prepare(&net, &w, plan, Some(budget)).unwrap();
    let cpu_reference = |seed| {
        let x = InputSource::Int(seed).load(net.input).unwrap();
        let cpu = mafat::reference::forward(&net, &w, &x, &net.outputs()).unwrap();
        (x, cpu)
    };
    // Several frames on one prepared network: each equals the CPU reference bit for bit.
    for seed in 0..3 {
        let (x, cpu) = cpu_reference(seed);
        let out = prepared.run(&x).unwrap();
        assert_eq!(out.outputs.len(), cpu.len());
        for (g, c) in out.outputs.iter().zip(&cpu) {
            gpu_common::assert_bit_exact(&format!("frame {seed}"), g, c);
        }
    }
    assert_eq!(prepared.pool_stats().peak, budget);
    assert_eq!(prepared.pool_stats().in_use, budget);
    drop(prepared);
    assert_eq!(read_buffer(&device, &mine), pattern);

    // The untiled run on the same shared device agrees, and a budget below the plan is refused
    // before anything is allocated.
    let (x, cpu) = cpu_reference(7);
    let untiled = session.run_untiled(&net, &w, &x).unwrap();
    gpu_common::assert_bit_exact("untiled", &untiled[0], &cpu[0]);
    let plan = session
        .plan(
            &net,
            &Config::untiled(),
            Mode::Layerwise,
            Residency::Resident,
        )
        .unwrap();
    let need = plan.peak_bytes();
    let e = session
        .prepare(&net, &w, plan, Some(need - 1))
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("budget"), "{e}");
}

/// A caller's device opened without shader-f16: a session asked to store f16 on it refuses to
/// prepare a network, in one line naming what the device lacks and the way out.
#[test]
fn f16_on_a_device_without_shader_f16_is_refused_in_one_line() {
    let test = "f16_on_a_device_without_shader_f16_is_refused_in_one_line";
    let Some((device, queue)) = callers_device() else {
        return common::skip(test, "no GPU adapter");
    };
    assert!(!device.features().contains(wgpu::Features::SHADER_F16));
    let options = SessionOptions {
        precision: mafat::Precision::F16,
        ..SessionOptions::default()
    };
    let session = Session::from_device(device, queue, &options);
    let net = model::load("yolov2-16", Some((64, 48))).unwrap();
    let w = WeightSource::Int(3).load(&net).unwrap();
    let plan = session
        .plan(
            &net,
            &Config::untiled(),
            Mode::Layerwise,
            Residency::Resident,
        )
        .unwrap();
    assert_eq!(plan.precision, mafat::Precision::F16);
    let e = session
        .prepare(&net, &w, plan, None)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("shader-f16") && e.contains("--precision f32"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}

/// What `--verify` fails on: outputs off the CPU reference past the precision's tolerance (or not a
/// number), or a tiled run unequal to the untiled one.
#[test]
fn verification_flags_wrong_answers() {
    use mafat::Precision::{F16, F32};
    use mafat::session::verify_tolerance;
    let v = |diff: f32, untiled: Option<Result<bool, String>>| mafat::Verification {
        max_abs_diff_cpu: diff * 10.0,
        max_diff_cpu_over_absmax: diff,
        bit_exact_untiled: untiled,
    };
    assert_eq!(v(0.0, None).problem(F32), None);
    assert_eq!(v(verify_tolerance(F32), Some(Ok(true))).problem(F32), None);
    assert!(v(2e-3, None).problem(F32).unwrap().contains("tolerance"));
    assert_eq!(v(2e-3, None).problem(F16), None);
    assert!(v(f32::NAN, None).problem(F16).is_some());
    assert!(v(f32::INFINITY, None).problem(F32).is_some());
    assert!(
        v(0.0, Some(Ok(false)))
            .problem(F32)
            .unwrap()
            .contains("untiled")
    );
    // An untiled run that could not be made is reported, not a wrong answer.
    assert_eq!(v(0.0, Some(Err("no memory".into()))).problem(F32), None);
}
