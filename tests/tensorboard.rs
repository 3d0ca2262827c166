//! `gpucnn train --tensorboard`: the event files read back by TensorBoard's own reader (the
//! `tensorboard` Python package's EventAccumulator, which checks every record's CRC), holding
//! the numbers of metrics.csv. The reader is the Python of GPUCNN_TENSORBOARD_PYTHON, or
//! `python3`, with `tensorboard` importable; `.ci/run` installs it. Without it the test says
//! SKIPPED, except under CI=true, where it fails.

mod common;

use std::process::Command;

use common::{assert_success, run, s, shapes_dataset, tiny_train};

const READ: &str = r#"
import json, sys
from tensorboard.backend.event_processing import event_accumulator as ea
out = {}
for run in ["train", "validation"]:
    acc = ea.EventAccumulator(sys.argv[1] + "/" + run, size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
    acc.Reload()
    tags = acc.Tags()
    out[run] = {
        "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
        "images": {t: [[e.step, e.width, e.height, len(e.encoded_image_string)] for e in acc.Images(t)] for t in tags["images"]},
    }
print(json.dumps(out))
"#;

fn python() -> Option<String> {
    let candidates = std::env::var("GPUCNN_TENSORBOARD_PYTHON")
        .ok()
        .into_iter()
        .chain(["python3".to_string()]);
    for p in candidates {
        let ok = Command::new(&p)
            .args(["-c", "import tensorboard"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(p);
        }
    }
    None
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

#[test]
fn tensorboard_reads_the_runs_scalars_and_first_batch() {
    let Some(py) = python() else {
        assert!(
            !in_ci(),
            "CI: no Python with the tensorboard package (set GPUCNN_TENSORBOARD_PYTHON)"
        );
        eprintln!("SKIPPED: no Python with the tensorboard package (GPUCNN_TENSORBOARD_PYTHON)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    shapes_dataset(
        &data,
        11,
        16,
        |rng, disc| common::Shape::random(disc, rng).draw([250, 250, 250], [0, 0, 0]),
        |class, i| format!("{class}_{i:02}.png"),
    );
    let out = dir.path().join("run");
    let o = run(tiny_train(&out, "2", "4").args([
        "--data",
        s(&data),
        "--tensorboard",
        "--tensorboard-update-freq",
        "3",
    ]));
    assert_success(&o);
    let read = Command::new(&py)
        .args(["-c", READ])
        .arg(out.join("logs"))
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    let series = |run: &str, tag: &str| -> Vec<(i64, f64)> {
        v[run]["scalars"][tag]
            .as_array()
            .unwrap_or_else(|| panic!("{run}/{tag} missing: {v}"))
            .iter()
            .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
            .collect()
    };
    let rows: Vec<Vec<f64>> = std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    // Per epoch, at steps 1 and 2, the f32 values of metrics.csv.
    let close = |a: &[(i64, f64)], col: usize| {
        assert_eq!(a.len(), rows.len(), "{a:?}");
        for ((step, x), r) in a.iter().zip(&rows) {
            assert_eq!(*step, r[0] as i64);
            assert!(
                (x - r[col]).abs() <= 1e-6 * r[col].abs().max(1.0),
                "{x} vs {}",
                r[col]
            );
        }
    };
    close(&series("train", "epoch_loss"), 1);
    close(&series("train", "epoch_accuracy"), 2);
    close(&series("validation", "epoch_loss"), 3);
    close(&series("validation", "epoch_accuracy"), 4);
    close(&series("train", "epoch_learning_rate"), 7);
    // 25 training images, batch 4: 7 steps an epoch; batch scalars at global steps 3, 6, 10, 13.
    let steps: Vec<i64> = series("train", "batch_loss").iter().map(|p| p.0).collect();
    assert_eq!(steps, [3, 6, 10, 13]);
    // The validation confusion matrix, an image per epoch.
    let cm: Vec<i64> = v["validation"]["images"]["confusion_matrix"]
        .as_array()
        .unwrap_or_else(|| panic!("no confusion_matrix: {v}"))
        .iter()
        .map(|e| e[0].as_i64().unwrap())
        .collect();
    assert_eq!(cm, [1, 2]);
    // The first batch: one 3×3 grid PNG at step 0.
    let img = &v["train"]["images"]["first_batch"][0];
    assert_eq!(img[0], 0);
    assert!(
        img[1].as_i64().unwrap() > 200 && img[3].as_i64().unwrap() > 1000,
        "{img}"
    );
}
