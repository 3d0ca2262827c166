//! No import cycles: the parity and bench harnesses are leaves (they use only `crate::gpu`), the
//! device layer uses nothing above it, nothing `kernels` uses (directly or through other
//! modules) uses `kernels` again, and the crate's top-level modules as a whole form no cycle.
//! Read from the `crate::` paths of every source file (comments and the `#[cfg(test)]` module
//! at a file's end aside: a test may build its inputs with a higher layer), at the granularity
//! of the crate's top-level modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under src/ belongs to ("kernels" for src/kernels/gemm/mod.rs).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// The top-level modules named by `crate::NAME` in `text`, outside comments.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                refs.insert(name);
            }
            rest = after;
        }
    }
    refs
}

/// Top-level module → the top-level modules its files name.
fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g = Graph::new();
    for f in files {
        let Some(m) = top_module(&src, &f) else {
            continue;
        };
        let refs = crate_refs(&std::fs::read_to_string(&f).unwrap());
        let entry = g.entry(m.clone()).or_default();
        entry.extend(refs.into_iter().filter(|r| *r != m));
    }
    g
}

/// Every module reachable from `from` (not counting `from` unless a cycle leads back to it).
fn reachable(g: &Graph, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = g
        .get(from)
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    while let Some(m) = todo.pop() {
        if seen.insert(m.to_string()) {
            todo.extend(g.get(m).into_iter().flatten().map(String::as_str));
        }
    }
    seen
}

#[test]
fn the_harnesses_are_leaves_above_the_device() {
    let g = graph();
    for leaf in ["harness", "bench"] {
        let deps = &g[leaf];
        assert!(
            deps.iter().all(|d| d == "gpu"),
            "src/{leaf}.rs must use only crate::gpu (it is imported by every kernel family), \
             but uses {deps:?}"
        );
    }
    let gpu = reachable(&g, "gpu");
    assert!(
        gpu.is_empty() || gpu.iter().all(|d| d == "error"),
        "src/gpu must not use the layers above it, but reaches {gpu:?}"
    );
}

#[test]
fn nothing_kernels_uses_leads_back_to_kernels() {
    let g = graph();
    let from_kernels = reachable(&g, "kernels");
    assert!(
        !from_kernels.contains("kernels"),
        "an import cycle runs through src/kernels: it uses {:?}, and {:?} of them use kernels",
        g["kernels"],
        g.iter()
            .filter(|(m, deps)| from_kernels.contains(*m) && deps.contains("kernels"))
            .map(|(m, _)| m)
            .collect::<Vec<_>>()
    );
    for forbidden in ["selftest", "graph", "train"] {
        assert!(
            !from_kernels.contains(forbidden),
            "src/kernels reaches crate::{forbidden}: {from_kernels:?}"
        );
    }
}

/// A module on a cycle, and the cycle through it, if any (depth-first).
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(g: &Graph, m: &str, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> bool {
        if let Some(i) = path.iter().position(|p| p == m) {
            path.drain(..i);
            path.push(m.to_string());
            return true;
        }
        if done.contains(m) {
            return false;
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            if visit(g, d, path, done) {
                return true;
            }
        }
        path.pop();
        done.insert(m.to_string());
        false
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        let mut path = Vec::new();
        if visit(g, m, &mut path, &mut done) {
            return Some(path);
        }
    }
    None
}

#[test]
fn the_top_level_modules_form_no_cycle() {
    let g = graph();
    if let Some(cycle) = find_cycle(&g) {
        panic!("an import cycle: {}", cycle.join(" → "));
    }
    // The finder itself: a known cycle is found.
    let mut bad = g.clone();
    bad.entry("gpu".into()).or_default().insert("train".into());
    assert!(find_cycle(&bad).is_some());
}

#[test]
fn the_scan_sees_the_imports() {
    // Guards the scanner itself: it must see what is known to be there, and skip comments.
    let refs = crate_refs(
        "use crate::gpu::GpuContext;\n// crate::graph in a comment\nlet x = crate::cpu::f(); \
         /// [`crate::train`]\n#[cfg(test)]\nuse crate::model;\n",
    );
    assert_eq!(refs, ["cpu", "gpu"].iter().map(|s| s.to_string()).collect());
    let g = graph();
    assert!(g["kernels"].contains("gpu") && g["kernels"].contains("cpu"));
    assert!(g["selftest"].contains("kernels"));
}
