//! `mafat info`: every adapter and the limits that matter.

use crate::output::{Report, emit};
use mafat::Result;
use mafat::gpu::info::{AdapterReport, list_adapters};
use std::fmt::Write;

/// `mafat info [--json]`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
#[serde(transparent)]
struct Adapters(Vec<AdapterReport>);

impl Report for Adapters {
    fn text(&self) -> String {
        let mut s = String::new();
        for (i, a) in self.0.iter().enumerate() {
            let subgroups = if a.subgroups {
                format!(
                    "yes, {}..={} lanes",
                    a.subgroup_sizes[0], a.subgroup_sizes[1]
                )
            } else {
                "no".into()
            };
            let l = &a.limits;
            let _ = writeln!(s, "adapter {i}: {}", a.name);
            let _ = writeln!(s, "  backend:      {}", a.backend);
            let _ = writeln!(s, "  device type:  {}", a.device_type);
            let _ = writeln!(s, "  driver:       {} ({})", a.driver, a.driver_info);
            let yes = |b: bool| if b { "yes" } else { "no" };
            let _ = writeln!(s, "  timestamps:   {}", yes(a.timestamp_query));
            let _ = writeln!(s, "  shader-f16:   {}", yes(a.shader_f16));
            let _ = writeln!(s, "  subgroups:    {subgroups}");
            for (name, v) in [
                ("max_buffer_size", l.max_buffer_size),
                (
                    "max_storage_buffer_binding_size",
                    l.max_storage_buffer_binding_size,
                ),
                (
                    "max_compute_workgroups_per_dimension",
                    l.max_compute_workgroups_per_dimension as u64,
                ),
                (
                    "max_compute_invocations_per_workgroup",
                    l.max_compute_invocations_per_workgroup as u64,
                ),
                (
                    "max_compute_workgroup_storage_size",
                    l.max_compute_workgroup_storage_size as u64,
                ),
            ] {
                let _ = writeln!(s, "  {:<38} {v}", format!("{name}:"));
            }
        }
        s
    }
}

/// Run `mafat info`.
pub fn main(a: Args) -> Result<()> {
    emit(&Adapters(list_adapters()?), a.json)
}
