//! Every WGSL file in shaders/ parses and validates with naga (no GPU needed) and opens with
//! the header DESIGN.md asks for.

#[test]
fn every_shader_validates_with_naga() {
    assert!(!gpucnn::SHADERS.is_empty(), "no shaders embedded");
    let mut errors = Vec::new();
    for (name, src) in gpucnn::SHADERS {
        if let Err(e) = gpucnn::kernels::validate_wgsl(name, src) {
            errors.push(e);
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn every_shader_has_a_header() {
    for (name, src) in gpucnn::SHADERS {
        let header: String = src
            .lines()
            .take_while(|l| l.starts_with("//") || l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [
            "Entry points",
            "Bindings",
            "Params",
            "Workgroup",
            "Grid",
            "Mirrors",
        ] {
            assert!(
                header.contains(needle),
                "{name}: header lacks a '{needle}' section"
            );
        }
    }
}

#[test]
fn every_shader_is_embedded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let on_disk = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "wgsl")
        })
        .count();
    assert_eq!(on_disk, gpucnn::SHADERS.len());
}
