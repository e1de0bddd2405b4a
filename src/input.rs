//! Network input: a PNG/JPEG image letterboxed as Darknet does, a tensor file (`.npy`, ONNX `.pb`),
//! or synthetic data.

use crate::error::{Error, Result};
use crate::model::weights::parse_seeded;
use crate::network::Shape;
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::path::{Path, PathBuf};

/// Where the input tensor comes from: `IMAGE`, `random[:SEED]` or `int[:SEED]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// A PNG or JPEG file, letterboxed to the network's input size (see [`load_image`]).
    Image(PathBuf),
    /// Uniform in [0, 1), like a normalized image; the seed.
    Random(u64),
    /// Integers in −3..=3, for exact-arithmetic tests; the seed.
    Int(u64),
    /// A tensor file: NumPy `.npy` (f32 or f64) or an ONNX `TensorProto` (`.pb`), holding exactly
    /// the input's values (dimensions `[1, C, H, W]`, `[C, H, W]` or, for a vector input, `[1, K]`).
    Tensor(PathBuf),
}

impl InputSource {
    /// Parse `random`, `random:SEED`, `int`, `int:SEED` (no seed: 0) or, for anything else, an image
    /// path. A malformed `SEED` is [`Error::Usage`].
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match parse_seeded(s, "random")? {
            Some(seed) => InputSource::Random(seed),
            None => match parse_seeded(s, "int")? {
                Some(seed) => InputSource::Int(seed),
                None => {
                    let path = PathBuf::from(s);
                    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                    if ext.eq_ignore_ascii_case("npy") || ext.eq_ignore_ascii_case("pb") {
                        InputSource::Tensor(path)
                    } else {
                        InputSource::Image(path)
                    }
                }
            },
        })
    }

    /// Produce the input tensor of shape `shape`.
    pub fn load(&self, shape: Shape) -> Result<Tensor> {
        match self {
            InputSource::Image(p) => load_image(p, shape),
            InputSource::Tensor(p) => load_tensor(p, shape),
            InputSource::Random(seed) => {
                let mut rng = Rng::new(*seed ^ 0xabcd);
                Ok(Tensor::from_vec(
                    shape,
                    (0..shape.len()).map(|_| rng.unit()).collect(),
                ))
            }
            InputSource::Int(seed) => {
                let mut rng = Rng::new(*seed ^ 0xef01);
                Ok(Tensor::from_vec(
                    shape,
                    (0..shape.len()).map(|_| rng.int(-3, 3) as f32).collect(),
                ))
            }
        }
    }
}

/// Read a tensor file (`.npy`, or `.pb` holding an ONNX `TensorProto`) as the input of `shape`: its
/// dimensions must be `[1, C, H, W]` or `[C, H, W]` of that shape (`[1, C]` or `[C]` when the shape
/// is C×1×1). Its size is checked before its data is read.
pub fn load_tensor(path: &Path, shape: Shape) -> Result<Tensor> {
    let cap = 4 * shape.len() as u64 + (1 << 16);
    let shown = crate::units::shorten(&path.display().to_string());
    let bad = |m: String| Error::Usage(format!("--input {shown}: {m}"));
    let is_pb = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pb"));
    let (dims, data) = if is_pb {
        let c = crate::model::onnx::read_tensor(path)?;
        match c.values {
            crate::model::onnx::Values::F32(v) => (c.dims, v),
            crate::model::onnx::Values::I64(_) => {
                return Err(bad("holds integers; the input is a float tensor".into()));
            }
        }
    } else {
        let bytes = crate::model::read_bytes_capped(path, 2 * cap)
            .map_err(|e| Error::io(path, e))?
            .ok_or_else(|| {
                bad(format!(
                    "larger than a {} input could be (.npy of {} values)",
                    shape,
                    shape.len()
                ))
            })?;
        crate::npy::read(&bytes).map_err(bad)?
    };
    let mut want: Vec<Vec<usize>> = vec![
        vec![1, shape.c, shape.h, shape.w],
        vec![shape.c, shape.h, shape.w],
    ];
    if shape.h == 1 && shape.w == 1 {
        want.push(vec![1, shape.c]);
        want.push(vec![shape.c]);
    }
    if !want.contains(&dims) {
        return Err(bad(format!(
            "dimensions {dims:?}, but the network's input is {:?} (channels, height, width; batch 1)",
            want[0]
        )));
    }
    Ok(Tensor::from_vec(shape, data))
}

/// Largest image file read, in bytes.
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;

/// Decode an image file to CHW floats in 0..1 (channels 3 = RGB, 1 = gray) and letterbox it to `shape`.
pub fn load_image(path: &Path, shape: Shape) -> Result<Tensor> {
    let err = |message: String| Error::Image {
        path: path.to_path_buf(),
        message,
    };
    let bytes = crate::model::read_bytes_capped(path, MAX_IMAGE_FILE_BYTES)
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| {
            err(format!(
                "larger than {MAX_IMAGE_FILE_BYTES} bytes: too large for an input image (give a PNG or JPEG photo)"
            ))
        })?;
    let reader = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    // The JPEG decoder fills a truncated file's missing rows silently: refuse it first.
    if reader.format() == Some(image::ImageFormat::Jpeg) && jpeg_truncated(&bytes) {
        return Err(err(format!(
            "a truncated JPEG ({} bytes, no end-of-image marker after its scan data); copy the whole file again",
            bytes.len()
        )));
    }
    let img = reader
        .decode()
        .map_err(|e| err(format!("{e} (expected a PNG or JPEG file)")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data: Vec<f32> = match shape.c {
        3 => {
            let rgb = img.to_rgb8();
            let raw = rgb.as_raw();
            let mut chw = vec![0.0; 3 * w * h];
            for (i, px) in raw.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    chw[c * w * h + i] = px[c] as f32 / 255.0;
                }
            }
            chw
        }
        1 => img
            .to_luma8()
            .as_raw()
            .iter()
            .map(|&v| v as f32 / 255.0)
            .collect(),
        c => {
            return Err(err(format!(
                "the network takes {c} channels; images feed networks with 1 or 3"
            )));
        }
    };
    let im = Tensor::from_vec(Shape::new(shape.c, h, w), data);
    Ok(letterbox(&im, shape.w, shape.h))
}

/// Whether a JPEG's bytes end before its end-of-image marker: the header segments are walked by
/// their lengths up to the first start-of-scan, then the marker is looked for (scan data never holds
/// `FF D9`: a data byte `FF` is always followed by `00` or a restart marker).
fn jpeg_truncated(b: &[u8]) -> bool {
    let mut i = 2; // after start-of-image
    loop {
        if i + 1 >= b.len() {
            return true;
        }
        if b[i] != 0xFF {
            return false; // not a marker where one must be: the decoder says what is wrong
        }
        match b[i + 1] {
            0xFF => i += 1, // fill byte
            0xD9 => return false,
            0x01 | 0xD0..=0xD7 => i += 2,
            m => {
                if i + 3 >= b.len() {
                    return true;
                }
                i += 2 + u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
                if m == 0xDA {
                    break;
                }
            }
        }
    }
    !b.get(i..)
        .unwrap_or_default()
        .windows(2)
        .any(|w| w == [0xFF, 0xD9])
}

/// Darknet's `letterbox_image`: scale to fit `w×h` keeping the aspect ratio (integer sizes as Darknet
/// computes them), centre it, fill the rest with 0.5.
pub fn letterbox(im: &Tensor, w: usize, h: usize) -> Tensor {
    let (iw, ih) = (im.shape.w, im.shape.h);
    let (new_w, new_h) = if (w as f32 / iw as f32) < (h as f32 / ih as f32) {
        (w, (ih * w / iw).max(1))
    } else {
        ((iw * h / ih).max(1), h)
    };
    let resized = resize(im, new_w, new_h);
    let mut boxed = Tensor::from_vec(Shape::new(im.shape.c, h, w), vec![0.5; im.shape.c * h * w]);
    let (dx, dy) = ((w - new_w) / 2, (h - new_h) / 2);
    for c in 0..im.shape.c {
        for y in 0..new_h {
            for x in 0..new_w {
                boxed.data[(c * h + y + dy) * w + x + dx] = resized.at(c, y, x);
            }
        }
    }
    boxed
}

/// Darknet's `resize_image`: bilinear, first along x then along y, with its exact arithmetic.
pub fn resize(im: &Tensor, w: usize, h: usize) -> Tensor {
    let (iw, ih, ic) = (im.shape.w, im.shape.h, im.shape.c);
    let mut part = Tensor::zeros(Shape::new(ic, ih, w));
    let w_scale = if w > 1 {
        (iw - 1) as f32 / (w - 1) as f32
    } else {
        0.0
    };
    let h_scale = if h > 1 {
        (ih - 1) as f32 / (h - 1) as f32
    } else {
        0.0
    };
    for k in 0..ic {
        for r in 0..ih {
            for c in 0..w {
                let val = if c == w - 1 || iw == 1 {
                    im.at(k, r, iw - 1)
                } else {
                    let sx = c as f32 * w_scale;
                    let ix = sx as usize;
                    let dx = sx - ix as f32;
                    (1.0 - dx) * im.at(k, r, ix) + dx * im.at(k, r, (ix + 1).min(iw - 1))
                };
                part.data[(k * ih + r) * w + c] = val;
            }
        }
    }
    let mut out = Tensor::zeros(Shape::new(ic, h, w));
    for k in 0..ic {
        for r in 0..h {
            let sy = r as f32 * h_scale;
            let iy = sy as usize;
            let dy = sy - iy as f32;
            for c in 0..w {
                out.data[(k * h + r) * w + c] = (1.0 - dy) * part.at(k, iy, c);
            }
            if r == h - 1 || ih == 1 {
                continue;
            }
            for c in 0..w {
                out.data[(k * h + r) * w + c] += dy * part.at(k, (iy + 1).min(ih - 1), c);
            }
        }
    }
    out
}
