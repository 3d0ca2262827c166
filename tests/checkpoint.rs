//! Checkpoints, model.json, metrics.csv and curves.png: round trips, named errors, atomicity.

use std::collections::HashMap;
use std::path::Path;

use gpucnn::atomic::write_atomic;
use gpucnn::graph::{ParamLayout, ParamSlot};
use gpucnn::model::{XceptionConfig, xception_mini};
use gpucnn::plot::curves::{CURVES_SIZE, TRAINING_COLOR, VALIDATION_COLOR, write_curves_png};
use gpucnn::train::checkpoint::{
    CheckpointError, ModelConfig, TrainState, checkpoint_path, checkpoint_size_bound,
    latest_checkpoint, load_checkpoint, read_model_json, save_checkpoint, write_model_json,
};
use gpucnn::train::metrics::{self, EpochMetrics, HEADER, MetricsCsv, MetricsError};
use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, TensorView};

fn xcfg(width: f32, classes: usize) -> XceptionConfig {
    XceptionConfig {
        width,
        image_size: gpucnn::model::ImageSize::square(32),
        classes,
        ..Default::default()
    }
}

fn layout(width: f32, classes: usize) -> ParamLayout {
    ParamLayout::new(&xception_mini(&xcfg(width, classes)).unwrap())
}

fn model_config(width: f32, classes: usize) -> ModelConfig {
    let names = (0..classes).map(|i| format!("class{i}")).collect();
    ModelConfig::xception_mini(&xcfg(width, classes), names)
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Zero outside the slots (the alignment padding) of a flat vector of `layout`'s prefix.
fn zero_padding(l: &ParamLayout, v: &mut [f32]) {
    let mut keep = vec![false; v.len()];
    for s in l.slots.iter().filter(|s| s.offset + s.len <= v.len()) {
        keep[s.offset..s.offset + s.len].fill(true);
    }
    for (x, k) in v.iter_mut().zip(keep) {
        if !k {
            *x = 0.0;
        }
    }
}

/// A run fingerprint as `run.json` holds it.
const RUN: &str = r#"{"seed":18446744073709551615,"validation_split":0.2,"lr":0.001,"batch_size":8,
    "image_size":16,"width":0.0625,"augment":"flip,rotate 0.1","crop_to_aspect_ratio":true,
    "classes":["a","b","c"],"multi_label":false,"labels_csv":null,
    "data":{"files":3,"bytes":1234,"hash":"00ff00ff00ff00ff"}}"#;

fn random_state(l: &ParamLayout, seed: u64) -> TrainState {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut m: Vec<f32> = (0..l.trainable_len)
        .map(|_| rng.random_range(-1e-3..1e-3))
        .collect();
    let mut v: Vec<f32> = (0..l.trainable_len)
        .map(|_| rng.random_range(0.0..1e-6))
        .collect();
    zero_padding(l, &mut m);
    zero_padding(l, &mut v);
    TrainState {
        epoch: 7,
        adam_t: 1029,
        lr: 1e-3,
        m,
        v,
        run: Some(serde_json::from_str(RUN).unwrap()),
        best_val_accuracy: Some(0.957_5),
        callbacks: Some(gpucnn::train::callbacks::CallbackState {
            best: Some(0.25),
            best_epoch: 5,
            early_wait: 2,
            plateau_wait: 1,
            plateau_lr: 1e-4,
        }),
        position: Some(gpucnn::train::checkpoint::Position {
            epoch: 8,
            step: 3,
            metrics: [1.5, 7.0, 12.0],
        }),
    }
}

#[test]
fn save_then_load_gives_back_params_and_optimizer_state_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let l = layout(0.125, 2);
    let mut params = l.initial_values(1337);
    // Give the moving statistics non-trivial values, and put junk in the padding: padding is
    // not stored and must read back as zero.
    for s in l.slots.iter().filter(|s| !s.trainable) {
        for (i, x) in params[s.offset..s.offset + s.len].iter_mut().enumerate() {
            *x = 0.25 + i as f32 * 1e-3;
        }
    }
    let mut expected = params.clone();
    let junk_at = l.slots[0].offset + l.slots[0].len;
    assert!(junk_at < l.slots[1].offset, "the first slot is padded");
    params[junk_at] = 123.0;
    zero_padding(&l, &mut expected);
    let state = random_state(&l, 5);
    let model = model_config(0.125, 2);

    let path = checkpoint_path(dir.path(), 7);
    save_checkpoint(&path, &l, &params, &model, Some(&state)).unwrap();
    let ck = load_checkpoint(&path, &l).unwrap();
    assert_eq!(ck.params.len(), l.total_len);
    assert_eq!(ck.params, expected);
    assert_eq!(ck.state.as_ref(), Some(&state));
    assert_eq!(ck.model.as_ref(), Some(&model));
    assert_eq!(dir_entries(dir.path()), vec!["save_at_7.safetensors"]);

    // Keras names and shapes in the file, readable by any safetensors reader.
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let k = st.tensor("conv2d/kernel").unwrap();
    assert_eq!(k.shape(), &[3, 3, 3, 16]);
    assert_eq!(k.dtype(), Dtype::F32);
    assert!(st.tensor("optimizer/m/conv2d/kernel").is_ok());
    assert!(st.tensor("optimizer/v/dense/bias").is_ok());
    assert!(
        st.tensor("optimizer/m/batch_normalization/moving_mean")
            .is_err()
    );
    let trainable = l.slots.iter().filter(|s| s.trainable).count();
    assert_eq!(st.len(), l.slots.len() + 2 * trainable);
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().as_ref().unwrap();
    assert_eq!(meta["step"], "1029");
    assert_eq!(meta["epoch"], "7");
    assert_eq!(meta["format"], "gpucnn-checkpoint");
}

/// The free-space check before a run relies on this bound: above every real checkpoint, and not
/// so loose that it refuses runs that fit (within 10% + 32 kB).
#[test]
fn checkpoint_size_bound_is_a_tight_upper_bound() {
    let dir = tempfile::tempdir().unwrap();
    for (width, classes) in [(0.0625, 2), (0.25, 5)] {
        let l = layout(width, classes);
        let params = l.initial_values(3);
        let state = random_state(&l, 2);
        for with_state in [false, true] {
            let path = dir.path().join("c.safetensors");
            let s = with_state.then_some(&state);
            save_checkpoint(&path, &l, &params, &model_config(width, classes), s).unwrap();
            let size = std::fs::metadata(&path).unwrap().len();
            let bound = checkpoint_size_bound(&l, with_state);
            assert!(
                size <= bound,
                "{width} {with_state}: {size} > bound {bound}"
            );
            assert!(
                bound <= size + size / 10 + 32 * 1024,
                "{width} {with_state}: bound {bound} far above {size}"
            );
        }
    }
}

#[test]
fn weights_only_files_round_trip_without_state() {
    let dir = tempfile::tempdir().unwrap();
    let l = layout(0.125, 3);
    let params = l.initial_values(9);
    let path = dir.path().join("best.safetensors");
    save_checkpoint(&path, &l, &params, &model_config(0.125, 3), None).unwrap();
    let ck = load_checkpoint(&path, &l).unwrap();
    assert_eq!(ck.params, params);
    assert_eq!(ck.state, None);
    // best_val_accuracy None and no run fingerprint survive too.
    let mut state = random_state(&l, 1);
    state.best_val_accuracy = None;
    state.run = None;
    save_checkpoint(&path, &l, &params, &model_config(0.125, 3), Some(&state)).unwrap();
    assert_eq!(load_checkpoint(&path, &l).unwrap().state, Some(state));
    assert_eq!(dir_entries(dir.path()), vec!["best.safetensors"]);
}

#[test]
fn wrong_lengths_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let l = layout(0.125, 2);
    let path = dir.path().join("x.safetensors");
    let e = save_checkpoint(&path, &l, &[0.0; 10], &model_config(0.125, 2), None).unwrap_err();
    assert!(
        matches!(e, CheckpointError::WrongLength { what: "params", .. }),
        "{e}"
    );
    let mut state = random_state(&l, 1);
    state.v.pop();
    let params = l.initial_values(1);
    let e = save_checkpoint(&path, &l, &params, &model_config(0.125, 2), Some(&state)).unwrap_err();
    assert!(e.to_string().contains("optimizer v"), "{e}");
    assert!(dir_entries(dir.path()).is_empty());
    let nowhere = dir.path().join("no_such_dir/save_at_1.safetensors");
    let e = save_checkpoint(&nowhere, &l, &params, &model_config(0.125, 2), None).unwrap_err();
    assert!(matches!(e, CheckpointError::Write(_)), "{e}");
    assert!(e.to_string().contains("no_such_dir"), "{e}");
}

/// Saves with a doctored layout (same flat space), loads with the real one.
fn save_with(
    dir: &Path,
    l: &ParamLayout,
    edit: impl FnOnce(&mut Vec<ParamSlot>),
) -> std::path::PathBuf {
    let mut doctored = l.clone();
    edit(&mut doctored.slots);
    let path = dir.join("doctored.safetensors");
    let state = random_state(l, 2);
    save_checkpoint(
        &path,
        &doctored,
        &l.initial_values(3),
        &model_config(0.125, 2),
        Some(&state),
    )
    .unwrap();
    path
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let l = layout(0.125, 2);
    let path = save_with(dir.path(), &l, |s| s.retain(|s| s.name != "dense/bias"));
    let e = load_checkpoint(&path, &l).unwrap_err();
    match &e {
        CheckpointError::MissingTensor { name, path: p, .. } => {
            assert_eq!(name, "dense/bias");
            assert_eq!(p, &path);
        }
        other => panic!("expected MissingTensor, got {other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("dense/bias") && msg.contains("doctored.safetensors"),
        "{msg}"
    );
}

#[test]
fn a_wrong_shape_names_tensor_expected_and_found() {
    let dir = tempfile::tempdir().unwrap();
    let l = layout(0.125, 2);
    let path = save_with(dir.path(), &l, |s| {
        let k = s.iter_mut().find(|s| s.name == "conv2d/kernel").unwrap();
        k.shape = vec![9, 3, 16];
    });
    match load_checkpoint(&path, &l).unwrap_err() {
        CheckpointError::WrongShape {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "conv2d/kernel");
            assert_eq!(expected, vec![3, 3, 3, 16]);
            assert_eq!(found, vec![9, 3, 16]);
        }
        other => panic!("expected WrongShape, got {other}"),
    }
}

#[test]
fn a_checkpoint_of_another_model_says_which_model_it_was_written_for() {
    let dir = tempfile::tempdir().unwrap();
    let small = layout(0.125, 2);
    let path = dir.path().join("save_at_1.safetensors");
    save_checkpoint(
        &path,
        &small,
        &small.initial_values(1),
        &model_config(0.125, 2),
        None,
    )
    .unwrap();
    let wider = layout(0.25, 2);
    let e = load_checkpoint(&path, &wider).unwrap_err();
    assert!(matches!(e, CheckpointError::WrongShape { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("width 0.125") && msg.contains("save_at_1.safetensors"),
        "{msg}"
    );
    // The description stored in the checkpoint names the flag that differs.
    let stored = load_checkpoint(&path, &small).unwrap().model.unwrap();
    let e = stored
        .ensure_matches(&path, &model_config(0.25, 2))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("width 0.125 saved, 0.25 requested (--width)"),
        "{msg}"
    );
    assert!(msg.contains("save_at_1.safetensors"), "{msg}");

    // Same shapes everywhere but one extra tensor in the file: also refused, and named.
    let path = save_with(dir.path(), &small, |s| {
        let mut extra = s[0].clone();
        extra.name = "extra_layer/kernel".into();
        s.push(extra);
    });
    let e = load_checkpoint(&path, &small).unwrap_err();
    assert!(
        matches!(e, CheckpointError::UnexpectedTensors { count: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("extra_layer/kernel"), "{e}");
}

#[test]
fn wrong_dtype_garbage_and_missing_files_give_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let l = layout(0.125, 2);

    let half = vec![0u8; 3 * 3 * 3 * 16 * 2];
    let view = TensorView::new(Dtype::F16, vec![3, 3, 3, 16], &half).unwrap();
    let bytes = safetensors::tensor::serialize([("conv2d/kernel", view)], None).unwrap();
    let path = dir.path().join("half.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let e = load_checkpoint(&path, &l).unwrap_err();
    match &e {
        CheckpointError::WrongDtype { name, found, .. } => {
            assert_eq!(name, "conv2d/kernel");
            assert_eq!(found, "F16");
        }
        other => panic!("expected WrongDtype, got {other}"),
    }

    let path = dir.path().join("garbage.safetensors");
    std::fs::write(&path, b"this is not a safetensors file at all").unwrap();
    let e = load_checkpoint(&path, &l).unwrap_err();
    assert!(matches!(e, CheckpointError::NotSafetensors { .. }), "{e}");
    assert!(e.to_string().contains("garbage.safetensors"), "{e}");

    let path = dir.path().join("nowhere.safetensors");
    let e = load_checkpoint(&path, &l).unwrap_err();
    assert!(matches!(e, CheckpointError::Read { .. }), "{e}");
    assert!(e.to_string().contains("nowhere.safetensors"), "{e}");

    // A newer format is refused before anything else.
    let meta = HashMap::from([("format_version".to_string(), "99".to_string())]);
    let no_tensors: Vec<(&str, TensorView)> = Vec::new();
    let bytes = safetensors::tensor::serialize(no_tensors, Some(meta)).unwrap();
    let path = dir.path().join("future.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let e = load_checkpoint(&path, &l).unwrap_err();
    assert!(
        matches!(e, CheckpointError::NewerFormat { found: 99, .. }),
        "{e}"
    );
}

#[test]
fn latest_checkpoint_picks_the_highest_epoch() {
    let dir = tempfile::tempdir().unwrap();
    assert!(latest_checkpoint(dir.path()).unwrap().is_none());
    assert!(
        latest_checkpoint(dir.path().join("missing"))
            .unwrap()
            .is_none()
    );
    for name in [
        "save_at_2.safetensors",
        "save_at_10.safetensors",
        "save_at_9.safetensors",
        "save_at_x.safetensors",
        "save_at_.safetensors",
        ".save_at_11.safetensors.123.0.tmp",
        "save_at_12.safetensors.bak",
        "best.safetensors",
        "model.json",
    ] {
        std::fs::write(dir.path().join(name), b"x").unwrap();
    }
    let (epoch, path) = latest_checkpoint(dir.path()).unwrap().unwrap();
    assert_eq!(epoch, 10);
    assert_eq!(path, dir.path().join("save_at_10.safetensors"));
}

#[test]
fn atomic_write_replaces_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("file.txt");
    std::fs::write(&p, b"old contents, longer than the new").unwrap();
    write_atomic(&p, b"new").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"new");
    // A checkpoint written twice over itself: one file, the newer one.
    let l = layout(0.125, 2);
    let ck = dir.path().join("save_at_1.safetensors");
    let model = model_config(0.125, 2);
    save_checkpoint(&ck, &l, &l.initial_values(1), &model, None).unwrap();
    save_checkpoint(&ck, &l, &l.initial_values(2), &model, None).unwrap();
    assert_eq!(
        load_checkpoint(&ck, &l).unwrap().params,
        l.initial_values(2)
    );
    assert_eq!(
        dir_entries(dir.path()),
        vec!["file.txt", "save_at_1.safetensors"]
    );
}

#[test]
fn model_json_round_trips_and_mismatches_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let model =
        ModelConfig::xception_mini(&XceptionConfig::default(), vec!["Cat".into(), "Dog".into()]);
    assert_eq!(model.output_activation, "sigmoid");
    assert_eq!(model.architecture, "xception_mini");
    let path = write_model_json(dir.path(), &model).unwrap();
    assert_eq!(path, dir.path().join("model.json"));
    let back = read_model_json(&path).unwrap();
    assert_eq!(back, model);
    let x = back.xception_config();
    let d = XceptionConfig::default();
    assert_eq!(
        (x.width, x.image_size, x.channels, x.classes, x.dropout),
        (d.width, d.image_size, d.channels, d.classes, d.dropout)
    );
    model.ensure_matches(&path, &back).unwrap();

    let mut requested = model.clone();
    requested.width = 0.5;
    requested.image_size = gpucnn::model::ImageSize::square(128);
    requested.gpucnn_version = "9.9.9".into(); // not a model difference
    let e = model.ensure_matches(&path, &requested).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("model.json"), "{msg}");
    assert!(
        msg.contains("width 1 saved, 0.5 requested (--width)"),
        "{msg}"
    );
    assert!(msg.contains("image_size 180 saved, 128 requested"), "{msg}");
    assert!(!msg.contains("gpucnn_version"), "{msg}");

    let three = model_config(1.0, 3);
    assert_eq!(three.output_activation, "softmax");

    std::fs::write(&path, b"{\"architecture\": \"xception_mini\",").unwrap();
    let e = read_model_json(&path).unwrap_err();
    assert!(matches!(e, CheckpointError::ModelJson { .. }), "{e}");
    let mut bad = model.clone();
    bad.classes.push("Bird".into()); // three classes with a sigmoid output
    write_model_json(dir.path(), &bad).unwrap();
    let e = read_model_json(&path).unwrap_err();
    assert!(e.to_string().contains("output_activation"), "{e}");
    assert_eq!(dir_entries(dir.path()), vec!["model.json"]);
}

fn row(epoch: usize, val: bool) -> EpochMetrics {
    let e = epoch as f32;
    EpochMetrics {
        epoch,
        loss: 0.7 / e,
        accuracy: 0.5 + 0.4 * (1.0 - 1.0 / e),
        val_loss: val.then(|| 0.75 / e + 0.02 * (e % 3.0)),
        val_accuracy: val.then(|| 0.49 + 0.45 * (1.0 - 1.0 / e)),
        seconds: 100.0 + e as f64 * 0.123_456,
        images_per_sec: 171.789,
        lr: Some(1e-3 / e),
    }
}

#[test]
fn metrics_csv_header_and_rows_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    let mut csv = MetricsCsv::create(&path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{HEADER}\n")
    );
    assert_eq!(
        HEADER,
        "epoch,loss,accuracy,val_loss,val_accuracy,seconds,images_per_sec,lr"
    );
    csv.append(EpochMetrics {
        epoch: 1,
        loss: 0.6925,
        accuracy: 0.5,
        val_loss: Some(0.7),
        val_accuracy: Some(0.4957),
        seconds: 109.1234,
        images_per_sec: 172.04,
        lr: Some(0.001),
    })
    .unwrap();
    csv.append(EpochMetrics {
        epoch: 2,
        loss: f32::NAN,
        accuracy: 0.25,
        val_loss: None,
        val_accuracy: None,
        seconds: 1.0,
        images_per_sec: 3.0,
        lr: None,
    })
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{HEADER}\n1,0.6925,0.5,0.7,0.4957,109.123,172.0,0.001\n2,NaN,0.25,,,1.000,3.0,\n")
    );
    let back = metrics::read(&path).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0], csv.rows()[0].clone_with_rounding());
    assert!(back[1].loss.is_nan() && back[1].val_loss.is_none());
    let e = csv.append(row(2, true)).unwrap_err();
    assert!(
        matches!(
            e,
            MetricsError::OutOfOrder {
                last: 2,
                epoch: 2,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        dir_entries(dir.path()),
        vec!["metrics.csv", "metrics.jsonl"]
    );
    // metrics.jsonl: the same rows, one JSON object each, appended as they came.
    let jsonl = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["val_accuracy"], serde_json::json!(0.4957));
    assert_eq!(lines[0]["lr"], serde_json::json!(0.001));
    assert_eq!(lines[1]["loss"], serde_json::Value::Null);
    assert_eq!(lines[1]["val_loss"], serde_json::Value::Null);
}

trait Rounded {
    fn clone_with_rounding(&self) -> EpochMetrics;
}

impl Rounded for EpochMetrics {
    /// What a row reads back as: seconds to 3 decimals, images/s to 1.
    fn clone_with_rounding(&self) -> EpochMetrics {
        EpochMetrics {
            seconds: format!("{:.3}", self.seconds).parse().unwrap(),
            images_per_sec: format!("{:.1}", self.images_per_sec).parse().unwrap(),
            ..*self
        }
    }
}

#[test]
fn metrics_resume_keeps_rows_up_to_the_checkpoint_and_reads_exact_floats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    let mut csv = MetricsCsv::create(&path).unwrap();
    for e in 1..=5 {
        csv.append(row(e, true)).unwrap();
    }
    let all = metrics::read(&path).unwrap();
    let expected: Vec<EpochMetrics> = (1..=5)
        .map(|e| row(e, true).clone_with_rounding())
        .collect();
    assert_eq!(all, expected, "losses and accuracies read back bit-exact");

    let mut resumed = MetricsCsv::resume(&path, 3).unwrap();
    assert_eq!(resumed.rows(), &expected[..3]);
    assert_eq!(metrics::read(&path).unwrap(), &expected[..3]);
    resumed.append(row(4, false)).unwrap();
    let after = metrics::read(&path).unwrap();
    assert_eq!(after.len(), 4);
    assert_eq!(after[3].val_accuracy, None);

    let fresh = MetricsCsv::resume(dir.path().join("new.csv"), 3).unwrap();
    assert!(fresh.rows().is_empty());

    // A file from before the lr column reads, its rows without a rate.
    std::fs::write(
        &path,
        format!(
            "{}\n1,0.5,0.5,0.6,0.5,1.000,2.0\n",
            metrics::HEADER_WITHOUT_LR
        ),
    )
    .unwrap();
    let old = metrics::read(&path).unwrap();
    assert_eq!(
        (old.len(), old[0].lr, old[0].val_loss),
        (1, None, Some(0.6))
    );
    std::fs::write(&path, "epoch,loss\n1,2\n").unwrap();
    let e = metrics::read(&path).unwrap_err();
    assert!(e.to_string().contains("metrics.csv:1"), "{e}");
    std::fs::write(
        &path,
        format!("{HEADER}\n1,0.5,0.5,,,1,1,\n2,abc,0.5,,,1,1,\n"),
    )
    .unwrap();
    let e = metrics::read(&path).unwrap_err();
    assert!(
        e.to_string().contains("metrics.csv:3") && e.to_string().contains("loss 'abc'"),
        "{e}"
    );
}

fn decode(path: &Path) -> image::RgbImage {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8()
}

fn count(img: &image::RgbImage, c: RGBColorLike) -> usize {
    img.pixels().filter(|p| p.0 == c).count()
}

type RGBColorLike = [u8; 3];

#[test]
fn curves_png_has_the_stated_size_and_draws_both_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curves.png");
    let rows: Vec<EpochMetrics> = (1..=25).map(|e| row(e, true)).collect();
    write_curves_png(&path, &rows).unwrap();
    let img = decode(&path);
    assert_eq!(img.dimensions(), CURVES_SIZE);
    let train = [TRAINING_COLOR.0, TRAINING_COLOR.1, TRAINING_COLOR.2];
    let val = [VALIDATION_COLOR.0, VALIDATION_COLOR.1, VALIDATION_COLOR.2];
    let (nt, nv) = (count(&img, train), count(&img, val));
    // Two panels of 25-point lines, 2 px wide: well over a thousand pixels each.
    assert!(
        nt > 1000 && nv > 1000,
        "training {nt}, validation {nv} pixels"
    );
    // Both panels have lines: the training colour appears left and right of the middle.
    let left = img
        .enumerate_pixels()
        .filter(|(x, _, p)| *x < 500 && p.0 == train)
        .count();
    assert!(left > 300 && nt - left > 300, "left {left}, total {nt}");
    // Text was drawn (pixels a glyph covers fully have the text colour), and the image is
    // mostly white background.
    assert!(count(&img, [30, 30, 30]) > 500);
    assert!(count(&img, [255, 255, 255]) > 1000 * 400 / 2);

    // Other data, other pixels where the lines are.
    let other: Vec<EpochMetrics> = (1..=25)
        .map(|e| EpochMetrics {
            loss: 0.1,
            ..row(e, true)
        })
        .collect();
    let path2 = dir.path().join("other.png");
    write_curves_png(&path2, &other).unwrap();
    let img2 = decode(&path2);
    let differing = img
        .pixels()
        .zip(img2.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(differing > 500, "{differing} pixels differ");
    assert_eq!(dir_entries(dir.path()), vec!["curves.png", "other.png"]);
}

#[test]
fn curves_png_works_with_one_epoch_and_missing_or_nan_validation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curves.png");
    let train = [TRAINING_COLOR.0, TRAINING_COLOR.1, TRAINING_COLOR.2];
    let val = [VALIDATION_COLOR.0, VALIDATION_COLOR.1, VALIDATION_COLOR.2];

    write_curves_png(&path, &[row(1, true)]).unwrap();
    let img = decode(&path);
    assert_eq!(img.dimensions(), CURVES_SIZE);
    assert!(
        count(&img, train) > 20 && count(&img, val) > 20,
        "one epoch draws markers"
    );

    // No validation at all: no validation colour anywhere (not even in the legend).
    let rows: Vec<EpochMetrics> = (1..=4).map(|e| row(e, false)).collect();
    write_curves_png(&path, &rows).unwrap();
    let img = decode(&path);
    assert!(count(&img, train) > 100);
    assert_eq!(count(&img, val), 0);

    // NaN and missing values leave gaps, never a failure; a diverged training loss too.
    let mut rows: Vec<EpochMetrics> = (1..=6).map(|e| row(e, true)).collect();
    rows[1].val_loss = Some(f32::NAN);
    rows[2].val_accuracy = None;
    rows[4].loss = f32::INFINITY;
    rows[5].loss = f32::NAN;
    write_curves_png(&path, &rows).unwrap();
    let img = decode(&path);
    assert!(count(&img, val) > 100);

    // Every value NaN and no rows at all still give a chart.
    let nan = EpochMetrics {
        loss: f32::NAN,
        accuracy: f32::NAN,
        val_loss: None,
        val_accuracy: None,
        ..row(1, false)
    };
    write_curves_png(&path, &[nan]).unwrap();
    write_curves_png(&path, &[] as &[EpochMetrics]).unwrap();
    assert_eq!(decode(&path).dimensions(), CURVES_SIZE);
    assert_eq!(dir_entries(dir.path()), vec!["curves.png"]);
}
