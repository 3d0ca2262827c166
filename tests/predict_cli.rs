//! `gpucnn predict` and `gpucnn evaluate` end to end, and the folder walk and CSV files they
//! share with training: results paired with the right image, the model checked before use,
//! output that survives a closed pipe, odd files and odd names.
//!
//! The models are written with the library (initial weights of a tiny network, saved by
//! `save_checkpoint` beside a `model.json`, as `gpucnn train` does), so no test here trains
//! except the one that checks what `train` records: what is checked is how predict and
//! evaluate treat a model, not how good it is.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    assert_exit, assert_success, gpucnn, gpucnn_cmd, run, s, text, tiny_train, write_ab_images,
    write_class_images, write_image,
};

use gpucnn::data::labels::LabelTable;
use gpucnn::data::{DatasetError, DatasetOptions, DirectoryDataset};
use gpucnn::gpu::test_context;
use gpucnn::graph::ParamLayout;
use gpucnn::model::{XceptionConfig, xception_mini};
use gpucnn::train::checkpoint::{ModelConfig, read_model_json, save_checkpoint, write_model_json};
use rand::{Rng, SeedableRng};

/// Runs gpucnn and kills it after `secs`: a hang fails the test instead of blocking the suite.
fn gpucnn_within(secs: u64, args: &[&str]) -> Output {
    let mut child = gpucnn_cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gpucnn");
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "gpucnn {args:?} still running after {secs} s (killed); stdout:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

const IMAGE_SIZE: usize = 16;

/// Writes a tiny model into `dir` as a run folder: `best.safetensors` (initial weights from
/// `seed`, changed by `edit`) and `model.json`.
fn write_model(
    dir: &Path,
    classes: &[&str],
    multi_label: bool,
    crop: bool,
    edit: impl FnOnce(&ParamLayout, &mut [f32]),
) {
    let xcfg = XceptionConfig {
        image_size: gpucnn::model::ImageSize::square(IMAGE_SIZE),
        width: 0.0625,
        classes: classes.len(),
        multi_label,
        ..Default::default()
    };
    let layout = ParamLayout::new(&xception_mini(&xcfg).unwrap());
    let mut params = layout.initial_values(7);
    edit(&layout, &mut params);
    let names = classes.iter().map(|c| c.to_string()).collect();
    let cfg = ModelConfig {
        crop_to_aspect_ratio: crop,
        ..ModelConfig::xception_mini(&xcfg, names)
    };
    fs::create_dir_all(dir).unwrap();
    save_checkpoint(dir.join("best.safetensors"), &layout, &params, &cfg, None).unwrap();
    write_model_json(dir, &cfg).unwrap();
}

/// [`write_model`] with classes a and b, single-label, not cropping, initial weights.
fn write_ab_model(dir: &Path) {
    write_model(dir, &["a", "b"], false, false, |_, _| {});
}

/// A temporary folder holding [`write_ab_model`]'s model in `run`.
fn tmp_with_ab_model() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("run");
    write_ab_model(&model);
    (tmp, model)
}

/// `gpucnn predict --model MODEL INPUTS… EXTRA…`.
fn predict(model: &Path, inputs: &[&Path], extra: &[&str]) -> Output {
    let mut args = vec!["predict", "--model", s(model)];
    args.extend(inputs.iter().map(|p| s(p)));
    args.extend_from_slice(extra);
    gpucnn(&args)
}

/// `gpucnn evaluate --model MODEL --data DATA EXTRA…`.
fn evaluate(model: &Path, data: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["evaluate", "--model", s(model), "--data", s(data)];
    args.extend_from_slice(extra);
    gpucnn(&args)
}

/// Parses predict's `--csv`: path → probabilities, after checking the header.
fn read_predictions(csv: &Path, classes: &[&str]) -> HashMap<PathBuf, Vec<f64>> {
    let mut r = csv::Reader::from_path(csv).unwrap();
    let mut header = vec!["path"];
    header.extend(classes);
    assert_eq!(r.headers().unwrap(), header);
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert_eq!(rec.len(), classes.len() + 1, "{rec:?}");
            let probs = rec.iter().skip(1).map(|v| v.parse().unwrap()).collect();
            (PathBuf::from(&rec[0]), probs)
        })
        .collect()
}

/// The argmax evaluate takes (the first of equal values), or `None` when the CSV's six decimals
/// are too coarse to tell which value is larger.
fn argmax(p: &[f64]) -> Option<usize> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    (p[order[0]] - p[order[1]] > 1e-5).then_some(order[0])
}

fn json_matrix(v: &serde_json::Value) -> Vec<Vec<u64>> {
    v["confusion_matrix"]
        .as_array()
        .unwrap_or_else(|| panic!("no confusion_matrix in {v}"))
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .collect()
        })
        .collect()
}

/// Checks evaluate's confusion matrix against one computed from predict's own (path, result)
/// rows: every class's row sum (its readable images) exactly, every cell where the CSV's
/// decimals can tell the predicted class.
fn assert_matrix_matches(got: &[Vec<u64>], truth_and_probs: &[(usize, Vec<f64>)], what: &str) {
    let k = got.len();
    let mut support = vec![0u64; k];
    let mut expected = vec![vec![0u64; k]; k];
    let mut exact = true;
    for (t, p) in truth_and_probs {
        support[*t] += 1;
        match argmax(p) {
            Some(c) => expected[*t][c] += 1,
            None => exact = false,
        }
    }
    let got_support: Vec<u64> = got.iter().map(|r| r.iter().sum()).collect();
    assert_eq!(got_support, support, "{what}: images per class");
    if exact {
        assert_eq!(got, expected, "{what}: confusion matrix");
    }
}

/// Two classes of 10 images; `b/b_00.png`, the first of class b, is corrupt. With batch 8 the
/// second chunk is a_08, a_09, b_00 (unreadable), b_01… : the corrupt file sits inside a chunk
/// right at the class boundary. Before predict kept input order, the chunk's unreadable image
/// came first, so a_08 was paired with the error (dropped), a_09 with a_08's probabilities and
/// the corrupt b_00's label b with a_09's: class a lost an image and class b kept ten.
#[test]
fn evaluate_pairs_each_image_with_its_label_across_a_corrupt_file_at_a_class_boundary() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_class_images(&data, 10, 100, |class, i| format!("{class}_{i:02}.png"));
    let corrupt = data.join("b/b_00.png");
    fs::write(&corrupt, b"not a picture").unwrap();
    let model = tmp.path().join("run");
    write_ab_model(&model);

    let csv = tmp.path().join("p.csv");
    let r = predict(&model, &[&data], &["--csv", s(&csv), "--batch-size", "8"]);
    let e = assert_exit(&r, 1);
    assert!(e.contains(&format!("{}: skipped", corrupt.display())));
    // Lines in input order: the images of the folder sorted, the corrupt one left out.
    let printed: Vec<String> = text(&r.stdout)
        .lines()
        .map(|l| l.split(": ").next().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|c| (0..10).map(move |i| format!("{c}/{c}_{i:02}.png")))
        .map(|f| data.join(f).display().to_string())
        .collect();
    expected.retain(|p| *p != corrupt.display().to_string());
    assert_eq!(printed, expected);
    let preds = read_predictions(&csv, &["a", "b"]);
    assert_eq!(preds.len(), 19);

    let plots = tmp.path().join("plots");
    let r = evaluate(
        &model,
        &data,
        &["--json", "--batch-size", "8", "--out", s(&plots)],
    );
    assert_success(&r);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let truth: Vec<(usize, Vec<f64>)> = preds
        .iter()
        .map(|(p, probs)| (usize::from(p.starts_with(data.join("b"))), probs.clone()))
        .collect();
    let cm = json_matrix(&v);
    assert_matrix_matches(&cm, &truth, "evaluate --data");
    assert_eq!(cm[0].iter().sum::<u64>(), 10, "class a: all ten images");
    assert_eq!(
        cm[1].iter().sum::<u64>(),
        9,
        "class b: nine readable images"
    );
}

/// `evaluate --labels`: each label's report counts each readable image once under its own
/// labels, with a corrupt file inside a chunk between two images of other labels.
#[test]
fn evaluate_labels_reports_each_label_from_the_images_own_rows() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("imgs");
    let n = 20;
    let names: Vec<String> = (0..n).map(|i| format!("img{i:02}.png")).collect();
    for (i, name) in names.iter().enumerate() {
        write_image(&root.join(name), 500 + i as u64);
    }
    // evaluate visits the rows in the order of the table it reads (train then validation);
    // find which row is 3rd in the second chunk of 8 and which opens that chunk.
    let csv = tmp.path().join("labels.csv");
    let mut rows = String::from("path,labels\n");
    for name in &names {
        rows.push_str(&format!("{name},disc\n"));
    }
    fs::write(&csv, &rows).unwrap();
    let opts = DatasetOptions {
        validation_split: 0.5,
        seed: 0,
    };
    let table = LabelTable::from_csv(&csv, &root, &opts).unwrap();
    let order: Vec<usize> = table
        .train
        .iter()
        .chain(&table.val)
        .map(|s| s.label)
        .collect();
    let (first, bad) = (order[8], order[10]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut labels: Vec<&str> = (0..n)
        .map(|_| ["", "disc", "red", "disc;red"][rng.random_range(0..4)])
        .collect();
    // A shift by one would count the chunk's first image (no label) out and the corrupt one
    // (both labels) in: every label's row sums would change.
    labels[first] = "";
    labels[bad] = "disc;red";
    let mut rows = String::from("path,labels\n");
    for (name, l) in names.iter().zip(&labels) {
        rows.push_str(&format!("{name},{l}\n"));
    }
    fs::write(&csv, &rows).unwrap();
    fs::write(root.join(&names[bad]), b"truncated").unwrap();

    let model = tmp.path().join("ml");
    write_model(&model, &["disc", "red"], true, false, |_, _| {});
    let pred_csv = tmp.path().join("p.csv");
    assert_exit(&predict(&model, &[&root], &["--csv", s(&pred_csv)]), 1);
    let preds = read_predictions(&pred_csv, &["disc", "red"]);
    assert_eq!(preds.len(), n - 1);

    let labels_json = ["--labels", s(&csv), "--json", "--batch-size", "8"];
    let r = evaluate(&model, &root, &labels_json);
    assert_success(&r);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    for (j, label) in ["disc", "red"].iter().enumerate() {
        let per = &v["labels"][label];
        assert_eq!(
            per["class_names"],
            serde_json::json!([format!("not {label}"), label.to_string()])
        );
        let truth: Vec<(usize, Vec<f64>)> = names
            .iter()
            .zip(&labels)
            .filter_map(|(name, l)| {
                let p = preds.get(&root.join(name))?;
                let on = l.split(';').any(|x| x == *label);
                Some((usize::from(on), vec![1.0 - p[j], p[j]]))
            })
            .collect();
        assert_matrix_matches(&json_matrix(per), &truth, label);
    }
    // The human-readable form names each label.
    let r = evaluate(&model, &root, &["--labels", s(&csv)]);
    assert_success(&r);
    let out = text(&r.stdout);
    assert!(
        out.contains("label disc:") && out.contains("label red:"),
        "{out}"
    );
}

/// `image_size` edited 16 → 32 in model.json: the checkpoint says 16, so predict and evaluate
/// refuse, naming both files and the field.
#[test]
fn a_model_json_that_does_not_describe_the_checkpoint_is_refused() {
    if test_context().is_none() {
        return;
    }
    let (tmp, model) = tmp_with_ab_model();
    let json = model.join("model.json");
    let edited = fs::read_to_string(&json)
        .unwrap()
        .replace("\"image_size\": 16", "\"image_size\": 32");
    assert!(edited.contains("\"image_size\": 32"));
    fs::write(&json, edited).unwrap();
    let img = tmp.path().join("data/a/x.png");
    write_image(&img, 1);
    write_image(&tmp.path().join("data/b/y.png"), 2);

    let r = predict(&model, &[&img], &[]);
    let e = assert_exit(&r, 2);
    for needle in [
        json.display().to_string(),
        model.join("best.safetensors").display().to_string(),
        "image_size is 32 in model.json but 16 in the checkpoint".into(),
    ] {
        assert!(e.contains(&needle), "`{needle}` not in: {e}");
    }
    assert!(r.stdout.is_empty());
    let e = assert_exit(&evaluate(&model, &tmp.path().join("data"), &[]), 2);
    assert!(e.contains("image_size"));
}

/// A model trained with --crop-to-aspect-ratio sees the centre square of a wide image: predict
/// must crop it too, giving the wide image the probabilities of its centre square. And a
/// model.json written before the field existed reads as false.
#[test]
fn predict_crops_to_the_aspect_ratio_when_the_model_was_trained_so() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("run");
    write_model(&model, &["a", "b"], false, true, |_, _| {});
    assert!(
        read_model_json(model.join("model.json"))
            .unwrap()
            .crop_to_aspect_ratio
    );
    // 32 wide, 16 high: the crop keeps columns 8..24, which the resize to 16×16 copies as is.
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let wide = image::RgbImage::from_fn(32, 16, |_, _| image::Rgb(rng.random()));
    let centre = image::imageops::crop_imm(&wide, 8, 0, 16, 16).to_image();
    let (wp, cp) = (tmp.path().join("wide.png"), tmp.path().join("centre.png"));
    wide.save(&wp).unwrap();
    centre.save(&cp).unwrap();
    let csv = tmp.path().join("p.csv");
    assert_success(&predict(&model, &[&wp, &cp], &["--csv", s(&csv)]));
    let p = read_predictions(&csv, &["a", "b"]);
    assert_eq!(
        p[&wp], p[&cp],
        "the wide image was not cropped as in training"
    );

    let json = model.join("model.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("crop_to_aspect_ratio");
    fs::write(&json, v.to_string()).unwrap();
    assert!(!read_model_json(&json).unwrap().crop_to_aspect_ratio);
}

/// `gpucnn train --crop-to-aspect-ratio` records the choice in model.json (one tiny epoch).
#[test]
fn train_records_crop_to_aspect_ratio_in_model_json() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_ab_images(&data, 6);
    let out = tmp.path().join("run");
    let mut train = tiny_train(&out, "1", "8");
    train.arg("--data").arg(&data).arg("--crop-to-aspect-ratio");
    assert_success(&run(&mut train));
    let cfg = read_model_json(out.join("model.json")).unwrap();
    assert!(cfg.crop_to_aspect_ratio);
    // Predict reads the run as it was written: the checkpoint agrees with model.json.
    assert_success(&predict(&out, &[&data.join("a/0.png")], &[]));
}

/// A diverged training saves NaN weights: predict and evaluate refuse them (exit 1) naming the
/// file and the tensor, instead of printing `NaN%` or an AUC of 0.5; weights that are finite
/// but overflow the outputs are refused too.
#[test]
fn weights_or_outputs_that_are_not_finite_are_refused() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_ab_images(&data, 3);
    let nan = tmp.path().join("nan");
    let mut poisoned = String::new();
    write_model(&nan, &["a", "b"], false, false, |layout, params| {
        let slot = &layout.slots[3];
        poisoned = slot.name.clone();
        params[slot.offset + slot.len / 2] = f32::NAN;
    });
    let r = predict(&nan, &[&data], &[]);
    let e = assert_exit(&r, 1);
    assert!(!text(&r.stdout).contains("NaN"), "{}", text(&r.stdout));
    for needle in [
        "not finite",
        &nan.join("best.safetensors").display().to_string(),
        &format!("'{poisoned}'"),
    ] {
        assert!(e.contains(needle), "`{needle}` not in: {e}");
    }
    let r = evaluate(&nan, &data, &["--json"]);
    assert!(assert_exit(&r, 1).contains("not finite"));
    assert!(r.stdout.is_empty(), "{}", text(&r.stdout));

    // Finite weights whose products overflow f32: the last batch norm's beta at 100 makes
    // every feature about 100 after its ReLU, and the classifier's kernel at 3e38 multiplies
    // them past f32's range. (An overflow earlier in the network would not do: ReLU and max
    // pooling on the GPU turn NaN into 0.)
    let huge = tmp.path().join("huge");
    write_model(&huge, &["a", "b"], false, false, |layout, params| {
        for (suffix, value) in [("beta", 100.0), ("kernel", 3e38)] {
            let slot = layout
                .slots
                .iter()
                .filter(|s| s.trainable)
                .rfind(|s| s.name.ends_with(suffix))
                .unwrap();
            params[slot.offset..slot.offset + slot.len].fill(value);
        }
    });
    let r = predict(&huge, &[&data], &[]);
    let e = assert_exit(&r, 1);
    assert!(e.contains("outputs are not finite"), "{e}");
    assert!(!text(&r.stdout).contains("NaN"), "{}", text(&r.stdout));
}

/// `| head -1` closes the pipe early: predict and scan must not panic (exit 101); predict
/// still writes its --csv and both exit as they would have.
#[test]
fn a_closed_stdout_neither_panics_nor_stops_the_work() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_ab_images(&data, 4);
    fs::write(data.join("a/bad.png"), b"no").unwrap();
    // The reader's end is closed before gpucnn writes its first line.
    let closed = |args: &[&str]| {
        let mut child = gpucnn_cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        child.wait_with_output().unwrap()
    };
    let e = assert_exit(&closed(&["scan", "--data", s(&data)]), 0);
    assert!(!e.contains("panicked") && !e.contains("Broken pipe"), "{e}");

    if test_context().is_none() {
        return;
    }
    let model = tmp.path().join("run");
    write_ab_model(&model);
    let csv = tmp.path().join("p.csv");
    let r = closed(&["predict", "--model", s(&model), s(&data), "--csv", s(&csv)]);
    let e = text(&r.stderr);
    assert_eq!(
        r.status.code(),
        Some(1),
        "bad.png is unreadable: exit 1\n{e}"
    );
    assert!(!e.contains("panicked") && !e.contains("Broken pipe"), "{e}");
    assert_eq!(read_predictions(&csv, &["a", "b"]).len(), 8);
    assert_exit(
        &closed(&["predict", "--model", s(&model), s(&data.join("b"))]),
        0,
    );
}

/// predict's folder walk is the dataset's: a symlink loop lists each image once, and a FIFO
/// named *.png is never opened (opening it would block until a writer comes).
#[test]
fn predict_walks_a_symlink_loop_once_and_never_opens_a_fifo() {
    if test_context().is_none() {
        return;
    }
    let (tmp, model) = tmp_with_ab_model();
    let dir = tmp.path().join("imgs");
    write_image(&dir.join("one.png"), 1);
    write_image(&dir.join("sub/two.png"), 2);
    std::os::unix::fs::symlink(&dir, dir.join("sub/loop")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("sub/up")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("self")).unwrap();
    let r = gpucnn_within(120, &["predict", "--model", s(&model), s(&dir)]);
    assert_success(&r);
    let lines: Vec<String> = text(&r.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "each image once: {lines:#?}");
    assert!(lines[0].starts_with(&format!("{}: ", dir.join("one.png").display())));
    assert!(lines[1].starts_with(&format!("{}: ", dir.join("sub/two.png").display())));

    let fifo_dir = tmp.path().join("fifo");
    write_image(&fifo_dir.join("real.png"), 3);
    let fifo = fifo_dir.join("pipe.png");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let r = gpucnn_within(120, &["predict", "--model", s(&model), s(&fifo_dir)]);
    assert_success(&r);
    let out = text(&r.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("real.png"), "{out}");
    // Named directly, the FIFO is refused as bad input, not opened.
    let r = gpucnn_within(120, &["predict", "--model", s(&model), s(&fifo)]);
    assert!(assert_exit(&r, 2).contains("not a regular file"));
}

/// `predict --csv` quotes a path holding a comma (and a quote), so the file parses back to one
/// path and one cell per class.
#[test]
fn predict_csv_quotes_paths_with_commas() {
    if test_context().is_none() {
        return;
    }
    let (tmp, model) = tmp_with_ab_model();
    let odd = tmp.path().join("x,y/say \"cheese\", please.png");
    write_image(&odd, 4);
    let csv = tmp.path().join("p.csv");
    assert_success(&predict(&model, &[&odd], &["--csv", s(&csv)]));
    let p = read_predictions(&csv, &["a", "b"]);
    assert_eq!(p.keys().collect::<Vec<_>>(), vec![&odd]);
    let sum: f64 = p[&odd].iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "{p:?}");
}

/// A class folder whose name is not UTF-8 is read by its own name (shown lossily); two names
/// that only differ in such bytes are refused, since their classes would look the same.
#[test]
fn a_class_folder_named_in_bytes_that_are_not_utf8_is_read() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let odd = data.join(OsStr::from_bytes(b"caf\xe9"));
    write_image(&odd.join("x.png"), 1);
    write_image(&odd.join("y.png"), 2);
    write_image(&data.join("dog/z.png"), 3);
    let ds = DirectoryDataset::open(&data, &DatasetOptions::default()).unwrap();
    assert_eq!(ds.class_names, vec!["caf\u{FFFD}", "dog"]);
    let mut counts = ds.train_class_counts();
    for (c, v) in counts.iter_mut().zip(ds.val_class_counts()) {
        *c += v;
    }
    assert_eq!(counts, vec![2, 1]);
    assert_success(&gpucnn(&["scan", "--data", s(&data)]));

    write_image(&data.join(OsStr::from_bytes(b"caf\xe8")).join("w.png"), 4);
    let e = DirectoryDataset::open(&data, &DatasetOptions::default()).unwrap_err();
    assert!(matches!(e, DatasetError::DuplicateClass { .. }), "{e}");
    assert!(e.to_string().contains("rename one"), "{e}");
    assert_exit(&gpucnn(&["scan", "--data", s(&data)]), 2);
}

/// A labels CSV in which no image has a label: a clear error, exit 2, no panic.
#[test]
fn a_labels_csv_without_any_label_is_bad_input() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Enough rows for a validation set, so that nothing else stops the run first.
    let mut rows = String::from("path,labels\n");
    for i in 0..10 {
        write_image(&tmp.path().join(format!("{i}.png")), i);
        rows.push_str(&format!(
            "{i}.png,{}\n",
            if i % 2 == 0 { "" } else { " ; " }
        ));
    }
    let csv = tmp.path().join("labels.csv");
    fs::write(&csv, rows).unwrap();
    let out = tmp.path().join("run");
    let e = assert_exit(
        &run(tiny_train(&out, "1", "2").arg("--labels").arg(&csv)),
        2,
    );
    assert!(e.contains("none of its 10 rows has a label"), "{e}");
    assert!(e.contains(&csv.display().to_string()), "{e}");
}

/// [`write_model`] with the classifier's bias set to `bias` (one per output unit): the classes'
/// ranking is then the same for every image and far from ties, while the probabilities still
/// differ from image to image.
fn write_biased_model(dir: &Path, classes: &[&str], multi_label: bool, bias: &[f32]) {
    write_model(dir, classes, multi_label, false, |layout, params| {
        let slot = layout
            .slots
            .iter()
            .filter(|s| s.trainable)
            .rfind(|s| s.name.ends_with("bias"))
            .unwrap();
        assert_eq!(slot.len, bias.len(), "{}", slot.name);
        params[slot.offset..slot.offset + slot.len].copy_from_slice(bias);
    });
}

/// `predict --json`'s stdout parsed: one JSON object per line.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect()
}

/// The keys of a JSON object, sorted.
fn keys(v: &serde_json::Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    k.sort();
    k
}

/// `probabilities` of a `--json` object, in `classes` order.
fn json_probs(v: &serde_json::Value, classes: &[&str]) -> Vec<f64> {
    let p = v["probabilities"].as_object().unwrap();
    assert_eq!(p.len(), classes.len(), "{v}");
    classes.iter().map(|c| p[*c].as_f64().unwrap()).collect()
}

/// A line of the text output split into its path and its `name NN.NN%` entries.
fn entries(line: &str) -> (String, Vec<(String, f64)>) {
    let (path, rest) = line.split_once(": ").unwrap();
    let list = rest
        .split(", ")
        .map(|e| {
            let (name, pct) = e.rsplit_once(' ').unwrap();
            (name.to_string(), pct.trim_end_matches('%').parse().unwrap())
        })
        .collect();
    (path.to_string(), list)
}

/// `predict --json`: one object per image in input order, one line each; every class's
/// probability keyed by name in the model's class order (the CSV's values), the top class and
/// its probability; an unreadable image is an object with an "error" (exit 1 at the end). The
/// output survives a closed pipe.
#[test]
fn predict_json_writes_one_object_per_line_and_an_error_object_per_unreadable_image() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Not in alphabetical order: a map sorted by key would show.
    let classes = ["dog", "cat", "bird"];
    let model = tmp.path().join("run");
    write_biased_model(&model, &classes, false, &[0.0, 2.0, -2.0]);
    let imgs = tmp.path().join("imgs");
    write_image(&imgs.join("1.png"), 1);
    fs::write(imgs.join("2_bad.png"), b"not a picture").unwrap();
    write_image(&imgs.join("3.png"), 3);
    let csv = tmp.path().join("p.csv");

    let r = predict(&model, &[&imgs], &["--json", "--csv", s(&csv)]);
    let e = assert_exit(&r, 1);
    assert!(e.contains("2_bad.png: skipped"), "{e}");
    let lines = json_lines(&r);
    let paths: Vec<&str> = lines.iter().map(|v| v["path"].as_str().unwrap()).collect();
    let want: Vec<String> = ["1.png", "2_bad.png", "3.png"]
        .iter()
        .map(|f| imgs.join(f).display().to_string())
        .collect();
    assert_eq!(paths, want);
    assert_eq!(keys(&lines[1]), ["error", "path"]);
    assert!(!lines[1]["error"].as_str().unwrap().is_empty());

    let csv_probs = read_predictions(&csv, &classes);
    for (v, raw) in [&lines[0], &lines[2]].into_iter().zip(
        text(&r.stdout)
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, l)| l.to_string()),
    ) {
        assert_eq!(
            keys(v),
            ["path", "probabilities", "top_class", "top_probability"]
        );
        let at: Vec<usize> = classes
            .iter()
            .map(|c| raw.find(&format!("\"{c}\":")).unwrap())
            .collect();
        assert!(at.is_sorted(), "probabilities not in class order: {raw}");
        let p = json_probs(v, &classes);
        let from_csv = &csv_probs[&PathBuf::from(v["path"].as_str().unwrap())];
        for (a, b) in p.iter().zip(from_csv) {
            assert!((a - b).abs() < 1e-6, "--json {p:?} vs --csv {from_csv:?}");
        }
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{p:?}");
        assert_eq!(v["top_class"], "cat", "{v}");
        assert_eq!(v["top_probability"].as_f64().unwrap(), p[1]);
        assert!(p[1] > p[0] && p[1] > p[2], "{p:?}");
    }

    // Without --json: today's sentences, the top 3 for three classes.
    let r = predict(&model, &[&imgs], &[]);
    assert_exit(&r, 1);
    let out = text(&r.stdout);
    assert_eq!(out.lines().count(), 2, "{out}");
    for line in out.lines() {
        let (_, list) = entries(line);
        let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["cat", "dog", "bird"], "{line}");
    }

    // A closed stdout: no panic, the CSV still written, the exit status as it would be.
    fs::remove_file(&csv).unwrap();
    let mut child = gpucnn_cmd()
        .args(["predict", "--model", s(&model), s(&imgs), "--json"])
        .args(["--csv", s(&csv)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let r = child.wait_with_output().unwrap();
    let e = assert_exit(&r, 1);
    assert!(!e.contains("panicked") && !e.contains("Broken pipe"), "{e}");
    assert_eq!(read_predictions(&csv, &classes).len(), 2);
}

/// `predict --top-k K`: the text and the JSON list the K most probable classes, largest first;
/// a K over the class count lists every class; with two classes the list replaces the sentence.
#[test]
fn predict_top_k_lists_the_k_most_probable_classes() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let classes = ["w", "x", "y", "z"];
    let model = tmp.path().join("run");
    write_biased_model(&model, &classes, false, &[0.0, 3.0, 1.5, -3.0]);
    let imgs = tmp.path().join("imgs");
    write_image(&imgs.join("1.png"), 1);
    write_image(&imgs.join("2.png"), 2);

    let r = predict(&model, &[&imgs], &["--json", "--top-k", "2"]);
    assert_success(&r);
    let lines = json_lines(&r);
    assert_eq!(lines.len(), 2);
    for v in &lines {
        let p = json_probs(v, &classes);
        let top: Vec<(&str, f64)> = v["top_k"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(keys(e), ["class", "probability"]);
                (
                    e["class"].as_str().unwrap(),
                    e["probability"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(top, [("x", p[1]), ("y", p[2])], "{v}");
        assert_eq!(v["top_class"], "x");
    }

    let r = predict(&model, &[&imgs], &["--top-k", "2"]);
    assert_success(&r);
    let r9 = predict(&model, &[&imgs], &["--top-k", "9"]);
    assert_success(&r9);
    for (out, names) in [(&r, &["x", "y"][..]), (&r9, &["x", "y", "w", "z"][..])] {
        let out = text(&out.stdout);
        assert_eq!(out.lines().count(), 2, "{out}");
        for (line, v) in out.lines().zip(&lines) {
            let (path, list) = entries(line);
            assert_eq!(path, v["path"].as_str().unwrap());
            let got: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(got, names, "{line}");
            let p = json_probs(v, &classes);
            for (name, pct) in &list {
                let i = classes.iter().position(|c| c == name).unwrap();
                assert!((pct - 100.0 * p[i]).abs() <= 0.0051, "{line} vs {v}");
            }
        }
    }

    // Two classes: --top-k 1 names only the more probable one, not the sentence.
    let ab = tmp.path().join("ab");
    write_biased_model(&ab, &["a", "b"], false, &[2.0]);
    let r = predict(&ab, &[&imgs.join("1.png")], &["--top-k", "1"]);
    assert_success(&r);
    let out = text(&r.stdout);
    let (_, list) = entries(out.trim_end());
    assert_eq!(list.len(), 1, "{out}");
    assert_eq!(list[0].0, "b", "{out}");
    assert!(list[0].1 > 50.0, "{out}");
}

/// `predict --threshold T` on a multi-label model: the labels at or over T are present, in the
/// text and in the JSON ("threshold", "present"); the default is 0.5; with --top-k the K most
/// probable labels are listed, those present marked.
#[test]
fn predict_threshold_decides_which_labels_are_present() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let labels = ["disc", "red", "blue"];
    let model = tmp.path().join("ml");
    // About 0.95, 0.5 and 0.05 before each image's own contribution.
    write_biased_model(&model, &labels, true, &[3.0, 0.0, -3.0]);
    let imgs = tmp.path().join("imgs");
    write_image(&imgs.join("1.png"), 1);
    write_image(&imgs.join("2.png"), 2);
    let present_at = |p: &[f64], t: f64| -> Vec<&str> {
        labels
            .iter()
            .zip(p)
            .filter(|(_, v)| **v >= t)
            .map(|(l, _)| *l)
            .collect()
    };

    let mut seen = Vec::new();
    for (flags, t) in [
        (&["--json"][..], 0.5),
        (&["--json", "--threshold", "0.25"][..], 0.25),
        (&["--json", "--threshold", "0.75"][..], 0.75),
    ] {
        let r = predict(&model, &[&imgs], flags);
        assert_success(&r);
        let lines = json_lines(&r);
        assert_eq!(lines.len(), 2);
        for v in &lines {
            assert_eq!(v["threshold"].as_f64().unwrap() as f32, t as f32, "{v}");
            let p = json_probs(v, &labels);
            let want = present_at(&p, t);
            let got: Vec<&str> = v["present"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            assert_eq!(got, want, "{v}");
        }
        seen.push(lines);
    }
    let first = |i: usize| seen[i][0]["present"].clone();
    assert_ne!(
        first(1),
        first(2),
        "--threshold 0.25 and 0.75 should differ on red (about 0.5): {:?}",
        seen[0][0]
    );

    // The text: the labels present at the threshold, or none at it.
    let p0: Vec<Vec<f64>> = seen[0].iter().map(|v| json_probs(v, &labels)).collect();
    for t in ["0.75", "0.999"] {
        let r = predict(&model, &[&imgs], &["--threshold", t]);
        assert_success(&r);
        let out = text(&r.stdout);
        assert_eq!(out.lines().count(), 2, "{out}");
        for (line, p) in out.lines().zip(&p0) {
            let want = present_at(p, t.parse().unwrap());
            if want.is_empty() {
                let pct = if t == "0.75" { "75" } else { "99.9" };
                assert!(
                    line.ends_with(&format!(": no label at {pct}% or more")),
                    "{line}"
                );
            } else {
                let rest = line.split_once(": labels: ").unwrap().1;
                let got: Vec<&str> = rest
                    .split(", ")
                    .map(|e| e.split(' ').next().unwrap())
                    .collect();
                assert_eq!(got, want, "{line}");
            }
        }
    }
    let r = predict(
        &model,
        &[&imgs.join("1.png")],
        &["--threshold", "0.25", "--top-k", "2"],
    );
    assert_success(&r);
    let line = text(&r.stdout).trim_end().to_string();
    let p = &p0[0];
    let mut order = [0usize, 1, 2];
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let want: Vec<String> = order[..2]
        .iter()
        .map(|&i| {
            let mark = if p[i] >= 0.25 { " (present)" } else { "" };
            format!("{} {:.2}%{mark}", labels[i], 100.0 * p[i])
        })
        .collect();
    assert_eq!(line.split_once(": ").unwrap().1, want.join(", "));
}

/// Bad values of --top-k and --threshold, and --threshold for a single-label model: exit 2
/// with a message naming the flag, before any GPU work.
#[test]
fn predict_refuses_bad_top_k_and_threshold_values() {
    let (tmp, model) = tmp_with_ab_model();
    let img = tmp.path().join("1.png");
    write_image(&img, 1);
    for (flag, value) in [
        ("--top-k", "0"),
        ("--top-k", "-1"),
        ("--top-k", "two"),
        ("--threshold", "0"),
        ("--threshold", "1"),
        ("--threshold", "1.5"),
        ("--threshold", "-0.2"),
        ("--threshold", "NaN"),
        ("--threshold", "half"),
    ] {
        // `--flag=value`: a separate `-1` would read as a flag.
        let r = predict(&model, &[&img], &[&format!("{flag}={value}")]);
        let e = assert_exit(&r, 2);
        assert!(
            e.contains(&format!("invalid value '{value}' for '{flag}")),
            "{flag} {value}: {e}"
        );
        if flag == "--threshold" {
            assert!(e.contains("between 0 and 1"), "{e}");
        }
        assert!(r.stdout.is_empty());
    }
    let r = predict(&model, &[&img], &["--threshold", "0.5"]);
    let e = assert_exit(&r, 2);
    for needle in ["--threshold", "single-label", &model.display().to_string()] {
        assert!(e.contains(needle), "`{needle}` not in: {e}");
    }
    assert!(r.stdout.is_empty());
}
