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

#[test]
fn a_reused_report_folder_keeps_nothing_of_the_earlier_run() {
    // The binaries: stand-ins that print a line, so the parts run without a GPU build.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for exe in ["gpucnn", "kernels", "train_step"] {
        let p = bin.join(exe);
        std::fs::write(&p, "#!/bin/sh\necho ran\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out_dir = dir.path().join("report");
    std::fs::create_dir(&out_dir).unwrap();
    // An earlier run given --torch left its PyTorch result here.
    std::fs::write(
        out_dir.join("torch_fp32.txt"),
        "torch images/s=999.0 size=180 batch=128\n",
    )
    .unwrap();
    let out = script()
        .args(["--bin", bin.to_str().unwrap(), "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(out_dir.join("report.txt")).unwrap();
    assert!(!out_dir.join("torch_fp32.txt").exists());
    assert!(!text.contains("999.0"), "{text}");
    assert!(text.contains("no --torch command given"), "{text}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
