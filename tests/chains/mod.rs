//! Random conv/pool chains and random configurations for the tiling tests.
#![allow(dead_code)]

use mafat::Network;
use mafat::model::cfg;
use mafat::plan::{Config, DeviceLimits, Group, geometry::Grid};

/// Limits like lavapipe's (2 GiB buffers, 128 MiB storage bindings).
pub fn limits() -> DeviceLimits {
    DeviceLimits {
        max_buffer_size: (1 << 31) - 1,
        max_storage_buffer_binding_size: 128 << 20,
        min_uniform_buffer_offset_alignment: 256,
        min_storage_buffer_offset_alignment: 256,
        max_compute_workgroups_per_dimension: 65535,
        timestamps: true,
    }
}

/// A small deterministic generator (the tests must be reproducible).
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// A random chain of convolutions (kernel 1/3/5, stride 1/2, padding, grouped or not, several
/// activations) and max pools (size 1–3, stride 1–2, Darknet padding) on an odd or even map.
pub fn random_chain(r: &mut Lcg) -> Option<Network> {
    let (w, h) = (6 + r.next(35), 6 + r.next(35));
    let mut c = 1 + r.next(6);
    let mut text = format!("[net]\nwidth={w}\nheight={h}\nchannels={c}\n");
    for _ in 0..2 + r.next(6) {
        if r.next(3) == 0 {
            let size = 1 + r.next(3);
            let stride = 1 + r.next(2);
            text += &format!("[maxpool]\nsize={size}\nstride={stride}\n");
        } else {
            let size = [1, 3, 5][r.next(3)];
            let stride = 1 + r.next(2);
            let groups = if c.is_multiple_of(2) && r.next(4) == 0 {
                2
            } else {
                1
            };
            let filters = groups * (1 + r.next(20));
            let act = ["leaky", "linear", "relu", "logistic"][r.next(4)];
            let pad = if r.next(2) == 0 {
                "pad=1".to_string()
            } else {
                format!("padding={}", r.next(size / 2 + 1))
            };
            let bn = r.next(2);
            text += &format!(
                "[convolutional]\nbatch_normalize={bn}\nfilters={filters}\nsize={size}\nstride={stride}\n{pad}\ngroups={groups}\nactivation={act}\n"
            );
            c = filters;
        }
    }
    cfg::parse(&text, "random chain", None).ok()
}

/// A small random chain (up to `max_layers` convolutions and pools on a map of 4–9 pixels a side),
/// small enough for brute force over every configuration.
pub fn random_small_chain(r: &mut Lcg, max_layers: usize) -> Option<Network> {
    let (w, h) = (4 + r.next(6), 4 + r.next(6));
    let mut text = format!("[net]\nwidth={w}\nheight={h}\nchannels={}\n", 1 + r.next(3));
    for _ in 0..1 + r.next(max_layers) {
        text += &small_layer(r);
    }
    cfg::parse(&text, "small chain", None).ok()
}

fn small_layer(r: &mut Lcg) -> String {
    if r.next(3) == 0 {
        format!(
            "[maxpool]\nsize={}\nstride={}\n",
            1 + r.next(2),
            1 + r.next(2)
        )
    } else {
        format!(
            "[convolutional]\nfilters={}\nsize={}\nstride=1\npad=1\nactivation=leaky\n",
            1 + r.next(40),
            [1, 3][r.next(2)]
        )
    }
}

/// A small random network with routes, in the shape of yolov3-tiny: a trunk, a branch that goes
/// back to an earlier map (`[route] layers=-k`), optionally an upsample, and a concatenation of the
/// branch with an earlier trunk map of the same size.
pub fn random_small_routed(r: &mut Lcg) -> Option<Network> {
    let (w, h) = (4 + r.next(6), 4 + r.next(6));
    let mut text = format!("[net]\nwidth={w}\nheight={h}\nchannels={}\n", 1 + r.next(3));
    let trunk = 2 + r.next(3);
    for _ in 0..trunk {
        text += &small_layer(r);
    }
    // Back to an earlier trunk map, a layer on it, maybe an upsample, then concatenate.
    text += &format!("[route]\nlayers=-{}\n", 1 + r.next(trunk));
    text += &small_layer(r);
    if r.next(2) == 0 {
        text += "[upsample]\nstride=2\n";
    }
    text += &format!("[route]\nlayers=-1,{}\n", r.next(trunk));
    text += &small_layer(r);
    cfg::parse(&text, "small routed network", None).ok()
}

/// A random partition of `0..n` into 1–3 groups with legal random grids.
pub fn random_config(r: &mut Lcg, net: &Network) -> Config {
    let n = net.layers.len();
    let mut cuts: Vec<usize> = (0..r.next(3)).map(|_| 1 + r.next(n - 1)).collect();
    cuts.push(0);
    cuts.push(n);
    cuts.sort();
    cuts.dedup();
    let groups = cuts
        .windows(2)
        .map(|c| {
            let o = net.layers[c[1] - 1].output;
            let mut pick = |len: usize| loop {
                let k = 1 + r.next(len.min(6));
                if mafat::plan::geometry::split(len, k).is_some() {
                    break k;
                }
            };
            mafat::plan::Group {
                start: c[0],
                end: c[1],
                grid: Grid {
                    rows: pick(o.h),
                    cols: pick(o.w),
                },
            }
        })
        .collect();
    Config { groups }
}

/// Every configuration of a small network: all compositions of its layers, all legal grids up to
/// `max_grid` on a side per group.
pub fn all_configs(net: &Network, max_grid: usize) -> Vec<Config> {
    let n = net.layers.len();
    let mut out = Vec::new();
    let mut stack: Vec<(usize, Vec<Group>)> = vec![(0, Vec::new())];
    while let Some((at, groups)) = stack.pop() {
        if at == n {
            out.push(Config { groups });
            continue;
        }
        for end in at + 1..=n {
            let o = net.layers[end - 1].output;
            for rows in 1..=max_grid.min(o.h) {
                for cols in 1..=max_grid.min(o.w) {
                    let grid = Grid { rows, cols };
                    if mafat::plan::geometry::tiles(o.h, o.w, grid).is_err() {
                        continue;
                    }
                    let mut g = groups.clone();
                    g.push(Group {
                        start: at,
                        end,
                        grid,
                    });
                    stack.push((end, g));
                }
            }
        }
    }
    out
}
