//! `mafat` command-line interface: one file per subcommand, each building one serialisable report
//! printed as JSON (`--json`) or text. Every library error is reported in one line.

mod args;
mod info;
mod layers;
mod output;
mod plan;
mod progress;
mod regret;
mod run;
mod sweep;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mafat",
    version,
    about = "Memory-aware fusing and tiling of CNNs on the GPU (wgpu)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List GPU adapters and the limits that matter to mafat.
    Info(info::Args),
    /// Print the layer table of a model: shapes, weight bytes, multiply-accumulates.
    Layers(layers::Args),
    /// Plan without running: the fastest configuration that fits --budget, the smallest budget any
    /// configuration needs (--min-budget), or the tiles of a given configuration (--groups).
    Plan(plan::Args),
    /// The search's regret: for each budget, the measured latency of its pick against the best
    /// measured configuration of a reference grid.
    Regret(regret::Args),
    /// Latency against memory: mafat's pick and every baseline (naive, layerwise, single-group FTP,
    /// whole-network halo tiling) at each budget, each at its own best fitting configuration,
    /// measured on the adapter; writes CSV and an SVG plot.
    Sweep(sweep::Args),
    /// Run a model and report the time, the memory and the outputs.
    Run(run::Args),
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away (`mafat ... | head`)
    // instead of failing on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    quiet_mesa_runtime_dir();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match cli.command {
        Command::Info(a) => info::main(a),
        Command::Layers(a) => layers::main(a),
        Command::Plan(a) => plan::main(a),
        Command::Regret(a) => regret::main(a),
        Command::Sweep(a) => sweep::main(a),
        Command::Run(a) => run::main(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error_line(&e);
            ExitCode::FAILURE
        }
    }
}

/// clap's verdict on the command line: help and version as clap prints them; a mistake as one
/// `error:` line (clap's first, the value cut short: a bad value may be a whole file pasted in) and
/// exit status 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("error: bad command line");
    let line = match first.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &first[..cut]),
        None => first.to_string(),
    };
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line} (see mafat --help)");
    ExitCode::from(2)
}

/// Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid or not set" when it is missing (a fresh
/// root shell, CI); it only matters to window-system code, which mafat never uses. Point it at the
/// temporary directory when it is unset, before any thread starts.
fn quiet_mesa_runtime_dir() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: single-threaded here (nothing has been spawned yet).
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
}
