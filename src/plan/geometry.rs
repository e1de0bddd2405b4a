//! Fused-tile geometry as pure functions: the grid of a group's last output map, and the backward
//! trace of a tile's output region through the group to the region each layer must produce and the
//! region of the group's input it reads (DeepThings' fused tile partitioning, per layer
//! `in_start = out_start·s − p`, `in_end = out_end·s − p + k − 1`, clamped to the map).

use crate::error::{Error, Result};
use crate::network::Network;
pub use crate::region::{Region, input_region};
use serde::Serialize;
use std::fmt;

/// An `R×C` grid of tiles over a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Grid {
    /// Tiles down the map (≥ 1).
    pub rows: usize,
    /// Tiles across the map (≥ 1).
    pub cols: usize,
}

impl Grid {
    /// Parse `RxC` (e.g. `3x3`, `2x5`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Usage(format!("grid `{s}`: expected ROWSxCOLS such as 3x3"));
        let (r, c) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let rows: usize = r.parse().map_err(|_| bad())?;
        let cols: usize = c.parse().map_err(|_| bad())?;
        if rows == 0 || cols == 0 {
            return Err(bad());
        }
        Ok(Grid { rows, cols })
    }
}

impl fmt::Display for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.rows, self.cols)
    }
}

/// Cut `0..len` into `parts` ranges of `ceil(len/parts)`, the last taking the remainder, as DeepThings
/// does, returned as inclusive `(first, last)` pairs; `None` when a part would be empty (or `len` or
/// `parts` is 0).
pub fn split(len: usize, parts: usize) -> Option<Vec<(usize, usize)>> {
    if parts == 0 || len == 0 {
        return None;
    }
    let step = len.div_ceil(parts);
    if (parts - 1) * step >= len {
        return None;
    }
    Some(
        (0..parts)
            .map(|i| (i * step, ((i + 1) * step).min(len) - 1))
            .collect(),
    )
}

/// The largest `n ≤ limit` for which [`split`]`(len, n)` has no empty part.
fn largest_split(len: usize, limit: usize) -> usize {
    (1..=limit.min(len))
        .rev()
        .find(|&n| split(len, n).is_some())
        .unwrap_or(1)
}

/// The tiles of `grid` over an `h × w` map, row-major. A grid finer than the map (an empty tile) is an
/// error naming the largest legal grid.
pub fn tiles(h: usize, w: usize, grid: Grid) -> Result<Vec<Region>> {
    match (split(h, grid.rows), split(w, grid.cols)) {
        (Some(rows), Some(cols)) => Ok(rows
            .iter()
            .flat_map(|&(y0, y1)| cols.iter().map(move |&(x0, x1)| Region { y0, y1, x0, x1 }))
            .collect()),
        _ => Err(Error::Usage(format!(
            "grid {grid} leaves a tile empty on a {w}x{h} map; the largest grid with no empty tile is {}x{}",
            largest_split(h, grid.rows),
            largest_split(w, grid.cols)
        ))),
    }
}

/// Trace `out` (a region of layer `last`'s output) back through layers `first..=last`. Returns the
/// region each layer must produce, in layer order, and the region of the group's input it reads.
pub fn trace(
    net: &Network,
    first: usize,
    last: usize,
    out: Region,
) -> Result<(Vec<Region>, Region)> {
    trace_by(first, last, out, &|i, r| {
        input_region(&net.layers[i].kind, net.layers[i].input, r)
    })
}

/// [`trace`] with `back(i, r)` giving the input region layer `i` reads to produce `r` (a kernel
/// that computes whole blocks, such as Winograd's 4×4 tiles, reads more than the window needs).
pub fn trace_by(
    first: usize,
    last: usize,
    out: Region,
    back: &dyn Fn(usize, Region) -> Result<Region>,
) -> Result<(Vec<Region>, Region)> {
    let mut produced = vec![out; last - first + 1];
    let mut r = out;
    for i in (first..=last).rev() {
        produced[i - first] = r;
        r = back(i, r)?;
    }
    Ok((produced, r))
}

/// Per tile of group `g` (row-major), the region each of its layers produces, in layer order
/// (traced with `back`, see [`trace_by`]); an unfused group has one "tile", the whole output of its
/// one layer.
pub fn tile_regions(
    net: &Network,
    g: &crate::plan::config::Group,
    back: &dyn Fn(usize, Region) -> Result<Region>,
) -> Result<Vec<Vec<Region>>> {
    let o = net.layers[g.last()].output;
    if !g.is_fused() {
        return Ok(vec![vec![Region::full(o.h, o.w)]]);
    }
    tiles(o.h, o.w, g.grid)?
        .into_iter()
        .map(|t| trace_by(g.start, g.last(), t, back).map(|(produced, _)| produced))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cfg;

    #[test]
    fn split_is_ceil_sized_with_the_remainder_last() {
        assert_eq!(split(10, 3), Some(vec![(0, 3), (4, 7), (8, 9)]));
        assert_eq!(split(9, 3), Some(vec![(0, 2), (3, 5), (6, 8)]));
        assert_eq!(split(5, 1), Some(vec![(0, 4)]));
        // 5 rows in 4 parts: step 2 leaves the 4th part empty.
        assert_eq!(split(5, 4), None);
        assert_eq!(largest_split(5, 4), 3);
    }

    #[test]
    fn too_fine_a_grid_names_the_largest_legal_one() {
        let e = tiles(5, 38, Grid { rows: 4, cols: 2 })
            .unwrap_err()
            .to_string();
        assert!(e.contains("largest grid with no empty tile is 3x2"), "{e}");
        assert_eq!(tiles(4, 4, Grid { rows: 2, cols: 2 }).unwrap().len(), 4);
    }

    /// Hand-derived: conv 3x3/1 pad 1 → maxpool 2x2/2 → conv 3x3/1 pad 1 on 8x8.
    #[test]
    fn three_layer_chain_by_hand() {
        let net = cfg::parse(
            "[net]\nwidth=8\nheight=8\nchannels=1\n\
             [convolutional]\nfilters=1\nsize=3\npad=1\n\
             [maxpool]\nsize=2\nstride=2\n\
             [convolutional]\nfilters=1\nsize=3\npad=1\n",
            "t",
            None,
        )
        .unwrap();
        // Layer 2's output is 4x4; its top-left 2x2 tile (rows/cols 0..=1):
        let out = Region {
            y0: 0,
            y1: 1,
            x0: 0,
            x1: 1,
        };
        let (produced, input) = trace(&net, 0, 2, out).unwrap();
        // conv2 (k3 p1): rows 0·1−1..=1·1−1+2 → −1..=2, clamped to 0..=2 of layer 1's output.
        assert_eq!(
            produced[1],
            Region {
                y0: 0,
                y1: 2,
                x0: 0,
                x1: 2
            }
        );
        // maxpool 2x2/2 (Darknet padding 1: 0 before): rows 0..=2·2+1 = 0..=5 of layer 0's output.
        assert_eq!(
            produced[0],
            Region {
                y0: 0,
                y1: 5,
                x0: 0,
                x1: 5
            }
        );
        // conv0 (k3 p1): rows −1..=6, clamped: 0..=6 of the input.
        assert_eq!(
            input,
            Region {
                y0: 0,
                y1: 6,
                x0: 0,
                x1: 6
            }
        );
        // The bottom-right tile (rows/cols 2..=3) at the far border:
        let (produced, input) = trace(
            &net,
            0,
            2,
            Region {
                y0: 2,
                y1: 3,
                x0: 2,
                x1: 3,
            },
        )
        .unwrap();
        assert_eq!(
            produced[1],
            Region {
                y0: 1,
                y1: 3,
                x0: 1,
                x1: 3
            }
        );
        assert_eq!(
            produced[0],
            Region {
                y0: 2,
                y1: 7,
                x0: 2,
                x1: 7
            }
        );
        assert_eq!(
            input,
            Region {
                y0: 1,
                y1: 7,
                x0: 1,
                x1: 7
            }
        );
    }

    /// Every output cell's receptive window, enumerated cell by cell, has the traced bounding box.
    #[test]
    fn trace_matches_a_brute_force_dependency_trace() {
        let mut seed = 12345u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % n
        };
        let mut checked = 0;
        for case in 0..300 {
            let (w, h) = (5 + next(20), 5 + next(20));
            let mut text = format!("[net]\nwidth={w}\nheight={h}\nchannels=1\n");
            let depth = 1 + next(4);
            for _ in 0..depth {
                if next(3) == 0 {
                    let size = 1 + next(3);
                    let stride = 1 + next(2);
                    text += &format!("[maxpool]\nsize={size}\nstride={stride}\n");
                } else {
                    let size = [1, 3, 5][next(3)];
                    let stride = 1 + next(2);
                    let pad = next(size / 2 + 1);
                    text += &format!(
                        "[convolutional]\nfilters=1\nsize={size}\nstride={stride}\npadding={pad}\n"
                    );
                }
            }
            let Ok(net) = cfg::parse(&text, "t", None) else {
                continue;
            };
            let last = net.layers.len() - 1;
            let o = net.layers[last].output;
            let (ry0, rx0) = (next(o.h), next(o.w));
            let out = Region {
                y0: ry0,
                y1: ry0 + next(o.h - ry0),
                x0: rx0,
                x1: rx0 + next(o.w - rx0),
            };
            let (produced, input) = trace(&net, 0, last, out).unwrap();
            // Brute force: the set of cells each layer needs, from the last layer down.
            let mut need: Vec<(usize, usize)> = (out.y0..=out.y1)
                .flat_map(|y| (out.x0..=out.x1).map(move |x| (y, x)))
                .collect();
            for i in (0..=last).rev() {
                let bbox = |cells: &[(usize, usize)]| Region {
                    y0: cells.iter().map(|c| c.0).min().unwrap(),
                    y1: cells.iter().map(|c| c.0).max().unwrap(),
                    x0: cells.iter().map(|c| c.1).min().unwrap(),
                    x1: cells.iter().map(|c| c.1).max().unwrap(),
                };
                assert_eq!(bbox(&need), produced[i], "case {case} layer {i}:\n{text}");
                let (k, s, p) = crate::region::window(&net.layers[i].kind).unwrap();
                let inp = net.layers[i].input;
                let mut next_need = std::collections::BTreeSet::new();
                for &(y, x) in &need {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = (
                                (y * s + ky) as isize - p as isize,
                                (x * s + kx) as isize - p as isize,
                            );
                            if iy >= 0 && ix >= 0 && (iy as usize) < inp.h && (ix as usize) < inp.w
                            {
                                next_need.insert((iy as usize, ix as usize));
                            }
                        }
                    }
                }
                need = next_need.into_iter().collect();
                if i == 0 {
                    assert_eq!(bbox(&need), input, "case {case} input:\n{text}");
                }
            }
            checked += 1;
        }
        // Chains that shrink a map below a kernel are rejected by the parser; most are not.
        assert!(checked > 200, "only {checked} chains checked");
    }
}
