//! The one progress display of every long job (calibration, regret, sweep): a bar on a terminal,
//! otherwise a line on stderr at the start, the end and at most every ten seconds between.

use mafat::tune::Progress;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// A progress reporter titled `title` (e.g. `calibrating yolov2-16 608x608`).
pub fn reporter(title: String) -> impl FnMut(Progress<'_>) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(1);
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        b.set_style(style);
        b.set_prefix(title.clone());
        b
    });
    let t0 = Instant::now();
    let mut last_line: Option<Instant> = None;
    move |p: Progress<'_>| match &bar {
        Some(b) => {
            b.set_length(p.total as u64);
            b.set_position(p.done as u64);
            b.set_message(p.what.to_string());
            if p.done >= p.total {
                b.finish_and_clear();
            }
        }
        None => {
            let due = last_line.is_none_or(|t| t.elapsed().as_secs() >= 10);
            if p.done >= p.total || due {
                last_line = Some(Instant::now());
                let _ = writeln!(
                    std::io::stderr(),
                    "{title} [{}/{}] {:.0} s: {}",
                    p.done,
                    p.total,
                    t0.elapsed().as_secs_f64(),
                    p.what
                );
            }
        }
    }
}

/// The reporter of a calibration of `net` on `session`'s adapter.
pub fn calibration(net: &mafat::Network, session: &mafat::Session) -> impl FnMut(Progress<'_>) {
    reporter(format!(
        "calibrating {} {}x{} on {}",
        net.name,
        net.input.w,
        net.input.h,
        session.adapter_name()
    ))
}
