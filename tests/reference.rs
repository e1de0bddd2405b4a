//! CPU reference against values computed by hand, one layer kind at a time.

use mafat::Tensor;
use mafat::model::cfg;
use mafat::model::weights::{ConvParams, Weights};
use mafat::network::{Activation, Conv, MaxPool, Region, Shape, Yolo};
use mafat::reference as r;

fn t(c: usize, h: usize, w: usize, data: &[f32]) -> Tensor {
    Tensor::from_vec(Shape::new(c, h, w), data.to_vec())
}

fn seq(c: usize, h: usize, w: usize, f: impl Fn(usize) -> f32) -> Tensor {
    Tensor::from_vec(Shape::new(c, h, w), (0..c * h * w).map(f).collect())
}

fn conv(
    filters: usize,
    size: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    act: Activation,
) -> Conv {
    Conv {
        filters,
        size,
        stride,
        padding,
        groups,
        batch_normalize: false,
        activation: act,
    }
}

#[test]
fn conv_3x3_pad_1_sums_the_zero_padded_neighbourhood() {
    let x = seq(1, 3, 3, |i| (i + 1) as f32);
    let p = ConvParams {
        weights: vec![1.0; 9],
        bias: vec![0.0],
    };
    let y = r::conv2d(&x, &conv(1, 3, 1, 1, 1, Activation::Linear), &p);
    assert_eq!(y.shape, Shape::new(1, 3, 3));
    assert_eq!(
        y.data,
        vec![12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0]
    );

    // Negated weights, bias 1, leaky: 1 − sum, negatives scaled by 0.1.
    let p = ConvParams {
        weights: vec![-1.0; 9],
        bias: vec![1.0],
    };
    let y = r::conv2d(&x, &conv(1, 3, 1, 1, 1, Activation::Leaky), &p);
    let want: Vec<f32> = [12.0f32, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0]
        .iter()
        .map(|s| 0.1 * (1.0 - s))
        .collect();
    assert_eq!(y.data, want);
    assert_eq!(y.data[4], 0.1f32 * -44.0);
}

#[test]
fn conv_stride_2_with_padding() {
    // x(r, c) = 4r + c + 1 on 4x4; kernel taps (0,0) = 1 and (2,2) = 2; stride 2, pad 1 → 2x2.
    let x = seq(1, 4, 4, |i| (i + 1) as f32);
    let mut w = vec![0.0; 9];
    w[0] = 1.0;
    w[8] = 2.0;
    let y = r::conv2d(
        &x,
        &conv(1, 3, 2, 1, 1, Activation::Linear),
        &ConvParams {
            weights: w,
            bias: vec![0.0],
        },
    );
    assert_eq!(y.shape, Shape::new(1, 2, 2));
    // out(0,0) = pad + 2·x(1,1); out(0,1) = pad + 2·x(1,3); out(1,0) = pad + 2·x(3,1); out(1,1) = x(1,1) + 2·x(3,3)
    assert_eq!(y.data, vec![12.0, 16.0, 28.0, 38.0]);
}

#[test]
fn conv_kernels_1_5_7_odd_sizes() {
    // A 5x5 and a 7x7 kernel of ones with "same" padding on a 5x7 map of ones count the in-map taps.
    let x = Tensor::from_vec(Shape::new(1, 5, 7), vec![1.0; 35]);
    for k in [5usize, 7] {
        let y = r::conv2d(
            &x,
            &conv(1, k, 1, k / 2, 1, Activation::Linear),
            &ConvParams {
                weights: vec![1.0; k * k],
                bias: vec![0.0],
            },
        );
        assert_eq!(y.shape, Shape::new(1, 5, 7));
        for oy in 0..5 {
            for ox in 0..7 {
                let rows = (0..5)
                    .filter(|&iy: &usize| iy.abs_diff(oy) <= k / 2)
                    .count();
                let cols = (0..7)
                    .filter(|&ix: &usize| ix.abs_diff(ox) <= k / 2)
                    .count();
                assert_eq!(y.at(0, oy, ox), (rows * cols) as f32, "k={k} ({oy},{ox})");
            }
        }
    }
    // 1x1 over two channels: x + 10·y.
    let x = t(2, 1, 2, &[1.0, 2.0, 3.0, 4.0]);
    let y = r::conv2d(
        &x,
        &conv(1, 1, 1, 0, 1, Activation::Linear),
        &ConvParams {
            weights: vec![1.0, 10.0],
            bias: vec![0.5],
        },
    );
    assert_eq!(y.data, vec![31.5, 42.5]);
}

#[test]
fn grouped_and_depthwise_conv() {
    let x = t(2, 1, 2, &[1.0, 1.0, 2.0, 2.0]);
    // Depthwise: filter f reads channel f only.
    let y = r::conv2d(
        &x,
        &conv(2, 1, 1, 0, 2, Activation::Linear),
        &ConvParams {
            weights: vec![2.0, 3.0],
            bias: vec![0.0, 0.0],
        },
    );
    assert_eq!(y.data, vec![2.0, 2.0, 6.0, 6.0]);
    // Two groups of two filters: filters 0,1 read channel 0; 2,3 read channel 1.
    let y = r::conv2d(
        &x,
        &conv(4, 1, 1, 0, 2, Activation::Relu),
        &ConvParams {
            weights: vec![1.0, -1.0, 5.0, 7.0],
            bias: vec![0.0; 4],
        },
    );
    assert_eq!(y.data, vec![1.0, 1.0, 0.0, 0.0, 10.0, 10.0, 14.0, 14.0]);
}

#[test]
fn maxpool_2x2_stride_1_pads_after_and_padding_never_wins() {
    // All negative: if padding took part (as 0) the last row and column would be 0.
    let x = seq(1, 3, 3, |i| -((i + 1) as f32));
    let y = r::maxpool(
        &x,
        &MaxPool {
            size: 2,
            stride: 1,
            padding: 1,
        },
    );
    assert_eq!(y.shape, Shape::new(1, 3, 3));
    assert_eq!(y.data, x.data);
}

#[test]
fn maxpool_2x2_stride_2_on_13_gives_7() {
    let x = seq(1, 13, 13, |i| -(i as f32));
    let y = r::maxpool(
        &x,
        &MaxPool {
            size: 2,
            stride: 2,
            padding: 1,
        },
    );
    assert_eq!(y.shape, Shape::new(1, 7, 7));
    for oy in 0..7 {
        for ox in 0..7 {
            // The largest of −(13r + c) over the window is its top-left cell.
            assert_eq!(y.at(0, oy, ox), -((26 * oy + 2 * ox) as f32));
        }
    }
    assert_eq!(y.at(0, 6, 6), -168.0); // only x(12,12) is inside the map
}

#[test]
fn maxpool_3x3_stride_2_pads_one_each_side() {
    // Darknet default padding = size − 1 = 2: one before, one after. x(r,c) = 5r + c on 5x5 → 3x3.
    let x = seq(1, 5, 5, |i| i as f32);
    let y = r::maxpool(
        &x,
        &MaxPool {
            size: 3,
            stride: 2,
            padding: 2,
        },
    );
    assert_eq!(y.shape, Shape::new(1, 3, 3));
    let last = [1usize, 3, 4]; // last in-map row/column of each window
    for oy in 0..3 {
        for ox in 0..3 {
            assert_eq!(y.at(0, oy, ox), (5 * last[oy] + last[ox]) as f32);
        }
    }
}

#[test]
fn route_with_negative_indices_through_a_cfg() {
    let net = cfg::parse(
        "[net]\nwidth=2\nheight=1\nchannels=1\n\
         [convolutional]\nfilters=1\nsize=1\nactivation=linear\n\
         [convolutional]\nfilters=1\nsize=1\nactivation=linear\n\
         [route]\nlayers=-1,-2\n\
         [route]\nlayers=0\n",
        "t",
        None,
    )
    .unwrap();
    assert_eq!(net.layers[2].output, Shape::new(2, 1, 2));
    let w = Weights {
        layers: vec![
            Some(ConvParams {
                weights: vec![2.0],
                bias: vec![0.0],
            }),
            Some(ConvParams {
                weights: vec![3.0],
                bias: vec![0.0],
            }),
            None,
            None,
        ],
    };
    let x = t(1, 1, 2, &[1.0, 5.0]);
    let out = r::forward(&net, &w, &x, &[2, 3]).unwrap();
    assert_eq!(out[0].data, vec![6.0, 30.0, 2.0, 10.0]); // [layer 1; layer 0]
    assert_eq!(out[1].data, vec![2.0, 10.0]);
}

#[test]
fn reorg_matches_darknet_index_mapping() {
    // Darknet reorg_cpu(forward=0) on a 4x2x2 input holding 0..15 (the buffer seen as 1x4x4): each
    // output channel k takes pixel (k/2, k%2) of every 2x2 block.
    let x = seq(4, 2, 2, |i| i as f32);
    let y = r::reorg(&x, 2);
    assert_eq!(y.shape, Shape::new(16, 1, 1));
    assert_eq!(
        y.data,
        vec![
            0.0, 2.0, 8.0, 10.0, 1.0, 3.0, 9.0, 11.0, 4.0, 6.0, 12.0, 14.0, 5.0, 7.0, 13.0, 15.0
        ]
    );
}

#[test]
fn upsample_nearest_with_scale() {
    let x = t(1, 2, 2, &[1.0, 2.0, 3.0, 4.0]);
    let y = r::upsample(&x, 2, 0.5);
    assert_eq!(y.shape, Shape::new(1, 4, 4));
    assert_eq!(
        y.data,
        vec![
            0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 1.5, 1.5, 2.0, 2.0, 1.5, 1.5, 2.0, 2.0
        ]
    );
}

#[test]
fn shortcut_adds_and_activates() {
    let a = t(1, 1, 2, &[1.0, -2.0]);
    let b = t(1, 1, 2, &[3.0, -4.0]);
    let y = r::shortcut(&a, &b, Activation::Leaky, 1.0, 1.0);
    assert_eq!(y.data, vec![4.0, 0.1f32 * -6.0]);
    // A 2x larger `from` map is subsampled (Darknet's stride); extra channels of `a` pass through.
    let a = t(2, 1, 2, &[1.0, 1.0, 7.0, 7.0]);
    let b = seq(1, 2, 4, |i| i as f32);
    let y = r::shortcut(&a, &b, Activation::Linear, 1.0, 1.0);
    assert_eq!(y.data, vec![1.0, 3.0, 7.0, 7.0]);
}

#[test]
fn avgpool_softmax_and_activations() {
    let y = r::avgpool(&t(2, 1, 2, &[1.0, 2.0, 3.0, 5.0]));
    assert_eq!(y.data, vec![1.5, 4.0]);

    let y = r::softmax(&t(3, 1, 1, &[1.0, 2.0, 3.0]), 1, 1.0);
    let e: Vec<f64> = [-2.0f64, -1.0, 0.0].iter().map(|v| v.exp()).collect();
    let s: f64 = e.iter().sum();
    assert_eq!(y.data.len(), e.len());
    for (got, e) in y.data.iter().zip(&e) {
        assert!((*got as f64 - e / s).abs() < 1e-7);
    }

    assert_eq!(Activation::Leaky.apply(-3.0), -0.3);
    assert_eq!(Activation::Leaky.apply(2.5), 2.5);
    assert_eq!(Activation::Relu.apply(-1.0), 0.0);
    assert_eq!(Activation::Logistic.apply(0.0), 0.5);
    assert_eq!(Activation::Mish.apply(0.0), 0.0);
    assert!((Activation::Mish.apply(1.0) - 0.865_098_4).abs() < 1e-6);
    assert_eq!(Activation::Linear.apply(-7.0), -7.0);
}

#[test]
fn region_and_yolo_heads() {
    // region: num 1, coords 4, classes 2 → 7 channels on 1x1.
    let reg = Region {
        classes: 2,
        coords: 4,
        num: 1,
        softmax: true,
        background: false,
        anchors: vec![1.0, 1.0],
    };
    let y = r::region(&t(7, 1, 1, &[0.0, 0.0, 0.3, -0.2, 0.0, 1.0, 1.0]), &reg);
    assert_eq!(y.data, vec![0.5, 0.5, 0.3, -0.2, 0.5, 0.5, 0.5]);
    let y = r::region(
        &t(7, 1, 1, &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0f32.ln()]),
        &reg,
    );
    assert!((y.data[5] - 1.0 / 3.0).abs() < 1e-7 && (y.data[6] - 2.0 / 3.0).abs() < 1e-7);

    // yolo: 1 mask, 1 class → 6 channels: logistic on x, y, objectness, class; w, h untouched.
    let yl = Yolo {
        classes: 1,
        mask: vec![0],
        anchors: vec![1.0, 1.0],
    };
    let y = r::yolo(&t(6, 1, 1, &[0.0, 0.0, 0.7, 0.8, 0.0, 0.0]), &yl);
    assert_eq!(y.data, vec![0.5, 0.5, 0.7, 0.8, 0.5, 0.5]);
}

#[test]
fn forward_checks_the_input_shape() {
    let net = mafat::model::load("yolov2-tiny", Some((32, 32))).unwrap();
    let w = mafat::model::weights::WeightSource::Random(0)
        .load(&net)
        .unwrap();
    let e = r::forward(&net, &w, &Tensor::zeros(Shape::new(3, 16, 16)), &[0]).unwrap_err();
    assert!(e.to_string().contains("takes 32x32x3"), "{e}");
}
