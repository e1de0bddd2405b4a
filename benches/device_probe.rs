//! `cargo bench --bench device_probe`: what arithmetic and memory loads cost in a compute shader on the
//! current adapter — the numbers that decide how the conv kernel is shaped (see
//! `src/gpu/conv_kernel.rs`). Each probe runs 65,536 invocations × 1,024 loop iterations; median of
//! 5 timed dispatches after a warm-up.

use mafat::gpu::GpuContext;
use std::time::Instant;

const PROBES: &[(&str, &str, f64)] = &[
    (
        "vec4 multiply-add (GFLOP/s)",
        "@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a = vec4<f32>(f32(gid.x)); var b = vec4<f32>(1.0); var c = vec4<f32>(2.0); var d = vec4<f32>(3.0);
  let w = vec4<f32>(0.999, 0.998, 0.997, 0.996);
  for (var i = 0u; i < 1024u; i++) { a = a * w + w; b = b * w + w; c = c * w + w; d = d * w + w; }
  dst[gid.x] = a.x + b.y + c.z + d.w;
}",
        32.0,
    ),
    (
        "f32 storage loads (G loads/s)",
        "@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a = 0.0;
  for (var i = 0u; i < 1024u; i++) { a = a + dst[(gid.x + i * 64u) & 65535u]; }
  dst[gid.x] = a;
}",
        1.0,
    ),
    (
        "vec4 storage loads (G vec4/s)",
        "@group(0) @binding(0) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a = vec4<f32>(0.0);
  for (var i = 0u; i < 1024u; i++) { a = a + dst[(gid.x + i * 64u) & 16383u]; }
  dst[gid.x & 16383u] = a;
}",
        1.0,
    ),
    (
        "same-address f32 storage loads (G loads/s)",
        "@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a = 0.0;
  for (var i = 0u; i < 1024u; i++) { a = a + dst[(i * 64u) & 65535u]; }
  dst[gid.x] = a;
}",
        1.0,
    ),
    (
        "same-address vec4 storage loads (G vec4/s)",
        "@group(0) @binding(0) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a = vec4<f32>(0.0);
  for (var i = 0u; i < 1024u; i++) { a = a + dst[(i * 64u) & 16383u]; }
  dst[gid.x & 16383u] = a;
}",
        1.0,
    ),
    (
        "vec4 multiply-add, 32 accumulators (GFLOP/s)",
        "@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a: array<vec4<f32>, 32>;
  for (var j = 0u; j < 32u; j++) { a[j] = vec4<f32>(f32(gid.x + j)); }
  let w = vec4<f32>(0.999, 0.998, 0.997, 0.996);
  for (var i = 0u; i < 128u; i++) {
    for (var j = 0u; j < 32u; j++) { a[j] = a[j] * w + w; }
  }
  var s = vec4<f32>(0.0);
  for (var j = 0u; j < 32u; j++) { s = s + a[j]; }
  dst[gid.x] = s.x + s.y + s.z + s.w;
}",
        32.0,
    ),
    (
        "subgroupShuffle vec4, constant lane (G/s)",
        "@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a = vec4<f32>(f32(gid.x));
  var s = vec4<f32>(0.0);
  for (var i = 0u; i < 1024u; i++) { a = a * 0.999 + 1.0; s = s + subgroupShuffle(a, i & 7u); }
  dst[gid.x] = s.x + s.y + s.z + s.w;
}",
        1.0,
    ),
    (
        "subgroupBroadcast vec4, lane 3 (G/s)",
        "@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a = vec4<f32>(f32(gid.x));
  var s = vec4<f32>(0.0);
  for (var i = 0u; i < 1024u; i++) { a = a * 0.999 + 1.0; s = s + subgroupBroadcast(a, 3u); }
  dst[gid.x] = s.x + s.y + s.z + s.w;
}",
        1.0,
    ),
    (
        "workgroup-memory loads (G loads/s)",
        "@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
var<workgroup> tile: array<f32, 1024>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  for (var i = li; i < 1024u; i += 64u) { tile[i] = f32(i); }
  workgroupBarrier();
  var a = 0.0;
  for (var i = 0u; i < 1024u; i++) { a = a + tile[(li + i * 7u) & 1023u]; }
  dst[gid.x] = a;
}",
        1.0,
    ),
    (
        "uniform-buffer loads (G loads/s)",
        "@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@group(0) @binding(1) var<uniform> table: array<vec4<f32>, 256>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a = vec4<f32>(0.0);
  for (var i = 0u; i < 1024u; i++) { a = a + table[(gid.x + i) & 255u]; }
  dst[gid.x] = a.x + a.y + a.z + a.w;
}",
        1.0,
    ),
];

fn main() -> mafat::Result<()> {
    let ctx = GpuContext::new(None)?;
    let subgroups = ctx.subgroups;
    println!("adapter: {}", ctx.adapter_name());
    let n = 65536u32;
    let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("probe"),
        size: n as u64 * 4,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let table = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("probe table"),
        size: 4096,
        usage: wgpu::BufferUsages::UNIFORM,
        mapped_at_creation: false,
    });
    for (name, src, per_iteration) in PROBES {
        if src.contains("subgroup") && !subgroups {
            println!("{name:<44} (no subgroups on this adapter)");
            continue;
        }
        let pipe = ctx.scoped(name, || {
            let module = ctx
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(name),
                    source: wgpu::ShaderSource::Wgsl((*src).into()),
                });
            ctx.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(name),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                })
        })?;
        let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(name),
            layout: &pipe.get_bind_group_layout(0),
            entries: &if src.contains("binding(1)") {
                vec![
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: buf.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: table.as_entire_binding(),
                    },
                ]
            } else {
                vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: buf.as_entire_binding(),
                }]
            },
        });
        let mut times = Vec::new();
        for rep in 0..6 {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipe);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(n / 64, 1, 1);
            }
            let t = Instant::now();
            ctx.queue.submit([enc.finish()]);
            ctx.wait(name)?;
            if rep > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        let s = times[times.len() / 2];
        let rate = n as f64 * 1024.0 * per_iteration / s / 1e9;
        println!("{name:<44} {:>8.1} ms {rate:>10.2}", s * 1e3);
    }
    launch_costs(&ctx, &buf)
}

/// What a dispatch costs before it computes anything: 200 dispatches of an empty kernel in one
/// pass, of 1 and of 1,024 workgroups (64 invocations each) — the cost a tiled plan pays per tile
/// and layer, and a kernel per workgroup.
fn launch_costs(ctx: &GpuContext, buf: &wgpu::Buffer) -> mafat::Result<()> {
    let src = "@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x == 0xffffffffu) { dst[0] = 1.0; }
}";
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("empty"),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
    let pipe = ctx
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("empty"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("empty"),
        layout: &pipe.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: buf.as_entire_binding(),
        }],
    });
    let dispatches = 200u32;
    let mut per = Vec::new();
    for groups in [1u32, 1024] {
        let mut times = Vec::new();
        for rep in 0..6 {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipe);
                pass.set_bind_group(0, &bg, &[]);
                for _ in 0..dispatches {
                    pass.dispatch_workgroups(groups, 1, 1);
                }
            }
            let t = Instant::now();
            ctx.queue.submit([enc.finish()]);
            ctx.wait("empty dispatches")?;
            if rep > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        per.push(times[times.len() / 2] / dispatches as f64 * 1e6);
    }
    println!(
        "{:<44} {:>8.1} us",
        "empty dispatch of 1 workgroup (per dispatch)", per[0]
    );
    println!(
        "{:<44} {:>8.2} us",
        "empty workgroup (beyond the first)",
        (per[1] - per[0]) / 1023.0
    );
    Ok(())
}
