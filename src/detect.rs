//! Detection heads to boxes: decoding Darknet's `[region]` (YOLOv2) and `[yolo]` (YOLOv3) outputs,
//! undoing the letterbox, non-maximum suppression, and drawing labelled boxes on an image.
//!
//! The head tensors are what [`crate::reference::forward`] and the GPU executor return for the
//! network's outputs (activations already applied: logistic on x, y, objectness; softmax or
//! logistic on classes). Boxes follow Darknet's `get_region_detections`/`get_yolo_detections` and
//! `correct_*_boxes`, so the numbers match `darknet detector test`.

use crate::error::{Error, Result};
use crate::network::{LayerKind, Network};
use crate::tensor::Tensor;
use serde::Serialize;

/// A box in the original image, relative to its size: centre `x`, `y` and size `w`, `h` (0..1 inside
/// the image; a box crossing an edge reaches past it, and [`BoxRel::pixels`] clamps).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoxRel {
    /// Centre, from the left edge (0) to the right (1).
    pub x: f32,
    /// Centre, from the top edge (0) to the bottom (1).
    pub y: f32,
    /// Width, as a fraction of the image's.
    pub w: f32,
    /// Height, as a fraction of the image's.
    pub h: f32,
}

impl BoxRel {
    /// Intersection over union with another box.
    pub fn iou(&self, o: &BoxRel) -> f32 {
        let overlap = |a: f32, aw: f32, b: f32, bw: f32| {
            let lo = (a - aw / 2.0).max(b - bw / 2.0);
            let hi = (a + aw / 2.0).min(b + bw / 2.0);
            (hi - lo).max(0.0)
        };
        let inter = overlap(self.x, self.w, o.x, o.w) * overlap(self.y, self.h, o.y, o.h);
        let union = self.w * self.h + o.w * o.h - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// Pixel corners `(left, top, right, bottom)` in an image of `w`×`h`, clamped to it.
    pub fn pixels(&self, w: u32, h: u32) -> (u32, u32, u32, u32) {
        let clamp = |v: f32, max: u32| (v.max(0.0) as u32).min(max.saturating_sub(1));
        (
            clamp((self.x - self.w / 2.0) * w as f32, w),
            clamp((self.y - self.h / 2.0) * h as f32, h),
            clamp((self.x + self.w / 2.0) * w as f32, w),
            clamp((self.y + self.h / 2.0) * h as f32, h),
        )
    }
}

/// One detected object: every class whose probability (objectness × class score) passes the
/// threshold, as Darknet reports them, and the best of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// Index of the best class (a line of the names file, e.g. `coco.names`).
    pub class: usize,
    /// Objectness × that class's probability.
    pub score: f32,
    /// Every class above the threshold with its probability, the most probable first (`class`,
    /// `score` is the first).
    pub classes: Vec<(usize, f32)>,
    /// The head's objectness for this box (after its logistic).
    pub objectness: f32,
    /// Where, in the original image.
    pub bbox: BoxRel,
}

/// Decode every head of `net` (its [`Network::outputs`], in order, with the matching tensors) into
/// detections whose best class probability exceeds `threshold`, in the coordinates of the original
/// `image_w`×`image_h` image the input was letterboxed from.
pub fn decode(
    net: &Network,
    outputs: &[Tensor],
    image_w: usize,
    image_h: usize,
    threshold: f32,
) -> Result<Vec<Detection>> {
    let heads = net.outputs();
    if heads.len() != outputs.len() {
        return Err(Error::Usage(format!(
            "decode: {} has {} heads but {} output tensors were given",
            net.name,
            heads.len(),
            outputs.len()
        )));
    }
    let (nw, nh) = (net.input.w as f32, net.input.h as f32);
    let mut dets = Vec::new();
    for (&l, t) in heads.iter().zip(outputs) {
        let (lw, lh) = (t.shape.w, t.shape.h);
        let hw = lw * lh;
        // Per box: where its channels start, its anchor in input pixels, its class count and
        // whether objectness alone gates it (yolo) or only the product does (region).
        let boxes: Vec<(usize, f32, f32, usize, usize)> = match &net.layers[l].kind {
            LayerKind::Region(r) => (0..r.num)
                .map(|n| {
                    let per = (r.coords + r.classes + 1) * hw;
                    // Region anchors are in grid cells.
                    let (aw, ah) = (
                        r.anchors[2 * n] * nw / lw as f32,
                        r.anchors[2 * n + 1] * nh / lh as f32,
                    );
                    (n * per, aw, ah, r.classes, r.coords)
                })
                .collect(),
            LayerKind::Yolo(y) => y
                .mask
                .iter()
                .enumerate()
                .map(|(n, &m)| {
                    let per = (4 + y.classes + 1) * hw;
                    (
                        n * per,
                        y.anchors[2 * m],
                        y.anchors[2 * m + 1],
                        y.classes,
                        4,
                    )
                })
                .collect(),
            other => {
                return Err(Error::Unsupported(format!(
                    "decode: output layer {l} is a [{}], not a [region] or [yolo] head",
                    other.name()
                )));
            }
        };
        for (base, aw, ah, classes, coords) in boxes {
            if t.data.len() < base + (coords + 1 + classes) * hw {
                return Err(Error::Usage(format!(
                    "decode: head {l}'s tensor has {} values, too few for its boxes",
                    t.data.len()
                )));
            }
            for row in 0..lh {
                for col in 0..lw {
                    let cell = row * lw + col;
                    let at = |k: usize| t.data[base + k * hw + cell];
                    let objectness = at(coords);
                    if objectness <= threshold {
                        continue;
                    }
                    let mut above: Vec<(usize, f32)> = (0..classes)
                        .map(|c| (c, objectness * at(coords + 1 + c)))
                        .filter(|&(_, p)| p > threshold)
                        .collect();
                    if above.is_empty() {
                        continue;
                    }
                    above.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    let (class, p) = above[0];
                    let net_box = BoxRel {
                        x: (col as f32 + at(0)) / lw as f32,
                        y: (row as f32 + at(1)) / lh as f32,
                        w: at(2).exp() * aw / nw,
                        h: at(3).exp() * ah / nh,
                    };
                    dets.push(Detection {
                        class,
                        score: p,
                        classes: above,
                        objectness,
                        bbox: unletterbox(net_box, net.input.w, net.input.h, image_w, image_h),
                    });
                }
            }
        }
    }
    Ok(dets)
}

/// Map a box on the letterboxed `net_w`×`net_h` input back to the original image (Darknet's
/// `correct_yolo_boxes`, with the integer scaled size [`crate::input::letterbox`] uses).
pub fn unletterbox(
    b: BoxRel,
    net_w: usize,
    net_h: usize,
    image_w: usize,
    image_h: usize,
) -> BoxRel {
    let (new_w, new_h) = if (net_w as f32 / image_w as f32) < (net_h as f32 / image_h as f32) {
        (net_w, (image_h * net_w / image_w).max(1))
    } else {
        ((image_w * net_h / image_h).max(1), net_h)
    };
    let (sx, sy) = (new_w as f32 / net_w as f32, new_h as f32 / net_h as f32);
    let (ox, oy) = (
        (net_w - new_w) as f32 / 2.0 / net_w as f32,
        (net_h - new_h) as f32 / 2.0 / net_h as f32,
    );
    BoxRel {
        x: (b.x - ox) / sx,
        y: (b.y - oy) / sy,
        w: b.w / sx,
        h: b.h / sy,
    }
}

/// Non-maximum suppression as Darknet's `do_nms_sort` does it: for each class, boxes in order of
/// that class's probability, a box drops the class from every later box it overlaps by more than
/// `iou` (Darknet uses 0.45). A box left with no class is dropped. Returns the rest, highest best
/// score first; a box may keep several classes (Darknet prints each).
pub fn nms(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    let prob = |d: &Detection, k: usize| d.classes.iter().find(|c| c.0 == k).map_or(0.0, |c| c.1);
    let mut classes: Vec<usize> = dets
        .iter()
        .flat_map(|d| d.classes.iter().map(|c| c.0))
        .collect();
    classes.sort();
    classes.dedup();
    for k in classes {
        let mut order: Vec<usize> = (0..dets.len())
            .filter(|&i| prob(&dets[i], k) > 0.0)
            .collect();
        order.sort_by(|&a, &b| prob(&dets[b], k).total_cmp(&prob(&dets[a], k)));
        for (n, &i) in order.iter().enumerate() {
            if prob(&dets[i], k) == 0.0 {
                continue;
            }
            let a = dets[i].bbox;
            for &j in &order[n + 1..] {
                if a.iou(&dets[j].bbox) > iou {
                    dets[j].classes.retain(|c| c.0 != k);
                }
            }
        }
    }
    dets.retain(|d| !d.classes.is_empty());
    for d in dets.iter_mut() {
        (d.class, d.score) = d.classes[0];
    }
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    dets
}

/// The best-class view: each box keeps only its most probable class, then non-maximum
/// suppression per class on those (one class per box).
pub fn nms_best_class(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    for d in dets.iter_mut() {
        d.classes.truncate(1);
    }
    nms(dets, iou)
}

/// Draw each detection's box and a label (`name score%`) on `image`, in a colour per class.
pub fn draw(image: &mut image::RgbImage, dets: &[Detection], names: &[String]) {
    let (w, h) = image.dimensions();
    let thick = (w.min(h) / 200).max(2);
    for d in dets {
        let color = class_color(d.class);
        let (l, t, r, b) = d.bbox.pixels(w, h);
        for k in 0..thick {
            let (l, t) = (
                l.saturating_add(k).min(w - 1),
                t.saturating_add(k).min(h - 1),
            );
            let (r, b) = (r.saturating_sub(k).max(l), b.saturating_sub(k).max(t));
            for x in l..=r {
                image.put_pixel(x, t, color);
                image.put_pixel(x, b, color);
            }
            for y in t..=b {
                image.put_pixel(l, y, color);
                image.put_pixel(r, y, color);
            }
        }
        let label = d
            .classes
            .iter()
            .map(|&(c, p)| {
                let name = names.get(c).map_or_else(|| c.to_string(), |n| n.clone());
                format!("{name} {:.0}%", p * 100.0)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let scale = (w.min(h) / 300).clamp(1, 3);
        let (lw, lh) = (label.len() as u32 * 8 * scale + 4, 8 * scale + 4);
        let ly = if t >= lh { t - lh } else { t };
        fill(image, l, ly, lw, lh, color);
        text(image, l + 2, ly + 2, &label, scale, image::Rgb([0, 0, 0]));
    }
}

/// A bright colour per class, the same one every run.
fn class_color(class: usize) -> image::Rgb<u8> {
    // Hue spread by the golden ratio; full saturation and value.
    let hue = (class as f32 * 0.618_034).fract() * 6.0;
    let x = (255.0 * (1.0 - ((hue % 2.0) - 1.0).abs())) as u8;
    let rgb = match hue as u32 {
        0 => [255, x, 0],
        1 => [x, 255, 0],
        2 => [0, 255, x],
        3 => [0, x, 255],
        4 => [x, 0, 255],
        _ => [255, 0, x],
    };
    image::Rgb(rgb)
}

fn fill(image: &mut image::RgbImage, x: u32, y: u32, w: u32, h: u32, c: image::Rgb<u8>) {
    let (iw, ih) = image.dimensions();
    for yy in y..(y + h).min(ih) {
        for xx in x..(x + w).min(iw) {
            image.put_pixel(xx, yy, c);
        }
    }
}

/// ASCII text in an 8×8 bitmap font, each pixel `scale`×`scale`; clipped to the image.
fn text(image: &mut image::RgbImage, x: u32, y: u32, s: &str, scale: u32, c: image::Rgb<u8>) {
    let (iw, ih) = image.dimensions();
    for (k, ch) in s.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY[(ch as usize).min(127)];
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let px = x + (k as u32 * 8 + col) * scale + dx;
                        let py = y + row as u32 * scale + dy;
                        if px < iw && py < ih {
                            image.put_pixel(px, py, c);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32, y: f32, w: f32, h: f32) -> BoxRel {
        BoxRel { x, y, w, h }
    }

    #[test]
    fn iou_of_known_boxes() {
        let same = b(0.5, 0.5, 0.2, 0.2).iou(&b(0.5, 0.5, 0.2, 0.2));
        assert!((same - 1.0).abs() < 1e-6, "{same}");
        assert_eq!(b(0.1, 0.1, 0.1, 0.1).iou(&b(0.9, 0.9, 0.1, 0.1)), 0.0);
        // Half overlapping along x: intersection 0.1·0.2, union 2·0.04 − 0.02.
        let v = b(0.5, 0.5, 0.2, 0.2).iou(&b(0.6, 0.5, 0.2, 0.2));
        assert!((v - 0.02 / 0.06).abs() < 1e-6, "{v}");
    }

    fn det(classes: &[(usize, f32)], x: f32) -> Detection {
        Detection {
            class: classes[0].0,
            score: classes[0].1,
            classes: classes.to_vec(),
            objectness: classes[0].1,
            bbox: b(x, 0.5, 0.2, 0.2),
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_per_class() {
        let d = |class, score, x| det(&[(class, score)], x);
        let kept = nms(
            vec![
                d(0, 0.6, 0.5),
                d(0, 0.9, 0.52),
                d(1, 0.7, 0.5),
                d(0, 0.8, 0.9),
            ],
            0.45,
        );
        let got: Vec<(usize, f32)> = kept.iter().map(|k| (k.class, k.score)).collect();
        assert_eq!(got, vec![(0, 0.9), (0, 0.8), (1, 0.7)]);
    }

    /// Darknet's view: a box keeps every class that passes, and loses a class only to a box that is
    /// more probable in that class (the truck of dog.jpg is also "car 52%").
    #[test]
    fn nms_keeps_every_class_that_passes_as_darknet_does() {
        let truck = det(&[(7, 0.56), (2, 0.52)], 0.5);
        let car_far = det(&[(2, 0.61)], 0.9);
        let kept = nms(vec![truck.clone(), car_far.clone()], 0.45);
        assert_eq!(kept[0].classes, vec![(2, 0.61)]);
        assert_eq!(kept[1].classes, vec![(7, 0.56), (2, 0.52)]);
        // A car box overlapping the truck's, more probable as a car, takes its car class.
        let car_near = det(&[(2, 0.7)], 0.52);
        let kept = nms(vec![truck.clone(), car_near], 0.45);
        let t = kept.iter().find(|d| d.class == 7).unwrap();
        assert_eq!(t.classes, vec![(7, 0.56)]);
        // The best-class view keeps one class per box.
        let one = nms_best_class(vec![truck, car_far], 0.45);
        assert!(one.iter().all(|d| d.classes.len() == 1));
        assert_eq!(one.iter().map(|d| d.class).collect::<Vec<_>>(), vec![2, 7]);
    }

    #[test]
    fn unletterbox_undoes_the_padding() {
        // A 768×576 image in a 416×416 input: scaled to 416×312, 52 rows of padding above.
        let full = unletterbox(b(0.5, 0.5, 1.0, 312.0 / 416.0), 416, 416, 768, 576);
        assert!(
            (full.y - 0.5).abs() < 1e-6 && (full.h - 1.0).abs() < 1e-6,
            "{full:?}"
        );
        let top = unletterbox(b(0.5, 52.0 / 416.0, 0.0, 0.0), 416, 416, 768, 576);
        assert!(top.y.abs() < 1e-6, "{top:?}");
    }

    /// A 2×2-cell head on a 64×64 input: one box in cell (row 1, col 0) with centre offsets 0.5,
    /// log-size 0, objectness 0.9 and class scores (0.2, 0.8).
    fn one_box(head: &str) -> (crate::Network, Tensor) {
        let text = format!(
            "[net]\nwidth=64\nheight=64\nchannels=3\n[maxpool]\nsize=32\nstride=32\n[convolutional]\nfilters=7\nsize=1\nstride=1\nactivation=linear\n{head}"
        );
        let net = crate::model::cfg::parse(&text, "one box", None).unwrap();
        let mut t = Tensor::zeros(crate::Shape::new(7, 2, 2));
        let cell = 2; // row 1, col 0
        for (k, v) in [0.5, 0.5, 0.0, 0.0, 0.9, 0.2, 0.8].into_iter().enumerate() {
            t.data[k * 4 + cell] = v;
        }
        (net, t)
    }

    #[test]
    fn region_boxes_use_anchors_in_grid_cells() {
        let (net, t) = one_box("[region]\nanchors=1,1\nclasses=2\nnum=1\ncoords=4\nsoftmax=1\n");
        let d = decode(&net, &[t], 64, 64, 0.5).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].class, 1);
        assert!((d[0].score - 0.72).abs() < 1e-6);
        // Centre (col + x) / 2, (row + y) / 2; size exp(0) · 1 cell of 2.
        assert_eq!(d[0].bbox, b(0.25, 0.75, 0.5, 0.5));
    }

    #[test]
    fn yolo_boxes_use_anchors_in_input_pixels() {
        let (net, t) = one_box("[yolo]\nmask=0\nanchors=16,32\nclasses=2\nnum=1\n");
        let d = decode(&net, &[t], 64, 64, 0.5).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].class, 1);
        // Size exp(0) · 16 and 32 pixels of 64.
        assert_eq!(d[0].bbox, b(0.25, 0.75, 0.25, 0.5));
        // Below the threshold nothing is kept; the wrong number of tensors is an error.
        assert!(
            decode(
                &net,
                &[Tensor::zeros(crate::Shape::new(7, 2, 2))],
                64,
                64,
                0.5
            )
            .unwrap()
            .is_empty()
        );
        assert!(decode(&net, &[], 64, 64, 0.5).is_err());
    }
}
