//! `gpucnn train`'s Keras callbacks end to end on a small generated folder: early stopping (and
//! --resume after it), learning-rate schedules, --restore-best, --keep-checkpoints,
//! --init-from, metrics.jsonl, and the refusals of values that make no sense.

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_exit, assert_success, run, s, stderr, tiny_train};

/// Discs against squares, 20 of each (32 train, 8 validation).
fn make_data(root: &Path) {
    common::light_shapes(root, 5, 20);
}

fn train(data: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Output {
    run(tiny_train(out, epochs, "8")
        .args(["--data", s(data)])
        .args(extra))
}

/// metrics.csv's rows as numbers (epoch, loss, accuracy, val_loss, val_accuracy, seconds,
/// images/s, lr).
fn rows(out: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

#[test]
fn early_stopping_ends_the_run_as_keras_does_and_resume_knows_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_data(&data);
    let out = dir.path().join("run");
    // Weights all but frozen: val_accuracy soon stops rising.
    let flags = [
        "--lr",
        "1e-9",
        "--early-stopping-patience",
        "1",
        "--monitor",
        "val_accuracy",
    ];
    let e = assert_success(&train(&data, &out, "8", &flags));
    let r = rows(&out);
    // Keras' rule on the rows written: stop at the first epoch that does not beat the best.
    let mut best = f64::NEG_INFINITY;
    let stop = r
        .iter()
        .find(|row| {
            let better = row[4] > best;
            best = best.max(row[4]);
            !better
        })
        .map(|row| row[0] as usize);
    assert_eq!(stop, Some(r.len()), "rows: {r:?}");
    assert!(r.len() < 8, "{r:?}");
    assert!(
        e.contains("Early stopping: val_accuracy has not improved for 1 epoch(s)"),
        "{e}"
    );
    // The patience count is in the checkpoint: resuming trains nothing more.
    let o = train(&data, &out, "10", &[&flags[..], &["--resume"]].concat());
    let e = assert_success(&o);
    assert!(e.contains("Early stopping ended this run"), "{e}");
    assert_eq!(rows(&out).len(), r.len());
}

#[test]
fn schedules_set_each_epochs_rate_and_it_reaches_the_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_data(&data);
    let (constant, step) = (dir.path().join("constant"), dir.path().join("step"));
    assert_success(&train(&data, &constant, "2", &[]));
    let step_flags = [
        "--lr-schedule",
        "step",
        "--lr-step-epochs",
        "1",
        "--lr-factor",
        "0.5",
    ];
    assert_success(&train(&data, &step, "3", &step_flags));
    let (c, st) = (rows(&constant), rows(&step));
    assert_eq!(c.iter().map(|r| r[7]).collect::<Vec<_>>(), [1e-3, 1e-3]);
    assert_eq!(
        st.iter().map(|r| r[7]).collect::<Vec<_>>(),
        [1e-3, 5e-4, 2.5e-4]
    );
    // Epoch 1 ran at the same rate (the same numbers); epoch 2 at half of it (other numbers).
    assert_eq!(c[0][1..5], st[0][1..5]);
    assert_ne!(c[1][1], st[1][1]);
    // metrics.jsonl: a line per epoch, the same numbers.
    let jsonl = std::fs::read_to_string(step.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["lr"], serde_json::json!(0.00025));
    assert_eq!(lines[1]["epoch"], serde_json::json!(2));
    assert_eq!(lines[1]["loss"].as_f64().unwrap(), st[1][1]);

    // ReduceLROnPlateau on frozen weights: the rate falls after each patience epoch(s).
    let plateau = dir.path().join("plateau");
    let o = train(
        &data,
        &plateau,
        "3",
        &[
            "--lr",
            "1e-9",
            "--lr-schedule",
            "plateau",
            "--lr-patience",
            "1",
            "--monitor",
            "val_accuracy",
        ],
    );
    let e = assert_success(&o);
    let p = rows(&plateau);
    assert!(
        p.windows(2).any(|w| w[1][7] < w[0][7]) && e.contains("ReduceLROnPlateau"),
        "{p:?}\n{e}"
    );
}

#[test]
fn keep_checkpoints_restore_best_and_init_from() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_data(&data);
    let out = dir.path().join("run");
    let o = train(
        &data,
        &out,
        "4",
        &["--keep-checkpoints", "2", "--restore-best"],
    );
    assert_success(&o);
    let mut saves: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("save_at_"))
        .collect();
    saves.sort();
    assert_eq!(saves, ["save_at_3.safetensors", "save_at_4.safetensors"]);
    // --restore-best: best.safetensors is the lowest val_loss epoch (the default --monitor).
    let r = rows(&out);
    let best_epoch = r
        .iter()
        .fold((f64::INFINITY, 0), |(b, e), row| {
            if row[3] < b {
                (row[3], row[0] as usize)
            } else {
                (b, e)
            }
        })
        .1;
    let weights = |p: &Path| {
        let bytes = std::fs::read(p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("conv2d/kernel").unwrap();
        bytemuck::cast_slice::<u8, f32>(t.data()).to_vec()
    };
    let best = weights(&out.join("best.safetensors"));
    if best_epoch >= 3 {
        let path = out.join(format!("save_at_{best_epoch}.safetensors"));
        assert_eq!(best, weights(&path));
    }
    // Resuming after the older checkpoints were deleted works.
    let o = train(
        &data,
        &out,
        "5",
        &["--keep-checkpoints", "2", "--restore-best", "--resume"],
    );
    assert_success(&o);
    assert!(!out.join("save_at_3.safetensors").exists());

    // --init-from: a new run starting from those weights (frozen by a tiny rate) keeps them.
    let tuned = dir.path().join("tuned");
    let from = out.join("best.safetensors");
    let o = train(
        &data,
        &tuned,
        "1",
        &["--init-from", s(&from), "--lr", "1e-9"],
    );
    let e = assert_success(&o);
    assert!(e.contains("Starting from the weights of"), "{e}");
    let after = weights(&tuned.join("save_at_1.safetensors"));
    let moved = best
        .iter()
        .zip(&after)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(moved < 1e-5, "moved by {moved}");
    // A checkpoint of another model is refused, naming the flag.
    let other = dir.path().join("other");
    let o = run(common::gpucnn_cmd().args([
        "train",
        "--data",
        s(&data),
        "--out",
        s(&other),
        "--image-size",
        "16",
        "--width",
        "0.125",
        "--init-from",
        s(&from),
    ]));
    let e = assert_exit(&o, 2);
    assert!(e.contains("--init-from"), "{e}");
}

#[test]
fn callback_flags_that_make_no_sense_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_data(&data);
    let out = dir.path().join("run");
    for (flags, named) in [
        (
            &["--lr-schedule", "step", "--lr-factor", "2"][..],
            "--lr-factor",
        ),
        (
            &["--lr-schedule", "step", "--warmup-epochs", "2"][..],
            "--warmup-epochs",
        ),
        (&["--monitor", "val_loss"][..], "--monitor"),
        (&["--lr-patience", "3"][..], "--lr-patience"),
        (&["--keep-checkpoints", "0"][..], "--keep-checkpoints"),
        (&["--init-from", "no-such.safetensors"][..], "--init-from"),
        (&["--lr-schedule", "sometimes"][..], "--lr-schedule"),
    ] {
        let o = train(&data, &out, "1", flags);
        let e = assert_exit(&o, 2);
        assert!(e.contains(named), "{flags:?}: {e}");
        assert!(
            !out.join("metrics.csv").exists(),
            "{flags:?}: {}",
            stderr(&o)
        );
    }
}
