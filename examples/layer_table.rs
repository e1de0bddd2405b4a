//! Load a model (built-in name or .cfg path), print its layer table, and run the CPU reference once on
//! random weights and input: `cargo run --example layer_table -- yolov3-tiny 320x320`.

use mafat::input::InputSource;
use mafat::model::{self, weights::WeightSource};

fn main() -> mafat::Result<()> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "yolov2-tiny".into());
    let size = args.next().map(|s| model::parse_size(&s)).transpose()?;
    let net = model::load(&name, size)?;
    print!("{}", net.table());
    let weights = WeightSource::Random(0).load(&net)?;
    let input = InputSource::Random(0).load(net.input)?;
    let heads = net.outputs();
    let t = std::time::Instant::now();
    let outputs = mafat::reference::forward(&net, &weights, &input, &heads)?;
    println!("CPU reference: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    for (layer, out) in heads.iter().zip(&outputs) {
        let rms = (out.data.iter().map(|v| v * v).sum::<f32>() / out.data.len() as f32).sqrt();
        println!("layer {layer}: {} (rms {rms:.3})", out.shape);
    }
    Ok(())
}
