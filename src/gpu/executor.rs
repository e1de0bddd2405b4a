//! GPU execution of a network from a [`MemoryPlan`] (untiled, or fused and tiled as its configuration
//! says): every buffer comes from the pool once, resident weights and the parameters are uploaded
//! through the staging buffer, each run uploads the input, records one command buffer (a compute pass
//! per group, a copy dispatch per route source; with per-group residency, one submit per group after
//! its weights are uploaded), waits, and reads the outputs back; detection heads run on the CPU.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{Kernel, PARAMS_BYTES, Params, Pipelines, act_code};
use crate::gpu::pool::{BufferPool, PoolBuffer};
use crate::model::weights::Weights;
use crate::network::{LayerKind, Network, Source};
use crate::plan::memory::{Dispatch, GpuOp, MemoryPlan, Residency, Step, gpu_op};
use crate::tensor::Tensor;
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
    pub group_ms: Vec<(std::ops::Range<usize>, f64)>,
    /// When each of those groups started, in ms after the first one started (the gap before a
    /// group is its start minus the previous group's start and time).
    pub group_start_ms: Vec<f64>,
}

/// A network prepared on a device: buffers allocated, weights and parameters uploaded, one bind
/// group per dispatch.
pub struct Executor {
    net: Network,
    /// The plan whose buffers the executor holds and whose steps it runs.
    pub plan: MemoryPlan,
    buffers: Vec<PoolBuffer>,
    /// Per-group residency: each group's packed weights, uploaded when the group starts.
    group_weights: Vec<Option<Vec<u8>>>,
    /// Per step of the plan: the bind group of its dispatch.
    bind_groups: Vec<wgpu::BindGroup>,
    query_set: Option<wgpu::QuerySet>,
}

/// Pack a conv layer's folded weights as its kernel reads them.
fn pack_weights(net: &Network, i: usize, weights: &Weights) -> Vec<f32> {
    let l = &net.layers[i];
    let LayerKind::Conv(c) = &l.kind else {
        unreachable!("only convs have weights")
    };
    let p = weights.conv(i);
    let per = (l.input.c / c.groups) * c.size * c.size;
    match gpu_op(&l.kind) {
        GpuOp::Dispatch(Kernel::Conv) => {
            // [filters/4][cin_g][k][k] as vec4 over 4 consecutive filters, then biases as vec4s.
            let nq = c.filters.div_ceil(4);
            let mut out = vec![0.0f32; 4 * (nq * per + nq)];
            for f in 0..c.filters {
                let (q, lane) = (f / 4, f % 4);
                for j in 0..per {
                    out[4 * (q * per + j) + lane] = p.weights[f * per + j];
                }
                out[4 * (nq * per + q) + lane] = p.bias[f];
            }
            out
        }
        _ => {
            let mut out = p.weights.clone();
            out.extend_from_slice(&p.bias);
            out
        }
    }
}

/// Parameters of one dispatch: the layer's shape parameters with the regions its buffers hold and
/// the region it computes.
pub fn dispatch_params(net: &Network, d: &Dispatch) -> Params {
    let mut p = layer_params(net, d.layer);
    let (i, o, r) = (d.input.holds, d.output.holds, d.region);
    p.in_h = i.height() as u32;
    p.in_w = i.width() as u32;
    p.in_y0 = i.y0 as i32;
    p.in_x0 = i.x0 as i32;
    p.out_h = o.height() as u32;
    p.out_w = o.width() as u32;
    p.out_y0 = o.y0 as i32;
    p.out_x0 = o.x0 as i32;
    p.ry0 = r.y0 as i32;
    p.rx0 = r.x0 as i32;
    p.rh = r.height() as u32;
    p.rw = r.width() as u32;
    if d.kernel == Kernel::Copy {
        p.extra[0] = d.input.holds.len(d.input.channels) as u32;
        p.extra[1] = d.dst_element as u32;
    }
    p
}

/// Shape parameters of layer `i` over its whole output.
fn layer_params(net: &Network, i: usize) -> Params {
    let l = &net.layers[i];
    let (x, o) = (l.input, l.output);
    let mut p = Params {
        in_c: x.c as u32,
        in_h: x.h as u32,
        in_w: x.w as u32,
        cin_g: x.c as u32,
        map_h: x.h as i32,
        map_w: x.w as i32,
        out_c: o.c as u32,
        out_h: o.h as u32,
        out_w: o.w as u32,
        rh: o.h as u32,
        rw: o.w as u32,
        alpha: 1.0,
        beta: 1.0,
        ..Params::default()
    };
    match &l.kind {
        LayerKind::Conv(c) => {
            p.cin_g = (x.c / c.groups) as u32;
            p.filters = c.filters as u32;
            p.cout_g = (c.filters / c.groups) as u32;
            p.k = c.size as u32;
            p.stride = c.stride as u32;
            p.pad = c.padding as u32;
            p.act = act_code(c.activation);
        }
        LayerKind::MaxPool(m) => {
            p.k = m.size as u32;
            p.stride = m.stride as u32;
            p.pad = m.pad_before() as u32;
        }
        LayerKind::Upsample { stride, scale } => {
            p.stride = *stride as u32;
            p.alpha = *scale;
        }
        LayerKind::Reorg { stride } => p.stride = *stride as u32,
        LayerKind::Shortcut {
            from,
            activation,
            alpha,
            beta,
        } => {
            let f = net.layers[*from].output;
            p.act = act_code(*activation);
            p.alpha = *alpha;
            p.beta = *beta;
            p.extra = [
                f.c as u32,
                f.h as u32,
                f.w as u32,
                (f.w / x.w).max(1) as u32,
                (x.w / f.w).max(1) as u32,
                0,
            ];
        }
        LayerKind::Softmax {
            groups,
            temperature,
        } => {
            p.alpha = *temperature;
            p.extra[0] = *groups as u32;
        }
        _ => {}
    }
    p
}

fn map_async_wait(
    ctx: &GpuContext,
    slice: wgpu::BufferSlice<'_>,
    mode: wgpu::MapMode,
) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(mode, move |r| {
        let _ = tx.send(r);
    });
    ctx.wait("mapping a staging buffer")?;
    match rx.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Gpu {
            during: "mapping a staging buffer".into(),
            message: e.to_string(),
        }),
        Err(_) => Err(Error::Gpu {
            during: "mapping a staging buffer".into(),
            message: "the map callback never ran".into(),
        }),
    }
}

/// Copy `bytes` into `dst` at `offset` through the staging buffer, chunk by chunk.
pub(crate) fn upload(
    ctx: &GpuContext,
    staging: &PoolBuffer,
    dst: &wgpu::Buffer,
    offset: u64,
    bytes: &[u8],
) -> Result<()> {
    for (j, chunk) in bytes.chunks(staging.size as usize).enumerate() {
        let n = chunk.len() as u64;
        let slice = staging.buffer.slice(..n);
        map_async_wait(ctx, slice, wgpu::MapMode::Write)?;
        {
            let mut view = slice.get_mapped_range_mut().map_err(|e| Error::Gpu {
                during: "writing the upload staging buffer".into(),
                message: e.to_string(),
            })?;
            view.copy_from_slice(chunk);
        }
        staging.buffer.unmap();
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&staging.buffer, 0, dst, offset + j as u64 * staging.size, n);
        ctx.queue.submit([enc.finish()]);
    }
    ctx.wait("uploading")
}

/// Read `len` bytes of `src` from `offset` through the readback buffer.
pub(crate) fn download(
    ctx: &GpuContext,
    staging: &PoolBuffer,
    src: &wgpu::Buffer,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len as usize);
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(staging.size);
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, offset + done, &staging.buffer, 0, n);
        ctx.queue.submit([enc.finish()]);
        let slice = staging.buffer.slice(..n);
        map_async_wait(ctx, slice, wgpu::MapMode::Read)?;
        {
            let view = slice.get_mapped_range().map_err(|e| Error::Gpu {
                during: "reading the readback buffer".into(),
                message: e.to_string(),
            })?;
            out.extend_from_slice(&view);
        }
        staging.buffer.unmap();
        done += n;
    }
    Ok(out)
}

impl Executor {
    /// Allocate the plan's buffers from `pool`, upload weights and parameters, record the steps.
    pub fn new(
        ctx: &GpuContext,
        pipelines: &Pipelines,
        net: &Network,
        weights: &Weights,
        plan: MemoryPlan,
        pool: &mut BufferPool,
    ) -> Result<Self> {
        use wgpu::BufferUsages as U;
        let mut buffers: Vec<PoolBuffer> = Vec::with_capacity(plan.buffers.len());
        for (j, spec) in plan.buffers.iter().enumerate() {
            let usage = if j == plan.upload {
                U::MAP_WRITE | U::COPY_SRC
            } else if j == plan.readback || plan.timestamps.is_some_and(|t| t.1 == j) {
                U::MAP_READ | U::COPY_DST
            } else if plan.timestamps.is_some_and(|t| t.0 == j) {
                U::QUERY_RESOLVE | U::COPY_SRC
            } else if Some(j) == plan.params {
                U::UNIFORM | U::COPY_DST
            } else {
                U::STORAGE | U::COPY_DST | U::COPY_SRC
            };
            match pool.acquire(ctx, spec.size, usage, &spec.label) {
                Ok(b) => buffers.push(b),
                Err(e) => {
                    for b in buffers {
                        pool.release(b);
                    }
                    return Err(e);
                }
            }
        }
        let mut ex = Executor {
            net: net.clone(),
            plan,
            buffers,
            group_weights: Vec::new(),
            bind_groups: Vec::new(),
            query_set: None,
        };
        if let Err(e) = ex.prepare(ctx, pipelines, weights) {
            ex.release(pool);
            return Err(e);
        }
        Ok(ex)
    }

    fn prepare(
        &mut self,
        ctx: &GpuContext,
        pipelines: &Pipelines,
        weights: &Weights,
    ) -> Result<()> {
        let net = &self.net;
        let plan = &self.plan;
        let staging = &self.buffers[plan.upload];
        if plan.residency == Residency::Resident {
            for (i, w) in plan.weights.iter().enumerate() {
                if let Some(w) = w {
                    let packed = pack_weights(net, i, weights);
                    upload(
                        ctx,
                        staging,
                        &self.buffers[w.buffer].buffer,
                        w.offset,
                        bytemuck::cast_slice(&packed),
                    )?;
                }
            }
        } else {
            // Each group's weights packed once on the host, at their offsets in the group's block.
            self.group_weights = plan
                .groups
                .iter()
                .map(|g| {
                    g.weights_upload.map(|(base, bytes)| {
                        let mut block = vec![0u8; bytes as usize];
                        for i in g.group.start..g.group.end {
                            if let Some(w) = plan.weights[i] {
                                let packed = pack_weights(net, i, weights);
                                let at = (w.offset - base) as usize;
                                let src: &[u8] = bytemuck::cast_slice(&packed);
                                block[at..at + src.len()].copy_from_slice(src);
                            }
                        }
                        block
                    })
                })
                .collect();
        }
        if let Some(pb) = plan.params {
            let mut block = vec![0u8; self.buffers[pb].size as usize];
            for (j, d) in plan.dispatches().enumerate() {
                let off = (j as u64 * plan.params_stride) as usize;
                let p = dispatch_params(net, d);
                block[off..off + PARAMS_BYTES as usize].copy_from_slice(bytemuck::bytes_of(&p));
            }
            upload(ctx, staging, &self.buffers[pb].buffer, 0, &block)?;
        }

        let mut bind_groups = Vec::with_capacity(plan.steps.len());
        for (j, d) in plan.dispatches().enumerate() {
            let pipe = pipelines.get(d.kernel);
            let bind = |b: usize, offset: u64, size: u64| {
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.buffers[b].buffer,
                    offset,
                    size: std::num::NonZeroU64::new(size),
                })
            };
            let pb = plan.params.expect("dispatches have parameters");
            let mut entries = vec![
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: bind(pb, j as u64 * plan.params_stride, PARAMS_BYTES),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: bind(d.input.buffer, d.input.offset, d.input.bytes()),
                },
            ];
            if let Some(w) = plan.weights[d.layer] {
                entries.push(wgpu::BindGroupEntry {
                    binding: 2,
                    resource: bind(w.buffer, w.offset, w.bytes),
                });
            } else if let Some(second) = d.second {
                entries.push(wgpu::BindGroupEntry {
                    binding: 2,
                    resource: bind(second.buffer, second.offset, second.bytes()),
                });
            }
            entries.push(wgpu::BindGroupEntry {
                binding: 3,
                resource: bind(d.output.buffer, d.output.offset, d.output.bytes()),
            });
            let bg = ctx.scoped(&format!("binding layer {}", d.layer), || {
                ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(d.kernel.name()),
                    layout: &pipe.get_bind_group_layout(0),
                    entries: &entries,
                })
            })?;
            bind_groups.push(bg);
        }
        let timed = plan.timed_groups() as u32;
        if plan.timestamps.is_some() {
            self.query_set = Some(ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("group timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * timed,
            }));
        }
        self.bind_groups = bind_groups;
        ctx.check("preparing the network")
    }

    /// Return every buffer to the pool.
    pub fn release(self, pool: &mut BufferPool) {
        for b in self.buffers {
            pool.release(b);
        }
    }

    /// The network it runs.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Run the network on `input`.
    pub fn run(
        &self,
        ctx: &GpuContext,
        pipelines: &Pipelines,
        input: &Tensor,
    ) -> Result<RunOutput> {
        self.run_with(ctx, pipelines, input, false)
    }

    /// Run the network on `input`; on a device without timestamps, `time_each_group` submits and
    /// waits after every group to time it by the wall clock (for calibration: it adds a round trip
    /// per group).
    pub fn run_with(
        &self,
        ctx: &GpuContext,
        pipelines: &Pipelines,
        input: &Tensor,
        time_each_group: bool,
    ) -> Result<RunOutput> {
        let wall_groups = time_each_group && self.query_set.is_none();
        let mut wall_group_ms = Vec::new();
        let mut wall_group_start = Vec::new();
        let net = &self.net;
        let plan = &self.plan;
        if input.shape != net.input {
            return Err(Error::Usage(format!(
                "input is {} but {} takes {}",
                input.shape, net.name, net.input
            )));
        }
        upload(
            ctx,
            &self.buffers[plan.upload],
            &self.buffers[plan.input.buffer].buffer,
            plan.input.offset,
            bytemuck::cast_slice(&input.data),
        )?;

        // One command buffer and submit for the whole run (with per-group weight residency, one per
        // group, after that group's weights are uploaded): one compute pass per group (its tiles and
        // layers in order; wgpu orders the dispatches of a pass).
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let mut q = 0u32;
        let mut timed_groups = Vec::new();
        let t0 = Instant::now();
        for (gi, g) in plan.groups.iter().enumerate() {
            if let (Some((offset, _)), Some(Some(block))) =
                (g.weights_upload, self.group_weights.get(gi))
            {
                ctx.queue.submit([enc.finish()]);
                upload(
                    ctx,
                    &self.buffers[plan.upload],
                    &self.buffers[plan.arena].buffer,
                    offset,
                    block,
                )?;
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
                let Step::Dispatch(d) = &plan.steps[k];
                pass.set_pipeline(pipelines.get(d.kernel));
                pass.set_bind_group(0, &self.bind_groups[k], &[]);
                let [x, y, z] = d.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
            drop(pass);
            timed_groups.push(g.group.start..g.group.end);
            q += 2;
            if wall_groups {
                ctx.queue.submit([enc.finish()]);
                ctx.wait(&format!("running {}", net.name))?;
                enc = ctx.device.create_command_encoder(&Default::default());
                wall_group_ms.push((g.group.start..g.group.end, tg.elapsed().as_secs_f64() * 1e3));
                wall_group_start.push((tg - t0).as_secs_f64() * 1e3);
            }
        }
        if let (Some(qs), Some((resolve, _))) = (&self.query_set, plan.timestamps) {
            enc.resolve_query_set(qs, 0..q, &self.buffers[resolve].buffer, 0);
        }
        ctx.queue.submit([enc.finish()]);
        ctx.wait(&format!("running {}", net.name))?;
        let wall_ms = t0.elapsed().as_secs_f64() * 1e3;

        let (compute_ms, timing, group_ms, group_start_ms) = match plan.timestamps {
            Some((resolve, readback)) if q > 0 => {
                let rb = &self.buffers[readback];
                let bytes = {
                    let mut enc = ctx.device.create_command_encoder(&Default::default());
                    enc.copy_buffer_to_buffer(
                        &self.buffers[resolve].buffer,
                        0,
                        &rb.buffer,
                        0,
                        rb.size,
                    );
                    ctx.queue.submit([enc.finish()]);
                    let slice = rb.buffer.slice(..);
                    map_async_wait(ctx, slice, wgpu::MapMode::Read)?;
                    let v = slice
                        .get_mapped_range()
                        .map_err(|e| Error::Gpu {
                            during: "reading timestamps".into(),
                            message: e.to_string(),
                        })?
                        .to_vec();
                    rb.buffer.unmap();
                    v
                };
                let ts: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
                let period = ctx.queue.get_timestamp_period() as f64 * 1e-6;
                let per: Vec<(std::ops::Range<usize>, f64)> = timed_groups
                    .iter()
                    .enumerate()
                    .map(|(j, l)| {
                        (
                            l.clone(),
                            ts[2 * j + 1].saturating_sub(ts[2 * j]) as f64 * period,
                        )
                    })
                    .collect();
                let starts: Vec<f64> = (0..timed_groups.len())
                    .map(|j| ts[2 * j].saturating_sub(ts[0]) as f64 * period)
                    .collect();
                let total = ts[q as usize - 1].saturating_sub(ts[0]) as f64 * period;
                if total > 0.0 {
                    (total, Timing::GpuTimestamps, per, starts)
                } else {
                    (wall_ms, Timing::WallClock, Vec::new(), Vec::new())
                }
            }
            _ => (wall_ms, Timing::WallClock, wall_group_ms, wall_group_start),
        };

        // Read back and finish heads on the CPU.
        let mut outputs = Vec::new();
        for o in net.outputs() {
            let src = match gpu_op(&net.layers[o].kind) {
                GpuOp::CpuHead => net.sources(o)[0],
                _ => Source::Layer(o),
            };
            let shape = net.shape_of(src);
            let map = plan.map_of(src);
            let bytes = download(
                ctx,
                &self.buffers[plan.readback],
                &self.buffers[map.buffer].buffer,
                map.offset,
                shape.bytes(),
            )?;
            let t = Tensor::from_vec(shape, bytemuck::pod_collect_to_vec(&bytes));
            outputs.push(match &net.layers[o].kind {
                LayerKind::Region(r) => crate::reference::region(&t, r),
                LayerKind::Yolo(y) => crate::reference::yolo(&t, y),
                _ => t,
            });
        }
        Ok(RunOutput {
            outputs,
            compute_ms,
            timing,
            group_ms,
            group_start_ms,
        })
    }
}
