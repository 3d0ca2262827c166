//! `gpucnn train`'s advice when a run would take hours on a software adapter: one line, after
//! the first steps, with the estimate and the flags of a quick run, and the run goes on.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{gpucnn_cmd, write_ab_images};
use gpucnn::gpu::test_context;

#[test]
fn a_run_of_hours_on_a_software_adapter_says_so_after_the_first_steps() {
    let Some(ctx) = test_context() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_ab_images(&data, 30);
    let out = tmp.path().join("run");
    // 128-pixel images make a step take a good fraction of a second on a software adapter, and
    // 5,000 epochs of 6 steps make that hours (while the run's checkpoints still fit a small
    // disk: it checks the free space for all of them first).
    let mut child = gpucnn_cmd()
        .arg("train")
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args([
            "--epochs",
            "5000",
            "--image-size",
            "128",
            "--width",
            "0.0625",
        ])
        .args(["--batch-size", "8"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let mut next = |log: &mut String| {
        let line = lines.next().map(|l| l.unwrap());
        if let Some(l) = &line {
            log.push_str(l);
            log.push('\n');
        }
        line
    };
    // The estimate comes after the second of the first epoch's 6 steps: the first epoch's line
    // means it never came.
    while let Some(l) = next(&mut log) {
        if l.starts_with("Timing: ") || l.starts_with("Epoch 1/") {
            break;
        }
    }
    if !log.contains("Timing: ") {
        child.kill().unwrap();
        panic!("no estimate before the first epoch's end:\n{log}");
    }
    // The line after the estimate: the advice, or (on a GPU) the run going on.
    let after = next(&mut log).unwrap_or_default();
    // The run goes on after the advice: still running, stopped here.
    assert_eq!(child.try_wait().unwrap(), None, "{log}");
    child.kill().unwrap();
    child.wait().unwrap();

    if ctx.is_software() {
        assert!(
            after.starts_with("note: this run will take about "),
            "{log}"
        );
        let hours = after["note: this run will take about ".len()..]
            .split(' ')
            .next()
            .unwrap();
        assert!(hours.ends_with('h'), "over an hour: {after}");
        assert!(after.contains(&ctx.info.name), "{after}");
        // The flags that make it quick, with values; --width is already below the quick one.
        for flag in ["--image-size 64", "--epochs 5"] {
            assert!(after.contains(flag), "{flag}: {after}");
        }
        assert!(!after.contains("--width"), "{after}");
    } else {
        assert!(!log.contains("note: this run will take"), "{log}");
    }
}
