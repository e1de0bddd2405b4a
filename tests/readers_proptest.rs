//! Property-based tests (proptest) of every reader of user text and files: the Darknet cfg parser,
//! the weights reader, the plan-file reader and its checks, the `--groups` configuration parser,
//! byte sizes and `--size`. Whatever the input, a reader returns a value or an error whose message is
//! one line of bounded length — it never panics — and what it accepts is consistent (configurations
//! print back to themselves, weights round-trip byte for byte, accepted cfgs infer consistent shapes).
//!
//! Failing cases proptest shrinks are kept in `tests/readers_proptest.proptest-regressions`
//! (committed) and replayed first on every run.

mod chains;

use chains::limits;
use mafat::model::weights::DarknetWeights;
use mafat::model::{self, cfg};
use mafat::plan::file::PlanFile;
use mafat::plan::{Config, Mode, Planner, Residency};
use proptest::prelude::*;

/// An error message a user can read: one line, not a page.
fn readable(e: &mafat::Error) -> bool {
    let m = e.to_string();
    !m.contains('\n') && m.len() < 2000
}

/// Plausible cfg text: sections, keys and values drawn from Darknet's vocabulary and hostile numbers.
fn cfg_text() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "[net]",
        "[convolutional]",
        "[maxpool]",
        "[avgpool]",
        "[route]",
        "[shortcut]",
        "[upsample]",
        "[reorg]",
        "[region]",
        "[yolo]",
        "[softmax]",
        "[dropout]",
        "[",
        "",
    ]);
    let key = prop::sample::select(vec![
        "width",
        "height",
        "channels",
        "filters",
        "size",
        "stride",
        "pad",
        "padding",
        "groups",
        "layers",
        "from",
        "activation",
        "batch_normalize",
        "classes",
        "num",
        "coords",
        "mask",
        "anchors",
        "dilation",
        "stride_x",
        "",
    ]);
    let value = prop::sample::select(vec![
        "0",
        "1",
        "2",
        "3",
        "-1",
        "-4",
        "13",
        "32",
        "416",
        "65535",
        "4294967297",
        "99999999999999999999",
        "leaky",
        "linear",
        "1,2",
        "-1,-4",
        "1e9",
        "nan",
        "",
        ",",
    ]);
    let line = prop_oneof![
        section.prop_map(str::to_string),
        (key, value).prop_map(|(k, v)| format!("{k}={v}")),
        "[ -~]{0,12}".prop_map(|s| s),
    ];
    (0usize..3, prop::collection::vec(line, 0..40)).prop_map(|(start, lines)| {
        let head = ["", "[net]\nwidth=32\nheight=32\nchannels=3\n", "[net]\n"][start];
        format!("{head}{}", lines.join("\n"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The cfg parser never panics; an accepted network has consistent shapes, and its layer
    /// table, weight-file size and untiled plan are computed without panicking.
    #[test]
    fn cfg_parser_never_panics(text in cfg_text(), size in prop::option::of((1usize..2000, 1usize..2000))) {
        match cfg::parse(&text, "prop.cfg", size) {
            Ok(net) => {
                prop_assert!(!net.layers.is_empty());
                for (i, l) in net.layers.iter().enumerate() {
                    prop_assert!(!l.output.is_empty(), "layer {i}: empty output");
                }
                let _ = DarknetWeights::body_bytes(&net);
                let _ = net.macs();
                if let Ok(p) = Planner::new(&net, &limits()) {
                    let _ = p.plan(&Config::untiled(), Mode::Layerwise, Residency::Resident);
                }
            }
            Err(e) => prop_assert!(readable(&e), "{e}"),
        }
    }

    /// Arbitrary bytes as cfg text (not UTF-8 aware: lossily decoded) never panic the parser.
    #[test]
    fn cfg_parser_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = cfg::parse(&text, "bytes.cfg", None) {
            prop_assert!(readable(&e), "{e}");
        }
    }

    /// `--groups`: any text gives a configuration that prints back to itself, or a readable error;
    /// resolving it against a network never panics.
    #[test]
    fn config_parser_round_trips(text in "[0-9.:x,]{0,40}|[ -~]{0,40}") {
        match Config::parse(&text) {
            Ok(c) => {
                let again = Config::parse(&c.to_string()).expect("a printed config parses");
                prop_assert_eq!(again.to_string(), c.to_string());
                let net = model::load("yolov2-16", Some((64, 64))).unwrap();
                if let Err(e) = c.resolve(&net) {
                    prop_assert!(readable(&e), "{e}");
                }
            }
            Err(e) => prop_assert!(readable(&e), "{e}"),
        }
    }

    /// Well-formed configurations (groups in order, any grid) resolve or are refused, never panic,
    /// and plan without panicking when they resolve.
    #[test]
    fn generated_configs_resolve_or_are_refused(
        cuts in prop::collection::btree_set(1usize..16, 0..5),
        grids in prop::collection::vec((1usize..12, 1usize..12), 6),
    ) {
        let net = model::load("yolov2-16", Some((64, 64))).unwrap();
        let mut points = vec![0];
        points.extend(cuts);
        points.push(16);
        let text = points
            .windows(2)
            .zip(&grids)
            .map(|(w, (r, c))| format!("{}..{}:{r}x{c}", w[0], w[1]))
            .collect::<Vec<_>>()
            .join(",");
        let c = Config::parse(&text).unwrap();
        match c.resolve(&net) {
            Ok(_) => {
                let p = Planner::new(&net, &limits()).unwrap();
                let plan = p.plan(&c, Mode::Layerwise, Residency::Resident);
                prop_assert!(plan.is_ok(), "{text}: {:?}", plan.err());
            }
            Err(e) => prop_assert!(readable(&e), "{e}"),
        }
    }

    /// The weights reader: any bytes are refused with byte counts, or (the exact size) read; what
    /// it reads writes back byte for byte.
    #[test]
    fn weights_reader_never_panics(
        len in prop_oneof![0usize..64, Just(usize::MAX)],
        seed in any::<u64>(),
        flip in any::<(usize, u8)>(),
    ) {
        // A small network with batch-normalized and plain convolutions (a few thousand values).
        let net = cfg::parse(
            "[net]\nwidth=16\nheight=16\nchannels=3\n\
             [convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\npad=1\nactivation=leaky\n\
             [maxpool]\nsize=2\nstride=2\n\
             [convolutional]\nfilters=16\nsize=3\npad=1\nactivation=linear\n",
            "small.cfg",
            None,
        )
        .unwrap();
        let mut bytes = DarknetWeights::random(&net, seed).to_bytes();
        let exact = bytes.len();
        if len != usize::MAX {
            bytes.truncate(len.min(exact));
        }
        if !bytes.is_empty() {
            let i = flip.0 % bytes.len();
            bytes[i] ^= flip.1;
        }
        match DarknetWeights::from_bytes(&bytes, &net, "prop.weights") {
            Ok(w) => prop_assert_eq!(w.to_bytes(), bytes),
            Err(e) => {
                prop_assert!(readable(&e), "{e}");
                // At the exact size only a header (version) or a value that cannot be (a
                // negative variance, a non-finite number) is refused.
                let m = e.to_string();
                prop_assert!(
                    bytes.len() != exact || ["version", "negative", "finite"].iter().any(|w| m.contains(w)),
                    "{m}"
                );
            }
        }
    }

    /// Byte sizes and `--size`: any text is a number or a readable error.
    #[test]
    fn sizes_never_panic(text in "[0-9.eE+-]{0,24}[KMGTkmgtiIbB ]{0,4}|[ -~]{0,30}") {
        if let Err(e) = mafat::units::parse_bytes(&text) {
            prop_assert!(readable(&e), "{e}");
        }
        if let Err(e) = model::parse_size(&text) {
            prop_assert!(readable(&e), "{e}");
        }
    }

    /// The plan-file reader: mutated plan files are read or refused, and the checks against the
    /// network and the re-planned figures never panic; an unchanged file passes them.
    #[test]
    fn plan_files_are_read_or_refused(
        field in 0usize..8,
        value in prop_oneof![
            any::<i64>().prop_map(|v| serde_json::json!(v)),
            "[ -~]{0,20}".prop_map(|s| serde_json::json!(s)),
            Just(serde_json::json!(null)),
            Just(serde_json::json!([1, 2, 3])),
            Just(serde_json::json!(1e300)),
        ],
    ) {
        let net = model::load("yolov2-16", Some((64, 64))).unwrap();
        let original = plan_file(&net);
        let mut v = serde_json::to_value(&original).unwrap();
        let key = ["config", "residency", "budget_bytes", "predicted_peak_bytes", "input",
            "kernels", "precision", "network_hash"][field];
        v[key] = value;
        let dir = std::env::temp_dir();
        let path = dir.join(format!("mafat-prop-plan-{}-{field}.json", std::process::id()));
        std::fs::write(&path, v.to_string()).unwrap();
        let read = PlanFile::read(&path);
        let _ = std::fs::remove_file(&path);
        let Ok(f) = read else {
            prop_assert!(readable(&read.unwrap_err()));
            return Ok(());
        };
        let adapter = original.adapter.clone();
        if let Err(e) = f.check(&path, &net, &adapter, f.precision) {
            prop_assert!(readable(&e), "{e}");
            return Ok(());
        }
        let ops = match f.ops(&path, &net) {
            Ok(ops) => ops,
            Err(e) => { prop_assert!(readable(&e), "{e}"); return Ok(()); }
        };
        let planned = f.config().and_then(|c| {
            Planner::with_ops_at(&net, &limits(), ops, f.precision)?.plan(&c, Mode::Layerwise, f.residency)
        });
        match planned {
            Ok(plan) => {
                if let Err(e) = f.check_figures(&path, &plan) {
                    prop_assert!(readable(&e), "{e}");
                } else {
                    // What passes every check plans to its own recorded peak within its budget.
                    prop_assert_eq!(plan.peak_bytes(), f.predicted_peak_bytes);
                    prop_assert!(plan.peak_bytes() <= f.budget_bytes);
                }
            }
            Err(e) => prop_assert!(readable(&e), "{e}"),
        }
    }
}

/// A plan file for yolov2-16 at its smallest budget, as `mafat plan --out` writes it.
fn plan_file(net: &mafat::Network) -> PlanFile {
    use mafat::plan::search::min_peak;
    let p = Planner::new(net, &limits()).unwrap();
    let (peak, config, residency) = min_peak(&p).unwrap();
    let plan = p.plan(&config, Mode::Layerwise, residency).unwrap();
    PlanFile {
        mafat: env!("CARGO_PKG_VERSION").into(),
        model: net.name.clone(),
        network_hash: mafat::plan::cost::network_hash(net),
        input: [net.input.c, net.input.h, net.input.w],
        adapter: mafat::plan::file::AdapterId {
            name: "prop".into(),
            driver: "prop".into(),
            backend: "vulkan".into(),
        },
        config: config.to_string(),
        residency,
        budget_bytes: peak,
        predicted_peak_bytes: peak,
        predicted_latency_ms: 1.0,
        mac_ratio: plan.mac_ratio(net),
        breakdown: Some(plan.breakdown()),
        kernels: plan.ops.iter().map(|o| o.name().to_string()).collect(),
        precision: plan.precision,
    }
}
