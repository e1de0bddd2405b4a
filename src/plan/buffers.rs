//! Planner pass: the buffers besides the arena — resident weights, the parameter blocks, upload and
//! readback staging, timestamps — and where per-group weights sit in the arena.

use crate::error::{Error, Result};
use crate::network::Source;
use crate::plan::config::Group;
use crate::plan::lifetimes::Items;
use crate::plan::limits::DeviceLimits;
use crate::plan::memory::{BufferKind, BufferSpec, Residency, WeightsAt};
use crate::plan::planner::Planner;

/// Bytes moved per staging round trip (uploads of weights and input, readback of outputs) when
/// storing f32: 256 Ki elements. Storing f16 moves as many elements, in half the bytes.
pub const STAGING_CHUNK: u64 = 1 << 20;

/// The buffers of a plan in allocation order.
#[derive(Debug, Default)]
pub(crate) struct BufferList(pub Vec<BufferSpec>);

impl BufferList {
    /// Add a buffer; its index.
    pub fn add(&mut self, label: &str, kind: BufferKind, size: u64) -> usize {
        self.0.push(BufferSpec {
            label: label.to_string(),
            kind,
            size,
        });
        self.0.len() - 1
    }
}

/// Resident weights: one buffer per layer with weights. Per layer, where its weights are (`None` for
/// every layer under per-group residency: see [`arena_weights`]).
pub(crate) fn resident_weights(
    p: &Planner<'_>,
    residency: Residency,
    list: &mut BufferList,
) -> Vec<Option<WeightsAt>> {
    let n = p.net().layers.len();
    let mut weights = vec![None; n];
    if residency == Residency::Resident {
        for (i, w) in weights.iter_mut().enumerate() {
            let bytes = p.weight_bytes(i);
            if bytes > 0 {
                let buffer = list.add(&format!("layer {i} weights"), BufferKind::Weights, bytes);
                *w = Some(WeightsAt {
                    buffer,
                    offset: 0,
                    bytes,
                });
            }
        }
    }
    weights
}

/// Per-group residency: each layer's weights inside its group's weights item in the arena.
pub(crate) fn arena_weights(
    p: &Planner<'_>,
    groups: &[Group],
    items: &Items,
    arena: usize,
    weights: &mut [Option<WeightsAt>],
) {
    for (gi, g) in groups.iter().enumerate() {
        let Some(it) = items.weights[gi] else {
            continue;
        };
        for (i, w) in weights.iter_mut().enumerate().take(g.end).skip(g.start) {
            if let Some(off) = items.weight_offsets[i] {
                *w = Some(WeightsAt {
                    buffer: arena,
                    offset: items.list[it].offset + off,
                    bytes: p.weight_bytes(i),
                });
            }
        }
    }
}

/// The uniform buffer: one parameter block per dispatch (none when nothing is dispatched).
pub(crate) fn params(
    limits: &DeviceLimits,
    dispatches: u64,
    list: &mut BufferList,
) -> Result<Option<usize>> {
    if dispatches == 0 {
        return Ok(None);
    }
    let bytes = limits.params_stride() * dispatches;
    if bytes > limits.max_buffer_size {
        return Err(Error::DeviceLimit(format!(
            "{dispatches} dispatches need {bytes} bytes of parameters, past the adapter's max_buffer_size of {} bytes; use coarser grids",
            limits.max_buffer_size
        )));
    }
    Ok(Some(list.add("parameters", BufferKind::Params, bytes)))
}

/// Upload staging (sized by the largest weight buffer or the input, at most a chunk: [`STAGING_CHUNK`]
/// at f32, its elements at the planner's precision) and readback staging (the largest map read
/// back, at most a chunk). The parameter blocks go through
/// the upload buffer in chunks too but do not size it, so staging does not depend on the
/// configuration.
pub(crate) fn staging(
    p: &Planner<'_>,
    read_back: &[Source],
    list: &mut BufferList,
) -> (usize, usize) {
    let net = p.net();
    let chunk = p.precision().of_f32_bytes(STAGING_CHUNK);
    let largest_upload = (0..net.layers.len())
        .map(|i| p.weight_bytes(i))
        .chain(std::iter::once(p.map_bytes(net.input)))
        .max()
        .unwrap_or(4)
        .max(4)
        .next_multiple_of(8);
    let largest_readback = read_back
        .iter()
        .map(|&s| p.map_bytes(net.shape_of(s)))
        .max()
        .unwrap_or(4)
        .next_multiple_of(8);
    let upload = list.add(
        "upload staging",
        BufferKind::Upload,
        largest_upload.min(chunk),
    );
    let readback = list.add(
        "readback staging",
        BufferKind::Readback,
        largest_readback.min(chunk),
    );
    (upload, readback)
}

/// Timestamp resolve and readback buffers (two 8-byte stamps per timed group), when the device
/// records timestamps and some group dispatches.
pub(crate) fn timestamps(
    limits: &DeviceLimits,
    timed_groups: u64,
    list: &mut BufferList,
) -> Option<(usize, usize)> {
    if !limits.timestamps || timed_groups == 0 {
        return None;
    }
    let bytes = 8 * 2 * timed_groups;
    let resolve = list.add("timestamp resolve", BufferKind::TimestampResolve, bytes);
    let readback = list.add("timestamp readback", BufferKind::TimestampReadback, bytes);
    Some((resolve, readback))
}
