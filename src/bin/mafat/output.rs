//! Printing: every command builds one report, printed as pretty JSON (`--json`) or rendered as
//! text. A failing stdout (closed, full) is an error, never a panic.

use mafat::{Error, Result};
use std::io::Write;

/// A command's result, serialisable for `--json`, with its text rendering.
pub trait Report: serde::Serialize {
    /// The text form (ends with a newline).
    fn text(&self) -> String;
}

/// Print `report` as JSON or text.
pub fn emit<R: Report>(report: &R, json: bool) -> Result<()> {
    let text = if json {
        to_json(report) + "\n"
    } else {
        report.text()
    };
    print(&text)
}

/// Pretty JSON of a report (reports always serialise).
pub fn to_json<R: serde::Serialize>(report: &R) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Write `text` to stdout.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("standard output", e))
}

/// The one line a failed command prints (to stderr; if that fails too, there is no one to tell).
pub fn error_line(e: &Error) {
    let _ = writeln!(std::io::stderr(), "error: {}", one_line(&e.to_string()));
}

/// Most characters of an error line (wgpu's reports can run to pages).
const MAX_ERROR_CHARS: usize = 1000;

/// A message on one line: wgpu's multi-line reports ("Validation Error\n\nCaused by: ...") joined
/// with `: `, and cut at [`MAX_ERROR_CHARS`].
fn one_line(message: &str) -> String {
    let joined = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    match joined.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

/// Write `text` to `path`, naming the path on failure.
pub fn write_file(path: &std::path::Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Fail now, naming `path`, if a file could not be created there later (checked before long work).
pub fn check_writable(path: &std::path::Path) -> Result<()> {
    let refused = |e: std::io::Error| {
        Error::Usage(format!(
            "cannot write {}: {e} (checked before any work: give a file in a folder that exists and is writable)",
            path.display()
        ))
    };
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(|_| ())
            .map_err(refused);
    }
    std::fs::File::create(path).map_err(refused)?;
    std::fs::remove_file(path).map_err(|e| Error::io(path, e))
}
