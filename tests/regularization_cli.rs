//! `gpucnn train`'s regularization flags end to end on a small generated folder:
//! `--weight-decay` (AdamW) reaches the GPU's update, `--dropout` the model and model.json,
//! `--l2` and `--label-smoothing` the loss; all of them model.json and the run's fingerprint;
//! bad values exit 2 naming the flag. (The arithmetic is proven against the CPU reference in
//! the Adam and loss parity checks and tests/train_step.rs.)

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_exit, assert_success, run, s, tensors, tiny_train};

fn make_data(root: &Path) {
    common::light_shapes(root, 9, 12);
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
    assert_eq!(model["weight_decay"], 50.0);
    assert_eq!(
        (model["l2"].as_f64(), model["label_smoothing"].as_f64()),
        (Some(0.0), Some(0.0))
    );
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(decayed.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["regularization"]["weight_decay"], 50.0);
    // Resuming with another decay is another run: refused, naming the flag.
    let o = run(tiny_train(&decayed, "2", "8")
        .args(["--data", s(&data), "--resume", "--dropout", "0.25"])
        .args(["--weight-decay", "0.5"]));
    let e = assert_exit(&o, 2);
    assert!(e.contains("--weight-decay"), "{e}");

    // --l2 and --label-smoothing: recorded, and they change the loss the run reports (the
    // same seed, data and steps otherwise).
    let reg = dir.path().join("regularized");
    let flags = ["--l2", "1e-4", "--label-smoothing", "0.1"];
    assert_success(&train(&data, &reg, &flags));
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reg.join("model.json")).unwrap()).unwrap();
    let close = |v: &serde_json::Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;
    assert!(close(&model["l2"], 1e-4), "{model}");
    assert!(close(&model["label_smoothing"], 0.1), "{model}");
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reg.join("run.json")).unwrap()).unwrap();
    let r = &run_json["regularization"];
    assert!(
        close(&r["l2"], 1e-4) && close(&r["label_smoothing"], 0.1),
        "{run_json}"
    );
    let losses = |run: &Path| -> Vec<String> {
        let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
        // epoch,loss,accuracy,val_loss,…: the loss and val_loss columns.
        (csv.lines().skip(1))
            .flat_map(|l| {
                let c: Vec<&str> = l.split(',').collect();
                [c[1].to_string(), c[3].to_string()]
            })
            .collect()
    };
    let (l_plain, l_reg) = (losses(&plain), losses(&reg));
    assert!(
        l_plain[0] != l_reg[0] && l_plain[1] != l_reg[1],
        "{l_plain:?} {l_reg:?}"
    );
    // Resuming with another value of either is refused, naming the flag.
    for (flags, named) in [
        (
            ["--l2", "1e-4", "--label-smoothing", "0.2"],
            "--label-smoothing",
        ),
        (["--l2", "0.001", "--label-smoothing", "0.1"], "--l2"),
    ] {
        let o = run(tiny_train(&reg, "2", "8")
            .args(["--data", s(&data), "--resume"])
            .args(flags));
        let e = assert_exit(&o, 2);
        assert!(e.contains(named), "{flags:?}: {e}");
    }
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
        (["--l2", "-0.0001"], "--l2"),
        (["--l2", "inf"], "--l2"),
        (["--label-smoothing", "1.5"], "--label-smoothing"),
        (["--label-smoothing", "-0.1"], "--label-smoothing"),
    ] {
        let e = assert_exit(&train(&data, &out, &flags), 2);
        assert!(e.contains(named), "{flags:?}: {e}");
        assert!(!out.exists(), "nothing is written for {flags:?}");
    }
}
