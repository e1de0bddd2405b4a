//! An independent memory checker (no GPU): it replays a plan's steps in order on a shadow of every
//! device buffer, recording which layer's output (or the input, or a group's uploaded weights, or
//! a kernel's workspace) each byte holds, and asserts that every byte a dispatch reads still holds
//! what it must read — so two items alive at the same time never overlap where it matters, and no
//! workspace, tile or weight upload clobbers a live map — that every operand lies inside its buffer
//! and inside what its binding holds, and that a dispatch never writes bytes it reads. It uses the
//! plan's steps and operands only, not the planner's lifetimes or placement.
//!
//! It also sizes the arena from the operands alone: what each group binds (maps, tiles, workspace,
//! uploaded weights), plus maps alive across it, as a union padded to the alignment. The arena must
//! hold the fullest group, and equals it exactly for every layerwise plan of a chain; the plan's
//! peak must be the sum of its buffers.
//!
//! Over random chains and routed networks, random configurations, both residencies, a kernel per
//! layer drawn at random, both precisions, and the naive untiled baseline: at least 1000 plans.

mod chains;

use chains::{Lcg, limits, random_chain, random_config, random_small_routed};
use mafat::kernel::Op;
use mafat::network::{LayerKind, Source};
use mafat::plan::{Config, MemoryPlan, Mode, Operand, Planner, Residency};
use mafat::region::Region;
use mafat::{Network, Precision, model};
use std::collections::{BTreeMap, BTreeSet};

/// What a byte holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Input,
    Output(usize),
    Weights(usize),
    Workspace(usize),
}

/// Disjoint byte intervals of every buffer, each with what it holds.
struct Shadow {
    sizes: Vec<u64>,
    held: Vec<BTreeMap<u64, (u64, Tag)>>,
}

impl Shadow {
    fn new(plan: &MemoryPlan) -> Self {
        Shadow {
            sizes: plan.buffers.iter().map(|b| b.size).collect(),
            held: vec![BTreeMap::new(); plan.buffers.len()],
        }
    }

    fn inside(&self, what: &str, buffer: usize, start: u64, end: u64) {
        assert!(
            end <= self.sizes[buffer],
            "{what}: bytes {start}..{end} past buffer {buffer} of {} bytes",
            self.sizes[buffer]
        );
    }

    /// The intervals of `buffer` that overlap `start..end`, in order (intervals are disjoint, so
    /// their ends grow with their starts).
    fn overlapping(&self, buffer: usize, start: u64, end: u64) -> Vec<(u64, u64, Tag)> {
        let mut v: Vec<(u64, u64, Tag)> = self.held[buffer]
            .range(..end)
            .rev()
            .take_while(|(_, (e, _))| *e > start)
            .map(|(s, (e, t))| (*s, *e, *t))
            .collect();
        v.reverse();
        v
    }

    fn write(&mut self, buffer: usize, start: u64, end: u64, tag: Tag) {
        self.inside(&format!("{tag:?} write"), buffer, start, end);
        let (mut start, mut end) = (start, end);
        // Neighbours holding the same thing merge with the new interval (fewer intervals).
        let lo = start.saturating_sub(1);
        for (s, e, t) in self.overlapping(buffer, lo, end + 1) {
            let held = &mut self.held[buffer];
            held.remove(&s);
            if t == tag {
                (start, end) = (start.min(s), end.max(e));
                continue;
            }
            if s < start {
                held.insert(s, (start, t));
            }
            if e > end {
                held.insert(end, (e, t));
            }
        }
        self.held[buffer].insert(start, (end, tag));
    }

    /// Every byte of `start..end` holds one of `allowed`.
    fn read(&self, what: &str, buffer: usize, start: u64, end: u64, allowed: &[Tag]) {
        self.inside(what, buffer, start, end);
        let mut at = start;
        for (s, e, t) in self.overlapping(buffer, start, end) {
            assert!(
                s <= at,
                "{what}: bytes {at}..{s} of buffer {buffer} never written"
            );
            assert!(
                allowed.contains(&t),
                "{what}: bytes {}..{} of buffer {buffer} hold {t:?}, expected one of {allowed:?}",
                at,
                e.min(end)
            );
            at = e;
            if at >= end {
                return;
            }
        }
        assert!(
            at >= end,
            "{what}: bytes {at}..{end} of buffer {buffer} never written"
        );
    }
}

/// Byte intervals of `region` (all channels) inside an operand's binding.
fn intervals(op: &Operand, region: Region, what: &str) -> Vec<(u64, u64)> {
    let h = op.holds;
    assert!(
        region.y0 >= h.y0 && region.y1 <= h.y1 && region.x0 >= h.x0 && region.x1 <= h.x1,
        "{what}: region {region} outside what the binding holds ({h})"
    );
    let (rows, cols) = (h.height() as u64, h.width() as u64);
    let eb = op.element_bytes;
    let mut v = Vec::new();
    for c in 0..op.channels as u64 {
        for y in region.y0..=region.y1 {
            let first = (c * rows + (y - h.y0) as u64) * cols + (region.x0 - h.x0) as u64;
            let start = op.offset + first * eb;
            v.push((start, start + region.width() as u64 * eb));
        }
    }
    v
}

/// The tags a reader of layer `s`'s output accepts: `s` itself, or, for a layer no dispatch
/// writes (a map shared with its source), what its sources hold.
fn producers(net: &Network, written: &BTreeSet<usize>, s: Source) -> Vec<Tag> {
    match s {
        Source::Input => vec![Tag::Input],
        Source::Layer(l) if written.contains(&l) => vec![Tag::Output(l)],
        Source::Layer(l) => net
            .sources(l)
            .into_iter()
            .flat_map(|p| producers(net, written, p))
            .collect(),
    }
}

/// Replay `plan` on a shadow of its buffers; panics naming the first violation.
/// The arena's use, from the operands alone: the bytes every group touches (each distinct item
/// counted once: the maps, tiles, workspace and uploaded weights its steps bind) at the fullest
/// group, plus every map made before and read after it (a route's source), and the highest byte
/// any operand reaches.
struct ArenaUse {
    fullest: u64,
    high_water: u64,
}

fn check(net: &Network, plan: &MemoryPlan, what: &str) -> ArenaUse {
    let arena_use = arena_use(plan);
    let arena_size = plan.buffers[plan.arena].size;
    assert!(
        arena_use.high_water <= arena_size,
        "{what}: operands reach byte {} of an arena of {arena_size}",
        arena_use.high_water
    );
    // The plan's peak is the device bytes it holds: every buffer, each counted once.
    assert_eq!(
        plan.peak_bytes(),
        plan.buffers.iter().map(|b| b.size).sum::<u64>(),
        "{what}: peak vs the sum of its buffers"
    );
    replay(net, plan, what);
    arena_use
}

fn arena_use(plan: &MemoryPlan) -> ArenaUse {
    let arena = plan.arena;
    let whole = |o: &Operand| (o.offset, o.offset + o.bytes());
    // Every arena item a group binds, and where each map item is last read.
    let mut per_group: Vec<BTreeSet<(u64, u64)>> = Vec::new();
    let mut map_groups: BTreeMap<(u64, u64), (usize, usize)> = BTreeMap::new();
    let mut high_water = 0;
    for (g, group) in plan.groups.iter().enumerate() {
        let mut items = BTreeSet::new();
        if let Some((offset, bytes)) = group.weights_upload {
            items.insert((offset, offset + bytes));
        }
        for d in &plan.steps[group.steps.clone()] {
            let maps = [Some(d.input), d.second, Some(d.output)];
            for o in maps.iter().flatten().filter(|o| o.buffer == arena) {
                items.insert(whole(o));
                let e = map_groups.entry(whole(o)).or_insert((g, g));
                e.1 = g;
            }
            for o in d.workspace.iter().filter(|o| o.buffer == arena) {
                items.insert(whole(o));
            }
            if let Some(w) = plan.weights[d.layer].filter(|w| w.buffer == arena) {
                items.insert((w.offset, w.offset + w.bytes));
            }
        }
        high_water = items.iter().map(|i| i.1).max().unwrap_or(0).max(high_water);
        per_group.push(items);
    }
    // A map alive across a group it is not bound in (made before, read after) is held there too.
    for (&item, &(first, last)) in &map_groups {
        for items in per_group.iter_mut().take(last).skip(first + 1) {
            items.insert(item);
        }
    }
    for &s in &plan.read_back {
        if let Some(m) = plan.map_of(s).filter(|m| m.buffer == arena) {
            high_water = high_water.max(m.offset + m.bytes());
        }
    }
    // The bytes covered by the union of what a group holds (tiles of one buffer overlap).
    let align = limits().min_storage_buffer_offset_alignment;
    let covered = |items: &BTreeSet<(u64, u64)>| {
        let (mut total, mut reach) = (0, 0);
        // Items start aligned; each one's tail is padded to the alignment.
        for (s, e) in items.iter().map(|&(s, e)| (s, e.div_ceil(align) * align)) {
            if e > reach {
                total += e - s.max(reach);
                reach = e;
            }
        }
        total
    };
    let fullest = per_group.iter().map(covered).max().unwrap_or(0);
    ArenaUse {
        fullest,
        high_water,
    }
}

/// Replay the steps on the shadow buffers.
fn replay(net: &Network, plan: &MemoryPlan, what: &str) {
    let mut shadow = Shadow::new(plan);
    let written: BTreeSet<usize> = plan.steps.iter().map(|d| d.layer).collect();
    let input = plan.input;
    shadow.write(
        input.buffer,
        input.offset,
        input.offset + input.bytes(),
        Tag::Input,
    );
    for (g, group) in plan.groups.iter().enumerate() {
        if let Some((offset, bytes)) = group.weights_upload {
            shadow.write(plan.arena, offset, offset + bytes, Tag::Weights(g));
        }
        for (k, d) in plan.steps[group.steps.clone()].iter().enumerate() {
            let at = format!(
                "{what}: step {} (layer {}, {})",
                group.steps.start + k,
                d.layer,
                d.kernel.name()
            );
            let l = &net.layers[d.layer];
            let sources = net.sources(d.layer);
            let mut reads: Vec<(usize, u64, u64)> = Vec::new();
            // The primary input: what the kernel's window needs, or what the binding holds.
            let route = matches!(l.kind, LayerKind::Route { .. });
            let needed = match (&l.kind, route) {
                (LayerKind::Conv(_) | LayerKind::MaxPool(_), false) => d
                    .kernel
                    .input_region(net, d.layer, d.region)
                    .unwrap_or_else(|e| panic!("{at}: {e}")),
                _ => d.input.holds,
            };
            let allowed: Vec<Tag> = match route {
                true => sources
                    .iter()
                    .flat_map(|&s| producers(net, &written, s))
                    .collect(),
                false => producers(net, &written, sources[0]),
            };
            for (s, e) in intervals(&d.input, needed, &at) {
                shadow.read(&format!("{at} input"), d.input.buffer, s, e, &allowed);
                reads.push((d.input.buffer, s, e));
            }
            if let Some(second) = d.second {
                let allowed = producers(net, &written, sources[1]);
                for (s, e) in intervals(&second, second.holds, &at) {
                    shadow.read(&format!("{at} second input"), second.buffer, s, e, &allowed);
                    reads.push((second.buffer, s, e));
                }
            }
            if let Some(w) = plan.weights[d.layer].filter(|w| w.buffer == plan.arena) {
                shadow.read(
                    &format!("{at} weights"),
                    w.buffer,
                    w.offset,
                    w.offset + w.bytes,
                    &[Tag::Weights(g)],
                );
                reads.push((w.buffer, w.offset, w.offset + w.bytes));
            } else if let Some(w) = plan.weights[d.layer] {
                shadow.inside(
                    &format!("{at} weights"),
                    w.buffer,
                    w.offset,
                    w.offset + w.bytes,
                );
            }
            // Writes: workspace, then the output (a route copy: the source's elements at
            // `dst_element`), never over what this dispatch reads.
            let mut writes: Vec<(usize, u64, u64, Tag)> = d
                .workspace
                .iter()
                .map(|o| {
                    (
                        o.buffer,
                        o.offset,
                        o.offset + o.bytes(),
                        Tag::Workspace(d.layer),
                    )
                })
                .collect();
            if route {
                let eb = d.output.element_bytes;
                let start = d.output.offset + d.dst_element * eb;
                let len = d.input.holds.len(d.input.channels) as u64 * eb;
                writes.push((d.output.buffer, start, start + len, Tag::Output(d.layer)));
            } else {
                for (s, e) in intervals(&d.output, d.region, &at) {
                    writes.push((d.output.buffer, s, e, Tag::Output(d.layer)));
                }
            }
            for &(b, s, e, tag) in &writes {
                let clash = reads
                    .iter()
                    .any(|&(rb, rs, re)| rb == b && rs < e && s < re);
                assert!(
                    !clash,
                    "{at}: writes {tag:?} over bytes {s}..{e} of buffer {b} it reads"
                );
            }
            for (b, s, e, tag) in writes {
                shadow.write(b, s, e, tag);
            }
        }
    }
    // What is read back at the end still holds its layer's output.
    for &s in &plan.read_back {
        let map = plan.map_of(s).expect("a read-back map");
        let allowed = producers(net, &written, s);
        shadow.read(
            &format!("{what}: read-back of {s:?}"),
            map.buffer,
            map.offset,
            map.offset + map.bytes(),
            &allowed,
        );
    }
}

/// A kernel per layer, each drawn from the layer's candidates.
fn random_ops(net: &Network, r: &mut Lcg) -> Vec<Op> {
    (0..net.layers.len())
        .map(|i| {
            let c = mafat::kernel::candidates(net, i);
            match c.len() {
                0 => mafat::kernel::select(net, i).unwrap(),
                n => Op::Dispatch(c[r.next(n)]),
            }
        })
        .collect()
}

#[test]
fn every_read_sees_what_it_must_over_random_plans() {
    let mut r = Lcg(17);
    let mut nets: Vec<Network> = vec![
        model::load("yolov2-16", Some((96, 96))).unwrap(),
        model::load("yolov3-tiny", Some((96, 96))).unwrap(),
        model::load("yolov2", Some((64, 64))).unwrap(),
    ];
    while nets.len() < 60 {
        let net = match nets.len() % 2 {
            0 => random_chain(&mut r),
            _ => random_small_routed(&mut r),
        };
        nets.extend(net);
    }
    let mut checked = 0;
    let mut stats = Vec::new();
    for (k, net) in nets.iter().enumerate() {
        for _ in 0..5 {
            let ops = match k % 3 {
                0 => mafat::kernel::select_all(net).unwrap(),
                _ => random_ops(net, &mut r),
            };
            let precision = Precision::BOTH[r.next(2)];
            let planner = Planner::with_ops_at(net, &limits(), ops, precision).unwrap();
            for c in 0..4 {
                let config = match c {
                    0 => Config::untiled(),
                    _ => random_config(&mut r, net),
                };
                // Naive mode (every map alive) is the untiled baseline only.
                let modes: &[Mode] = match c {
                    0 => &[Mode::Layerwise, Mode::Naive],
                    _ => &[Mode::Layerwise],
                };
                for (&mode, residency) in modes.iter().flat_map(|m| Residency::BOTH.map(|r| (m, r)))
                {
                    let Ok(plan) = planner.plan(&config, mode, residency) else {
                        continue; // a random config that breaks a rule (a route inside a group)
                    };
                    let what = format!(
                        "{} {config} {} {} {precision}",
                        net.name,
                        mode.as_str(),
                        residency.as_str()
                    );
                    let used = check(net, &plan, &what);
                    let arena = plan.buffers[plan.arena].size;
                    let chain = mafat::plan::search::is_chain(&planner);
                    stats.push((chain, mode, used.fullest, arena, what.clone()));
                    checked += 1;
                }
            }
        }
    }
    // The arena is what the fullest group holds (its items' union, each padded to the alignment):
    // exactly, for layerwise plans of chains (the planner packs them without gaps); never less,
    // for the rest (routes may leave gaps; naive keeps every map alive).
    let (mut exact, mut gaps) = (0, 0);
    for (chain, mode, fullest, arena, what) in &stats {
        assert!(
            fullest <= arena,
            "{what}: the fullest group holds {fullest} bytes, more than the arena's {arena}"
        );
        if *chain && *mode == Mode::Layerwise {
            assert_eq!(fullest, arena, "{what}: arena vs the fullest group");
        }
        match fullest == arena {
            true => exact += 1,
            false => gaps += 1,
        }
    }
    eprintln!("arena == fullest group in {exact} plans (every layerwise chain), larger in {gaps}");
    eprintln!("{checked} plans checked");
    assert!(checked >= 1000, "{checked} plans checked");
}

/// The checker catches what it is for: a plan whose output map is moved onto a live input, or a
/// weight upload shifted onto a map, is refused.
#[test]
fn the_checker_refuses_a_clobbering_plan() {
    let net = model::load("yolov2-16", Some((64, 64))).unwrap();
    let planner = Planner::new(&net, &limits()).unwrap();
    let config = Config::parse("0..4:2x2,4..8:2x2").unwrap();
    let plan = planner
        .plan(&config, Mode::Layerwise, Residency::PerGroup)
        .unwrap();
    check(&net, &plan, "as planned");
    // The group's weights uploaded over its own input map.
    let mut bad = plan.clone();
    let input_offset = bad.steps[bad.groups[1].steps.start].input.offset;
    let (_, bytes) = bad.groups[1].weights_upload.unwrap();
    let arena = bad.buffers[bad.arena].size;
    bad.groups[1].weights_upload = Some((input_offset.min(arena - bytes), bytes));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check(&net, &bad, "weights over the input")
    }));
    assert!(caught.is_err(), "a weight upload over a live map passed");
    // A step's output written where its input is.
    let mut bad = plan.clone();
    let last = bad.groups[0].steps.end - 1;
    bad.steps[last].output.offset = bad.steps[last].input.offset;
    bad.steps[last].output.buffer = bad.steps[last].input.buffer;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check(&net, &bad, "output over the input")
    }));
    assert!(caught.is_err(), "an output over its own input passed");
}
