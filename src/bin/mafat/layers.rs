//! `mafat layers`: the layer table of a model.

use crate::args::ModelArgs;
use crate::output::{Report, emit};
use mafat::network::LayerKind;
use mafat::{Network, Result, kernel};
use serde::Serialize;

/// `mafat layers --model M [--size WxH] [--json]`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row<'a> {
    index: usize,
    #[serde(rename = "type")]
    kind: &'static str,
    params: &'a LayerKind,
    input: [usize; 3],
    output: [usize; 3],
    weight_bytes: u64,
    macs: u64,
    /// The kernel that runs it by default (`cpu` for a detection head).
    kernel: &'static str,
    /// Every kernel that can run it (the tuned choice picks among them per adapter), with the
    /// bytes of its weights as that kernel lays them out.
    candidates: Vec<Candidate>,
}

#[derive(Serialize)]
struct Candidate {
    kernel: &'static str,
    weight_bytes: u64,
}

#[derive(Serialize)]
struct Layers<'a> {
    model: &'a str,
    input: [usize; 3],
    layers: Vec<Row<'a>>,
    weight_bytes: u64,
    macs: u64,
    #[serde(skip)]
    net: &'a Network,
}

impl Report for Layers<'_> {
    fn text(&self) -> String {
        self.net.table()
    }
}

/// Run `mafat layers`.
pub fn main(a: Args) -> Result<()> {
    let net = a.model.load()?;
    let ops = kernel::select_all(&net)?;
    let s = |x: mafat::Shape| [x.c, x.h, x.w];
    let report = Layers {
        model: &net.name,
        input: s(net.input),
        layers: net
            .layers
            .iter()
            .zip(&ops)
            .enumerate()
            .map(|(i, (l, op))| Row {
                index: l.index,
                kind: l.kind.name(),
                params: &l.kind,
                input: s(l.input),
                output: s(l.output),
                weight_bytes: l.weight_bytes(),
                macs: l.macs(),
                kernel: op.name(),
                candidates: kernel::candidates(&net, i)
                    .into_iter()
                    .map(|k| Candidate {
                        kernel: k.name(),
                        weight_bytes: k.weight_bytes(&net, i),
                    })
                    .collect(),
            })
            .collect(),
        weight_bytes: net.weight_bytes(),
        macs: net.macs(),
        net: &net,
    };
    emit(&report, a.json)
}
