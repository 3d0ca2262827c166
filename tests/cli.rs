//! The `gpucnn` binary end to end: selftest's table and JSON, exit statuses, help text.

use std::process::Command;

use gpucnn::gpu::test_context;

fn gpucnn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gpucnn"))
        .args(args)
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
fn selftest_with_an_unknown_op_is_a_usage_error() {
    if test_context().is_none() {
        return;
    }
    let out = gpucnn(&["selftest", "--op", "no_such_op"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_such_op"), "{stderr}");
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
}
