//! `shaders/interface/<file>.json`, the machine-readable interface of every shader (bindings,
//! Params layout, overrides, workgroup sizes; `gpucnn::gpu::interface`), is generated from the
//! WGSL by naga, so it cannot go stale: these tests fail when a committed file differs from what
//! the WGSL gives (`GPUCNN_REGENERATE=1 cargo test --test shader_interface` rewrites them), and
//! when a shader's handwritten binding table disagrees with naga.

use std::path::{Path, PathBuf};

use gpucnn::gpu::interface::ShaderInterface;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders/interface")
}

#[test]
fn the_committed_interfaces_are_the_generated_ones() {
    let all = ShaderInterface::of_files(gpucnn::SHADERS).unwrap();
    let regenerate = std::env::var_os("GPUCNN_REGENERATE").is_some_and(|v| v == "1");
    if regenerate {
        std::fs::create_dir_all(dir()).unwrap();
    }
    let mut stale = Vec::new();
    for i in &all {
        let path = dir().join(format!("{}.json", i.shader));
        let want = i.to_json();
        if regenerate {
            std::fs::write(&path, &want).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale or missing (run `GPUCNN_REGENERATE=1 cargo test --test shader_interface`): {stale:?}"
    );
    // No file for a shader that no longer exists.
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = all.iter().map(|i| format!("{}.json", i.shader)).collect();
    want.sort();
    assert_eq!(files, want);
}

/// The rows `//   slot | name | access | …` of a shader's header binding table.
fn header_rows(src: &str) -> Vec<(u32, String, String)> {
    src.lines()
        .take_while(|l| l.starts_with("//") || l.trim().is_empty())
        .filter_map(|l| {
            let cols: Vec<&str> = l
                .trim_start_matches("//")
                .split('|')
                .map(str::trim)
                .collect();
            let slot = cols.first()?.parse().ok()?;
            Some((slot, cols.get(1)?.to_string(), cols.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn every_header_binding_table_agrees_with_naga() {
    let mut errors = Vec::new();
    for (file, src) in gpucnn::SHADERS {
        let i = ShaderInterface::of(file.trim_end_matches(".wgsl"), src).unwrap();
        let rows = header_rows(src);
        for b in &i.bindings {
            let access = match b.space.as_str() {
                "uniform" | "texture" => b.space.as_str(),
                _ => &b.access,
            };
            match rows.iter().find(|r| r.0 == b.slot) {
                None => errors.push(format!(
                    "{file}: slot {} ({}) not in the header",
                    b.slot, b.name
                )),
                Some((_, name, acc)) if *name != b.name || acc != access => errors.push(format!(
                    "{file}: slot {}: header says {name} {acc}, the WGSL declares {} {access}",
                    b.slot, b.name
                )),
                Some(_) => {}
            }
        }
        // A row for a slot the file does not declare must say so: its name in parentheses.
        for (slot, name, _) in &rows {
            if !i.bindings.iter().any(|b| b.slot == *slot) && !name.starts_with('(') {
                errors.push(format!(
                    "{file}: header row for slot {slot} ({name}) the WGSL does not declare"
                ));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The portable shaders (all but the subgroup variants) fit WebGPU's default limits, the
/// browser's baseline: 8 storage buffers per stage, 16 KiB of workgroup memory.
#[test]
fn portable_entry_points_fit_webgpus_default_limits() {
    for i in ShaderInterface::of_files(gpucnn::SHADERS).unwrap() {
        if i.shader.contains("subgroup") {
            continue;
        }
        for ep in &i.entry_points {
            assert!(
                ep.storage_buffers <= 8,
                "{} {}: {} storage buffers",
                i.shader,
                ep.name,
                ep.storage_buffers
            );
            assert!(
                ep.workgroup_bytes <= 16384,
                "{} {}: {} bytes",
                i.shader,
                ep.name,
                ep.workgroup_bytes
            );
        }
    }
}

/// The interface says what a reader needs: gemm's Params at its offsets, an override-sized
/// workgroup named, and which entry points write a binding.
#[test]
fn the_interface_reads_what_naga_sees() {
    let all = ShaderInterface::of_files(gpucnn::SHADERS).unwrap();
    let bn = all.iter().find(|i| i.shader == "batch_norm").unwrap();
    let p = &bn.uniforms[0];
    assert_eq!((p.name.as_str(), p.slot), ("Params", 12));
    let field = |n: &str| p.fields.iter().find(|f| f.name == n).unwrap();
    assert_eq!((field("rows").offset, field("momentum").offset), (0, 16));
    assert_eq!(field("momentum").ty, "f32");
    let partial = (bn.entry_points.iter())
        .find(|e| e.name == "batch_norm_forward_train_partial")
        .unwrap();
    assert_eq!(
        partial.workgroup_size,
        ["CW".to_string(), "RL".into(), "1".into()]
    );
    assert!(partial.workgroup_bytes > 0);
    let scratch = bn.bindings.iter().find(|b| b.name == "scratch").unwrap();
    assert!(
        scratch
            .written_by
            .contains(&"batch_norm_forward_train_partial".to_string())
    );
    assert!(
        !scratch
            .written_by
            .contains(&"batch_norm_forward_inference".to_string())
    );
    assert_eq!(scratch.min_bytes, 4);
    let cw = bn.overrides.iter().find(|o| o.name == "CW").unwrap();
    assert_eq!(cw.default.as_deref(), Some("64"));
}
