//! Ctrl-C (SIGINT) and SIGTERM during `gpucnn train`: the run finishes its step, saves where it
//! is, exits 130 / 143, and `--resume` continues from that very step to the same result as a
//! run never interrupted.

#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use common::{assert_success, run, s, shapes_dataset, tensors, tiny_train};

fn make_data(root: &Path) {
    shapes_dataset(
        root,
        3,
        30,
        |rng, disc| common::Shape::random(disc, rng).draw([240, 200, 40], [20, 40, 80]),
        |class, i| format!("{class}_{i:02}.png"),
    );
}

/// metrics.csv without the time and throughput columns.
fn metrics(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            [&f[..5], &f[7..]].concat().join(",")
        })
        .collect()
}

/// Starts a training, sends `signal` once its first step is done, and returns its exit status
/// and stderr.
fn interrupted_run(data: &Path, out: &Path, signal: i32) -> (Option<i32>, String) {
    let mut child = tiny_train(out, "2", "4")
        .args(["--data", s(data)])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("First step done") {
            unsafe { libc::kill(child.id() as i32, signal) };
        }
        text.push_str(&line);
        text.push('\n');
    }
    (child.wait().unwrap().code(), text)
}

#[test]
fn a_signal_mid_epoch_saves_the_step_and_resume_gives_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_data(&data);
    let whole = dir.path().join("whole");
    assert_success(&run(tiny_train(&whole, "2", "4").args(["--data", s(&data)])));
    for (signal, code, name) in [
        (libc::SIGINT, 130, "SIGINT"),
        (libc::SIGTERM, 143, "SIGTERM"),
    ] {
        let out = dir.path().join(name);
        let (status, e) = interrupted_run(&data, &out, signal);
        assert_eq!(status, Some(code), "{e}");
        assert!(
            e.contains(&format!("Interrupted by {name} in epoch 1 after step")),
            "{e}"
        );
        assert!(e.contains("--resume"), "{e}");
        assert!(out.join("interrupted.safetensors").exists());
        let o = run(tiny_train(&out, "2", "4").args(["--data", s(&data), "--resume"]));
        let e = assert_success(&o);
        assert!(e.contains("inside epoch 1, after its step"), "{e}");
        // The same numbers as the run never interrupted, to the last bit.
        assert_eq!(metrics(&out), metrics(&whole));
        assert_eq!(
            tensors(&out.join("save_at_2.safetensors")),
            tensors(&whole.join("save_at_2.safetensors"))
        );
        // Its epoch finished, the mid-epoch state is gone.
        assert!(!out.join("interrupted.safetensors").exists());
    }
}
