//! `gpucnn train --class-weight` (Keras' `fit(class_weight=...)`) end to end on a skewed
//! generated folder: the balanced weights printed, the training loss weighted and the
//! validation loss not, the setting tied to the run, and bad values refused with exit 2.

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_exit, assert_success, gpucnn, run, s, tiny_train, write_image};
use gpucnn::gpu::test_context;

/// A skewed training folder (24 cats, 8 dogs) and a balanced validation folder (4 + 4).
fn skewed(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (train, val) = (root.join("train"), root.join("val"));
    for (c, (class, n)) in [("cats", 24), ("dogs", 8)].into_iter().enumerate() {
        for i in 0..n {
            write_image(
                &train.join(class).join(format!("{i}.png")),
                (c * 100 + i) as u64,
            );
        }
        for i in 0..4 {
            write_image(
                &val.join(class).join(format!("{i}.png")),
                (c * 100 + 50 + i) as u64,
            );
        }
    }
    (train, val)
}

/// One epoch (4 steps of 8) at the tests' tiny settings, every training image training.
fn train(train: &Path, val: &Path, out: &Path, extra: &[&str]) -> Output {
    run(tiny_train(out, "1", "8")
        .arg("--data")
        .arg(train)
        .arg("--val-data")
        .arg(val)
        .args(["--augment", "none", "--seed", "7"])
        .args(extra))
}

/// metrics.csv's one row: (loss, accuracy, val_loss, val_accuracy).
fn row(out: &Path) -> [f64; 4] {
    let text = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    [rows[0][1], rows[0][2], rows[0][3], rows[0][4]]
}

/// A uniform weight of 2 doubles the reported training loss (Σ w·l / N, as Keras) and leaves
/// the validation loss alone (Keras weighs training only); Adam is invariant to the gradient's
/// scale, so the weights follow the same path. `auto` prints sklearn's balanced weights for
/// 24 against 8 (32/48 and 32/16), and the setting is part of the run: --resume with another
/// is refused.
#[test]
fn class_weight_weighs_the_training_loss_only() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (train_dir, val_dir) = skewed(tmp.path());
    let plain = tmp.path().join("plain");
    let log = assert_success(&train(&train_dir, &val_dir, &plain, &[]));
    assert!(!log.contains("class weights"), "{log}");
    let doubled = tmp.path().join("doubled");
    let log = assert_success(&train(
        &train_dir,
        &val_dir,
        &doubled,
        &["--class-weight", "cats=2,dogs=2"],
    ));
    assert!(log.contains("class weights: cats 2.00, dogs 2.00"), "{log}");
    let (p, d) = (row(&plain), row(&doubled));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-3 * b.abs().max(1e-3);
    assert!(close(d[0], 2.0 * p[0]), "loss {} vs 2 × {}", d[0], p[0]);
    assert!(close(d[2], p[2]), "val_loss {} vs {}", d[2], p[2]);
    assert_eq!((d[1], d[3]), (p[1], p[3]), "accuracies are never weighted");

    let auto = tmp.path().join("auto");
    let log = assert_success(&train(
        &train_dir,
        &val_dir,
        &auto,
        &["--class-weight", "auto"],
    ));
    assert!(log.contains("class weights: cats 0.67, dogs 2.00"), "{log}");
    assert!(
        (row(&auto)[0] - p[0]).abs() > 1e-4,
        "the weighted loss equals the plain one"
    );
    let run_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(auto.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["class_weight"], "auto", "{run_json}");
    let unweighted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plain.join("run.json")).unwrap()).unwrap();
    assert!(unweighted.get("class_weight").is_none(), "{unweighted}");
    let r = train(
        &train_dir,
        &val_dir,
        &auto,
        &["--class-weight", "none", "--resume"],
    );
    let e = assert_exit(&r, 2);
    assert!(e.contains("--class-weight auto → none"), "{e}");
}

/// Bad values exit 2 naming the flag, before anything is written: a malformed value, a name
/// that is no class, and any class weight with multi-label --labels (as Keras refuses).
#[test]
fn class_weight_bad_values_exit_2_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let (train_dir, val_dir) = skewed(tmp.path());
    for bad in ["cats", "cats=0", "cats=two", "cats=1,cats=2"] {
        let out = tmp.path().join("bad");
        let e = assert_exit(
            &train(&train_dir, &val_dir, &out, &["--class-weight", bad]),
            2,
        );
        assert!(e.contains("--class-weight"), "{bad}: {e}");
        assert!(!out.join("metrics.csv").exists());
    }
    if test_context().is_none() {
        return;
    }
    let out = tmp.path().join("wolves");
    let e = assert_exit(
        &train(&train_dir, &val_dir, &out, &["--class-weight", "wolves=2"]),
        2,
    );
    assert!(
        e.contains("--class-weight: 'wolves' is not a class of this run (classes: cats, dogs)"),
        "{e}"
    );
    let csv = tmp.path().join("labels.csv");
    std::fs::write(&csv, "path,labels\ncats/0.png,cat\ndogs/0.png,dog\n").unwrap();
    let out = tmp.path().join("multi");
    let r = gpucnn(&[
        "train",
        "--labels",
        s(&csv),
        "--data",
        s(&train_dir),
        "--out",
        s(&out),
        "--class-weight",
        "auto",
    ]);
    let e = assert_exit(&r, 2);
    assert!(
        e.contains("--class-weight cannot be used with --labels"),
        "{e}"
    );
    assert!(!out.join("metrics.csv").exists());
}
