//! `gpucnn train`'s regularization flags end to end on a small generated folder:
//! `--weight-decay` (AdamW) reaches the GPU's update, `--dropout` the model and model.json,
//! both the run's fingerprint; bad values exit 2 naming the flag. (The update's arithmetic is
//! proven against the CPU reference in the Adam parity checks and tests/train_step.rs.)

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_exit, assert_success, run, s, shapes_dataset, tensors, tiny_train};

fn make_data(root: &Path) {
    shapes_dataset(
        root,
        9,
        12,
        |rng, disc| common::Shape::random(disc, rng).draw([220, 210, 90], [30, 30, 60]),
        |class, i| format!("{class}_{i:02}.png"),
    );
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    run(tiny_train(out, "1", "8")
        .args(["--data", s(data)])
        .args(extra))
}

/// The sum of squares of every convolution and dense kernel of a checkpoint.
fn kernel_norm2(path: &Path) -> f64 {
    tensors(path)
        .iter()
        .filter(|(name, _)| name.ends_with("kernel"))
        .flat_map(|(_, bytes)| bytemuck::pod_collect_to_vec::<u8, f32>(bytes))
        .map(|v| (v as f64).powi(2))
        .sum()
}

#[test]
fn weight_decay_and_dropout_reach_the_step_model_json_and_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_data(&data);
    let plain = dir.path().join("plain");
    assert_success(&train(&data, &plain, &[]));
    let json = std::fs::read_to_string(plain.join("run.json")).unwrap();
    assert!(
        !json.contains("regularization"),
        "defaults are left out: {json}"
    );
    // θ −= θ·wd·lr every step: at wd·lr = 0.05 the kernels shrink by about 5% a step.
    let decayed = dir.path().join("decayed");
    let flags = ["--weight-decay", "50", "--dropout", "0.25"];
    assert_success(&train(&data, &decayed, &flags));
    let (n0, n1) = (
        kernel_norm2(&plain.join("save_at_1.safetensors")),
        kernel_norm2(&decayed.join("save_at_1.safetensors")),
    );
    assert!(
        n0 > 0.0 && n1 < 0.8 * n0,
        "kernel norms² {n0} without, {n1} with decay"
    );
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(decayed.join("model.json")).unwrap())
            .unwrap();
    assert_eq!(model["dropout"], 0.25);
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(decayed.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["regularization"]["weight_decay"], 50.0);
    // Resuming with another decay is another run: refused, naming the flag.
    let o = run(tiny_train(&decayed, "2", "8")
        .args(["--data", s(&data), "--resume", "--dropout", "0.25"])
        .args(["--weight-decay", "0.5"]));
    let e = assert_exit(&o, 2);
    assert!(e.contains("--weight-decay"), "{e}");
}

#[test]
fn bad_regularization_values_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("run");
    for (flags, named) in [
        (["--weight-decay", "-0.1"], "--weight-decay"),
        (["--weight-decay", "nan"], "--weight-decay"),
        (["--dropout", "1"], "--dropout"),
        (["--dropout", "-0.5"], "--dropout"),
    ] {
        let e = assert_exit(&train(&data, &out, &flags), 2);
        assert!(e.contains(named), "{flags:?}: {e}");
        assert!(!out.exists(), "nothing is written for {flags:?}");
    }
}
