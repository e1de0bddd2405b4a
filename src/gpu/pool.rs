//! The one place mafat creates device buffers. It records the bytes it holds (buffers handed out plus
//! idle ones kept for reuse) and their peak, recycles idle buffers of the same size and usage instead
//! of creating new ones, and refuses any allocation that would pass its byte budget.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;

/// A buffer handed out by the pool. Give it back with [`BufferPool::release`].
#[derive(Debug, Clone)]
pub struct PoolBuffer {
    /// The device buffer.
    pub buffer: wgpu::Buffer,
    /// Its size in bytes, exactly as requested.
    pub size: u64,
    /// Its usages (an idle buffer is reused only for the same size and usages).
    pub usage: wgpu::BufferUsages,
}

/// Byte counts of the pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Bytes of buffers handed out now.
    pub in_use: u64,
    /// Bytes of all buffers the pool holds (in use + idle).
    pub held: u64,
    /// Highest `held` so far.
    pub peak: u64,
    /// Buffers created.
    pub created: u64,
    /// Times an idle buffer was handed out again instead of creating one.
    pub reused: u64,
}

/// Budget-accounted device buffers: hands out, recycles and destroys them (see the module docs).
/// Dropping the pool destroys its idle buffers.
pub struct BufferPool {
    budget: Option<u64>,
    idle: Vec<PoolBuffer>,
    stats: PoolStats,
}

impl BufferPool {
    /// A pool that never holds more than `budget` bytes (no limit with `None`).
    pub fn new(budget: Option<u64>) -> Self {
        BufferPool {
            budget,
            idle: Vec::new(),
            stats: PoolStats::default(),
        }
    }

    /// The byte budget (`None`: no limit).
    pub fn budget(&self) -> Option<u64> {
        self.budget
    }

    /// The byte counts and buffer counters as of now.
    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Start a new peak measurement at the bytes held now.
    pub fn reset_peak(&mut self) {
        self.stats.peak = self.stats.held;
    }

    /// Hand out a buffer of exactly `size` bytes (a multiple of 4) and `usage`: an idle one if there is
    /// one, else a new one. Idle buffers are destroyed first if a new one would pass the budget.
    pub fn acquire(
        &mut self,
        ctx: &GpuContext,
        size: u64,
        usage: wgpu::BufferUsages,
        label: &str,
    ) -> Result<PoolBuffer> {
        debug_assert!(size.is_multiple_of(4) && size > 0, "{label}: {size} bytes");
        if let Some(i) = self
            .idle
            .iter()
            .position(|b| b.size == size && b.usage == usage)
        {
            let b = self.idle.swap_remove(i);
            self.stats.in_use += size;
            self.stats.reused += 1;
            return Ok(b);
        }
        if let Some(budget) = self.budget {
            // Make room by dropping idle buffers, largest first.
            self.idle.sort_by_key(|b| b.size);
            while self.stats.held + size > budget {
                let Some(b) = self.idle.pop() else { break };
                self.stats.held -= b.size;
                b.buffer.destroy();
            }
            if self.stats.held + size > budget {
                return Err(Error::Budget {
                    budget,
                    request: size,
                    held: self.stats.held,
                    label: label.to_string(),
                });
            }
        }
        if size > ctx.limits.max_buffer_size {
            return Err(Error::DeviceLimit(format!(
                "{label}: a buffer of {size} bytes passes the adapter's max_buffer_size of {} bytes",
                ctx.limits.max_buffer_size
            )));
        }
        let buffer = ctx.scoped(&format!("allocating {label} ({size} bytes)"), || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        })?;
        self.stats.held += size;
        self.stats.in_use += size;
        self.stats.peak = self.stats.peak.max(self.stats.held);
        self.stats.created += 1;
        Ok(PoolBuffer {
            buffer,
            size,
            usage,
        })
    }

    /// Take a buffer back; it stays allocated (and counted) for reuse.
    pub fn release(&mut self, b: PoolBuffer) {
        self.stats.in_use -= b.size;
        self.idle.push(b);
    }

    /// Destroy every idle buffer.
    pub fn trim(&mut self) {
        for b in self.idle.drain(..) {
            self.stats.held -= b.size;
            b.buffer.destroy();
        }
    }
}

impl Drop for BufferPool {
    fn drop(&mut self) {
        self.trim();
    }
}
