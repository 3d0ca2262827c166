//! scripts/gpu-report.sh: the one-call report for a real GPU. Its full run needs release
//! binaries and bench executables (made by `cargo bench --no-run`, not by `cargo test`), so the
//! suite checks what it can without them: the script parses, teaches its usage, and refuses a
//! missing binary by name before running anything.

use std::process::Command;

fn script() -> Command {
    let mut c = Command::new("bash");
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/gpu-report.sh"
    ));
    c
}

#[test]
fn the_script_parses_and_its_help_names_every_part() {
    let syntax = Command::new("bash")
        .args([
            "-n",
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu-report.sh"),
        ])
        .status()
        .unwrap();
    assert!(syntax.success(), "bash -n scripts/gpu-report.sh failed");
    let out = script().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "selftest --json",
        "--torch",
        "--bin DIR",
        "--quick",
        "180",
        "strip",
    ] {
        assert!(help.contains(needle), "--help lacks '{needle}':\n{help}");
    }
}

#[test]
fn a_missing_binary_is_named_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("report");
    let out = script()
        .args(["--bin", dir.path().to_str().unwrap(), "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gpucnn is missing"), "{err}");
    assert!(
        !out_dir.exists(),
        "the report folder was made before the check"
    );
    let bad = script().arg("--frobnicate").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--frobnicate"));
}
