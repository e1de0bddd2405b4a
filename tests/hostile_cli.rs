//! The CLI as a careless or hostile user drives it: over a hundred invocations with bad numbers,
//! bad files, impossible sizes and unwritable outputs. Each must end within its time limit, never
//! panic, keep its peak resident memory under 1 GiB, and either succeed or fail with exactly one
//! `error:` line naming the problem. The summary line gives the counts the issue asks for.

mod common;
mod onnx_build;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest any invocation may take (none does real work: each is refused, or is a tiny run).
const TIME_LIMIT: Duration = Duration::from_secs(120);
/// Longest error line (a bad value is quoted by a prefix, a path by its two ends).
const MAX_ERROR_CHARS: usize = 400;
/// Most resident memory any invocation may reach.
const RSS_LIMIT_KIB: i64 = 1 << 20;

/// What an invocation must do.
enum Expect {
    /// Fail with one `error:` line containing this text.
    Error(&'static str),
    /// Succeed.
    Ok,
}

struct Case {
    args: Vec<String>,
    expect: Expect,
    /// Send stdout to `/dev/full` (every write fails).
    full_stdout: bool,
}

struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stderr: String,
    seconds: f64,
    max_rss_kib: i64,
    timed_out: bool,
}

/// Run mafat with its stdout to a file (or `/dev/full`), waiting with `wait4` for its resource
/// usage; killed at [`TIME_LIMIT`].
fn run(dir: &Path, k: usize, case: &Case) -> Outcome {
    let out = match case.full_stdout {
        true => std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
        false => std::fs::File::create(dir.join(format!("stdout-{k}"))).unwrap(),
    };
    let err_path = dir.join(format!("stderr-{k}"));
    let err = std::fs::File::create(&err_path).unwrap();
    let t0 = Instant::now();
    // Reaped with wait4 below (for its resource usage), not with Child::wait.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_mafat"))
        .args(&case.args)
        .env("XDG_RUNTIME_DIR", "/tmp")
        .env("WGPU_BACKEND", "vulkan")
        .env("MAFAT_CACHE_DIR", dir.join("cache"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("start mafat");
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    loop {
        // SAFETY: waiting on our own child with valid pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4 failed");
        if t0.elapsed() > TIME_LIMIT && !timed_out {
            timed_out = true;
            // SAFETY: killing our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let exited = libc::WIFEXITED(status);
    Outcome {
        code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        seconds: t0.elapsed().as_secs_f64(),
        max_rss_kib: usage.ru_maxrss,
        timed_out,
    }
}

/// A PNG whose header claims `w`x`h` pixels (no pixel data): a decompression bomb's front.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
    png.extend(((idat.len() - 4) as u32).to_be_bytes());
    png.extend(idat);
    png.extend(crc32(idat).to_be_bytes());
    png
}

/// The files the cases read, written into `dir`.
/// ONNX models and tensor files: a valid small one, its truncation, junk, a free-size model, an
/// unsupported operator, and `.npy` inputs of the wrong shape, junk and an absurd header.
fn write_onnx_files(dir: &Path) {
    use onnx_build::{G, attr_i};
    use prost::Message;
    let w = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    let small = |input: &[i64], extra: Option<&str>| {
        let mut g = G {
            seed: 9,
            ..Default::default()
        };
        let a = g.conv("x", 3, 4, 3, 1, 1);
        let a = g.silu(&a);
        let a = match extra {
            Some(op) => g.op(op, &[&a], vec![]),
            None => a,
        };
        let f = g.op("Flatten", &[&a], vec![attr_i("axis", 1)]);
        let n: i64 = 4 * input[2].max(1) * input[3].max(1);
        let wt = g.ints(2 * n as usize);
        let wt = g.init_f(&[2, n], wt);
        let fc = g.op("Gemm", &[&f, &wt], vec![attr_i("transB", 1)]);
        g.model(input, &[&fc]).encode_to_vec()
    };
    let ok = small(&[1, 3, 8, 8], None);
    w("small.onnx", &ok);
    w("trunc.onnx", &ok[..ok.len() / 2]);
    w("empty.onnx", b"");
    w(
        "junk.onnx",
        &(0..4096u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    w("einsum.onnx", &small(&[1, 3, 8, 8], Some("Einsum")));
    // A free height and width: the -1s become DimValue(-1), which the importer reads as free.
    w("free.onnx", &small(&[1, 3, -1, -1], None));
    w("wrong.npy", &mafat::npy::write(&[1, 3, 4, 4], &[0.0; 48]));
    w("junk.npy", b"\x93NUMPX this is not numpy");
    let mut big = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 3), }\n";
    big.extend_from_slice(&(header.len() as u16).to_le_bytes());
    big.extend_from_slice(header.as_bytes());
    w("big.npy", &big);
}

fn write_files(dir: &Path) {
    let w = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    let net = "[net]\nwidth=32\nheight=32\nchannels=3\n";
    let conv = "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n";
    w("empty.cfg", b"");
    write_onnx_files(dir);
    w("only-net.cfg", net.as_bytes());
    w(
        "garbage.cfg",
        &(0..4096u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    w("nul.cfg", format!("{net}{conv}\0\0\0").as_bytes());
    let bad = |name: &str, layer: &str| w(name, format!("{net}{layer}").as_bytes());
    bad(
        "filters0.cfg",
        "[convolutional]\nfilters=0\nsize=3\nstride=1\npad=1\n",
    );
    bad("filters-neg.cfg", "[convolutional]\nfilters=-1\nsize=3\n");
    bad(
        "filters-huge.cfg",
        "[convolutional]\nfilters=4294967296\nsize=3\n",
    );
    bad(
        "filters-big.cfg",
        "[convolutional]\nfilters=1000000000\nsize=3\npad=1\n",
    );
    bad("size0.cfg", "[convolutional]\nfilters=4\nsize=0\n");
    bad(
        "stride0.cfg",
        "[convolutional]\nfilters=4\nsize=3\nstride=0\n",
    );
    bad(
        "groups3.cfg",
        "[convolutional]\nfilters=4\nsize=3\ngroups=3\n",
    );
    bad(
        "activation.cfg",
        "[convolutional]\nfilters=4\nsize=3\nactivation=nope\n",
    );
    bad("route-back.cfg", &format!("{conv}[route]\nlayers=-100\n"));
    bad("route-ahead.cfg", &format!("{conv}[route]\nlayers=5\n"));
    bad("shortcut.cfg", &format!("{conv}[shortcut]\nfrom=-50\n"));
    bad("section.cfg", "[teleport]\nfilters=4\n");
    bad("upsample0.cfg", &format!("{conv}[upsample]\nstride=0\n"));
    bad(
        "upsample-huge.cfg",
        &format!("{conv}[upsample]\nstride=100000\n"),
    );
    bad(
        "maxpool-huge.cfg",
        &format!("{conv}[maxpool]\nsize=100000\nstride=1\n"),
    );
    bad("reorg7.cfg", &format!("{conv}[reorg]\nstride=7\n"));
    bad("reorg0.cfg", &format!("{conv}[reorg]\nstride=0\n"));
    bad(
        "yolo-mask.cfg",
        &format!("{conv}[yolo]\nmask=1000\nanchors=1,2\nclasses=1\nnum=1\n"),
    );
    bad(
        "region0.cfg",
        &format!("{conv}[region]\nnum=0\nclasses=1\ncoords=4\n"),
    );
    bad("key.cfg", "[convolutional]\nfilters=4\nsize=3\nwat=1\n");
    bad("novalue.cfg", "[convolutional]\nfilters\n");
    w(
        "wide.cfg",
        format!("[net]\nwidth=100000\nheight=100000\nchannels=3\n{conv}").as_bytes(),
    );
    let mut many = net.to_string();
    for _ in 0..20_000 {
        many.push_str("[maxpool]\nsize=1\nstride=1\n");
    }
    w("many-layers.cfg", many.as_bytes());
    w(
        "long-line.cfg",
        format!("{net}# {}\n{conv}", "x".repeat(3 << 20)).as_bytes(),
    );
    w("too-big.cfg", &vec![b'#'; 5 << 20]);
    // Images: junk behind a PNG signature, a truncated JPEG, a PNG claiming 100000² pixels.
    w("junk.png", b"\x89PNG\r\n\x1a\nthis is not a png");
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 128]))
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    w("truncated.jpg", &jpeg[..jpeg.len() / 2]);
    w("bomb.png", &png_claiming(100_000, 100_000));
    // yolov2-16's weights with every value NaN (right size, so only the outputs can tell).
    let net16 = mafat::model::load("yolov2-16", Some((64, 64))).unwrap();
    let body = mafat::model::weights::DarknetWeights::body_bytes(&net16) as usize;
    let mut nan = vec![0u8; 20];
    nan[4] = 2; // version 0.2.0: a 20-byte header
    nan.extend(std::iter::repeat_n(f32::NAN.to_le_bytes(), body / 4).flatten());
    w("nan.weights", &nan);
    w("short.weights", &[0u8; 100]);
    // Plans and calibrations that are not what they claim.
    w("junk.json", b"{ not json");
    w(
        "wrong-plan.json",
        br#"{"config": "0..99999999999:2x2", "budget_bytes": -1}"#,
    );
    w("array.json", b"[1, 2, 3]");
    w("huge-number.json", br#"{"mafat": 1e999999}"#);
    w("deep.json", "[".repeat(100_000).as_bytes());
}

fn case(args: &[&str], expect: Expect) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        expect,
        full_stdout: false,
    }
}

/// `COMMAND --model yolov2-16 --size 64x64 [--runs 1] EXTRA...` (one timed run for `run`).
fn cmd16(command: &str, extra: &[&str], expect: Expect) -> Case {
    let mut a = vec![command, "--model", "yolov2-16", "--size", "64x64"];
    if command == "run" {
        a.extend(["--runs", "1"]);
    }
    a.extend(extra);
    case(&a, expect)
}

fn cases(dir: &Path) -> Vec<Case> {
    use Expect::{Error as E, Ok};
    let f = |name: &str| dir.join(name).display().to_string();
    let mut v = Vec::new();
    // `layers`: models, sizes, cfg files.
    for m in ["nope", "/dev/zero", "/nonexistent.cfg", "/tmp", "/dev/null"] {
        v.push(case(&["layers", "--model", m], E("")));
    }
    for s in [
        "0x0",
        "99999999999999999999x1",
        "1x1",
        "-5x5",
        "32x32x32",
        "65536x65536",
        "x",
        "",
        "4294967297x4294967297",
    ] {
        v.push(case(&["layers", "--model", "yolov2", "--size", s], E("")));
    }
    v.push(case(
        &["layers", "--model", "yolov2", "--size", "64x64"],
        Ok,
    ));
    for name in [
        "empty.cfg",
        "only-net.cfg",
        "garbage.cfg",
        "nul.cfg",
        "filters0.cfg",
        "filters-neg.cfg",
        "filters-huge.cfg",
        "size0.cfg",
        "stride0.cfg",
        "groups3.cfg",
        "activation.cfg",
        "route-back.cfg",
        "route-ahead.cfg",
        "shortcut.cfg",
        "section.cfg",
        "upsample0.cfg",
        "upsample-huge.cfg",
        "reorg7.cfg",
        "reorg0.cfg",
        "yolo-mask.cfg",
        "region0.cfg",
        "key.cfg",
        "novalue.cfg",
        "too-big.cfg",
    ] {
        v.push(case(&["layers", "--model", &f(name)], E("")));
    }
    // Large but legal files are read (capped, fast), huge shapes refused where they would be built.
    v.push(case(&["layers", "--model", &f("many-layers.cfg")], Ok));
    v.push(case(&["layers", "--model", &f("long-line.cfg")], Ok));
    v.push(case(&["layers", "--model", &f("wide.cfg")], E("too large")));
    v.push(case(&["layers", "--model", &f("filters-big.cfg")], E("")));
    v.push(case(
        &["run", "--model", &f("wide.cfg"), "--device", "cpu"],
        E("too large"),
    ));
    v.push(case(
        &[
            "run",
            "--model",
            &f("wide.cfg"),
            "--size",
            "60000x60000",
            "--device",
            "cpu",
        ],
        E("host memory"),
    ));
    // A pool window far larger than the map is legal Darknet: fast, and right (it once was wrong).
    v.push(case(&["layers", "--model", &f("maxpool-huge.cfg")], Ok));
    v.push(case(
        &[
            "run",
            "--model",
            &f("maxpool-huge.cfg"),
            "--runs",
            "1",
            "--verify",
        ],
        Ok,
    ));
    v.push(case(
        &["run", "--model", &f("maxpool-huge.cfg"), "--device", "cpu"],
        Ok,
    ));

    // `run`: counts, sizes, files, budgets, configurations.
    for runs in ["0", "4294967296", "-1", "18446744073709551616", "1e3"] {
        v.push(case(
            &[
                "run",
                "--model",
                "yolov2-16",
                "--size",
                "64x64",
                "--runs",
                runs,
            ],
            E(if runs == "-1" { "'-1'" } else { "--runs" }),
        ));
    }
    v.push(case(
        &[
            "run",
            "--model",
            "yolov3-tiny",
            "--size",
            "20000x20000",
            "--device",
            "cpu",
        ],
        E("host memory"),
    ));
    v.push(case(
        &["run", "--model", "yolov3-tiny", "--size", "20000x20000"],
        E("smaller --size"),
    ));
    v.push(case(
        &["run", "--model", "yolov2", "--size", "4000x4000"],
        E("smaller --size"),
    ));
    v.push(case(
        &[
            "run",
            "--model",
            "yolov3-tiny",
            "--size",
            "20000x20000",
            "--budget",
            "100MiB",
        ],
        E(""),
    ));
    v.push(case(&["run", "--model", "/dev/zero"], E("")));
    for (weights, needle) in [
        ("/dev/zero", "too long"),
        ("/dev/null", "too short"),
        ("/nonexistent.weights", ""),
        ("random:abc", ""),
        ("random:99999999999999999999999", ""),
        ("int:-1", ""),
        ("int:", ""),
    ] {
        v.push(cmd16("run", &["--weights", weights], E(needle)));
    }
    v.push(cmd16(
        "run",
        &["--weights", &f("short.weights")],
        E("truncated"),
    ));
    v.push(cmd16("run", &["--weights", &f("nan.weights")], E("")));
    for (input, needle) in [
        ("/dev/zero", "too large"),
        ("/dev/null", ""),
        ("/nonexistent.png", "cannot read image"),
        ("random:xyz", ""),
    ] {
        v.push(cmd16("run", &["--input", input], E(needle)));
    }
    v.push(cmd16("run", &["--input", &f("junk.png")], E("")));
    v.push(cmd16(
        "run",
        &["--input", &f("truncated.jpg")],
        E("truncated JPEG"),
    ));
    v.push(cmd16("run", &["--input", &f("bomb.png")], E("")));
    for budget in [
        "0",
        "-1",
        "1",
        "99999999999999999999999",
        "1.5.5MiB",
        "1e30",
        "NaN",
        "inf",
        "12 parsecs",
    ] {
        v.push(cmd16("run", &["--budget", budget], E("")));
    }
    v.push(cmd16("run", &["--budget", "18446744073709551615"], Ok));
    for groups in [
        "garbage",
        "0..99:2x2",
        "0..4:0x0",
        "0..4:100000x100000",
        "4..2:2x2",
        "0..4:2x2,2..6:2x2",
        "0..4:2x2,",
        "0..18446744073709551615:2x2",
        "0..4:18446744073709551615x1",
        "0..4:2x2,4..8:2x2,8..99999999999999999999:1x1",
    ] {
        v.push(cmd16("run", &["--groups", groups], E("")));
    }
    v.push(cmd16("run", &["--groups", "0..4:2x2"], Ok));
    for plan in [
        "/dev/zero".to_string(),
        "/nonexistent.json".to_string(),
        f("junk.json"),
        f("wrong-plan.json"),
        f("array.json"),
        f("huge-number.json"),
        f("deep.json"),
    ] {
        v.push(cmd16("run", &["--plan", &plan], E("")));
    }
    for cal in ["/dev/zero".to_string(), f("junk.json"), f("deep.json")] {
        v.push(cmd16(
            "run",
            &["--budget", "10MiB", "--calibration", &cal],
            E(""),
        ));
    }
    v.push(cmd16(
        "run",
        &["--budget", "10MiB", "--calibration", "/proc/nope.json"],
        E("cannot write"),
    ));
    v.push(cmd16("run", &["--kernel", "nope"], E("")));
    v.push(cmd16("run", &["--adapter", "no such adapter"], E("")));
    v.push(cmd16("run", &["--precision", "f64"], E("")));
    v.push(cmd16("run", &["--mode", "nope"], E("")));
    v.push(cmd16("run", &["--residency", "nope"], E("")));
    v.push(cmd16(
        "run",
        &["--mode", "naive", "--groups", "0..2:2x2"],
        E(""),
    ));
    v.push(cmd16(
        "run",
        &["--out", "/nonexistent/dir/x.npy"],
        E("cannot write"),
    ));
    v.push(cmd16("run", &["--out", "/proc/x.npy"], E("cannot write")));
    let mut full = cmd16("run", &["--json"], E(""));
    full.full_stdout = true;
    v.push(full);

    // `plan`.
    v.push(cmd16("plan", &["--budget", "0"], E("")));
    v.push(cmd16("plan", &["--budget", "1"], E("the smallest needs")));
    v.push(cmd16("plan", &[], E("needs --budget")));
    v.push(cmd16("plan", &["--groups", "0..100:2x2"], E("")));
    v.push(cmd16("plan", &["--min-budget"], Ok));
    v.push(cmd16(
        "plan",
        &["--budget", "100MiB", "--out", "/nonexistent/dir/p.json"],
        E("cannot write"),
    ));
    v.push(cmd16(
        "plan",
        &["--budget", "100MiB", "--calibration", "/proc/nope.json"],
        E("cannot write"),
    ));
    v.push(cmd16(
        "plan",
        &["--budget", "100MiB", "--calibration", "/dev/zero"],
        E(""),
    ));
    v.push(case(
        &[
            "plan",
            "--model",
            "yolov2",
            "--size",
            "65536x65536",
            "--min-budget",
        ],
        E(""),
    ));

    // `sweep` and `regret`: numbers and output paths, all refused before any measuring.
    for budgets in [
        "1..2:18446744073709551615",
        "1..2:4000000000",
        "1..2:0",
        "9MiB..1MiB",
        "min..untiled:1001",
        "abc",
        "..",
        "0..1MiB",
    ] {
        v.push(cmd16("sweep", &["--budgets", budgets], E("--budgets")));
    }
    v.push(cmd16(
        "sweep",
        &["--svg", "/nonexistent/dir/x.svg"],
        E("cannot write"),
    ));
    v.push(cmd16(
        "sweep",
        &["--csv", "/nonexistent/dir/x.csv"],
        E("cannot write"),
    ));
    v.push(cmd16("sweep", &["--runs", "0"], E("--runs")));
    v.push(cmd16("sweep", &["--runs", "4294967296"], E("--runs")));
    for (extra, needle) in [
        (&["--grids", "0"][..], "--grids"),
        (&["--grids", "4294967296"], "--grids"),
        (&["--max-cuts", "100"], "reference grid has"),
        (&["--cuts", "0"], "--cuts"),
        (&["--cuts", "99999"], "--cuts"),
        (&["--cuts", "abc"], "--cuts"),
        (&["--top", "0"], "--top"),
        (&["--runs", "0"], "--runs"),
        (&["--budgets", "9MiB..1MiB"], "--budgets"),
        (&["--out", "/nonexistent/dir/r.json"], "cannot write"),
    ] {
        v.push(cmd16("regret", extra, E(needle)));
    }

    // A whole file pasted into an option: the error quotes a short prefix of it.
    let long = "0..1:1x1,".repeat(2000);
    let junk = "x".repeat(5000);
    let (long, junk) = (long.as_str(), junk.as_str());
    for (option, value) in [
        ("--groups", long),
        ("--groups", junk),
        ("--budget", junk),
        ("--size", junk),
        ("--weights", junk),
        ("--input", junk),
        ("--kernel", junk),
        ("--precision", junk),
        ("--adapter", junk),
        ("--plan", junk),
    ] {
        v.push(cmd16("run", &[option, value], E("")));
    }
    v.push(case(&["layers", "--model", junk], E("")));

    // ONNX models and tensor inputs.
    v.push(case(&["layers", "--model", &f("small.onnx")], Ok));
    v.push(case(
        &["run", "--model", &f("small.onnx"), "--device", "cpu"],
        Ok,
    ));
    v.push(case(
        &["run", "--model", &f("small.onnx"), "--runs", "1"],
        Ok,
    ));
    v.push(case(
        &["layers", "--model", &f("trunc.onnx")],
        E("not an ONNX model"),
    ));
    v.push(case(
        &["layers", "--model", &f("junk.onnx")],
        E("not an ONNX model"),
    ));
    v.push(case(&["layers", "--model", &f("empty.onnx")], E("opset")));
    v.push(case(
        &["layers", "--model", &f("einsum.onnx")],
        E("Einsum is not supported"),
    ));
    v.push(case(&["layers", "--model", &f("free.onnx")], E("--size")));
    v.push(case(
        &["layers", "--model", &f("missing.onnx")],
        E("unknown model"),
    ));
    v.push(case(
        &["layers", "--model", &f("small.onnx"), "--size", "16x16"],
        E("inner sizes differ"),
    ));
    v.push(case(
        &[
            "layers",
            "--model",
            &f("free.onnx"),
            "--size",
            "100000x100000",
        ],
        E("more than"),
    ));
    for input in ["wrong.npy", "junk.npy", "big.npy", "missing.npy"] {
        v.push(case(
            &[
                "run",
                "--model",
                &f("small.onnx"),
                "--device",
                "cpu",
                "--input",
                &f(input),
            ],
            E(""),
        ));
    }
    v.push(case(
        &[
            "run",
            "--model",
            &f("small.onnx"),
            "--weights",
            "int:1",
            "--device",
            "cpu",
        ],
        Ok,
    ));
    v.push(case(
        &[
            "run",
            "--model",
            &f("small.onnx"),
            "--weights",
            &f("junk.onnx"),
            "--device",
            "cpu",
        ],
        E("not an ONNX model"),
    ));
    v.push(case(
        &["plan", "--model", &f("small.onnx"), "--budget", "1"],
        E("fits a budget"),
    ));
    v.push(cmd16("regret", &["--cuts", junk], E("--cuts")));
    v.push(cmd16("sweep", &["--budgets", junk], E("--budgets")));

    // Full stdout on the printing commands.
    for args in [
        &["layers", "--model", "yolov2-16"][..],
        &["layers", "--model", "yolov2", "--json"],
        &["info"],
        &[
            "plan",
            "--model",
            "yolov2-16",
            "--size",
            "64x64",
            "--min-budget",
        ],
    ] {
        let mut c = case(args, E(""));
        c.full_stdout = true;
        v.push(c);
    }
    v
}

#[test]
fn hostile_invocations_fail_cleanly_fast_and_small() {
    let dir = common::scratch("hostile");
    write_files(&dir);
    let cases = cases(&dir);
    let (mut panicked, mut hung, mut big, mut wrong) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut slowest = (0.0, String::new());
    let mut largest = (0, String::new());
    for (k, c) in cases.iter().enumerate() {
        let o = run(&dir, k, c);
        let shown = c
            .args
            .iter()
            .map(|a| a.replace(&dir.display().to_string(), "$DIR"))
            .collect::<Vec<_>>()
            .join(" ");
        let shown = mafat::units::shorten(&shown);
        let shown = if c.full_stdout {
            format!("{shown} > /dev/full")
        } else {
            shown
        };
        if o.seconds > slowest.0 {
            slowest = (o.seconds, shown.clone());
        }
        if o.max_rss_kib > largest.0 {
            largest = (o.max_rss_kib, shown.clone());
        }
        if o.stderr.contains("panicked")
            || o.code == Some(101)
            || o.signal.is_some() && !o.timed_out
        {
            panicked.push(format!(
                "{shown}: {:?} {:?}: {}",
                o.code, o.signal, o.stderr
            ));
            continue;
        }
        if o.timed_out {
            hung.push(shown);
            continue;
        }
        if o.max_rss_kib > RSS_LIMIT_KIB {
            big.push(format!("{shown}: {} KiB", o.max_rss_kib));
        }
        let errors: Vec<&str> = o
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        if let Some(l) = errors.iter().find(|l| l.chars().count() > MAX_ERROR_CHARS) {
            wrong.push(format!(
                "{shown}: an error of {} characters: {}…",
                l.chars().count(),
                &l[..200]
            ));
            continue;
        }
        let right = match &c.expect {
            Expect::Ok => o.code == Some(0) && errors.is_empty(),
            Expect::Error(needle) => {
                o.code.is_some_and(|c| c != 0) && errors.len() == 1 && errors[0].contains(needle)
            }
        };
        if !right {
            wrong.push(format!("{shown}: exit {:?}: {}", o.code, o.stderr.trim()));
        }
    }
    eprintln!(
        "{} hostile invocations: {} panicked, {} hung (> {} s), {} over {} MiB resident, {} answered wrongly; slowest {:.2} s ({}), largest {} MiB ({})",
        cases.len(),
        panicked.len(),
        hung.len(),
        TIME_LIMIT.as_secs(),
        big.len(),
        RSS_LIMIT_KIB >> 10,
        wrong.len(),
        slowest.0,
        slowest.1,
        largest.0 >> 10,
        largest.1
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    assert!(
        panicked.is_empty() && hung.is_empty() && big.is_empty() && wrong.is_empty(),
        "panicked:\n{}\nhung:\n{}\nover the memory limit:\n{}\nwrong:\n{}",
        panicked.join("\n"),
        hung.join("\n"),
        big.join("\n"),
        wrong.join("\n")
    );
}
