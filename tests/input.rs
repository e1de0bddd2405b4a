//! Image input (Darknet letterboxing) and synthetic inputs.

mod common;

use mafat::input::{InputSource, letterbox, load_image, resize};
use mafat::{Shape, Tensor};

fn tmp(name: &str) -> std::path::PathBuf {
    common::scratch("input").join(name)
}

#[test]
fn letterbox_keeps_aspect_and_fills_half_grey() {
    // 4 wide × 2 high into 8×8: scale 2 → 8×4, centred with 2 grey rows above and below.
    let im = Tensor::from_vec(
        Shape::new(1, 2, 4),
        vec![0.0, 0.25, 0.75, 1.0, 0.0, 0.25, 0.75, 1.0],
    );
    let b = letterbox(&im, 8, 8);
    assert_eq!(b.shape, Shape::new(1, 8, 8));
    for y in [0, 1, 6, 7] {
        assert!((0..8).all(|x| b.at(0, y, x) == 0.5), "row {y} is grey");
    }
    // Darknet's bilinear resize: end points stay, x = 7 is the last input column exactly.
    assert_eq!(b.at(0, 2, 0), 0.0);
    assert_eq!(b.at(0, 2, 7), 1.0);
    assert!((2..6).all(|y| b.at(0, y, 7) == 1.0));
}

#[test]
fn resize_to_the_same_size_is_identity() {
    let im = Tensor::from_vec(
        Shape::new(2, 3, 5),
        (0..30).map(|i| i as f32 / 29.0).collect(),
    );
    assert_eq!(resize(&im, 5, 3), im);
}

#[test]
fn png_pixels_arrive_as_chw_over_255() {
    let path = tmp("px.png");
    let img = image::RgbImage::from_fn(3, 2, |x, y| {
        image::Rgb([(10 * x) as u8, (100 + y) as u8, 255])
    });
    img.save(&path).unwrap();
    let t = load_image(&path, Shape::new(3, 2, 3)).unwrap();
    assert_eq!(t.at(0, 1, 2), 20.0 / 255.0);
    assert_eq!(t.at(1, 1, 0), 101.0 / 255.0);
    assert_eq!(t.at(2, 0, 0), 1.0);
    // A one-channel network gets the grey level.
    let g = load_image(&path, Shape::new(1, 2, 3)).unwrap();
    assert_eq!(g.shape, Shape::new(1, 2, 3));
    let _ = std::fs::remove_file(path);
}

#[test]
fn bad_images_are_clear_errors() {
    let path = tmp("bad.jpg");
    std::fs::write(&path, b"not an image at all").unwrap();
    let e = load_image(&path, Shape::new(3, 8, 8))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot read image") && e.contains("bad.jpg"),
        "{e}"
    );
    let e = load_image(
        std::path::Path::new("/nonexistent.png"),
        Shape::new(3, 8, 8),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/nonexistent.png"), "{e}");
    let _ = std::fs::remove_file(path);

    // A JPEG cut short decodes without complaint in the image crate: refused here, while the
    // whole file loads.
    let img =
        image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 7]));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&img)
        .unwrap();
    let whole = tmp("whole.jpg");
    std::fs::write(&whole, &jpeg).unwrap();
    load_image(&whole, Shape::new(3, 8, 8)).unwrap();
    let cut = tmp("cut.jpg");
    for keep in [jpeg.len() - 2, jpeg.len() * 2 / 3, 300] {
        std::fs::write(&cut, &jpeg[..keep]).unwrap();
        let e = load_image(&cut, Shape::new(3, 8, 8))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cut.jpg") && e.contains("truncated"),
            "{keep}: {e}"
        );
    }
    let _ = std::fs::remove_file(whole);
    let _ = std::fs::remove_file(cut);
}

#[test]
fn darknet_dog_is_letterboxed_to_416() {
    let share = match common::darknet_share() {
        Ok(s) => s,
        Err(why) => return common::skip("darknet_dog_is_letterboxed_to_416", &why),
    };
    let t = load_image(&share.join("data/dog.jpg"), Shape::new(3, 416, 416)).unwrap();
    // dog.jpg is 768×576: 416×312 centred, 52 grey rows above and below.
    assert!((0..416).all(|x| t.at(1, 51, x) == 0.5 && t.at(1, 364, x) == 0.5));
    assert!((0..416).any(|x| t.at(1, 52, x) != 0.5));
    assert!(t.data.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn synthetic_inputs() {
    let s = Shape::new(3, 4, 5);
    let r = InputSource::parse("random:9").unwrap().load(s).unwrap();
    assert!(r.data.iter().all(|v| (0.0..1.0).contains(v)));
    assert_eq!(r, InputSource::Random(9).load(s).unwrap());
    let i = InputSource::parse("int").unwrap().load(s).unwrap();
    assert!(i.data.iter().all(|v| v.fract() == 0.0 && v.abs() <= 3.0));
    assert!(i.data.iter().any(|&v| v < 0.0));
    assert_eq!(
        InputSource::parse("x.png").unwrap(),
        InputSource::Image("x.png".into())
    );
}
