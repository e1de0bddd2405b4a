//! The `.cfg` parser: built-in models, Darknet's own cfgs, and errors with file:line.

mod common;

use mafat::model::{self, cfg};
use mafat::network::{LayerKind, Shape};

#[test]
fn yolov2_16_has_darknet_shapes_and_13_gmacs() {
    let net = model::load("yolov2-16", None).unwrap();
    assert_eq!(net.layers.len(), 16);
    assert_eq!(net.input, Shape::new(3, 608, 608));
    assert_eq!(net.layers[15].output, Shape::new(256, 38, 38));
    // Hand-derived: a 3x3 conv on 608x608x3 to 32 filters is 608·608·32·3·9 MACs.
    assert_eq!(net.layers[0].macs(), 608 * 608 * 32 * 3 * 9);
    assert_eq!(net.layers[1].output, Shape::new(32, 304, 304));
    // Each 3x3 conv after the first is H·W·Cout·Cin·9 = 1.703 G; each 1x1 is 0.189 G.
    let three = 304 * 304 * 64 * 32 * 9u64;
    let one = 152 * 152 * 64 * 128u64;
    assert_eq!(net.macs(), 608 * 608 * 32 * 3 * 9 + 7 * three + 4 * one);
    assert!(
        (net.macs() as f64 / 1e9 - 13.0).abs() < 0.01,
        "{}",
        net.macs()
    );
}

#[test]
fn yolov2_full_network() {
    let net = model::load("yolov2", None).unwrap();
    // Darknet numbers YOLOv2 0..=31: 31 computing layers (0–30) and the region head (31).
    assert_eq!(net.layers.len(), 32);
    let shapes: Vec<Shape> = net.layers.iter().map(|l| l.output).collect();
    assert_eq!(shapes[17], Shape::new(512, 19, 19));
    assert_eq!(net.layers[25].kind, LayerKind::Route { layers: vec![16] });
    assert_eq!(shapes[25], Shape::new(512, 38, 38));
    assert_eq!(shapes[27], Shape::new(256, 19, 19)); // reorg /2 of 38x38x64
    assert_eq!(
        net.layers[28].kind,
        LayerKind::Route {
            layers: vec![27, 24]
        }
    );
    assert_eq!(shapes[28], Shape::new(1280, 19, 19));
    assert_eq!(shapes[30], Shape::new(425, 19, 19));
    assert!(
        matches!(net.layers[31].kind, LayerKind::Region(ref r) if r.num == 5 && r.classes == 80 && r.softmax)
    );
    assert_eq!(net.outputs(), vec![31]);
}

#[test]
fn tiny_models_and_the_2x2_stride_1_pool() {
    let net = model::load("yolov2-tiny", None).unwrap();
    let pool = &net.layers[11];
    assert!(
        matches!(pool.kind, LayerKind::MaxPool(ref p) if p.size == 2 && p.stride == 1 && p.padding == 1 && p.pad_before() == 0)
    );
    assert_eq!(pool.input, Shape::new(512, 13, 13));
    assert_eq!(pool.output, Shape::new(512, 13, 13));

    let net = model::load("yolov3-tiny", None).unwrap();
    assert_eq!(net.layers.len(), 24);
    assert_eq!(net.outputs(), vec![16, 23]);
    assert_eq!(net.layers[19].output, Shape::new(128, 26, 26)); // upsample
    assert_eq!(
        net.layers[20].kind,
        LayerKind::Route {
            layers: vec![19, 8]
        }
    );
    assert_eq!(net.layers[20].output, Shape::new(384, 26, 26));
}

#[test]
fn size_override() {
    let net = model::load("yolov2-16", Some((160, 160))).unwrap();
    assert_eq!(net.input, Shape::new(3, 160, 160));
    assert_eq!(net.layers[15].output, Shape::new(256, 10, 10));
    // 13x13 through a 2x2/2 pool is 7x7 (Darknet's default padding = size − 1).
    let net = model::load("yolov2-16", Some((104, 104))).unwrap();
    assert_eq!(net.layers[11].input.h, 13);
    assert_eq!(net.layers[11].output.h, 7);
    assert!(model::parse_size("0x5").is_err());
    assert!(model::parse_size("416").is_err());
    assert_eq!(model::parse_size("320x240").unwrap(), (320, 240));
}

#[test]
fn darknet_debian_cfgs_match_builtins() {
    let share = match common::darknet_share() {
        Ok(s) => s,
        Err(why) => return common::skip("darknet_debian_cfgs_match_builtins", &why),
    };
    for name in ["yolov3-tiny", "yolov2-tiny", "yolov2"] {
        let path = share.join(format!("cfg/{name}.cfg"));
        let from_file = model::load(path.to_str().unwrap(), None).unwrap();
        let builtin = model::load(name, None).unwrap();
        assert_eq!(from_file.input, builtin.input, "{name}");
        assert_eq!(from_file.layers, builtin.layers, "{name}");
    }
    // Darknet's other detection and classification cfgs that use only supported layers parse too.
    for name in [
        "yolov3",
        "yolov3-voc",
        "yolov2-voc",
        "darknet19",
        "darknet53",
        "resnet18",
    ] {
        let path = share.join(format!("cfg/{name}.cfg"));
        let net =
            model::load(path.to_str().unwrap(), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!net.layers.is_empty());
    }
}

fn err(text: &str) -> String {
    cfg::parse(text, "t.cfg", None).unwrap_err().to_string()
}

const NET: &str = "[net]\nwidth=16\nheight=16\nchannels=3\n";

#[test]
fn errors_name_file_line_and_expectation() {
    let e = err(&format!(
        "{NET}[convolutional]\nfilters=8\nsize=3\nfrobnicate=1\n"
    ));
    assert!(
        e.starts_with("t.cfg:8:") && e.contains("unknown key `frobnicate`"),
        "{e}"
    );

    let e = err(&format!("{NET}[convolutional]\nfilters=8x\n"));
    assert!(
        e.starts_with("t.cfg:6:") && e.contains("expected an integer"),
        "{e}"
    );

    let e = err(&format!("{NET}[convolutional]\nfilters=0\n"));
    assert!(e.starts_with("t.cfg:6:") && e.contains("filters=0"), "{e}");

    let e = err(&format!("{NET}[dropout]\nprobability=.5\n"));
    assert!(
        e.starts_with("t.cfg:5:") && e.contains("unsupported section [dropout]"),
        "{e}"
    );

    let e = err(&format!(
        "{NET}[convolutional]\nfilters=4\n[route]\nlayers=-1,3\n"
    ));
    assert!(
        e.starts_with("t.cfg:8:") && e.contains("refers to layer 3"),
        "{e}"
    );

    let e = err(&format!("{NET}[route]\nlayers=-1\n"));
    assert!(e.starts_with("t.cfg:6:"), "{e}");

    let e = err("[net]\nwidth=0\nheight=16\nchannels=3\n");
    assert!(e.starts_with("t.cfg:2:") && e.contains("width=0"), "{e}");

    let e = err("[net]\nheight=16\nchannels=3\n[maxpool]\n");
    assert!(e.starts_with("t.cfg:1:") && e.contains("width=N"), "{e}");

    let e = err("[convolutional]\nfilters=3\n");
    assert!(e.contains("expected [net]"), "{e}");

    let e = err("filters=3\n[net]\n");
    assert!(e.starts_with("t.cfg:1:"), "{e}");

    let e = err(&format!("{NET}[convolutional]\nsize=33\n"));
    assert!(e.contains("larger than the padded input"), "{e}");

    let e = err(&format!("{NET}[convolutional]\nactivation=swishy\n"));
    assert!(
        e.starts_with("t.cfg:6:") && e.contains("activation=swishy"),
        "{e}"
    );

    let e = err(&format!("{NET}[reorg]\nstride=5\n"));
    assert!(e.contains("divisible by 5"), "{e}");

    let e = err(&format!("{NET}[convolutional]\nfilters=4\nfilters=5\n"));
    assert!(
        e.starts_with("t.cfg:7:") && e.contains("given twice"),
        "{e}"
    );

    let e = err(&format!("{NET}[convolutional]\nfilters=4\ngroups=3\n"));
    assert!(e.contains("groups=3 must divide"), "{e}");

    let e = err(&format!("{NET}[yolo]\nclasses=1\nnum=1\n"));
    assert!(
        e.contains("expects masks·(classes+5) = 6 input channels, got 3"),
        "{e}"
    );

    let e = err(&format!(
        "{NET}[convolutional]\nfilters=4\n[shortcut]\nfrom=-2\n"
    ));
    assert!(e.contains("refers to layer -1"), "{e}");
}

#[test]
fn whitespace_comments_and_defaults_as_darknet() {
    let text = "# a comment\n[net]\n width = 10 \nheight=9\nchannels=2 # inline\n; another\n\n\
                [conv]\nfilters = 4\nsize=3\npad=1\nactivation=leaky\n\n[max]\n";
    let net = cfg::parse(text, "t.cfg", None).unwrap();
    assert_eq!(net.input, Shape::new(2, 9, 10));
    assert_eq!(net.layers[0].output, Shape::new(4, 9, 10));
    // [maxpool] with no keys: stride 1, size 1, padding 0.
    assert_eq!(net.layers[1].output, Shape::new(4, 9, 10));
    // conv activation defaults to logistic, as in Darknet.
    let net = cfg::parse(&format!("{NET}[convolutional]\n"), "t.cfg", None).unwrap();
    assert!(
        matches!(net.layers[0].kind, LayerKind::Conv(ref c) if c.activation == mafat::network::Activation::Logistic && c.filters == 1)
    );
    // Depthwise conv: groups = channels = filters.
    let net = cfg::parse(
        &format!("{NET}[convolutional]\nfilters=3\ngroups=3\nsize=3\nstride=2\npad=1\n"),
        "t.cfg",
        None,
    )
    .unwrap();
    assert_eq!(net.layers[0].output, Shape::new(3, 8, 8));
    assert_eq!(net.layers[0].weight_bytes(), 4 * (3 * 9 + 3));
}
