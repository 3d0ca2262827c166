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
        image_size: IMAGE_SIZE,
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
