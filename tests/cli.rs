//! The `gpucnn` binary end to end: selftest's table and JSON, exit statuses, help text.

use std::process::Command;

use gpucnn::gpu::test_context;

/// Kernel-variant tuning is off unless a test turns it on (deterministic runs; the user's
/// cache left alone).
fn gpucnn(args: &[&str]) -> std::process::Output {
    gpucnn_env(args, &[])
}

fn gpucnn_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gpucnn"))
        .env("GPUCNN_TUNE", "0")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run gpucnn")
}

#[test]
fn selftest_json_has_the_documented_shape() {
    if test_context().is_none() {
        return;
    }
    let out = gpucnn(&["selftest", "--json", "--op", "relu"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "selftest failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is one JSON object");
    for key in ["name", "backend", "device_type"] {
        assert!(
            v["adapter"][key].is_string(),
            "adapter.{key} missing in {v}"
        );
    }
    let results = v["results"].as_array().expect("results array");
    // relu: 2 passes × 3 shape classes.
    assert_eq!(results.len(), 6);
    for r in results {
        assert_eq!(r["op"], "relu");
        assert!(r["pass"] == "forward" || r["pass"] == "backward");
        assert!(r["shape"].is_string());
        assert!(r["max_abs_err"].is_number());
        assert!(r["max_rel_err"].is_number());
        assert_eq!(r["ok"], true);
    }
}

#[test]
fn selftest_table_prints_adapter_rows_and_totals() {
    if test_context().is_none() {
        return;
    }
    let out = gpucnn(&["selftest", "--op", "relu", "--class", "odd"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.starts_with("adapter: "), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("relu ")).count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("2 passed, 0 failed"), "{stdout}");
}

#[test]
fn selftest_exports_test_vectors_for_other_webgpu_engines() {
    if test_context().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vectors");
    let o = gpucnn(&[
        "selftest",
        "--op",
        "relu",
        "--class",
        "tiny",
        "--class",
        "odd",
        "--export-vectors",
        out.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("vectors: 4 checks of 1 shaders"), "{e}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let checks = m["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4);
    for c in checks {
        assert!(out.join(c["data"].as_str().unwrap()).is_file());
    }
    assert!(out.join("wgsl/relu.wgsl").is_file());
    // A folder that cannot be created is the user's to fix: exit 2, naming the flag.
    let file = dir.path().join("a_file");
    std::fs::write(&file, "x").unwrap();
    let o = gpucnn(&[
        "selftest",
        "--op",
        "relu",
        "--export-vectors",
        file.join("sub").to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("--export-vectors"), "{e}");
}

#[test]
fn selftest_with_an_unknown_op_is_a_usage_error() {
    if test_context().is_none() {
        return;
    }
    let out = gpucnn(&["selftest", "--op", "no_such_op"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_such_op"), "{stderr}");
    // The list names each op once.
    let list = stderr
        .split("the ops are: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{stderr}"));
    let ops: Vec<&str> = list.trim().split(", ").collect();
    let mut unique = ops.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ops.len(), "{list}");
    assert!(
        ops.contains(&"dropout") && ops.contains(&"train_step"),
        "{list}"
    );
}

#[test]
fn help_explains_selftest_and_adapter_choice() {
    let out = gpucnn(&["--help"]);
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("selftest"), "{s}");
    assert!(s.contains("GPUCNN_ADAPTER"), "{s}");
    let out = gpucnn(&["selftest", "--help"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("--json") && s.contains("--op"), "{s}");
}

#[test]
fn summary_prints_keras_totals() {
    let out = gpucnn(&["summary"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("Total params: 2,731,065"), "{s}");
    assert!(s.contains("Trainable params: 2,722,777"), "{s}");
    assert!(s.contains("Non-trainable params: 8,288"), "{s}");
    assert!(s.contains("separable_conv2d_6 (SeparableConv2D)"), "{s}");
    let out = gpucnn(&[
        "summary",
        "--classes",
        "10",
        "--width",
        "0.5",
        "--image-size",
        "64",
    ]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("(None, 10)"), "{s}");
    let out = gpucnn(&["summary", "--image-size", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--image-size"));
}

#[test]
fn summary_reports_the_step_memory_plan() {
    if test_context().is_none() {
        return;
    }
    let out = gpucnn(&[
        "summary",
        "--image-size",
        "32",
        "--width",
        "0.125",
        "--batch-size",
        "4",
    ]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    let line = s
        .lines()
        .find(|l| l.starts_with("Training step at batch 4:"))
        .unwrap_or_else(|| panic!("{s}"));
    assert!(
        line.contains("pooled in") && line.contains("naive sum"),
        "{line}"
    );
    // The pooled memory per image: the pooled MiB over the 4 images (no micro-batches here).
    let mib = |before: &str| -> f64 {
        let head = line.split(before).next().unwrap();
        head.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (pooled, per_image) = (mib(" MiB pooled in"), mib(" MiB per image"));
    assert!((per_image - pooled / 4.0).abs() < 0.06, "{line}");
}

/// The memory plan is shape arithmetic: with no adapter it is made for WebGPU's default limits
/// and says so; GPUCNN_VARIANT mistakes are bad input.
#[test]
fn summary_plans_memory_without_a_gpu() {
    let out = gpucnn(&[
        "summary",
        "--adapter",
        "no-such-adapter",
        "--batch-size",
        "128",
    ]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(
        s.contains(
            "assuming WebGPU's default limits and portable kernels (128 MiB per storage binding"
        ),
        "{s}"
    );
    assert!(
        s.contains("Training step at batch 128: runs as ") && s.contains("micro-batches of"),
        "{s}"
    );
    assert!(s.contains("pooled in"), "{s}");
    let out = gpucnn(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("GPUCNN_VARIANT=gemm=tiled"));
    let out = gpucnn_env(&["summary"], &[("GPUCNN_VARIANT", "gemm=fast")]);
    if test_context().is_some() {
        let info = gpucnn_env(
            &["info"],
            &[("GPUCNN_VARIANT", "gemm=naive,batch_norm=tree")],
        );
        let s = String::from_utf8_lossy(&info.stdout);
        assert!(s.contains("gemm: naive (GPUCNN_VARIANT"), "{s}");
        assert!(s.contains("batch_norm: tree"), "{s}");
        assert_eq!(out.status.code(), Some(2));
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("GPUCNN_VARIANT") && e.contains("gemm=naive|tiled|subgroup"),
            "{e}"
        );
    }
}

#[test]
fn summary_plots_the_model_in_each_format() {
    let tmp = tempfile::tempdir().unwrap();
    for ext in ["png", "svg", "dot"] {
        let path = tmp.path().join(format!("model.{ext}"));
        let out = gpucnn(&[
            "summary",
            "--image-size",
            "64",
            "--plot",
            path.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&path).unwrap();
        match ext {
            "png" => assert!(image::load_from_memory(&bytes).is_ok()),
            "svg" => assert!(String::from_utf8_lossy(&bytes).contains("separable_conv2d_6")),
            _ => assert!(String::from_utf8_lossy(&bytes).starts_with("digraph")),
        }
    }
    let bad = tmp.path().join("model.gif");
    let out = gpucnn(&["summary", "--plot", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn preview_writes_a_grid_of_the_data_and_of_gpu_augmentations() {
    let tmp = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        std::fs::create_dir_all(tmp.path().join(class)).unwrap();
        for i in 0..6 {
            let img = image::RgbImage::from_fn(12, 12, |x, y| {
                image::Rgb([(x * 20) as u8, (y * 20) as u8, i * 40])
            });
            img.save(tmp.path().join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let grid = tmp.path().join("grid.png");
    let out = gpucnn(&[
        "preview",
        "--data",
        tmp.path().to_str().unwrap(),
        "--out",
        grid.to_str().unwrap(),
        "--image-size",
        "16",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = image::open(&grid).unwrap().to_rgb8();
    if test_context().is_none() {
        return;
    }
    let out = gpucnn(&[
        "preview",
        "--data",
        tmp.path().to_str().unwrap(),
        "--out",
        grid.to_str().unwrap(),
        "--image-size",
        "16",
        "--augment",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let augmented = image::open(&grid).unwrap().to_rgb8();
    assert_eq!(plain.dimensions(), augmented.dimensions());
    assert_ne!(plain.as_raw(), augmented.as_raw());
}

#[test]
fn every_command_help_documents_the_exit_statuses() {
    // Every command `gpucnn --help` lists, so that a new one cannot be left out.
    let top = String::from_utf8_lossy(&gpucnn(&["--help"]).stdout).into_owned();
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    for expected in [
        "train", "evaluate", "predict", "inspect", "scan", "selftest", "profile",
    ] {
        assert!(commands.contains(&expected), "{expected} in {commands:?}");
    }
    for cmd in commands {
        let out = gpucnn(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help");
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(
            s.contains("Exit status: 0 success; 1 failure at run time")
                && s.contains("2 bad input"),
            "{cmd} --help: {s}"
        );
    }
}

#[test]
fn a_bad_flag_value_exits_2_naming_the_flag() {
    // Checked before any GPU or file is touched.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = gpucnn(&["train", "--data", data, "--augment", "mirror"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--augment"));
    let out = gpucnn(&["summary", "--width", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--width"));
}

#[test]
fn scan_with_the_keras_jfif_filter_lists_files_without_jfif() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
    }
    // A real JFIF JPEG (the image crate writes the JFIF APP0 segment) and a PNG.
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([200, 10, 10]));
    img.save(dir.path().join("a/x.jpg")).unwrap();
    img.save(dir.path().join("b/y.png")).unwrap();
    let data = dir.path().to_str().unwrap();
    let out = gpucnn(&["scan", "--data", data]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && s.contains("2 good, 0 unusable"),
        "{s}"
    );
    let out = gpucnn(&["scan", "--data", data, "--keras-jfif-filter"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("1 good, 1 unusable"), "{s}");
    assert!(s.contains("y.png") && s.contains("no JFIF"), "{s}");
}

/// `gpucnn profile --json` times every op of a step: each layer's forward and backward ops,
/// the loss and Adam, with FLOPs on the convolution and dense passes.
#[test]
fn profile_times_every_op_of_a_step() {
    if test_context().is_none() {
        return;
    }
    // The same tiny step is profiled fused (here) and unfused (GPUCNN_FUSION=off, below).
    let args = [
        "profile",
        "--image-size",
        "16",
        "--width",
        "0.0625",
        "--batch-size",
        "2",
        "--steps",
        "1",
        "--json",
    ];
    let out = gpucnn(&args);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{s}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert!(
        ["gpu timestamps", "wall time per submission"].contains(&v["timer"].as_str().unwrap()),
        "{v}"
    );
    let ops = v["ops"].as_array().unwrap();
    let names: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
    for want in [
        "conv2d.forward",
        "batch_norm.backward",
        "dense.backward_weight",
        "loss",
        "adam.update",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(ops.iter().all(|o| o["seconds"].as_f64().unwrap() >= 0.0));
    let conv = ops.iter().find(|o| o["op"] == "conv2d.forward").unwrap();
    assert!(conv["flops"].as_u64().unwrap() > 0 && conv["layer"] == "conv2d");
    // Every op moves bytes, and the step's bytes are their sum.
    assert!(ops.iter().all(|o| o["bytes"].as_u64().unwrap() > 0), "{v}");
    let bytes: u64 = ops.iter().map(|o| o["bytes"].as_u64().unwrap()).sum();
    assert_eq!(v["bytes_per_step"].as_u64(), Some(bytes));
    // The upload as training does it: 2 samples of 16×16×3 bytes and a 4-byte target each.
    assert_eq!(
        v["upload_bytes"].as_u64(),
        Some(2 * 16 * 16 * 3 + 2 * 4),
        "{v}"
    );
    assert!(v["upload_seconds"].as_f64().unwrap() > 0.0, "{v}");
    // The fusions: no ReLU pass is left; GPUCNN_FUSION=off plans the unfused step, which
    // moves more bytes.
    assert!(!names.iter().any(|n| n.starts_with("relu.")), "{names:?}");
    for fused in [
        "batch_norm.forward_train_relu",
        "batch_norm.backward_relu",
        "depthwise_conv2d.forward_relu",
        "depthwise_conv2d.backward_input_relu",
    ] {
        assert!(names.contains(&fused), "{fused} missing from {names:?}");
    }
    let out = gpucnn_env(&args, &[("GPUCNN_FUSION", "off")]);
    assert!(out.status.success());
    let u: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let unfused: Vec<&str> = (u["ops"].as_array().unwrap().iter())
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    assert!(unfused.contains(&"relu.forward") && !unfused.iter().any(|n| n.ends_with("_relu")));
    assert!(u["bytes_per_step"].as_u64().unwrap() > bytes, "{u}");
    let out = gpucnn_env(&args, &[("GPUCNN_FUSION", "of")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GPUCNN_FUSION"));
    assert!(v["step_seconds"].as_f64().unwrap() > 0.0);
    let out = gpucnn(&["profile", "--width", "-1"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Kernel variants chosen by measurement: the first profile on an adapter measures and caches
/// (in GPUCNN_CACHE_DIR), `info` then reports the cache and its timings; a cached choice is
/// what the step runs, GPUCNN_VARIANT beats it, a corrupt cache is warned about and rewritten,
/// and GPUCNN_TUNE=0 neither measures nor reads the cache.
#[test]
fn variants_are_measured_once_cached_and_overridable() {
    use gpucnn::kernels::tune::{self, FamilyTuning, Timing, Tuning};
    let Some(ctx) = test_context() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let path = tmp.path().join(tune::CACHE_FILE);
    let on = |extra: &[(&'static str, &'static str)]| {
        let mut env = vec![("GPUCNN_TUNE", "1"), ("GPUCNN_CACHE_DIR", dir)];
        env.extend_from_slice(extra);
        env
    };
    let profile = ["profile", "--image-size", "16", "--width", "0.0625"];
    let profile = [&profile[..], &["--batch-size", "2", "--steps", "1"]].concat();
    let info = gpucnn_env(&["info"], &on(&[]));
    let s = String::from_utf8_lossy(&info.stdout);
    assert!(s.contains("kernel tuning: not measured yet"), "{s}");

    // First use: measured, cached, then reported from the cache.
    let out = gpucnn_env(&profile, &on(&[]));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && e.contains("Measuring kernel variants"),
        "{e}"
    );
    let key = tune::cache_key(&ctx.info, ctx.zero_copy_mirrors());
    let measured = tune::load(&path, &key)
        .unwrap()
        .expect("an entry for this adapter");
    let families: Vec<&str> = measured
        .families
        .iter()
        .map(|f| f.family.as_str())
        .collect();
    assert_eq!(families, ["gemm", "conv2d", "batch_norm"]);
    let info = gpucnn_env(&["info"], &on(&[]));
    let s = String::from_utf8_lossy(&info.stdout);
    assert!(s.contains("kernel tuning: from the cache"), "{s}");
    assert!(s.contains("fastest measured at"), "{s}");

    // A cached choice is what the step runs (no second measurement); the override beats it.
    let entry = |family: &str, chosen: &str| FamilyTuning {
        family: family.into(),
        shapes: "test".into(),
        chosen: chosen.into(),
        timings: vec![Timing {
            variant: chosen.into(),
            seconds: Some(0.001),
            note: String::new(),
        }],
    };
    let cached = Tuning {
        families: vec![entry("gemm", "tiled"), entry("batch_norm", "tree")],
        work: measured.work,
    };
    tune::store(&path, &key, &cached).unwrap();
    let gemm_variant = |out: &std::process::Output| {
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        let row = s.lines().find(|l| l.contains("pointwise_conv2d.forward"));
        let v = row
            .and_then(|l| l.split_whitespace().nth(2))
            .map(str::to_string);
        (v, s)
    };
    let out = gpucnn_env(&profile, &on(&[]));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !e.contains("Measuring"),
        "a cached adapter is not measured again: {e}"
    );
    let (v, s) = gemm_variant(&out);
    assert_eq!(v.as_deref(), Some("tiled"), "{s}");
    let out = gpucnn_env(&profile, &on(&[("GPUCNN_VARIANT", "gemm=naive")]));
    let (v, s) = gemm_variant(&out);
    assert_eq!(v.as_deref(), Some("naive"), "{s}");

    // GPUCNN_TUNE=0: neither measured nor read (the defaults run; the file is untouched).
    std::fs::write(&path, b"{ not json").unwrap();
    let off = [("GPUCNN_TUNE", "0"), ("GPUCNN_CACHE_DIR", dir)];
    let out = gpucnn_env(&["info"], &off);
    let (e, s) = (
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
    );
    assert!(
        out.status.success() && !e.contains("Measuring") && !e.contains("warning"),
        "{e}"
    );
    assert!(
        s.contains("kernel tuning: tuning off (GPUCNN_TUNE=0): defaults"),
        "{s}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"{ not json");

    // A corrupt cache is ignored with a warning, measured again and rewritten.
    let out = gpucnn_env(&profile, &on(&[]));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{e}");
    assert!(
        e.contains("warning: ignoring the kernel-variant cache"),
        "{e}"
    );
    assert!(e.contains("Measuring kernel variants"), "{e}");
    assert!(tune::load(&path, &key).unwrap().is_some());
}
