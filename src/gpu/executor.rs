//! GPU execution of a network from a [`MemoryPlan`] (untiled, or fused and tiled as its configuration
//! says): every buffer comes from the executor's budgeted pool once, resident weights and the
//! parameters are uploaded through the staging buffer, each run uploads the input, records one
//! command buffer (a compute pass per group; with per-group residency, one submit per group after its
//! weights are uploaded), waits, and reads the outputs back; detection heads run on the CPU.
//!
//! The executor knows no kernel by name: each dispatch's kernel gives its pipeline, its parameter
//! block and its bindings ([`crate::kernel::Kernel`]). Dropping the executor returns its buffers.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::pipelines::Pipelines;
use crate::gpu::pool::{BufferPool, PoolBuffer, PoolStats};
use crate::gpu::transfer::{download, map_async_wait, upload};
use crate::kernel::{Op, PARAMS_BYTES, Slot};
use crate::model::weights::Weights;
use crate::network::{LayerKind, Network, Source};
use crate::plan::memory::{BufferKind, Dispatch, MemoryPlan, Residency};
use crate::tensor::Tensor;
use std::ops::Range;
use std::time::Instant;

/// How `compute_ms` was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timing {
    /// GPU timestamp queries around the passes.
    GpuTimestamps,
    /// Wall clock around submit + wait.
    WallClock,
}

impl Timing {
    /// `gpu-timestamps` or `wall-clock`, as reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Timing::GpuTimestamps => "gpu-timestamps",
            Timing::WallClock => "wall-clock",
        }
    }
}

/// What one run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Output tensors, one per `Network::outputs()`.
    pub outputs: Vec<Tensor>,
    /// Milliseconds of the network's compute work: with timestamps, from the start of the first
    /// group's pass to the end of the last one; by the wall clock, from recording the first group to
    /// the end of the wait for the last. The input upload and output readback are excluded; weight
    /// uploads between groups (per-group residency) are included.
    pub compute_ms: f64,
    /// How `compute_ms` and the group times were measured.
    pub timing: Timing,
    /// Per group that dispatches kernels: (its layers, ms), from timestamps when the device has
    /// them (untiled: one entry per layer).
    pub group_ms: Vec<(Range<usize>, f64)>,
    /// When each of those groups started, in ms after the first one started (the gap before a
    /// group is its start minus the previous group's start and time).
    pub group_start_ms: Vec<f64>,
}

/// A network prepared on a device: buffers allocated from its own budgeted pool, weights and
/// parameters uploaded, one bind group per dispatch. Dropping it returns every buffer.
pub struct Executor {
    net: Network,
    plan: MemoryPlan,
    pool: BufferPool,
    buffers: Vec<PoolBuffer>,
    /// Per-group residency: each group's packed weights, uploaded when the group starts.
    group_weights: Vec<Option<Vec<u8>>>,
    /// Per dispatch of the plan: its pipeline and bind group.
    bound: Vec<(wgpu::ComputePipeline, wgpu::BindGroup)>,
    query_set: Option<wgpu::QuerySet>,
}

impl Drop for Executor {
    fn drop(&mut self) {
        for b in self.buffers.drain(..) {
            self.pool.release(b);
        }
        self.pool.trim();
    }
}

/// The usages a buffer of `kind` needs.
pub fn usage(kind: BufferKind) -> wgpu::BufferUsages {
    use wgpu::BufferUsages as U;
    match kind {
        BufferKind::Upload => U::MAP_WRITE | U::COPY_SRC,
        BufferKind::Readback | BufferKind::TimestampReadback => U::MAP_READ | U::COPY_DST,
        BufferKind::TimestampResolve => U::QUERY_RESOLVE | U::COPY_SRC,
        BufferKind::Params => U::UNIFORM | U::COPY_DST,
        BufferKind::Weights | BufferKind::Arena => U::STORAGE | U::COPY_DST | U::COPY_SRC,
    }
}

/// The parameter blocks of every dispatch of `plan`, at their offsets in the uniform buffer.
fn params_block(net: &Network, plan: &MemoryPlan, size: u64) -> Vec<u8> {
    let mut block = vec![0u8; size as usize];
    for (j, d) in plan.dispatches().enumerate() {
        let off = (j as u64 * plan.params_stride) as usize;
        let p = d.kernel.params(&d.work(net), d.stage);
        block[off..off + PARAMS_BYTES as usize].copy_from_slice(bytemuck::bytes_of(&p));
    }
    block
}

impl Executor {
    /// Allocate the plan's buffers from a pool of `budget` bytes (no limit with `None`), upload
    /// weights and parameters, bind every dispatch.
    pub fn new(
        ctx: &GpuContext,
        pipelines: &Pipelines,
        net: &Network,
        weights: &Weights,
        plan: MemoryPlan,
        budget: Option<u64>,
    ) -> Result<Self> {
        if weights.layers.len() != net.layers.len() {
            return Err(Error::Usage(format!(
                "weights for {} layers given for {}, which has {}",
                weights.layers.len(),
                net.name,
                net.layers.len()
            )));
        }
        ctx.check_precision(plan.precision)?;
        let mut ex = Executor {
            net: net.clone(),
            pool: BufferPool::new(budget),
            buffers: Vec::with_capacity(plan.buffers.len()),
            plan,
            group_weights: Vec::new(),
            bound: Vec::new(),
            query_set: None,
        };
        for spec in &ex.plan.buffers {
            let b = ex
                .pool
                .acquire(ctx, spec.size, usage(spec.kind), &spec.label)?;
            ex.buffers.push(b);
        }
        ex.upload_weights(ctx, weights)?;
        if let Some(pb) = ex.plan.params {
            let block = params_block(&ex.net, &ex.plan, ex.buffers[pb].size);
            upload(
                ctx,
                &ex.buffers[ex.plan.upload],
                &ex.buffers[pb].buffer,
                0,
                &block,
            )?;
        }
        ex.bind(ctx, pipelines)?;
        if ex.plan.timestamps.is_some() {
            ex.query_set = Some(ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("group timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * ex.plan.timed_groups() as u32,
            }));
        }
        ctx.check("preparing the network")?;
        Ok(ex)
    }

    /// Layer `i`'s weights packed by its kernel, stored at the plan's precision (padded to whole
    /// 4-byte words, as copies need).
    fn packed(&self, i: usize, weights: &Weights) -> Result<Vec<u8>> {
        let (Op::Dispatch(k), Some(p)) = (self.plan.ops[i], &weights.layers[i]) else {
            return Err(Error::Usage(format!(
                "layer {i} of {} has no parameters in the weights given",
                self.net.name
            )));
        };
        let f32s: Vec<f32> = bytemuck::pod_collect_to_vec(&k.pack_weights(&self.net, i, p));
        Ok(padded(self.plan.precision.encode(&f32s)))
    }

    /// Resident weights go to their buffers now; per-group weights are packed into one block per
    /// group, uploaded when the group starts.
    fn upload_weights(&mut self, ctx: &GpuContext, weights: &Weights) -> Result<()> {
        if self.plan.residency == Residency::Resident {
            for (i, w) in self.plan.weights.iter().enumerate() {
                if let Some(w) = w {
                    let packed = self.packed(i, weights)?;
                    let (staging, dst) = (&self.buffers[self.plan.upload], &self.buffers[w.buffer]);
                    upload(ctx, staging, &dst.buffer, w.offset, &packed)?;
                }
            }
            return Ok(());
        }
        let mut blocks = Vec::with_capacity(self.plan.groups.len());
        for g in &self.plan.groups {
            let Some((base, bytes)) = g.weights_upload else {
                blocks.push(None);
                continue;
            };
            let mut block = vec![0u8; bytes as usize];
            for i in g.group.start..g.group.end {
                if let Some(w) = self.plan.weights[i] {
                    let packed = self.packed(i, weights)?;
                    let at = (w.offset - base) as usize;
                    block[at..at + packed.len()].copy_from_slice(&packed);
                }
            }
            blocks.push(Some(block));
        }
        self.group_weights = blocks;
        Ok(())
    }

    /// One pipeline and bind group per dispatch, binding what its kernel lists.
    fn bind(&mut self, ctx: &GpuContext, pipelines: &Pipelines) -> Result<()> {
        let plan = &self.plan;
        let mut bound = Vec::with_capacity(plan.steps.len());
        for (j, d) in plan.dispatches().enumerate() {
            let work = d.work(&self.net);
            let entry = d.kernel.entry(&work, d.stage);
            let pipe = pipelines.get(
                ctx,
                d.kernel,
                entry,
                &d.kernel.constants(&work),
                plan.precision,
            )?;
            // Storage bindings are rounded up to whole vec4s where the buffer allows (kernels may
            // view them as vec4 arrays; arena items are 16-byte aligned, so this stays inside the
            // item's own aligned bytes).
            let resource = |b: usize, offset: u64, size: u64| {
                let whole = size.next_multiple_of(16);
                let size = if offset + whole <= self.buffers[b].size {
                    whole
                } else {
                    size
                };
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.buffers[b].buffer,
                    offset,
                    size: std::num::NonZeroU64::new(size),
                })
            };
            let mut entries = Vec::with_capacity(4);
            for b in d.kernel.bindings(entry) {
                let (buffer, offset, size) = match b.slot {
                    Slot::Params => (
                        plan.params.expect("dispatches have parameters"),
                        j as u64 * plan.params_stride,
                        PARAMS_BYTES,
                    ),
                    Slot::Input => (d.input.buffer, d.input.offset, d.input.bytes()),
                    Slot::Second => {
                        let s = d.second.ok_or_else(|| missing(d, "second input"))?;
                        (s.buffer, s.offset, s.bytes())
                    }
                    Slot::Weights => {
                        let w = plan.weights[d.layer].ok_or_else(|| missing(d, "weights"))?;
                        (w.buffer, w.offset, w.bytes)
                    }
                    Slot::Output => (d.output.buffer, d.output.offset, d.output.bytes()),
                    Slot::Workspace(k) => {
                        let w = *d
                            .workspace
                            .get(k as usize)
                            .ok_or_else(|| missing(d, "workspace"))?;
                        (w.buffer, w.offset, w.bytes())
                    }
                };
                entries.push(wgpu::BindGroupEntry {
                    binding: b.binding,
                    resource: resource(buffer, offset, size),
                });
            }
            let bg = ctx.scoped(&format!("binding layer {}", d.layer), || {
                ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(d.kernel.name()),
                    layout: &pipe.get_bind_group_layout(0),
                    entries: &entries,
                })
            })?;
            bound.push((pipe, bg));
        }
        self.bound = bound;
        Ok(())
    }

    /// The network it runs.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The plan whose buffers it holds and whose steps it runs.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// The byte counts of its pool (its peak is the device memory it took).
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Run the network on `input`.
    pub fn run(&self, ctx: &GpuContext, input: &Tensor) -> Result<RunOutput> {
        self.run_with(ctx, input, false)
    }

    /// Run the network on `input`; on a device without timestamps, `time_each_group` submits and
    /// waits after every group to time it by the wall clock (for calibration: it adds a round trip
    /// per group).
    pub fn run_with(
        &self,
        ctx: &GpuContext,
        input: &Tensor,
        time_each_group: bool,
    ) -> Result<RunOutput> {
        let (net, plan) = (&self.net, &self.plan);
        if input.shape != net.input || input.data.len() != net.input.len() {
            return Err(Error::Usage(format!(
                "input is {} ({} values) but {} takes {}",
                input.shape,
                input.data.len(),
                net.name,
                net.input
            )));
        }
        upload(
            ctx,
            &self.buffers[plan.upload],
            &self.buffers[plan.input.buffer].buffer,
            plan.input.offset,
            &padded(plan.precision.encode(&input.data)),
        )?;
        let wall_groups = time_each_group && self.query_set.is_none();
        let t0 = Instant::now();
        let recorded = ctx.scoped_result(&format!("running {}", net.name), || {
            self.record_and_submit(ctx, wall_groups, t0)
        })?;
        let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
        let (compute_ms, timing, group_ms, group_start_ms) = match self.read_timestamps(ctx)? {
            Some((total, per, starts)) if total > 0.0 => {
                (total, Timing::GpuTimestamps, per, starts)
            }
            Some(_) => (wall_ms, Timing::WallClock, Vec::new(), Vec::new()),
            None => (
                wall_ms,
                Timing::WallClock,
                recorded.wall_group_ms,
                recorded.wall_group_start,
            ),
        };
        Ok(RunOutput {
            outputs: self.read_outputs(ctx)?,
            compute_ms,
            timing,
            group_ms,
            group_start_ms,
        })
    }

    /// One command buffer and submit for the whole run (with per-group weight residency, one per
    /// group, after that group's weights are uploaded): one compute pass per group (its tiles and
    /// layers in order; wgpu orders the dispatches of a pass).
    fn record_and_submit(
        &self,
        ctx: &GpuContext,
        wall_groups: bool,
        t0: Instant,
    ) -> Result<Recorded> {
        let plan = &self.plan;
        let mut rec = Recorded::default();
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let mut q = 0u32;
        for (gi, g) in plan.groups.iter().enumerate() {
            if let (Some((offset, _)), Some(Some(block))) =
                (g.weights_upload, self.group_weights.get(gi))
            {
                ctx.queue.submit([enc.finish()]);
                let (staging, arena) = (&self.buffers[plan.upload], &self.buffers[plan.arena]);
                upload(ctx, staging, &arena.buffer, offset, block)?;
                enc = ctx.device.create_command_encoder(&Default::default());
            }
            if g.steps.is_empty() {
                continue;
            }
            let tg = Instant::now();
            let tw = self
                .query_set
                .as_ref()
                .map(|qs| wgpu::ComputePassTimestampWrites {
                    query_set: qs,
                    beginning_of_pass_write_index: Some(q),
                    end_of_pass_write_index: Some(q + 1),
                });
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("group"),
                timestamp_writes: tw,
            });
            for k in g.steps.clone() {
                let (pipe, bg) = &self.bound[k];
                pass.set_pipeline(pipe);
                pass.set_bind_group(0, bg, &[]);
                let [x, y, z] = plan.steps[k].workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
            drop(pass);
            q += 2;
            if wall_groups {
                ctx.queue.submit([enc.finish()]);
                ctx.wait(&format!("running {}", self.net.name))?;
                enc = ctx.device.create_command_encoder(&Default::default());
                let range = g.group.start..g.group.end;
                rec.wall_group_ms
                    .push((range, tg.elapsed().as_secs_f64() * 1e3));
                rec.wall_group_start.push((tg - t0).as_secs_f64() * 1e3);
            }
        }
        if let (Some(qs), Some((resolve, _))) = (&self.query_set, plan.timestamps) {
            enc.resolve_query_set(qs, 0..q, &self.buffers[resolve].buffer, 0);
        }
        ctx.queue.submit([enc.finish()]);
        ctx.wait(&format!("running {}", self.net.name))?;
        Ok(rec)
    }

    /// The resolved timestamps as (total ms, per group (layers, ms), group starts), when the plan
    /// records them.
    #[allow(clippy::type_complexity)]
    fn read_timestamps(
        &self,
        ctx: &GpuContext,
    ) -> Result<Option<(f64, Vec<(Range<usize>, f64)>, Vec<f64>)>> {
        let (Some((resolve, readback)), true) = (self.plan.timestamps, self.query_set.is_some())
        else {
            return Ok(None);
        };
        let rb = &self.buffers[readback];
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&self.buffers[resolve].buffer, 0, &rb.buffer, 0, rb.size);
        ctx.queue.submit([enc.finish()]);
        let slice = rb.buffer.slice(..);
        map_async_wait(ctx, slice, wgpu::MapMode::Read)?;
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu {
                during: "reading timestamps".into(),
                message: e.to_string(),
            })?
            .to_vec();
        rb.buffer.unmap();
        let ts: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        let period = ctx.queue.get_timestamp_period() as f64 * 1e-6;
        let timed: Vec<Range<usize>> = self
            .plan
            .groups
            .iter()
            .filter(|g| !g.steps.is_empty())
            .map(|g| g.group.start..g.group.end)
            .collect();
        let per = timed
            .iter()
            .enumerate()
            .map(|(j, l)| {
                let ms = ts[2 * j + 1].saturating_sub(ts[2 * j]) as f64 * period;
                (l.clone(), ms)
            })
            .collect();
        let starts = (0..timed.len())
            .map(|j| ts[2 * j].saturating_sub(ts[0]) as f64 * period)
            .collect();
        let total = ts[2 * timed.len() - 1].saturating_sub(ts[0]) as f64 * period;
        Ok(Some((total, per, starts)))
    }

    /// Read back every output map and finish the heads on the CPU.
    fn read_outputs(&self, ctx: &GpuContext) -> Result<Vec<Tensor>> {
        let net = &self.net;
        let mut outputs = Vec::new();
        for o in net.outputs() {
            let src = match self.plan.ops[o] {
                Op::CpuHead => net.sources(o)[0],
                Op::Dispatch(_) => Source::Layer(o),
            };
            let shape = net.shape_of(src);
            let map = self.plan.map_of(src).ok_or_else(|| {
                Error::Unsupported(format!("output {src:?} has no map in the plan"))
            })?;
            // Whole 4-byte words (an f16 map of odd length reads 2 bytes of its arena padding).
            let precision = self.plan.precision;
            let len = shape.len() as u64 * precision.bytes();
            let bytes = download(
                ctx,
                &self.buffers[self.plan.readback],
                &self.buffers[map.buffer].buffer,
                map.offset,
                len.next_multiple_of(4),
            )?;
            let t = Tensor::from_vec(shape, precision.decode(&bytes[..len as usize]));
            outputs.push(match &net.layers[o].kind {
                LayerKind::Region(r) => crate::reference::region(&t, r),
                LayerKind::Yolo(y) => crate::reference::yolo(&t, y),
                _ => t,
            });
        }
        Ok(outputs)
    }
}

/// `bytes` padded with zeros to whole 4-byte words (buffer copies move whole words).
fn padded(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes
}

/// Wall-clock group times recorded while submitting (devices without timestamps).
#[derive(Default)]
struct Recorded {
    wall_group_ms: Vec<(Range<usize>, f64)>,
    wall_group_start: Vec<f64>,
}

fn missing(d: &Dispatch, what: &str) -> Error {
    Error::Unsupported(format!(
        "layer {}: kernel {} binds its {what}, which the plan does not give it (a planner bug)",
        d.layer,
        d.kernel.name()
    ))
}
