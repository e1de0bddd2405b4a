//! The skip log shared by `common` and `gpu_common`.

/// Append a skip to the file `MAFAT_SKIP_LOG` names (`.ci/run` counts them: cargo hides a passing
/// test's output, so a skip would otherwise go unseen).
pub fn log_skip(test: &str, why: &str) {
    use std::io::Write;
    if let Some(path) = std::env::var_os("MAFAT_SKIP_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{test}: {}", why.replace('\n', " "));
    }
}
