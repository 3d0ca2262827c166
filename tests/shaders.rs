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

/// Each variant pair: (portable file, variant file, slots only the variant declares).
/// The variant is a drop-in for the portable file: the Rust side builds one Params struct and one
/// binding table per family, so both files must agree on them exactly.
const VARIANT_PAIRS: &[(&str, &str, &[u32])] = &[
    // a4 (slot 5) and c4 (slot 7) are the subgroup kernel's vec4 views of A and C; gemm.wgsl
    // never reads A or writes C as vec4s.
    ("gemm.wgsl", "gemm_subgroup.wgsl", &[5, 7]),
    ("gemm.wgsl", "gemm_subgroup64.wgsl", &[5, 7]),
    ("conv2d.wgsl", "conv2d_subgroup.wgsl", &[]),
];

fn parsed(name: &str) -> naga::Module {
    let src = gpucnn::SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("{name} is not in shaders/"))
        .1;
    gpucnn::kernels::validate_wgsl(name, src)
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

/// A type written out structurally (handles differ between modules, so they cannot be compared);
/// a struct by its name (Params is compared member by member on its own).
fn type_text(m: &naga::Module, ty: naga::Handle<naga::Type>) -> String {
    use naga::TypeInner as T;
    let scalar = |s: &naga::Scalar| format!("{:?}{}", s.kind, s.width as u32 * 8);
    match &m.types[ty].inner {
        T::Scalar(s) => scalar(s),
        T::Vector { size, scalar: s } => format!("vec{}<{}>", *size as u32, scalar(s)),
        T::Array { base, size, stride } => {
            format!("array<{}, {size:?}, stride {stride}>", type_text(m, *base))
        }
        T::Struct { span, .. } => format!(
            "struct {} ({span} bytes)",
            m.types[ty].name.as_deref().unwrap_or("?")
        ),
        other => format!("{other:?}"),
    }
}

/// The `struct Params` of a module, member by member ("name: type @ offset"), then its size.
fn params_struct(m: &naga::Module, file: &str) -> Vec<String> {
    let (h, ty) = m
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some("Params"))
        .unwrap_or_else(|| panic!("{file} declares no struct Params"));
    let naga::TypeInner::Struct { members, .. } = &ty.inner else {
        panic!("{file}: Params is not a struct");
    };
    let mut v: Vec<String> = members
        .iter()
        .map(|f| {
            format!(
                "{}: {} @ {}",
                f.name.as_deref().unwrap_or("?"),
                type_text(m, f.ty),
                f.offset
            )
        })
        .collect();
    v.push(type_text(m, h));
    v
}

/// Every resource binding: (group, binding) → "name: space type".
fn bindings(m: &naga::Module) -> std::collections::BTreeMap<(u32, u32), String> {
    m.global_variables
        .iter()
        .filter_map(|(_, g)| {
            let rb = g.binding.as_ref()?;
            Some((
                (rb.group, rb.binding),
                format!(
                    "{}: {:?} {}",
                    g.name.as_deref().unwrap_or("?"),
                    g.space,
                    type_text(m, g.ty)
                ),
            ))
        })
        .collect()
}

/// Why `variant` is not a drop-in for `portable`: one line per difference.
fn pair_differences(portable: &str, variant: &str, variant_only: &[u32]) -> Vec<String> {
    let (p, v) = (parsed(portable), parsed(variant));
    let mut diffs = Vec::new();
    let (pp, vp) = (params_struct(&p, portable), params_struct(&v, variant));
    for i in 0..pp.len().max(vp.len()) {
        let (a, b) = (pp.get(i), vp.get(i));
        if a != b {
            diffs.push(format!(
                "struct Params, item {i}: {portable} has {a:?}, {variant} has {b:?}"
            ));
        }
    }
    let (pb, vb) = (bindings(&p), bindings(&v));
    for (slot, decl) in &vb {
        match pb.get(slot) {
            Some(pdecl) if pdecl != decl => diffs.push(format!(
                "binding {slot:?}: {portable} has `{pdecl}`, {variant} has `{decl}`"
            )),
            Some(_) => {}
            None if slot.0 == 0 && variant_only.contains(&slot.1) => {}
            None => diffs.push(format!(
                "binding {slot:?} (`{decl}`) is declared by {variant} only; add it to \
                 {portable} or to VARIANT_PAIRS' variant-only slots"
            )),
        }
    }
    diffs
}

/// Each file that reads some operands from texture mirrors: (storage file, textured file, the
/// slots it binds as textures where the storage file has a storage array). Everything else
/// must agree as in VARIANT_PAIRS (slots the textured file drops are simply not bound).
const TEXTURE_PAIRS: &[(&str, &str, &[u32])] = &[(
    "gemm_subgroup64.wgsl",
    "gemm_subgroup64_texture.wgsl",
    &[1, 2],
)];

#[test]
fn textured_files_mirror_their_storage_files_slot_for_slot() {
    let mut diffs = Vec::new();
    for (storage, textured, slots) in TEXTURE_PAIRS {
        let (sb, tb) = (bindings(&parsed(storage)), bindings(&parsed(textured)));
        for &slot in *slots {
            let (s, t) = (&sb[&(0, slot)], &tb[&(0, slot)]);
            if !(s.contains("Storage") && t.contains("Image") && t.contains("Float")) {
                diffs.push(format!(
                    "binding {slot}: {storage} has `{s}`, {textured} should have a float texture \
                     there but has `{t}`"
                ));
            }
        }
        diffs.extend(
            pair_differences(storage, textured, &[])
                .into_iter()
                .filter(|d| {
                    !slots
                        .iter()
                        .any(|s| d.starts_with(&format!("binding (0, {s})")))
                }),
        );
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn variant_pairs_declare_the_same_params_and_bindings() {
    let mut diffs = Vec::new();
    for (portable, variant, variant_only) in VARIANT_PAIRS {
        diffs.extend(pair_differences(portable, variant, variant_only));
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
