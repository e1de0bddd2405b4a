//! The host process's own memory figures: on integrated GPUs and lavapipe device memory is host
//! memory, so the peak resident set size is a physical check of the device-memory figures.

/// Peak resident set size of this process (Linux `VmHWM`), in bytes; `None` where the platform
/// does not tell.
pub fn rss_peak_bytes() -> Option<u64> {
    status_kib("VmHWM:")
}

/// Resident set size of this process now (Linux `VmRSS`), in bytes.
pub fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:")
}

fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The most host memory one command may plan to use: half the machine's physical memory (Linux
/// `MemTotal`), or 8 GiB where the platform does not tell. A sanity cap, checked before building
/// inputs, weights or CPU-reference maps, so that a typo in `--size` is an error, not an abort.
pub fn memory_cap_bytes() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    });
    total.map_or(8 << 30, |t| t / 2)
}
