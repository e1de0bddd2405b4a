//! The planner: one entry point, [`Planner::plan`], running the passes in order —
//! tile geometry ([`crate::plan::geometry`]), arena items and their lifetimes
//! (`plan/lifetimes.rs`), their placement in the arena (`plan/arena.rs`), lowering to per-tile
//! dispatches (`plan/lower.rs`) and the other buffers (`plan/buffers.rs`).

use crate::error::{Error, Result};
use crate::kernel::{self, Op};
use crate::network::{Network, Source};
use crate::plan::buffers::{self, BufferList};
use crate::plan::config::Config;
use crate::plan::geometry::tile_regions;
use crate::plan::limits::DeviceLimits;
use crate::plan::memory::{BufferKind, MemoryPlan, Mode, Residency};
use crate::plan::{arena, lifetimes, lower};
use crate::precision::Precision;
use crate::region::Region;

/// Plans executions of one network on one adapter's limits, with one kernel per layer.
#[derive(Debug, Clone)]
pub struct Planner<'n> {
    net: &'n Network,
    limits: DeviceLimits,
    ops: Vec<Op>,
    precision: Precision,
}

impl<'n> Planner<'n> {
    /// A planner for `net` under `limits`, each layer on the kernel [`kernel::select`] gives it.
    /// Fails when a layer has no kernel, or reads the output of a detection head (heads run on the
    /// CPU, as network outputs only).
    pub fn new(net: &'n Network, limits: &DeviceLimits) -> Result<Self> {
        Self::with_ops(net, limits, kernel::select_all(net)?)
    }

    /// A planner with the given per-layer ops (one per layer; each kernel must support its layer),
    /// maps and weights stored as f32.
    pub fn with_ops(net: &'n Network, limits: &DeviceLimits, ops: Vec<Op>) -> Result<Self> {
        Self::with_ops_at(net, limits, ops, Precision::F32)
    }

    /// [`Planner::with_ops`] with maps and weights stored at `precision`.
    pub fn with_ops_at(
        net: &'n Network,
        limits: &DeviceLimits,
        ops: Vec<Op>,
        precision: Precision,
    ) -> Result<Self> {
        if ops.len() != net.layers.len() {
            return Err(Error::Usage(format!(
                "{} kernel choices for {} layers of {}",
                ops.len(),
                net.layers.len(),
                net.name
            )));
        }
        for (i, op) in ops.iter().enumerate() {
            let head = kernel::is_cpu_head(&net.layers[i].kind);
            match op {
                Op::CpuHead if head => {}
                Op::Dispatch(k) if !head && k.supports(net, i) => {
                    let bytes = k.stored_weight_bytes(net, i, precision);
                    if bytes > limits.max_storage_buffer_binding_size {
                        return Err(Error::DeviceLimit(format!(
                            "layer {i}'s weights as {} take {bytes} bytes, past the adapter's max_storage_buffer_binding_size of {}; run it on another kernel (--kernel)",
                            k.name(),
                            limits.max_storage_buffer_binding_size
                        )));
                    }
                }
                _ => {
                    return Err(Error::Unsupported(format!(
                        "layer {i} ([{}]) cannot run on {}",
                        net.layers[i].kind.name(),
                        op.name()
                    )));
                }
            }
            for s in net.sources(i) {
                if let Source::Layer(l) = s
                    && ops[l] == Op::CpuHead
                {
                    return Err(Error::Unsupported(format!(
                        "layer {i} reads the output of detection head {l}, which runs on the CPU; mafat runs heads only as network outputs"
                    )));
                }
            }
        }
        Ok(Planner {
            net,
            limits: limits.clone(),
            ops,
            precision,
        })
    }

    /// The same planner with the layers on `ops` (same network, limits and precision).
    pub fn with_ops_like(&self, ops: Vec<Op>) -> Result<Planner<'n>> {
        Self::with_ops_at(self.net, &self.limits, ops, self.precision)
    }

    /// The network planned.
    pub fn net(&self) -> &'n Network {
        self.net
    }

    /// The adapter limits respected.
    pub fn limits(&self) -> &DeviceLimits {
        &self.limits
    }

    /// How each layer runs.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// How layer `i` runs.
    pub fn op(&self, i: usize) -> Op {
        self.ops[i]
    }

    /// How maps and weights are stored.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Bytes of layer `i`'s packed weights on its kernel, stored at the planner's precision and
    /// padded to whole 4-byte words (0 for layers without weights).
    pub fn weight_bytes(&self, i: usize) -> u64 {
        self.ops[i].kernel().map_or(0, |k| {
            k.stored_weight_bytes(self.net, i, self.precision)
                .next_multiple_of(4)
        })
    }

    /// Bytes of a whole map of `shape` at the planner's precision.
    pub fn map_bytes(&self, shape: crate::network::Shape) -> u64 {
        shape.len() as u64 * self.precision.bytes()
    }

    /// Bytes of `region` of a map of `channels` channels at the planner's precision.
    pub fn region_bytes(&self, region: Region, channels: usize) -> u64 {
        region.len(channels) as u64 * self.precision.bytes()
    }

    /// `bytes` rounded up to the arena alignment.
    pub fn aligned(&self, bytes: u64) -> u64 {
        bytes.next_multiple_of(self.limits.arena_alignment())
    }

    /// The region of layer `i`'s input its kernel reads to produce `out` of its output.
    pub fn input_region(&self, i: usize, out: Region) -> Result<Region> {
        let l = &self.net.layers[i];
        match self.ops[i] {
            Op::Dispatch(k) => k.input_region(self.net, i, out),
            Op::CpuHead => crate::region::input_region(&l.kind, l.input, out),
        }
    }

    /// Per tile of group `g`, the region each of its layers produces, traced back through each
    /// layer's kernel.
    pub fn tile_regions(&self, g: &crate::plan::Group) -> Result<Vec<Vec<Region>>> {
        tile_regions(self.net, g, &|i, r| self.input_region(i, r))
    }

    /// Trace `out` of layer `last` back to layer `first` through each layer's kernel: the region
    /// every layer produces and the region of `first`'s input read.
    pub fn trace(&self, first: usize, last: usize, out: Region) -> Result<(Vec<Region>, Region)> {
        crate::plan::geometry::trace_by(first, last, out, &|i, r| self.input_region(i, r))
    }

    /// Where the GPU reads network outputs: a head's input, or the output layer itself.
    pub fn read_back(&self) -> Vec<Source> {
        let mut v = Vec::new();
        for o in self.net.outputs() {
            let s = match self.ops[o] {
                Op::CpuHead => self.net.sources(o)[0],
                Op::Dispatch(_) => Source::Layer(o),
            };
            if !v.contains(&s) {
                v.push(s);
            }
        }
        v
    }

    /// Plan the execution of the network under `config`: with [`Mode::Layerwise`] arena bytes are
    /// reused by liveness, with [`Mode::Naive`] no two items share bytes; `residency` says where
    /// conv weights live. The plan's [`MemoryPlan::peak_bytes`] is the memory predictor's answer.
    pub fn plan(&self, config: &Config, mode: Mode, residency: Residency) -> Result<MemoryPlan> {
        let net = self.net;
        let groups = config.resolve(net)?;
        let traces = groups
            .iter()
            .map(|g| self.tile_regions(g))
            .collect::<Result<Vec<_>>>()?;
        let read_back = self.read_back();
        let mut items = lifetimes::arena_items(self, &groups, &traces, residency, &read_back)?;
        let placed = arena::place(&mut items, mode);
        if placed.bytes > self.limits.max_buffer_size {
            return Err(Error::DeviceLimit(format!(
                "the feature-map arena needs {} bytes, past the adapter's max_buffer_size of {} bytes; tile more finely or use a smaller --size",
                placed.bytes, self.limits.max_buffer_size
            )));
        }
        let mut list = BufferList::default();
        let mut weights = buffers::resident_weights(self, residency, &mut list);
        let arena = list.add("feature-map arena", BufferKind::Arena, placed.bytes.max(16));
        buffers::arena_weights(self, &groups, &items, arena, &mut weights);
        let lowered = lower::lower(self, &groups, &traces, &items, arena)?;
        let params = buffers::params(&self.limits, lowered.steps.len() as u64, &mut list)?;
        let (upload, readback) = buffers::staging(self, &read_back, &mut list);
        let timed = lowered
            .groups
            .iter()
            .filter(|g| !g.steps.is_empty())
            .count();
        let timestamps = buffers::timestamps(&self.limits, timed as u64, &mut list);
        Ok(MemoryPlan {
            mode,
            residency,
            config: config.clone(),
            ops: self.ops.clone(),
            precision: self.precision,
            groups: lowered.groups,
            buffers: list.0,
            weights,
            arena,
            items: items.list,
            maps: lowered.maps,
            input: lowered.input,
            params,
            params_stride: self.limits.params_stride(),
            macs: lowered.steps.iter().map(|d| d.macs).sum(),
            steps: lowered.steps,
            upload,
            readback,
            timestamps,
            read_back,
            live_peak: placed.live_peak,
            live_peak_step: placed.live_peak_step,
        })
    }
}
