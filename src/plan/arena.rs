//! Planner pass: where each arena item goes.
//!
//! Placement is two-ended: an item lives at the bottom or the top of the arena, at the lowest position
//! on its side not used by an item whose lifetime overlaps (in [`Mode::Naive`], by any item). A
//! group's output goes to the side opposite its input; its tile buffers and weights go on its input's
//! side. For a chain of groups this makes the arena exactly the largest
//! `input + output + tiles (+ weights)` of any group, with every item rounded up to the
//! storage-binding offset alignment.

use crate::plan::lifetimes::Items;
use crate::plan::memory::{ItemKind, Mode};

/// The arena's size and fullest moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    /// Bytes of the arena: the largest bottom extent + top extent at any moment.
    pub bytes: u64,
    /// The most item bytes (aligned) alive at once.
    pub live_peak: u64,
    /// The step where `live_peak` is reached (the earliest, on a tie).
    pub live_peak_step: usize,
}

/// Place every item (sets `top`, `position` and `offset`) and size the arena.
pub(crate) fn place(items: &mut Items, mode: Mode) -> Placement {
    for k in 0..items.list.len() {
        let top = match items.group_of[k] {
            None => false,
            Some(gi) => {
                let input_top = items.list[items.group_input[gi]].top;
                if items.list[k].kind == ItemKind::Map {
                    !input_top
                } else {
                    input_top
                }
            }
        };
        let (done, rest) = items.list.split_at_mut(k);
        let item = &mut rest[0];
        let mut taken: Vec<(u64, u64)> = done
            .iter()
            .filter(|o| o.top == top && (mode == Mode::Naive || o.overlaps(item)))
            .map(|o| (o.position, o.position + o.aligned))
            .collect();
        taken.sort();
        let mut pos = 0u64;
        for (a, b) in taken {
            if pos + item.aligned <= a {
                break;
            }
            pos = pos.max(b);
        }
        item.top = top;
        item.position = pos;
    }
    let list = &items.list;
    let mut moments: Vec<usize> = list.iter().map(|i| i.created).collect();
    moments.sort();
    moments.dedup();
    let extent = |top: bool, alive: &dyn Fn(&crate::plan::memory::ArenaItem) -> bool| -> u64 {
        list.iter()
            .filter(|i| i.top == top && alive(i))
            .map(|i| i.position + i.aligned)
            .max()
            .unwrap_or(0)
    };
    let bytes = match mode {
        // Nothing shares bytes: every item on its side's stack for good.
        Mode::Naive => extent(false, &|_| true) + extent(true, &|_| true),
        Mode::Layerwise => moments
            .iter()
            .map(|&t| extent(false, &|i| i.alive_at(t)) + extent(true, &|i| i.alive_at(t)))
            .max()
            .unwrap_or(0),
    };
    let (live_peak, live_peak_step) = moments
        .iter()
        .map(|&t| {
            let live: u64 = list
                .iter()
                .filter(|i| i.alive_at(t))
                .map(|i| i.aligned)
                .sum();
            (live, t)
        })
        .max_by_key(|&(live, t)| (live, std::cmp::Reverse(t)))
        .unwrap_or((0, 0));
    for it in items.list.iter_mut() {
        it.offset = if it.top {
            bytes - it.position - it.aligned
        } else {
            it.position
        };
    }
    Placement {
        bytes,
        live_peak,
        live_peak_step,
    }
}
