//! `gpucnn demo` end to end: the real demo (generated data, the example's network, the plan the
//! adapter gets) on whatever adapter the machine has (lavapipe in CI), then a second demo into
//! the same folder, and the refusal of a folder the demo did not write.

mod common;

use common::{assert_exit, assert_success, gpucnn, gpucnn_cmd_default_kernels, s, stdout};
use gpucnn::gpu::test_context;

/// Best validation accuracy in a run folder's metrics.csv (the checkpoint predict uses).
fn best_val_accuracy(run: &std::path::Path) -> f64 {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap().parse::<f64>().unwrap())
        .fold(0.0, f64::max)
}

#[test]
fn demo_generates_trains_well_above_chance_predicts_and_runs_again() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let started = std::time::Instant::now();
    // The demo as a user runs it: the adapter's default kernels.
    let r = common::run(gpucnn_cmd_default_kernels().args(["demo", "--out", s(&out)]));
    let log = assert_success(&r);
    eprintln!("demo took {:.1}s", started.elapsed().as_secs_f64());
    let printed = stdout(&r);
    let run = out.join("run");
    // Two classes: chance is 0.5.
    let best = best_val_accuracy(&run);
    assert!(
        best >= 0.8,
        "best validation accuracy {best}:\n{log}\n{printed}"
    );
    for f in [
        "curves.png",
        "metrics.csv",
        "best.safetensors",
        "model.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // One sentence per held-out image, the example's form.
    let sentences: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains(": This image is ") && l.ends_with("% squares."))
        .collect();
    assert_eq!(sentences.len(), 6, "{printed}");
    for l in &sentences {
        assert!(l.contains(s(&out.join("held_out"))), "{l}");
    }
    assert!(
        printed.contains(&format!("Run folder: {}", run.display())),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("gpucnn predict --model {}", run.display())),
        "{printed}"
    );
    assert!(printed.contains("gpucnn train --data"), "{printed}");
    // Only the output folder is written: data, held_out, run and the marker.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["data", "demo.json", "held_out", "run"]);
    let mut written: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(written.len(), 1, "{written:?}");
    written.clear();

    // The held-out images are the demo's own: predict finds them with the printed command.
    let p = gpucnn(&["predict", "--model", s(&run), s(&out.join("held_out"))]);
    assert_success(&p);
    assert_eq!(stdout(&p).lines().count(), 6);

    // A second demo with another seed into the same folder replaces the first one's files
    // (one epoch: what is tested here is the reuse of the folder, not the learning).
    let before = std::fs::read(out.join("data/discs/discs_0000.png")).unwrap();
    let again = common::run(gpucnn_cmd_default_kernels().args([
        "demo",
        "--out",
        s(&out),
        "--seed",
        "7",
        "--epochs",
        "1",
    ]));
    assert_success(&again);
    assert_ne!(
        std::fs::read(out.join("data/discs/discs_0000.png")).unwrap(),
        before
    );
    assert_eq!(
        stdout(&again)
            .lines()
            .filter(|l| l.contains(": This image is "))
            .count(),
        6
    );
}

#[test]
fn demo_refuses_a_folder_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("thesis.txt"), "keep me").unwrap();
    let r = gpucnn(&["demo", "--out", s(tmp.path())]);
    let err = assert_exit(&r, 2);
    assert!(err.contains("--out") && err.contains("demo.json"), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("thesis.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}
