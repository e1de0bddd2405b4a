//! Moving bytes between the host and device buffers through staging buffers, chunk by chunk.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::pool::PoolBuffer;

/// Map `slice` for `mode` and wait until it is mapped.
pub(crate) fn map_async_wait(
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
