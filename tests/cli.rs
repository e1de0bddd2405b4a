//! The `mafat` binary: commands, JSON, `.npy` output and one-line errors.

mod common;

use std::process::{Command, Output};

fn mafat(args: &[&str]) -> Output {
    mafat_on("vulkan", args)
}

/// Run mafat with `WGPU_BACKEND=backend` (calibrations cached under the test's own directory).
fn mafat_on(backend: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mafat"))
        .args(args)
        .env("XDG_RUNTIME_DIR", "/tmp")
        .env("WGPU_BACKEND", backend)
        .env(
            "MAFAT_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .output()
        .expect("run mafat")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed command: non-zero exit, one `error:` line, no panic.
fn assert_clean_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "should fail: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(needle), "{err}");
}

#[test]
fn layers_table_of_yolov2_16() {
    let o = mafat(&["layers", "--model", "yolov2-16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("->")).collect();
    assert_eq!(rows.len(), 16);
    assert!(rows[0].contains("608x608x3") && rows[0].contains("608x608x32"));
    assert!(rows[15].contains("38x38x256"));
    assert!(out.contains("13000343552 MACs (13.00 G)"), "{out}");
}

#[test]
fn layers_json_of_yolov2() {
    let o = mafat(&["layers", "--model", "yolov2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 32);
    assert_eq!(layers[31]["type"], "region");
    assert_eq!(layers[30]["output"], serde_json::json!([425, 19, 19]));
    assert_eq!(v["input"], serde_json::json!([3, 608, 608]));
    // Each layer names its default kernel and every candidate with its weight bytes: layer 2 (3x3,
    // 32 -> 64) on Winograd F(4x4) holds 36 positions x 32 channels x 16 quads x 16 B + biases.
    assert_eq!(layers[2]["kernel"], "conv2d");
    let cands = layers[2]["candidates"].as_array().unwrap();
    let f4 = cands
        .iter()
        .find(|c| c["kernel"] == "conv2d_winograd4")
        .unwrap();
    assert_eq!(f4["weight_bytes"], 36 * 32 * 16 * 16 + 16 * 16);
    assert_eq!(layers[31]["kernel"], "cpu");
    assert!(layers[31]["candidates"].as_array().unwrap().is_empty());
}

#[test]
fn run_on_cpu_writes_npy_equal_to_the_library_result() {
    let path = common::scratch("cli-npy").join("out.npy");
    let o = mafat(&[
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "64x48",
        "--device",
        "cpu",
        "--weights",
        "random:3",
        "--input",
        "random:4",
        "--out",
        path.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["input"], serde_json::json!([3, 48, 64]));
    assert!(v["latency_ms"].as_f64().unwrap() > 0.0);

    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0);
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'shape': (256, 3, 4)"),
        "{header}"
    );
    let data: Vec<f32> = bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();

    let net = mafat::model::load("yolov2-16", Some((64, 48))).unwrap();
    let w = mafat::model::weights::WeightSource::Random(3)
        .load(&net)
        .unwrap();
    let x = mafat::input::InputSource::Random(4)
        .load(net.input)
        .unwrap();
    let want = mafat::reference::forward(&net, &w, &x, &[15]).unwrap();
    assert_eq!(data, want[0].data);
}

#[test]
fn errors_are_one_line() {
    assert_clean_error(
        &mafat(&["layers", "--model", "nope"]),
        "unknown model `nope`",
    );
    assert_clean_error(
        &mafat(&["layers", "--model", "yolov2", "--size", "12"]),
        "--size 12",
    );
    assert_clean_error(
        &mafat(&[
            "run",
            "--model",
            "yolov2-tiny",
            "--input",
            "/nonexistent.png",
        ]),
        "cannot read image /nonexistent.png",
    );
    let scratch = common::scratch("cli-errors");
    let bad = scratch.join("bad.weights");
    std::fs::write(&bad, [0u8; 100]).unwrap();
    assert_clean_error(
        &mafat(&[
            "run",
            "--model",
            "yolov2-tiny",
            "--weights",
            bad.to_str().unwrap(),
        ]),
        "truncated: expected",
    );
    let _ = std::fs::remove_file(&bad);
    let cfg = scratch.join("bad.cfg");
    std::fs::write(
        &cfg,
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=two\n",
    )
    .unwrap();
    assert_clean_error(
        &mafat(&["layers", "--model", cfg.to_str().unwrap()]),
        ".cfg:6: filters=two",
    );
    let _ = std::fs::remove_file(&cfg);
    assert_clean_error(
        &mafat(&[
            "plan",
            "--model",
            "yolov2-16",
            "--min-budget",
            "--precision",
            "f64",
        ]),
        "unknown precision `f64`: f32 or f16",
    );
}

#[test]
fn info_without_an_adapter_fails_cleanly() {
    // wgpu has no Metal backend on Linux: nothing can be found.
    let o = mafat_on("metal", &["info"]);
    assert_clean_error(&o, "no GPU adapter found");
}

#[test]
fn info_shows_lavapipe() {
    let o = mafat(&["info", "--json"]);
    if !o.status.success() {
        return common::skip(
            "info_shows_lavapipe",
            &format!("no Vulkan adapter here ({})", stderr(&o).trim()),
        );
    }
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let adapters = v.as_array().unwrap();
    let lvp = adapters
        .iter()
        .find(|a| a["name"].as_str().unwrap_or("").contains("llvmpipe"));
    let Some(lvp) = lvp else {
        return common::skip(
            "info_shows_lavapipe",
            "Vulkan adapters found, but none is llvmpipe",
        );
    };
    assert_eq!(lvp["backend"], "vulkan");
    assert!(
        lvp["timestamp_query"].is_boolean() && lvp["subgroups"].is_boolean(),
        "{lvp}"
    );
    assert!(
        lvp["limits"]["max_storage_buffer_binding_size"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        lvp["limits"]["max_compute_workgroups_per_dimension"]
            .as_u64()
            .unwrap()
            >= 65535
    );
}

#[test]
fn gpu_run_json_reports_memory_and_verifies() {
    // The registry's default kernels sum in the CPU's order: exact on integer data.
    let o = mafat(&[
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "64x64",
        "--weights",
        "int:1",
        "--input",
        "int:2",
        "--runs",
        "2",
        "--kernel",
        "default",
        "--verify",
        "--json",
    ]);
    if !o.status.success() && stderr(&o).contains("no GPU adapter") {
        return common::skip(
            "gpu_run_json_reports_memory_and_verifies",
            stderr(&o).trim(),
        );
    }
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for key in [
        "model",
        "input",
        "config",
        "latency_ms",
        "predicted_peak_bytes",
        "measured_peak_bytes",
        "allocator_reserved_peak_bytes",
        "allocator_allocated_peak_bytes",
        "rss_peak_bytes",
        "macs",
        "mac_ratio",
        "adapter",
        "max_abs_diff_cpu",
        "timing",
    ] {
        assert!(!v[key].is_null(), "missing {key}: {v}");
    }
    assert_eq!(v["predicted_peak_bytes"], v["measured_peak_bytes"]);
    assert_eq!(v["max_abs_diff_cpu"].as_f64(), Some(0.0));
    assert_eq!(v["config"], "untiled");
    // The untiled layerwise run has no untiled run to compare with: the field is absent.
    assert!(v.get("bit_exact_untiled").is_none(), "{v}");
    assert_eq!(v["mac_ratio"], 1.0);
    // The allocator holds at least what the pool handed out.
    assert!(v["allocator_allocated_peak_bytes"].as_u64() >= v["measured_peak_bytes"].as_u64());

    // Without --kernel, each layer runs on the fastest kernel measured on the adapter (Winograd,
    // say, which rounds differently: within 1e-5 of the output's absmax), named per layer.
    let o = mafat(&[
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "64x64",
        "--weights",
        "int:1",
        "--input",
        "int:2",
        "--runs",
        "2",
        "--verify",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["kernels"].as_array().unwrap().len(), 16, "{v}");
    let r = v["max_diff_cpu_over_absmax"].as_f64().unwrap();
    assert!(r <= 1e-5, "{r}");

    // A budget below the plan is refused before anything is allocated, in one line.
    let o = mafat(&[
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "64x64",
        "--groups",
        "untiled",
        "--budget",
        "1MiB",
    ]);
    assert_clean_error(&o, "over the budget of 1048576 bytes");

    // The smallest budget any configuration reaches; a budget below it names it.
    let o = mafat(&[
        "plan",
        "--model",
        "yolov2-16",
        "--size",
        "64x64",
        "--min-budget",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let min = v["min_budget_bytes"].as_u64().unwrap();
    assert!(min < v["untiled_peak_bytes"].as_u64().unwrap());
    let config = v["config"].as_str().unwrap().to_string();
    let residency = v["residency"].as_str().unwrap().to_string();
    let o = mafat(&[
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "64x64",
        "--budget",
        &(min - 1).to_string(),
    ]);
    assert_clean_error(
        &o,
        &format!(
            "no configuration of yolov2-16 fits a budget of {} bytes: the smallest needs {min} bytes",
            min - 1
        ),
    );
    // And that configuration runs within exactly that budget.
    let o = mafat(&[
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "64x64",
        "--groups",
        &config,
        "--residency",
        &residency,
        "--budget",
        &min.to_string(),
        "--runs",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["measured_peak_bytes"].as_u64(), Some(min));

    // Fused tile groups: the output equals the untiled run's bit for bit, the halo work is counted.
    let tiled = [
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "64x64",
        "--weights",
        "int:1",
        "--input",
        "int:2",
        "--runs",
        "1",
        "--groups",
        "0..8:3x3,8..16:2x2",
        "--verify",
        "--json",
    ];
    let o = mafat(&[&tiled[..], &["--kernel", "default"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["config"], "0..8:3x3,8..16:2x2");
    assert_eq!(v["bit_exact_untiled"], true);
    assert_eq!(v["max_abs_diff_cpu"].as_f64(), Some(0.0));
    assert_eq!(v["predicted_peak_bytes"], v["measured_peak_bytes"]);
    assert!(v["mac_ratio"].as_f64().unwrap() > 1.0, "{v}");
    assert!(v["macs"].as_u64() > v["untiled_macs"].as_u64());
    // One dispatch per layer and tile on the default kernels.
    assert_eq!(v["dispatches"], 3 * 3 * 8 + 2 * 2 * 8);
    // On the tuned kernels too, tiled equals untiled bit for bit (the same kernel per layer).
    let o = mafat(&tiled);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["bit_exact_untiled"], true, "{v}");
    assert!(
        v["max_diff_cpu_over_absmax"].as_f64().unwrap() <= 1e-5,
        "{v}"
    );
    assert_eq!(v["predicted_peak_bytes"], v["measured_peak_bytes"]);

    // A config that breaks a rule: one line naming the rule.
    for (groups, want) in [
        ("0..8:3x3,9..16:2x2", "without gaps or overlaps"),
        ("0..16:9x9", "the largest grid with no empty tile is 4x4"),
        ("0..8:3", "FIRST..END:ROWSxCOLS"),
    ] {
        let o = mafat(&[
            "run",
            "--model",
            "yolov2-16",
            "--size",
            "64x64",
            "--groups",
            groups,
        ]);
        assert_clean_error(&o, want);
    }
    let o = mafat(&[
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "64x64",
        "--groups",
        "0..8:2x2",
        "--mode",
        "naive",
    ]);
    assert_clean_error(&o, "--mode naive is the untiled baseline");
}

/// Run and parse `--json` output, or report why the GPU is missing.
fn json_of(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap()
}

#[test]
fn plan_for_a_budget_saves_a_plan_that_runs_within_it() {
    let dir = common::scratch("plan-budget");
    std::fs::create_dir_all(&dir).unwrap();
    let calibration = dir.join("calibration.json");
    let plan_file = dir.join("plan.json");
    let _ = std::fs::remove_file(&calibration);
    let cal = calibration.to_str().unwrap();
    let pf = plan_file.to_str().unwrap();
    // The smallest budget, then one between it and the untiled peak.
    let o = mafat(&[
        "plan",
        "--model",
        "yolov2-16",
        "--size",
        "96x96",
        "--min-budget",
        "--json",
    ]);
    if !o.status.success() && stderr(&o).contains("no GPU adapter") {
        return common::skip(
            "plan_for_a_budget_saves_a_plan_that_runs_within_it",
            stderr(&o).trim(),
        );
    }
    let v = json_of(&o);
    let (min, untiled) = (
        v["min_budget_bytes"].as_u64().unwrap(),
        v["untiled_peak_bytes"].as_u64().unwrap(),
    );
    let budget = (min + untiled) / 2;
    let b = budget.to_string();
    let o = mafat(&[
        "plan",
        "--model",
        "yolov2-16",
        "--size",
        "96x96",
        "--budget",
        &b,
        "--calibration",
        cal,
        "--out",
        pf,
        "--json",
    ]);
    let v = json_of(&o);
    for key in [
        "config",
        "predicted_peak_bytes",
        "predicted_latency_ms",
        "mac_ratio",
        "budget_bytes",
    ] {
        assert!(!v[key].is_null(), "missing {key}: {v}");
    }
    assert!(v["predicted_peak_bytes"].as_u64().unwrap() <= budget);
    assert_eq!(v["budget_bytes"].as_u64(), Some(budget));
    assert!(v["predicted_latency_ms"].as_f64().unwrap() > 0.0);
    assert!(
        v["calibration"].as_str().unwrap().contains("measured now"),
        "{v}"
    );
    assert!(calibration.exists() && plan_file.exists());
    // The pinned calibration is read the second time, and gives the same plan.
    let o = mafat(&[
        "plan",
        "--model",
        "yolov2-16",
        "--size",
        "96x96",
        "--budget",
        &b,
        "--calibration",
        cal,
        "--json",
    ]);
    let again = json_of(&o);
    assert!(
        again["calibration"].as_str().unwrap().contains("read from"),
        "{again}"
    );
    assert_eq!(again["config"], v["config"]);
    assert_eq!(again["predicted_latency_ms"], v["predicted_latency_ms"]);

    // The saved plan runs: measured peak == predicted peak, bit-exact with the untiled run.
    let o = mafat(&[
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "96x96",
        "--plan",
        pf,
        "--weights",
        "int:1",
        "--input",
        "int:2",
        "--runs",
        "1",
        "--verify",
        "--json",
    ]);
    let r = json_of(&o);
    assert_eq!(r["config"], v["config"]);
    assert_eq!(r["residency"], v["residency"]);
    assert_eq!(r["predicted_peak_bytes"], v["predicted_peak_bytes"]);
    assert_eq!(r["measured_peak_bytes"], v["predicted_peak_bytes"]);
    assert_eq!(r["predicted_latency_ms"], v["predicted_latency_ms"]);
    assert_eq!(r["bit_exact_untiled"], true);
    assert_eq!(r["budget_bytes"].as_u64(), Some(budget), "{r}");

    // `run --budget` alone plans, then runs within the budget.
    let o = mafat(&[
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "96x96",
        "--budget",
        &b,
        "--calibration",
        cal,
        "--runs",
        "1",
        "--json",
    ]);
    let r = json_of(&o);
    assert_eq!(r["config"], v["config"]);
    assert_eq!(r["measured_peak_bytes"], v["predicted_peak_bytes"]);
    assert!(r["planned_by"].as_str().unwrap().contains("search"), "{r}");

    // A plan made for another size or adapter is refused, naming what differs and the fix.
    let o = mafat(&[
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "64x64",
        "--plan",
        pf,
    ]);
    assert_clean_error(
        &o,
        "was made for yolov2-16 at 96x96, not yolov2-16 at 64x64; make a new one with: mafat plan",
    );
    // A plan for another adapter, or an edited one, is refused, naming the field: figures that do
    // not re-plan to the recorded peak (another config or residency), or a budget below the plan's
    // own peak; the plan's budget is the run's (the pool enforces it, as checked above).
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    let peak = original["predicted_peak_bytes"].as_u64().unwrap();
    let other_residency = match original["residency"].as_str().unwrap() {
        "resident" => "per-group",
        _ => "resident",
    };
    let mut other_adapter = original["adapter"].clone();
    other_adapter["name"] = "Some Other GPU".into();
    let cases: [(&str, serde_json::Value, &str); 5] = [
        (
            "adapter",
            other_adapter,
            "was made for adapter Some Other GPU",
        ),
        ("config", "0..3:2x2".into(), "predicted_peak_bytes says"),
        (
            "residency",
            other_residency.into(),
            "predicted_peak_bytes says",
        ),
        (
            "budget_bytes",
            (peak - 1).into(),
            "below the plan's own peak",
        ),
        ("precision", "f16".into(), "stores maps and weights as f16"),
    ];
    for (field, value, needle) in cases {
        let mut edited = original.clone();
        edited[field] = value;
        let path = dir.join(format!("edited-{field}.json"));
        std::fs::write(&path, edited.to_string()).unwrap();
        let o = mafat(&[
            "run",
            "--model",
            "yolov2-16",
            "--size",
            "96x96",
            "--plan",
            path.to_str().unwrap(),
        ]);
        assert_clean_error(&o, needle);
    }
    // A calibration for another network is refused; a file that is not one says so.
    let o = mafat(&[
        "plan",
        "--model",
        "yolov2-tiny",
        "--size",
        "96x96",
        "--budget",
        "1GiB",
        "--calibration",
        cal,
    ]);
    assert_clean_error(&o, "recalibrate");
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{ not json").unwrap();
    let o = mafat(&[
        "plan",
        "--model",
        "yolov2-16",
        "--size",
        "96x96",
        "--budget",
        &b,
        "--calibration",
        junk.to_str().unwrap(),
    ]);
    assert_clean_error(&o, "not a mafat calibration");
    let o = mafat(&[
        "run",
        "--model",
        "yolov2-16",
        "--size",
        "96x96",
        "--plan",
        junk.to_str().unwrap(),
    ]);
    assert_clean_error(&o, "not a mafat plan");
    // Below the minimum: refused without calibrating, naming the minimum.
    let o = mafat(&[
        "plan",
        "--model",
        "yolov2-16",
        "--size",
        "96x96",
        "--budget",
        &(min - 1).to_string(),
    ]);
    assert_clean_error(&o, &format!("the smallest needs {min} bytes"));
    let o = mafat(&["plan", "--model", "yolov2-16", "--size", "96x96"]);
    assert_clean_error(&o, "mafat plan needs --budget BYTES");
}

/// `--precision f16`: the minimum halves, a saved plan records its precision and runs only at it,
/// the run matches the f16 CPU reference, and the sweep measures f16.
#[test]
fn f16_plans_record_their_precision() {
    let test = "f16_plans_record_their_precision";
    let dir = common::scratch("plan-f16");
    std::fs::create_dir_all(&dir).unwrap();
    let cal = dir.join("calibration-f16.json");
    let pf = dir.join("plan-f16.json");
    let (cal, pf) = (cal.to_str().unwrap(), pf.to_str().unwrap());
    let model = ["--model", "yolov2-16", "--size", "96x96"];
    let min_of = |precision: &str| {
        let o = mafat(
            &[
                &["plan"],
                &model[..],
                &["--min-budget", "--precision", precision, "--json"],
            ]
            .concat(),
        );
        (o.status.success()).then(|| json_of(&o))
    };
    let Some(full) = min_of("f32") else {
        return common::skip(test, "no GPU adapter");
    };
    let half = min_of("f16").expect("lavapipe has shader-f16");
    let (min32, min16) = (
        full["min_budget_bytes"].as_u64().unwrap(),
        half["min_budget_bytes"].as_u64().unwrap(),
    );
    assert!(
        min16 * 2 <= min32 + 4096 && min16 * 2 > min32 / 2,
        "{min16} vs {min32}"
    );
    let untiled16 = half["untiled_peak_bytes"].as_u64().unwrap();
    // Everything halves but the parameter blocks and timestamps.
    let untiled32 = full["untiled_peak_bytes"].as_u64().unwrap();
    assert!(
        untiled16 * 2 >= untiled32 && untiled16 * 2 <= untiled32 + 4096,
        "{untiled16} vs {untiled32}"
    );
    let b = ((min16 + untiled16) / 2).to_string();
    let o = mafat(
        &[
            &["plan"],
            &model[..],
            &[
                "--budget",
                &b,
                "--precision",
                "f16",
                "--calibration",
                cal,
                "--out",
                pf,
                "--json",
            ],
        ]
        .concat(),
    );
    let v = json_of(&o);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pf).unwrap()).unwrap();
    assert_eq!(saved["precision"], "f16");

    // At f32 the plan is refused, naming both precisions and the fix.
    let o = mafat(&[&["run"], &model[..], &["--plan", pf]].concat());
    assert_clean_error(
        &o,
        "stores maps and weights as f16, this run as f32; run it with --precision f16",
    );
    let o = mafat(
        &[
            &["run"],
            &model[..],
            &[
                "--plan",
                pf,
                "--precision",
                "f16",
                "--runs",
                "1",
                "--verify",
                "--json",
            ],
        ]
        .concat(),
    );
    let r = json_of(&o);
    assert_eq!(r["precision"], "f16");
    assert_eq!(r["config"], v["config"]);
    assert_eq!(r["measured_peak_bytes"], v["predicted_peak_bytes"]);
    assert_eq!(r["bit_exact_untiled"], true);
    let d = r["max_diff_cpu_over_absmax"].as_f64().unwrap();
    assert!(d <= 1e-2, "{d} of the absmax from the f16 CPU reference");

    // Integer data overflows f16 deep in yolov2-16 (past 65504): refused, not reported as a result.
    let o = mafat(
        &[
            &["run"],
            &model[..],
            &[
                "--weights",
                "int:1",
                "--input",
                "int:2",
                "--precision",
                "f16",
                "--runs",
                "1",
            ],
        ]
        .concat(),
    );
    assert_clean_error(
        &o,
        "non-finite values (the first in the output of layer 15): the weights or input overflow f16 (largest finite 65504)",
    );
    let o = mafat(
        &[
            &["run"],
            &model[..],
            &[
                "--weights",
                "int:1",
                "--input",
                "int:2",
                "--device",
                "cpu",
                "--precision",
                "f16",
            ],
        ]
        .concat(),
    );
    assert_clean_error(&o, "or run at --precision f32");

    // The sweep at f16: every row says so, and mafat fits from the f16 minimum.
    let csv = dir.join("sweep-f16.csv");
    let o = mafat(
        &[
            &["sweep"],
            &model[..],
            &[
                "--budgets",
                "min..untiled:2",
                "--runs",
                "1",
                "--precision",
                "f16",
                "--calibration",
                cal,
                "--csv",
                csv.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == "precision").unwrap();
    let budget = header.iter().position(|h| *h == "budget_bytes").unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 2 * 5, "{text}");
    let first: u64 = rows[0].split(',').nth(budget).unwrap().parse().unwrap();
    assert!(
        first < min32 * 3 / 4,
        "the sweep starts near the f16 minimum: {first}"
    );
    // (The quoted config column holds commas: count the precision from the row's end.)
    let from_end = header.len() - at;
    for row in rows {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[cells.len() - from_end], "f16", "{row}");
    }
}

#[test]
fn calibration_is_cached_per_model_and_size() {
    let cache = common::scratch("cache-test");
    let _ = std::fs::remove_dir_all(&cache);
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_mafat"))
            .args([
                "plan",
                "--model",
                "yolov2-tiny",
                "--size",
                "64x64",
                "--budget",
                "64MiB",
                "--json",
            ])
            .env("XDG_RUNTIME_DIR", "/tmp")
            .env("WGPU_BACKEND", "vulkan")
            .env("MAFAT_CACHE_DIR", &cache)
            .output()
            .unwrap()
    };
    let o = run();
    if !o.status.success() && stderr(&o).contains("no GPU adapter") {
        return common::skip(
            "calibration_is_cached_per_model_and_size",
            stderr(&o).trim(),
        );
    }
    let first = json_of(&o);
    assert!(
        first["calibration"]
            .as_str()
            .unwrap()
            .contains("measured now, saved to"),
        "{first}"
    );
    // The calibration and the kernel choice it was made on.
    let mut names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].starts_with("calibration-yolov2-tiny-64x64-") && names[0].ends_with(".json"),
        "{names:?}"
    );
    assert!(
        names[1].starts_with("kernels-yolov2-tiny-64x64-") && names[1].ends_with(".json"),
        "{names:?}"
    );
    let second = json_of(&run());
    assert!(
        second["calibration"]
            .as_str()
            .unwrap()
            .contains("read from"),
        "{second}"
    );
    assert_eq!(first["config"], second["config"]);
}

/// `mafat sweep`: every method at every budget, CSV with every number, an SVG plot; each fitting
/// cell's measured peak equals its prediction and fits its budget; mafat fits from its minimum.
#[test]
fn sweep_writes_csv_and_svg_with_every_method() {
    let dir = common::scratch("sweep");
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, svg) = (dir.join("sweep.csv"), dir.join("sweep.svg"));
    let o = mafat(&[
        "sweep",
        "--model",
        "yolov2-16",
        "--size",
        "96x96",
        "--budgets",
        "min..untiled:3",
        "--runs",
        "2",
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<String>> = lines
        .map(|l| {
            // The config column is quoted (it holds commas).
            let (a, rest) = l.split_once(",\"").unwrap();
            let (config, b) = rest.split_once("\",").unwrap();
            let mut v: Vec<String> = a.split(',').map(str::to_string).collect();
            v.push(config.to_string());
            v.extend(b.split(',').map(str::to_string));
            v
        })
        .collect();
    assert_eq!(rows.len(), 3 * 5, "{text}");
    let mut methods: Vec<&str> = rows.iter().map(|r| r[col("method")].as_str()).collect();
    methods.sort();
    methods.dedup();
    assert_eq!(methods, ["ftp", "halo", "layerwise", "mafat", "naive"]);
    let num = |r: &Vec<String>, c: &str| r[col(c)].parse::<f64>().unwrap();
    for r in &rows {
        let budget = num(r, "budget_bytes");
        if r[col("fits")] == "true" {
            assert_eq!(
                r[col("measured_peak_bytes")],
                r[col("predicted_peak_bytes")]
            );
            assert!(num(r, "measured_peak_bytes") <= budget, "{r:?}");
            assert!(num(r, "latency_ms") > 0.0, "{r:?}");
            assert!(num(r, "latency_q1_ms") <= num(r, "latency_ms"));
            assert!(num(r, "latency_ms") <= num(r, "latency_q3_ms"));
        } else {
            assert!(num(r, "method_min_bytes") > budget, "{r:?}");
            assert_ne!(r[col("method")], "mafat", "mafat fits from its minimum");
        }
    }
    // The smallest budget is mafat's minimum: the untiled baselines do not fit there.
    let first = &rows[0][col("budget_bytes")];
    assert!(
        rows.iter()
            .filter(|r| &r[col("budget_bytes")] == first && r[col("method")] == "naive")
            .all(|r| r[col("fits")] == "false")
    );
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg"), "{}", &plot[..100.min(plot.len())]);
    for label in ["mafat (search)", "layerwise", "budget"] {
        assert!(plot.contains(label), "{label} missing from the plot");
    }
    // The table names every method.
    let out = stdout(&o);
    assert!(out.contains("mafat") && out.contains("naive"), "{out}");
}

#[test]
fn sweep_with_no_budget_that_fits_names_the_minimum() {
    let o = mafat(&[
        "sweep",
        "--model",
        "yolov2-16",
        "--size",
        "96x96",
        "--budgets",
        "1KiB..2KiB:2",
    ]);
    assert_clean_error(&o, "the smallest needs");
}

#[test]
fn plan_groups_shows_each_tiles_regions() {
    let o = mafat(&[
        "plan",
        "--model",
        "yolov2-16",
        "--groups",
        "8..16:2x2",
        "--kernel",
        "default",
        "--json",
    ]);
    if !o.status.success() && stderr(&o).contains("no GPU adapter") {
        return common::skip("plan_groups_shows_each_tiles_regions", stderr(&o).trim());
    }
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    let tiles = groups[0]["tiles"].as_array().unwrap();
    assert_eq!(tiles.len(), 4);
    // Tile 0 at 608x608: layer 15's rows and columns 0..=18 of 38, traced back by hand through
    // 1x1, 3x3/1, 1x1, 3x3/1, max 2/2, 3x3/1, 1x1, 3x3/1: rows and columns 0..=43 of layer 8's 76.
    let t0 = &tiles[0];
    let region = |e: &serde_json::Value| {
        let r = &e["region"];
        [&r["y0"], &r["y1"], &r["x0"], &r["x1"]].map(|x| x.as_u64().unwrap())
    };
    assert_eq!(t0["output"]["layer"], 15);
    assert_eq!(region(&t0["output"]), [0, 18, 0, 18]);
    assert_eq!(t0["input"]["layer"], 8);
    assert_eq!(region(&t0["input"]), [0, 43, 0, 43]);
    assert_eq!(t0["input"]["bytes"], 4 * 44 * 44 * 128);
    assert_eq!(t0["output"]["bytes"], 4 * 19 * 19 * 256);
    // The last tile ends at the map's edge; every layer names its kernel (the registry's defaults:
    // windows traced as above; Winograd F(4x4) would trace whole patches).
    assert_eq!(region(&tiles[3]["output"]), [19, 37, 19, 37]);
    assert_eq!(region(&tiles[3]["input"]), [32, 75, 32, 75]);
    assert_eq!(v["kernels"].as_array().unwrap().len(), 16);
    assert_eq!(v["kernels"][0], "conv2d");
    assert_eq!(v["kernels"][1], "maxpool_2x2");
    // The text form says the same.
    let o = mafat(&[
        "plan",
        "--model",
        "yolov2-16",
        "--groups",
        "8..16:2x2",
        "--kernel",
        "default",
    ]);
    assert!(stdout(&o).contains("rows    0..=43"), "{}", stdout(&o));
    // A bad configuration is one clear line.
    let o = mafat(&["plan", "--model", "yolov2-16", "--groups", "8..16:40x40"]);
    assert_clean_error(&o, "largest grid with no empty tile");
}

/// `mafat regret` on a network with routes, an upsample and two CPU heads, with its default cuts
/// and grid shape (smaller grids and one run, to keep it short): it shows progress, makes the
/// forced cuts, finds reference configurations and reports every budget.
#[test]
fn regret_runs_on_a_routed_builtin_model() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("regret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("regret.json");
    let o = mafat(&[
        "regret",
        "--model",
        "yolov3-tiny",
        "--size",
        "64x64",
        "--grids",
        "2",
        "--runs",
        "1",
        "--top",
        "1",
        "--budgets",
        "min..untiled:2",
        "--kernel",
        "default",
        "--out",
        out.to_str().unwrap(),
    ]);
    if !o.status.success() && stderr(&o).contains("no GPU adapter") {
        return common::skip("regret_runs_on_a_routed_builtin_model", stderr(&o).trim());
    }
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("reference grid ["), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let forced = v["reference_grid"]["forced_cuts"].as_array().unwrap();
    assert!(forced.contains(&serde_json::json!(9)), "{v}");
    assert!(
        v["reference_grid"]["configurations"].as_u64().unwrap() > 100,
        "{v}"
    );
    let rows = v["budgets"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for r in rows {
        assert!(r["fitting"].as_u64().unwrap() >= 1, "{r}");
        assert!(r["pick"]["measured_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["best"]["measured_ms"].as_f64().unwrap() > 0.0, "{r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
