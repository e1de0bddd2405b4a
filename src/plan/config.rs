//! Fusing and tiling configurations: an ordered partition of a contiguous layer range into groups,
//! each with a tile grid, written `0..8:3x3,8..16:2x2` (layers `a..b`, half-open, then `ROWSxCOLS`).
//!
//! Rules (checked by [`Config::resolve`] against a network, each broken rule reported with where):
//! - groups follow each other without gaps or overlaps, inside the network's layers;
//! - a group of more than one layer, or with a grid finer than `1x1`, holds only convolutions and max
//!   pools (route, reorg, upsample, shortcut, softmax and detection heads run untiled, as `1x1`
//!   single-layer groups);
//! - inside a group only the last layer's output exists as a full map, so no other layer of the group
//!   may be read from outside it or be a network output;
//! - the grid leaves no tile empty on the group's last output map.
//!
//! Layers outside the configured range run untiled, each as its own `1x1` group.

use crate::error::{Error, Result};
use crate::network::{LayerKind, Network, Source};
use crate::plan::geometry::{Grid, tiles};
use serde::Serialize;
use std::fmt;

/// Layers `start..end` fused, their last output cut into `grid` tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Group {
    /// First layer (inclusive).
    pub start: usize,
    /// End layer (exclusive): the group's last layer is `end − 1`.
    pub end: usize,
    /// The tiles its last layer's output map is cut into (`1x1`: one tile, the whole map).
    pub grid: Grid,
}

impl Group {
    /// An untiled single-layer group.
    pub fn single(layer: usize) -> Self {
        Group {
            start: layer,
            end: layer + 1,
            grid: Grid { rows: 1, cols: 1 },
        }
    }

    /// Index of the group's last layer.
    pub fn last(&self) -> usize {
        self.end - 1
    }

    /// More than one layer, or more than one tile.
    pub fn is_fused(&self) -> bool {
        self.end - self.start > 1 || self.grid.rows * self.grid.cols > 1
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}:{}", self.start, self.end, self.grid)
    }
}

/// A configuration as written: the groups of a contiguous layer range (empty: everything untiled).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Config {
    /// The groups in layer order; layers before the first and after the last run untiled.
    pub groups: Vec<Group>,
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.groups.is_empty() {
            return f.write_str("untiled");
        }
        for (i, g) in self.groups.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

impl Serialize for Config {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Config {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Config::parse(s)
    }
}

impl Config {
    /// Every layer untiled.
    pub fn untiled() -> Self {
        Config::default()
    }

    /// Parse `a..b:RxC[,c..d:RxC...]` (spaces allowed around the parts); `untiled` or an empty text
    /// is the empty configuration.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        if t.is_empty() || t == "untiled" {
            return Ok(Config::untiled());
        }
        let mut groups = Vec::new();
        for part in t.split(',') {
            let part = part.trim();
            let bad = |why: &str| Error::Config {
                config: text.to_string(),
                message: format!(
                    "`{}`: {why}; write each group as FIRST..END:ROWSxCOLS (layers FIRST to END−1), e.g. 0..8:3x3,8..16:2x2",
                    crate::units::prefix(part)
                ),
            };
            let (range, grid) = part
                .split_once(':')
                .ok_or_else(|| bad("missing `:ROWSxCOLS`"))?;
            let (a, b) = range
                .trim()
                .split_once("..")
                .ok_or_else(|| bad("missing `..` in the layer range"))?;
            let start: usize = a
                .trim()
                .parse()
                .map_err(|_| bad("the first layer is not a number"))?;
            let end: usize = b
                .trim()
                .parse()
                .map_err(|_| bad("the end layer is not a number"))?;
            let grid = Grid::parse(grid.trim())
                .map_err(|_| bad("the grid is not ROWSxCOLS with both ≥ 1"))?;
            if end <= start {
                return Err(bad(
                    "the layer range is empty (END must be greater than FIRST)",
                ));
            }
            groups.push(Group { start, end, grid });
        }
        Ok(Config { groups })
    }

    /// One group with `grid` over layers `start..end`.
    pub fn single(start: usize, end: usize, grid: Grid) -> Self {
        Config {
            groups: vec![Group { start, end, grid }],
        }
    }

    /// True when no layer is fused or tiled.
    pub fn is_untiled(&self) -> bool {
        self.groups.iter().all(|g| !g.is_fused())
    }

    /// Check the configuration against `net` and complete it: the returned groups cover every layer
    /// in order, layers outside the configured range as untiled single-layer groups.
    pub fn resolve(&self, net: &Network) -> Result<Vec<Group>> {
        let n = net.layers.len();
        let err = |message: String| Error::Config {
            config: self.to_string(),
            message,
        };
        for (k, g) in self.groups.iter().enumerate() {
            if g.end > n {
                return Err(err(format!(
                    "group {g} goes past the network's last layer ({} has layers 0..{n})",
                    net.name
                )));
            }
            if k > 0 {
                let prev = self.groups[k - 1];
                if g.start != prev.end {
                    return Err(err(format!(
                        "groups must follow each other without gaps or overlaps: {prev} ends at layer {} but {g} starts at layer {}",
                        prev.end, g.start
                    )));
                }
            }
        }
        for g in &self.groups {
            if !g.is_fused() {
                continue;
            }
            for i in g.start..g.end {
                let kind = &net.layers[i].kind;
                if !matches!(kind, LayerKind::Conv(_) | LayerKind::MaxPool(_)) {
                    let hint = if i == g.start {
                        format!("start the group after layer {i}")
                    } else {
                        format!("end the group before layer {i}")
                    };
                    return Err(err(format!(
                        "group {g}: layer {i} is a [{}]; only [convolutional] and [maxpool] layers can be fused or tiled ({hint}; it runs untiled as {i}..{}:1x1)",
                        kind.name(),
                        i + 1
                    )));
                }
            }
            for i in g.start + 1..g.end {
                if !net.reads_previous(i) {
                    return Err(err(format!(
                        "group {g}: layer {i} reads {}, not only layer {}; a fused group is a chain of layers each reading the one before (start a group at layer {i})",
                        net.layers[i]
                            .sources
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>()
                            .join(" and "),
                        i - 1
                    )));
                }
            }
            for i in g.start..g.last() {
                if let Some(reader) =
                    (g.end..n).find(|&j| net.sources(j).contains(&Source::Layer(i)))
                {
                    return Err(err(format!(
                        "group {g}: layer {i}'s output is read by layer {reader} ([{}]), but inside a group only the last layer's output exists as a full map (end a group at {})",
                        net.layers[reader].kind.name(),
                        i + 1
                    )));
                }
            }
            let o = net.layers[g.last()].output;
            tiles(o.h, o.w, g.grid).map_err(|e| err(format!("group {g}: {e}")))?;
        }
        let (first, end) = match (self.groups.first(), self.groups.last()) {
            (Some(f), Some(l)) => (f.start, l.end),
            _ => (n, n),
        };
        Ok((0..first)
            .map(Group::single)
            .chain(self.groups.iter().copied())
            .chain((end..n).map(Group::single))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    fn net() -> Network {
        model::load("yolov2", Some((416, 416))).unwrap()
    }

    #[test]
    fn parses_and_prints_the_text_form() {
        let c = Config::parse(" 0..8:3x3, 8..16:2x2 ").unwrap();
        assert_eq!(c.to_string(), "0..8:3x3,8..16:2x2");
        assert_eq!(c.groups[1].grid, Grid { rows: 2, cols: 2 });
        assert_eq!(Config::parse("").unwrap(), Config::untiled());
        assert_eq!(Config::parse("untiled").unwrap().to_string(), "untiled");
        for bad in [
            "0..8", "0-8:2x2", "a..8:2x2", "0..8:2", "0..8:0x2", "8..8:1x1", "5..3:1x1",
        ] {
            let e = Config::parse(bad).unwrap_err().to_string();
            assert!(e.contains("FIRST..END:ROWSxCOLS"), "{bad}: {e}");
        }
    }

    #[test]
    fn resolve_fills_untiled_layers_around_the_range() {
        let net = net();
        let g = Config::parse("2..8:3x3,8..16:2x2")
            .unwrap()
            .resolve(&net)
            .unwrap();
        assert_eq!(g.len(), 2 + 2 + (net.layers.len() - 16));
        assert_eq!(g[0], Group::single(0));
        assert_eq!(g[2].to_string(), "2..8:3x3");
        assert_eq!(g.last().unwrap(), &Group::single(net.layers.len() - 1));
        assert_eq!(
            Config::untiled().resolve(&net).unwrap().len(),
            net.layers.len()
        );
    }

    #[test]
    fn each_broken_rule_is_named() {
        let net = net();
        let cases = [
            ("0..8:2x2,9..16:2x2", "without gaps or overlaps"),
            ("0..8:2x2,7..16:2x2", "without gaps or overlaps"),
            ("0..40:1x1", "past the network's last layer"),
            // Layer 25 of yolov2 is a route, 27 a reorg.
            ("20..27:1x1", "layer 25 is a [route]"),
            ("25..26:2x2", "layer 25 is a [route]"),
            ("26..28:1x1", "layer 27 is a [reorg]"),
            ("0..16:40x40", "largest grid with no empty tile is 26x26"),
        ];
        for (text, want) in cases {
            let e = Config::parse(text)
                .unwrap()
                .resolve(&net)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.starts_with(&format!("config `{text}`")), "{e}");
        }
        // A fused group whose middle layer feeds a later route.
        let route_src = (0..net.layers.len())
            .find_map(|j| match &net.layers[j].kind {
                LayerKind::Route { layers } => layers.iter().copied().find(|&l| l + 1 < j && l > 0),
                _ => None,
            })
            .unwrap();
        let text = format!("{}..{}:2x2", route_src, route_src + 2);
        let e = Config::parse(&text)
            .unwrap()
            .resolve(&net)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("layer {route_src}'s output is read by layer")),
            "{e}"
        );
    }
}
