//! `cargo bench --bench kernel_shapes [-- SIZE] [--model NAME] [--kernel NAME]... [--portable]
//! [--runs N]`: every distinct conv and max-pool layer shape of a model (default yolov2-16 at 608)
//! as a one-layer network, run untiled on every kernel that supports it (or only those named),
//! the kernels of a shape timed in turns (one run of each per round; GPU timestamps where the
//! adapter has them) — the same-run comparison that kernel work is judged by. Convolutions report
//! GFLOP/s counted as a direct convolution's (2 · MACs), pools GB/s (input + output bytes).
//! `--portable` opens the device without subgroups (the kernels' portable paths).

use mafat::input::InputSource;
use mafat::kernel::{Op, candidates, named};
use mafat::model::{self, cfg, weights::WeightSource};
use mafat::network::{LayerKind, Network};
use mafat::plan::{Config, Mode, Residency};
use mafat::tune::median;
use mafat::{Session, SessionOptions};

/// The one-layer network of layer `i` of `net` (its input shape, its section), or `None` for a
/// kind this bench does not time.
fn one_layer(net: &Network, i: usize) -> Option<(String, Network)> {
    let l = &net.layers[i];
    let x = l.input;
    let section = match &l.kind {
        LayerKind::Conv(c) => format!(
            "[convolutional]\nbatch_normalize={}\nfilters={}\nsize={}\nstride={}\npadding={}\ngroups={}\nactivation={}\n",
            c.batch_normalize as u8,
            c.filters,
            c.size,
            c.stride,
            c.padding,
            c.groups,
            c.activation.name()
        ),
        LayerKind::MaxPool(m) => format!(
            "[maxpool]\nsize={}\nstride={}\npadding={}\n",
            m.size, m.stride, m.padding
        ),
        _ => return None,
    };
    let text = format!(
        "[net]\nwidth={}\nheight={}\nchannels={}\n{section}",
        x.w, x.h, x.c
    );
    let label = format!(
        "{} {}x{}x{} -> {}x{}x{}",
        l.kind.name(),
        x.c,
        x.h,
        x.w,
        l.output.c,
        l.output.h,
        l.output.w
    );
    let one = cfg::parse(&text, &label, None).ok()?;
    Some((
        format!(
            "{label} {}",
            section.lines().skip(1).collect::<Vec<_>>().join(" ")
        ),
        one,
    ))
}

fn main() -> mafat::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == name)
            .map(|w| w[1].clone())
            .collect()
    };
    let size: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(608);
    let runs: usize = flag("--runs")
        .pop()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let only = flag("--kernel");
    let model_name = flag("--model").pop().unwrap_or_else(|| "yolov2-16".into());
    let options = SessionOptions {
        subgroups: !args.iter().any(|a| a == "--portable"),
        ..SessionOptions::default()
    };
    let session = Session::new(&options)?;
    let net = model::load(&model_name, Some((size, size)))?;
    println!(
        "adapter: {}; {model_name} {size}x{size}; median of {runs} runs in turns",
        session.adapter_name()
    );
    let mut seen = Vec::new();
    for i in 0..net.layers.len() {
        let Some((label, one)) = one_layer(&net, i) else {
            continue;
        };
        if seen.contains(&label) {
            continue;
        }
        seen.push(label.clone());
        let kernels: Vec<_> = match only.is_empty() {
            true => candidates(&one, 0),
            false => {
                let mut v = Vec::new();
                for name in &only {
                    let k = named(name)?;
                    if k.supports(&one, 0) {
                        v.push(k);
                    }
                }
                v
            }
        };
        if kernels.is_empty() {
            continue;
        }
        let weights = WeightSource::Random(1).load(&one)?;
        let x = InputSource::Random(1).load(one.input)?;
        let mut prepared = Vec::new();
        let mut kept = Vec::new();
        for &k in &kernels {
            let plan = session
                .planner_on(&one, vec![Op::Dispatch(k)])
                .and_then(|p| p.plan(&Config::untiled(), Mode::Layerwise, Residency::Resident));
            let plan = match plan {
                Ok(plan) => plan,
                Err(e @ mafat::Error::DeviceLimit(_)) => {
                    println!("  ({} skipped: {e})", k.name());
                    continue;
                }
                Err(e) => return Err(e),
            };
            let ex = session.prepare(&one, &weights, plan, None)?;
            ex.run(&x)?; // compiles the shaders
            prepared.push(ex);
            kept.push(k);
        }
        let kernels = kept;
        let mut times = vec![Vec::new(); prepared.len()];
        for _ in 0..runs {
            for (t, ex) in times.iter_mut().zip(&prepared) {
                t.push(ex.run(&x)?.compute_ms);
            }
        }
        println!("\nlayer {i}: {label}");
        let l = &one.layers[0];
        for ((k, t), ex) in kernels.iter().zip(times.iter_mut()).zip(&prepared) {
            let ms = median(t);
            let rate = match l.kind {
                LayerKind::Conv(_) => format!("{:8.2} GFLOP/s", 2.0 * l.macs() as f64 / 1e6 / ms),
                _ => format!(
                    "{:8.2} GB/s",
                    4.0 * (l.input.len() + l.output.len()) as f64 / 1e6 / ms
                ),
            };
            println!(
                "  {:<24} {ms:9.3} ms {rate}  peak {} B",
                k.name(),
                ex.pool_stats().peak
            );
        }
    }
    Ok(())
}
