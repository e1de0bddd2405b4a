//! Every WGSL kernel parses and validates with naga (no GPU needed).

use mafat::gpu::kernels::{Kernel, PARAMS_BYTES};

#[test]
fn every_kernel_validates_with_naga() {
    let variants = Kernel::ALL
        .iter()
        .map(|&k| (k, k.source_for(false)))
        .chain(std::iter::once((
            Kernel::Conv,
            Kernel::Conv.source_for(true),
        )));
    for (k, src) in variants {
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{}: {}", k.name(), e.emit_to_string(&src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::SUBGROUP,
        )
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {e:?}", k.name()));
        let entry = module
            .entry_points
            .iter()
            .find(|e| e.name == "main")
            .expect("entry point main");
        assert_eq!(entry.workgroup_size, k.workgroup(), "{}", k.name());
        // The uniform block the shader declares is exactly the Rust `Params`.
        let params = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Params"))
            .expect("Params struct");
        assert_eq!(
            params.1.inner.size(module.to_ctx()) as u64,
            PARAMS_BYTES,
            "{}",
            k.name()
        );
    }
}

#[test]
fn shader_files_on_disk_are_all_used() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    files.sort();
    // The register-tiled conv is generated (src/gpu/conv_kernel.rs); every other kernel is a file.
    let mut used: Vec<String> = Kernel::ALL
        .iter()
        .filter(|&&k| k != Kernel::Conv)
        .map(|k| format!("{}.wgsl", k.name()))
        .collect();
    used.push("common.wgsl".into());
    used.sort();
    assert_eq!(files, used);
}
