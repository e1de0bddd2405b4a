//! Every kernel's WGSL, for every device capability, parses and validates with naga (no GPU needed),
//! declares the workgroup size its kernel reports, and binds exactly what its kernel lists.

use mafat::kernel::{KernelRef, PARAMS_BYTES, REGISTRY, ShaderCaps, Slot};

fn variants() -> Vec<(KernelRef, ShaderCaps, String)> {
    let mut v = Vec::new();
    for &k in REGISTRY {
        for subgroups in [false, true] {
            let caps = ShaderCaps { subgroups };
            let k = KernelRef(k);
            v.push((k, caps, k.source(caps)));
        }
    }
    v
}

#[test]
fn every_kernel_validates_with_naga() {
    for (k, caps, src) in variants() {
        let what = format!("{} ({caps:?})", k.name());
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(&src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::SUBGROUP,
        )
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let entry = module
            .entry_points
            .iter()
            .find(|e| e.name == "main")
            .expect("entry point main");
        assert_eq!(entry.workgroup_size, k.workgroup_size(), "{what}");
        // The uniform block the shader declares is exactly the Rust `Params`.
        let params = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Params"))
            .expect("Params struct");
        assert_eq!(
            params.1.inner.size(module.to_ctx()) as u64,
            PARAMS_BYTES,
            "{what}"
        );
        // The shader's bindings are the kernel's list: same numbers, uniform only for the params.
        let mut declared: Vec<(u32, bool)> = module
            .global_variables
            .iter()
            .filter_map(|(_, g)| {
                let b = g.binding.as_ref()?;
                assert_eq!(b.group, 0, "{what}");
                Some((b.binding, g.space == naga::AddressSpace::Uniform))
            })
            .collect();
        declared.sort();
        let mut listed: Vec<(u32, bool)> = k
            .bindings()
            .iter()
            .map(|b| (b.binding, b.slot == Slot::Params))
            .collect();
        listed.sort();
        assert_eq!(declared, listed, "{what}");
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
    // Every kernel but the generated register-tiled conv (src/kernel/conv2d.rs) is its stem's file;
    // each file's text is in its kernel's source.
    let mut used = vec!["common.wgsl".to_string()];
    for &k in REGISTRY {
        let path = format!("{}.wgsl", k.name());
        if files.contains(&path) {
            let text = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("shaders")
                    .join(&path),
            )
            .unwrap();
            assert!(
                k.wgsl(ShaderCaps::default()).contains(text.trim()),
                "{path}"
            );
            used.push(path);
        } else {
            assert_eq!(k.name(), "conv2d", "{} has no shader file", k.name());
        }
    }
    used.sort();
    assert_eq!(files, used);
}
