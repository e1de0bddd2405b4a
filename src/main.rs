//! `mafat` command-line interface. Every library error is reported in one line.

use clap::{Parser, Subcommand, ValueEnum};
use mafat::input::InputSource;
use mafat::model::weights::WeightSource;
use mafat::{Error, Result, model, reference};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Device {
    Cpu,
    Gpu,
}

#[derive(Subcommand)]
enum Command {
    /// List GPU adapters and the limits that matter to mafat.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Print the layer table of a model: shapes, weight bytes, multiply-accumulates.
    Layers {
        /// Built-in name (yolov2, yolov2-16, yolov2-tiny, yolov3-tiny) or a Darknet .cfg path.
        #[arg(long)]
        model: String,
        /// Input size WxH (overrides the cfg's width/height).
        #[arg(long)]
        size: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run a model once and report the time and output shapes.
    Run {
        /// Built-in name (yolov2, yolov2-16, yolov2-tiny, yolov3-tiny) or a Darknet .cfg path.
        #[arg(long)]
        model: String,
        /// Input size WxH (overrides the cfg's width/height).
        #[arg(long)]
        size: Option<String>,
        /// A Darknet .weights file, random[:SEED] or int[:SEED].
        #[arg(long, default_value = "random:0")]
        weights: String,
        /// A PNG/JPEG image (letterboxed as Darknet does), random[:SEED] or int[:SEED].
        #[arg(long, default_value = "random:0")]
        input: String,
        /// Where to run: the CPU reference or the GPU.
        #[arg(long, value_enum, default_value = "cpu")]
        device: Device,
        /// Write the output tensor as .npy (several heads: FILE.L<layer>.npy each).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_model(model: &str, size: Option<&str>) -> Result<mafat::Network> {
    let size = size.map(model::parse_size).transpose()?;
    model::load(model, size)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info { json } => info(json),
        Command::Layers { model, size, json } => {
            let net = load_model(&model, size.as_deref())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&layers_json(&net)).expect("json")
                );
            } else {
                print!("{}", net.table());
            }
            Ok(())
        }
        Command::Run {
            model,
            size,
            weights,
            input,
            device,
            out,
            json,
        } => {
            let net = load_model(&model, size.as_deref())?;
            if device == Device::Gpu {
                return Err(Error::Usage(
                    "--device gpu: the GPU executor is not built yet; use --device cpu".into(),
                ));
            }
            let weights = WeightSource::parse(&weights)?.load(&net)?;
            let x = InputSource::parse(&input)?.load(net.input)?;
            let heads = net.outputs();
            let t0 = Instant::now();
            let outputs = reference::forward(&net, &weights, &x, &heads)?;
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let files = match &out {
                Some(path) => write_outputs(path, &heads, &outputs)?,
                None => Vec::new(),
            };
            if json {
                let v = json!({
                    "model": net.name,
                    "input": [net.input.c, net.input.h, net.input.w],
                    "device": "cpu",
                    "latency_ms": ms,
                    "timing": "wall clock, one run of the CPU reference",
                    "macs": net.macs(),
                    "outputs": heads.iter().zip(&outputs).map(|(l, t)| json!({
                        "layer": l, "shape": [t.shape.c, t.shape.h, t.shape.w]
                    })).collect::<Vec<_>>(),
                    "files": files,
                });
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            } else {
                println!(
                    "{}: input {} on the CPU reference: {ms:.1} ms ({:.2} G MACs, {:.2} GMAC/s)",
                    net.name,
                    net.input,
                    net.macs() as f64 / 1e9,
                    net.macs() as f64 / 1e6 / ms
                );
                for (l, t) in heads.iter().zip(&outputs) {
                    println!("  output of layer {l}: {}", t.shape);
                }
                for f in files {
                    println!("  wrote {f}");
                }
            }
            Ok(())
        }
    }
}

fn write_outputs(path: &Path, heads: &[usize], outputs: &[mafat::Tensor]) -> Result<Vec<String>> {
    if outputs.len() == 1 {
        outputs[0].write_npy(path)?;
        return Ok(vec![path.display().to_string()]);
    }
    let stem = path.with_extension("");
    heads
        .iter()
        .zip(outputs)
        .map(|(l, t)| {
            let p = PathBuf::from(format!("{}.L{l}.npy", stem.display()));
            t.write_npy(&p)?;
            Ok(p.display().to_string())
        })
        .collect()
}

fn layers_json(net: &mafat::Network) -> serde_json::Value {
    json!({
        "model": net.name,
        "input": [net.input.c, net.input.h, net.input.w],
        "layers": net.layers.iter().map(|l| json!({
            "index": l.index,
            "type": l.kind.name(),
            "params": l.kind,
            "input": [l.input.c, l.input.h, l.input.w],
            "output": [l.output.c, l.output.h, l.output.w],
            "weight_bytes": l.weight_bytes(),
            "macs": l.macs(),
        })).collect::<Vec<_>>(),
        "weight_bytes": net.weight_bytes(),
        "macs": net.macs(),
    })
}

fn info(json: bool) -> Result<()> {
    let adapters = mafat::gpu::info::list_adapters()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&adapters).expect("json"));
        return Ok(());
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("adapter {i}: {}", a.name);
        println!("  backend:      {}", a.backend);
        println!("  device type:  {}", a.device_type);
        println!("  driver:       {} ({})", a.driver, a.driver_info);
        let l = &a.limits;
        println!(
            "  max_buffer_size:                       {}",
            l.max_buffer_size
        );
        println!(
            "  max_storage_buffer_binding_size:       {}",
            l.max_storage_buffer_binding_size
        );
        println!(
            "  max_compute_workgroups_per_dimension:  {}",
            l.max_compute_workgroups_per_dimension
        );
        println!(
            "  max_compute_invocations_per_workgroup: {}",
            l.max_compute_invocations_per_workgroup
        );
        println!(
            "  max_compute_workgroup_storage_size:    {}",
            l.max_compute_workgroup_storage_size
        );
    }
    Ok(())
}
