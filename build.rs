// Embeds every WGSL file of shaders/ into the library as `gpucnn::SHADERS`, so the list never
// has to be kept by hand and a new shader is picked up (and validated by tests/shaders.rs).
use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("shaders");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("shaders/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    names.sort();
    let mut out = String::from(
        "/// Every WGSL file in `shaders/`: (file name, source).\npub const SHADERS: &[(&str, &str)] = &[\n",
    );
    for n in &names {
        let p = dir.join(n);
        println!("cargo:rerun-if-changed={}", p.display());
        out.push_str(&format!(
            "    ({n:?}, include_str!({:?})),\n",
            p.display().to_string()
        ));
    }
    out.push_str("];\n");
    fs::write(
        Path::new(&env::var("OUT_DIR").unwrap()).join("shaders.rs"),
        out,
    )
    .unwrap();
}
