//! Built-in models: Darknet cfg texts bundled in the crate (see `cfgs/NOTICE`).

/// Names accepted by `--model`.
pub const NAMES: &[&str] = &["yolov2", "yolov2-16", "yolov2-tiny", "yolov3-tiny"];

/// The layers of `yolov2` that DeepThings and MAFAT fuse and tile.
pub const YOLOV2_16_LAYERS: usize = 16;

/// `(cfg text, number of layers to keep)` of a built-in model.
pub fn lookup(name: &str) -> Option<(&'static str, Option<usize>)> {
    Some(match name {
        "yolov2" => (include_str!("cfgs/yolov2.cfg"), None),
        "yolov2-16" => (include_str!("cfgs/yolov2.cfg"), Some(YOLOV2_16_LAYERS)),
        "yolov2-tiny" => (include_str!("cfgs/yolov2-tiny.cfg"), None),
        "yolov3-tiny" => (include_str!("cfgs/yolov3-tiny.cfg"), None),
        _ => return None,
    })
}
