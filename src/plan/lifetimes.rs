//! Planner pass: everything that lives in the arena and when.
//!
//! Items, in creation order: the network input (step 0), then per group `g` (step `g + 1`) its output
//! map, its ping-pong tile buffers A and B (layers `start, start+2, …` write A, the others B; the
//! last layer writes the output map) and, under per-group residency, its weights. Each tile buffer is
//! as large as the largest region its layers produce over every tile. A map lives until the last
//! group that reads it; a map read back at the end lives to the end.

use crate::error::{Error, Result};
use crate::kernel::Op;
use crate::network::Source;
use crate::plan::config::Group;
use crate::plan::lower::group_works;
use crate::plan::memory::{ArenaItem, ItemKind, Residency};
use crate::plan::planner::Planner;
use crate::region::Region;
use std::collections::HashMap;

/// The arena items of a plan, with what each group made.
#[derive(Debug, Clone)]
pub(crate) struct Items {
    /// Every item, in creation order (the input first).
    pub list: Vec<ArenaItem>,
    /// The item holding each full map.
    pub of_map: HashMap<Source, usize>,
    /// Per group: its tile buffers (A, then B), those it needs.
    pub tiles: Vec<Vec<usize>>,
    /// Per group: its weights item (per-group residency, a group with weights).
    pub weights: Vec<Option<usize>>,
    /// Per group: its kernels' workspace items, by workspace slot.
    pub workspace: Vec<Vec<usize>>,
    /// Per layer: the byte offset of its weights inside its group's weights item.
    pub weight_offsets: Vec<Option<u64>>,
    /// Per group: the item holding its primary input (its first layer's first source).
    pub group_input: Vec<usize>,
    /// Per item: the group that creates it (`None`: the network input).
    pub group_of: Vec<Option<usize>>,
}

impl Items {
    fn push(&mut self, item: ArenaItem, group: Option<usize>) -> usize {
        self.list.push(item);
        self.group_of.push(group);
        self.list.len() - 1
    }
}

/// The arena items of `groups` (with `traces`, the regions each tile's layers produce) and their
/// lifetimes; fails when one item would pass the adapter's storage-binding limit.
pub(crate) fn arena_items(
    p: &Planner<'_>,
    groups: &[Group],
    traces: &[Vec<Vec<Region>>],
    residency: Residency,
    read_back: &[Source],
) -> Result<Items> {
    let net = p.net();
    let new_item = |what: String, kind: ItemKind, bytes: u64, t: usize| ArenaItem {
        what,
        kind,
        bytes,
        aligned: p.aligned(bytes),
        created: t,
        last_use: t,
        top: false,
        position: 0,
        offset: 0,
    };
    let mut items = Items {
        list: Vec::new(),
        of_map: HashMap::new(),
        tiles: vec![Vec::new(); groups.len()],
        weights: vec![None; groups.len()],
        workspace: vec![Vec::new(); groups.len()],
        weight_offsets: vec![None; net.layers.len()],
        group_input: Vec::with_capacity(groups.len()),
        group_of: Vec::new(),
    };
    let input = items.push(
        new_item("the input".into(), ItemKind::Map, p.map_bytes(net.input), 0),
        None,
    );
    items.of_map.insert(Source::Input, input);
    for (gi, g) in groups.iter().enumerate() {
        let t = gi + 1;
        let first_src = net
            .sources(g.start)
            .first()
            .copied()
            .unwrap_or(Source::Input);
        items
            .group_input
            .push(*items.of_map.get(&first_src).unwrap_or(&input));
        let last = g.last();
        if p.op(last) != Op::CpuHead {
            let o = net.layers[last].output;
            let k = items.push(
                new_item(
                    format!("layer {last}'s output"),
                    ItemKind::Map,
                    p.map_bytes(o),
                    t,
                ),
                Some(gi),
            );
            items.of_map.insert(Source::Layer(last), k);
        }
        for parity in 0..2 {
            let bytes = (g.start..last)
                .filter(|i| (i - g.start) % 2 == parity)
                .flat_map(|i| {
                    let c = net.layers[i].output.c;
                    traces[gi]
                        .iter()
                        .map(move |tr| p.region_bytes(tr[i - g.start], c))
                })
                .max();
            if let Some(bytes) = bytes {
                let what = format!("group {g} tile buffer {}", ["A", "B"][parity]);
                let k = items.push(new_item(what, ItemKind::Tile, bytes, t), Some(gi));
                items.tiles[gi].push(k);
            }
        }
        for (k, bytes) in workspace_bytes(p, g, &traces[gi]).into_iter().enumerate() {
            let what = format!("group {g} workspace {k}");
            let it = items.push(new_item(what, ItemKind::Workspace, bytes, t), Some(gi));
            items.workspace[gi].push(it);
        }
        if residency == Residency::PerGroup {
            let mut off = 0u64;
            for i in g.start..g.end {
                let bytes = p.weight_bytes(i);
                if bytes > 0 {
                    items.weight_offsets[i] = Some(off);
                    off += p.aligned(bytes);
                }
            }
            if off > 0 {
                let what = format!("group {g} weights");
                let k = items.push(new_item(what, ItemKind::Weights, off, t), Some(gi));
                items.weights[gi] = Some(k);
            }
        }
    }
    extend_lifetimes(&mut items, p, groups, read_back);
    check_binding_sizes(&items, p.limits().max_storage_buffer_binding_size)?;
    Ok(items)
}

/// Per workspace slot, the most bytes any work of group `g` needs there.
pub(crate) fn workspace_bytes(p: &Planner<'_>, g: &Group, traces: &[Vec<Region>]) -> Vec<u64> {
    let mut most: Vec<u64> = Vec::new();
    for (k, w) in group_works(p, g, traces) {
        for (slot, bytes) in k.workspace(&w).into_iter().enumerate() {
            if most.len() <= slot {
                most.resize(slot + 1, 0);
            }
            most[slot] = most[slot].max(bytes.next_multiple_of(4).max(4));
        }
    }
    most
}

/// A map lives until the last group that reads it from outside; one read back lives to the end.
fn extend_lifetimes(items: &mut Items, p: &Planner<'_>, groups: &[Group], read_back: &[Source]) {
    let net = p.net();
    for (gi, g) in groups.iter().enumerate() {
        for i in g.start..g.end {
            for s in net.sources(i) {
                let inside = matches!(s, Source::Layer(l) if l >= g.start);
                if !inside && let Some(&it) = items.of_map.get(&s) {
                    items.list[it].last_use = items.list[it].last_use.max(gi + 1);
                }
            }
        }
    }
    for s in read_back {
        if let Some(&it) = items.of_map.get(s) {
            items.list[it].last_use = usize::MAX;
        }
    }
}

/// Every item is bound whole by some dispatch: none may pass the storage-binding limit.
fn check_binding_sizes(items: &Items, limit: u64) -> Result<()> {
    for it in &items.list {
        if it.bytes > limit {
            let fix = match it.kind {
                ItemKind::Tile | ItemKind::Workspace => "use a finer grid for that group",
                ItemKind::Weights => "use smaller groups",
                ItemKind::Map if it.what.starts_with("the input") => "use a smaller --size",
                ItemKind::Map => {
                    "end a tiled group elsewhere so this map stays inside it, or use a smaller --size"
                }
            };
            return Err(Error::DeviceLimit(format!(
                "{} needs {} bytes, past the adapter's max_storage_buffer_binding_size of {limit} bytes; {fix}",
                it.what, it.bytes
            )));
        }
    }
    Ok(())
}
