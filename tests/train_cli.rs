//! `gpucnn train` end to end on a generated two-class folder (discs against squares, with a
//! few corrupt files among them), on whatever adapter the machine has (lavapipe in CI).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{
    Shape, assert_success, gpucnn, gpucnn_cmd, run, s, shapes_dataset, stderr, stdout, tiny_train,
    write_blank_image,
};
use gpucnn::gpu::test_context;

/// 120 images per class at 20×20: a filled disc or a filled square of random size, position
/// and colour on a random background; PNG and JPEG alternately. Plus three corrupt files.
fn make_dataset(root: &Path) -> Vec<PathBuf> {
    use rand::Rng;
    let draw = |rng: &mut rand::rngs::StdRng, disc| {
        let bg = [
            rng.random_range(0..80u8),
            rng.random_range(0..80u8),
            rng.random_range(0..80u8),
        ];
        let fg = [
            rng.random_range(150..255u8),
            rng.random_range(150..255u8),
            rng.random_range(150..255u8),
        ];
        Shape::random(disc, rng).draw(fg, bg)
    };
    shapes_dataset(root, 99, 120, draw, |class, i| {
        let ext = if i % 2 == 0 { "png" } else { "jpg" };
        format!("{class}_{i:03}.{ext}")
    });
    let bad = vec![
        root.join("discs/empty.png"),
        root.join("squares/notes.jpg"),
        root.join("discs/cut.jpg"),
    ];
    std::fs::write(&bad[0], b"").unwrap();
    std::fs::write(&bad[1], b"this is not a picture").unwrap();
    let jpeg = std::fs::read(root.join("discs/discs_001.jpg")).unwrap();
    std::fs::write(&bad[2], &jpeg[..jpeg.len() / 2]).unwrap();
    bad
}

/// `gpucnn train` on `data` at the tiny settings (batch 4, lr 3e-3, flips), plus `extra`, with
/// the adapter's default kernels (the other CLI tests pin the portable GEMM:
/// `common::gpucnn_cmd`).
fn train(data: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Output {
    run(tiny_train(out, epochs, "4")
        .env_remove(common::PORTABLE_GEMM.0)
        .arg("--data")
        .arg(data)
        .args(["--lr", "3e-3", "--augment", "flip"])
        .args(extra))
}

fn csv_rows(out: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("epoch,loss,accuracy,val_loss,val_accuracy,seconds,images_per_sec,lr")
    );
    lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

#[test]
fn train_learns_discs_from_squares_writes_everything_and_resumes_exactly() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("shapes");
    let bad = make_dataset(&data);

    let out = tmp.path().join("run");
    // Batch norm's moving statistics (momentum 0.99) need a few hundred steps before
    // validation, which uses them, follows training: 48 steps an epoch × 10.
    let log = assert_success(&train(&data, &out, "10", &[]));
    assert!(
        log.contains("Found 243 files belonging to 2 classes."),
        "{log}"
    );
    assert!(log.contains("Skipping 3 unreadable file(s)"), "{log}");
    // Progress from the first second (stderr is not a terminal here: plain lines): the slow
    // parts are announced before they start, the first estimate comes after a few steps, and
    // each epoch's line has the time per step and, but for the last, the run's ETA.
    for line in [
        "Compiling GPU pipelines…",
        "GPU pipelines compiled in ",
        "Warming up: first step…",
        "First step done in ",
        "Timing: ",
    ] {
        assert!(log.contains(line), "'{line}' missing:\n{log}");
    }
    let at = |text: &str| log.find(text).unwrap_or_else(|| panic!("{text}:\n{log}"));
    assert!(at("Compiling GPU pipelines…") < at("Warming up: first step…"));
    assert!(at("First step done in ") < at("Timing: "));
    assert!(at("Timing: ") < at("Epoch 1/10:"));
    for e in 1..=10 {
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("Epoch {e}/10:")))
            .unwrap_or_else(|| panic!("no line for epoch {e}:\n{log}"));
        assert!(line.contains("/step, "), "{line}");
        assert_eq!(line.contains(" - run ETA "), e < 10, "{line}");
    }
    // A run of seconds earns no advice to make it quicker.
    assert!(!log.contains("note: this run will take"), "{log}");
    for b in &bad {
        assert!(
            log.contains(&b.display().to_string()),
            "{} not reported:\n{log}",
            b.display()
        );
    }
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), 10);
    let best = rows.iter().map(|r| r[4]).fold(0.0, f64::max);
    assert!(best >= 0.9, "best validation accuracy {best}:\n{log}");
    for e in 1..=10 {
        assert!(out.join(format!("save_at_{e}.safetensors")).is_file());
    }
    for f in [
        "best.safetensors",
        "model.json",
        "curves.png",
        "metrics.csv",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let png = image::open(out.join("curves.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1000, 400));
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["classes"], serde_json::json!(["discs", "squares"]));

    // Predictions with the trained model: the example's sentence, mostly right, and a CSV.
    let csv = tmp.path().join("pred.csv");
    let r = gpucnn(&[
        "predict",
        "--model",
        s(&out),
        s(&data.join("discs")),
        "--csv",
        s(&csv),
    ]);
    let printed = stdout(&r);
    assert_eq!(
        r.status.code(),
        Some(1),
        "the two corrupt discs files are skipped: exit 1\n{printed}"
    );
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 120, "{printed}");
    let mut discs = 0;
    for l in &lines {
        let (_, text) = l
            .split_once(": This image is ")
            .unwrap_or_else(|| panic!("{l}"));
        let pct: f64 = text.split('%').next().unwrap().parse().unwrap();
        assert!(
            text.ends_with("% squares.") && text.contains("% discs and "),
            "{l}"
        );
        if pct > 50.0 {
            discs += 1;
        }
    }
    assert!(discs >= 100, "{discs} of 120 discs recognised");
    let table = std::fs::read_to_string(&csv).unwrap();
    assert!(table.starts_with("path,discs,squares\n"), "{table}");
    assert_eq!(table.lines().count(), 121);
    // Inference folds each batch norm into the convolution before it; unfolded
    // (GPUCNN_FUSION=off: a convolution, then the batch norm's pass) the trained model
    // predicts the same probabilities, to the CSV's six decimals give or take the last one
    // (the logits agree to ~1e-7 relative: tests/train_step.rs).
    let unfolded_csv = tmp.path().join("pred-unfolded.csv");
    let r = run(gpucnn_cmd().env("GPUCNN_FUSION", "off").args([
        "predict",
        "--model",
        s(&out),
        s(&data.join("discs")),
        "--csv",
        s(&unfolded_csv),
    ]));
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    let unfolded = std::fs::read_to_string(&unfolded_csv).unwrap();
    assert_eq!(unfolded.lines().count(), 121);
    for (a, b) in table.lines().zip(unfolded.lines()).skip(1) {
        let (pa, va) = a.split_once(',').unwrap();
        let (pb, vb) = b.split_once(',').unwrap();
        assert_eq!(pa, pb);
        for (x, y) in va.split(',').zip(vb.split(',')) {
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((x - y).abs() <= 2e-6, "{a} (folded) vs {b} (unfolded)");
        }
    }

    // Evaluate on the whole folder: the documented JSON keys, and the two plots.
    let r = gpucnn(&["evaluate", "--model", s(&out), "--data", s(&data), "--json"]);
    let printed = stdout(&r);
    assert!(r.status.success(), "{printed}{}", stderr(&r));
    let v: serde_json::Value = serde_json::from_str(&printed).expect("one JSON object");
    for key in [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "auc",
        "confusion_matrix",
        "class_names",
    ] {
        assert!(!v[key].is_null(), "{key} missing in {v}");
    }
    assert!(v["accuracy"].as_f64().unwrap() >= 0.85, "{v}");
    let cm = v["confusion_matrix"].as_array().unwrap();
    let total: u64 = cm
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(total, 240, "every readable image is counted once");
    for f in ["confusion.png", "roc.png"] {
        image::open(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }

    // Interrupted after 2 epochs, then resumed to 3: epoch 3 equals the uninterrupted run's.
    let out2 = tmp.path().join("run2");
    assert!(train(&data, &out2, "2", &[]).status.success());
    let log = assert_success(&train(&data, &out2, "3", &["--resume"]));
    assert!(log.contains("Resuming from"), "{log}");
    let resumed = csv_rows(&out2);
    assert_eq!(resumed.len(), 3);
    for col in 0..5 {
        let (a, b) = (resumed[2][col], rows[2][col]);
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            "epoch 3 column {col}: resumed {a} vs uninterrupted {b}"
        );
    }
    // Resuming a run that already has its epochs says so instead of finishing silently.
    let log = assert_success(&train(&data, &out2, "3", &["--resume"]));
    assert!(log.contains("nothing to train"), "{log}");
    assert_eq!(csv_rows(&out2).len(), 3);
}

#[test]
fn bad_input_is_a_usage_error_and_writes_nothing() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = s(&out);
    let missing = tmp.path().join("nope");
    let r = gpucnn(&["train", "--data", s(&missing), "--out", o]);
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains(&missing.display().to_string()));

    let one = tmp.path().join("one");
    write_blank_image(&one.join("cats/a.png"));
    let r = gpucnn(&["train", "--data", s(&one), "--out", o]);
    assert_eq!(r.status.code(), Some(2));
    let e = stderr(&r);
    assert!(e.contains("cats") || e.contains("class"), "{e}");

    for (flag, value) in [
        ("--epochs", "0"),
        ("--batch-size", "0"),
        ("--image-size", "0"),
        ("--validation-split", "1.5"),
    ] {
        let r = gpucnn(&["train", "--data", s(&one), "--out", o, flag, value]);
        assert_eq!(r.status.code(), Some(2), "{flag} {value}");
        assert!(stderr(&r).contains(flag), "{flag}: {}", stderr(&r));
    }
    assert!(!out.exists(), "nothing may be written on bad input");
}

#[test]
fn scan_lists_corrupt_files_and_deletes_them_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("shapes");
    let bad = make_dataset(&data);
    let r = gpucnn(&["scan", "--data", s(&data)]);
    let out = stdout(&r);
    assert!(r.status.success(), "{out}");
    for b in &bad {
        assert!(out.contains(&b.display().to_string()), "{out}");
        assert!(b.exists());
    }
    let r = gpucnn(&["scan", "--data", s(&data), "--delete"]);
    assert!(r.status.success());
    assert!(bad.iter().all(|b| !b.exists()));
}

/// Multi-label: two independent labels per image (`disc` for a disc instead of a square,
/// `red` for a red shape instead of a blue one), any subset of them, from a labels CSV.
#[test]
fn multi_label_training_from_a_labels_csv() {
    use rand::{Rng, SeedableRng};
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("imgs");
    std::fs::create_dir_all(&root).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut csv = String::from("path,labels\n");
    for i in 0..300 {
        let (disc, red) = (rng.random_bool(0.5), rng.random_bool(0.5));
        let shape = Shape::random(disc, &mut rng);
        let fg = if red { [230, 40, 40] } else { [40, 60, 230] };
        let img = shape.draw(fg, [20, 20, 20]);
        let name = format!("img{i:03}.png");
        img.save(root.join(&name)).unwrap();
        let labels: Vec<&str> = [(disc, "disc"), (red, "red")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, l)| *l)
            .collect();
        csv.push_str(&format!("{name},{}\n", labels.join(";")));
    }
    let labels = tmp.path().join("labels.csv");
    std::fs::write(&labels, csv).unwrap();
    let out = tmp.path().join("ml");
    let log = assert_success(&train(&root, &out, "8", &["--labels", s(&labels)]));
    assert!(log.contains("with 2 labels (disc, red)"), "{log}");
    let rows = csv_rows(&out);
    let best = rows.iter().map(|r| r[4]).fold(0.0, f64::max);
    assert!(
        best >= 0.9,
        "best per-label validation accuracy {best}:\n{log}"
    );
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["multi_label"], true);

    let r = gpucnn(&["predict", "--model", s(&out), s(&root.join("img000.png"))]);
    let printed = stdout(&r);
    assert!(r.status.success(), "{printed}");
    assert!(
        printed.contains(": labels: ") || printed.contains(": no label at 50% or more"),
        "{printed}"
    );
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Discs against squares in `root`, `per_class` PNGs each, drawn from `seed`.
fn shapes_pngs(root: &Path, seed: u64, per_class: usize) {
    use rand::Rng;
    let draw = |rng: &mut rand::rngs::StdRng, disc| {
        let bg = [rng.random_range(0..80u8), 20, 20];
        Shape::random(disc, rng).draw([230, 230, 230], bg)
    };
    shapes_dataset(root, seed, per_class, draw, |class, i| {
        format!("{class}_{i:03}.png")
    });
}

/// `--val-data` with `--class-names`: every image of --data's chosen classes trains, every
/// image of the validation folder validates (its unreadable file listed and skipped), the
/// classes are in the order given, and the run is tied to its validation files.
#[test]
fn val_data_and_class_names_choose_what_trains_and_what_validates() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (train_dir, val_dir) = (tmp.path().join("train"), tmp.path().join("val"));
    shapes_pngs(&train_dir, 11, 12);
    // Not named by --class-names: never read.
    write_blank_image(&train_dir.join("others/a.png"));
    shapes_pngs(&val_dir, 12, 6);
    let broken = val_dir.join("discs/broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    let out = tmp.path().join("run");
    let flags = |val: &Path, classes: &str| -> Vec<String> {
        vec![
            "--val-data".into(),
            val.display().to_string(),
            "--class-names".into(),
            classes.into(),
        ]
    };
    let ours = flags(&val_dir, "squares,discs");
    let log = assert_success(&train(&train_dir, &out, "1", &args(&ours)));
    for line in [
        format!(
            "Found 24 files belonging to 2 classes in {}.",
            train_dir.display()
        ),
        format!(
            "Found 13 files belonging to 2 classes in {} (--val-data).",
            val_dir.display()
        ),
        "Using 24 files for training.".into(),
        "Using 13 files for validation.".into(),
        "class 0 = squares: 12 training, 6 validation".into(),
        "class 1 = discs: 12 training, 7 validation".into(),
        "Skipping 1 unreadable file(s):".into(),
        broken.display().to_string(),
    ] {
        assert!(log.contains(&line), "'{line}' missing:\n{log}");
    }
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["classes"], serde_json::json!(["squares", "discs"]));
    let run_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["val_data"]["files"], 13, "{run_json}");
    assert_eq!(run_json["data"]["files"], 24, "{run_json}");
    assert_eq!(csv_rows(&out).len(), 1);
    // evaluate reads the model's classes, in its order, and not the folder it never saw.
    let r = gpucnn(&[
        "evaluate",
        "--model",
        s(&out),
        "--data",
        s(&train_dir),
        "--json",
    ]);
    let printed = stdout(&r);
    assert!(r.status.success(), "{printed}{}", stderr(&r));
    let v: serde_json::Value = serde_json::from_str(&printed).expect("one JSON object");
    assert_eq!(v["class_names"], serde_json::json!(["squares", "discs"]));
    let counted: u64 = v["confusion_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 24);

    // --resume with other validation files, another class order, or no --val-data: refused,
    // naming what differs, before anything is trained.
    let other_val = tmp.path().join("val2");
    shapes_pngs(&other_val, 13, 5);
    for (extra, says) in [
        (flags(&other_val, "squares,discs"), "--val-data"),
        (flags(&val_dir, "discs,squares"), "classes"),
        (
            vec!["--class-names".into(), "squares,discs".into()],
            "--val-data",
        ),
    ] {
        let mut a = args(&extra);
        a.push("--resume");
        let r = train(&train_dir, &out, "2", &a);
        let e = common::assert_exit(&r, 2);
        assert!(e.contains(says), "{extra:?}: {e}");
    }
    assert_eq!(csv_rows(&out).len(), 1);
    // The same flags resume: the validation folder's digest is stable.
    let mut a = args(&ours);
    a.push("--resume");
    let log = assert_success(&train(&train_dir, &out, "2", &a));
    assert!(log.contains("Resuming from"), "{log}");
    assert_eq!(csv_rows(&out).len(), 2);
}

#[test]
fn val_data_and_class_names_bad_input_names_the_flag() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (train_dir, val_dir) = (tmp.path().join("train"), tmp.path().join("val"));
    for class in ["cats", "dogs"] {
        write_blank_image(&train_dir.join(class).join("a.png"));
    }
    for class in ["cats", "birds"] {
        write_blank_image(&val_dir.join(class).join("a.png"));
    }
    let out = tmp.path().join("out");
    let (t, v, o) = (s(&train_dir), s(&val_dir), s(&out));
    let base = ["train", "--data", t, "--out", o];
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--val-data", v],
            &[
                "--val-data",
                &format!("only in {}: dogs", train_dir.display()),
                &format!("only in {}: birds", val_dir.display()),
            ],
        ),
        (
            &["--val-data", v, "--validation-split", "0.3"],
            &["--validation-split 0.3", "--val-data"],
        ),
        (
            &["--val-data", v, "--labels", t],
            &["--val-data", "--labels"],
        ),
        (
            &["--class-names", "cats,zebras"],
            &["--class-names", "`zebras`", "cats, dogs"],
        ),
        (
            &["--class-names", "cats"],
            &["--class-names", "at least two"],
        ),
        (
            &["--val-data", v, "--class-names", "cats,dogs"],
            &["`dogs`", v],
        ),
    ];
    for (extra, says) in cases {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        let r = gpucnn(&a);
        let e = common::assert_exit(&r, 2);
        for word in *says {
            assert!(e.contains(word), "{extra:?}: '{word}' missing: {e}");
        }
    }
    assert!(!out.exists(), "nothing may be written on bad input");
}
