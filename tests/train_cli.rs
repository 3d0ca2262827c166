//! `gpucnn train` end to end on a generated two-class folder (discs against squares, with a
//! few corrupt files among them), on whatever adapter the machine has (lavapipe in CI).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gpucnn::gpu::test_context;

fn gpucnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpucnn"))
        .args(args)
        .output()
        .expect("run gpucnn")
}

/// 120 images per class at 20×20: a filled disc or a filled square of random size, position
/// and colour on a random background; PNG and JPEG alternately. Plus three corrupt files.
fn make_dataset(root: &Path) -> Vec<PathBuf> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    for (class, disc) in [("discs", true), ("squares", false)] {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..120 {
            let (w, h) = (20u32, 20u32);
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
            let r = rng.random_range(4.0..7.0f32);
            let (cx, cy) = (
                rng.random_range(7.0..13.0f32),
                rng.random_range(7.0..13.0f32),
            );
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let inside = if disc {
                    dx * dx + dy * dy <= r * r
                } else {
                    dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85
                };
                image::Rgb(if inside { fg } else { bg })
            });
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            img.save(dir.join(format!("{class}_{i:03}.{ext}"))).unwrap();
        }
    }
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

fn train(data: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        epochs,
        "--image-size",
        "16",
        "--width",
        "0.0625",
        "--batch-size",
        "4",
        "--lr",
        "3e-3",
        "--augment",
        "flip",
    ];
    args.extend_from_slice(extra);
    gpucnn(&args)
}

fn csv_rows(out: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("epoch,loss,accuracy,val_loss,val_accuracy,seconds,images_per_sec")
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
    let r = train(&data, &out, "10", &[]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(
        stderr.contains("Found 243 files belonging to 2 classes."),
        "{stderr}"
    );
    assert!(stderr.contains("Skipping 3 unreadable file(s)"), "{stderr}");
    for b in &bad {
        assert!(
            stderr.contains(&b.display().to_string()),
            "{} not reported:\n{stderr}",
            b.display()
        );
    }
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), 10);
    let best = rows.iter().map(|r| r[4]).fold(0.0, f64::max);
    assert!(best >= 0.9, "best validation accuracy {best}:\n{stderr}");
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
        out.to_str().unwrap(),
        data.join("discs").to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert_eq!(
        r.status.code(),
        Some(1),
        "the two corrupt discs files are skipped: exit 1\n{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 120, "{stdout}");
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

    // Evaluate on the whole folder: the documented JSON keys, and the two plots.
    let r = gpucnn(&[
        "evaluate",
        "--model",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
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
    let r = train(&data, &out2, "3", &["--resume"]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(stderr.contains("Resuming from"), "{stderr}");
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
    let r = train(&data, &out2, "3", &["--resume"]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(stderr.contains("nothing to train"), "{stderr}");
    assert_eq!(csv_rows(&out2).len(), 3);
}

#[test]
fn bad_input_is_a_usage_error_and_writes_nothing() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let missing = tmp.path().join("nope");
    let r = gpucnn(&["train", "--data", missing.to_str().unwrap(), "--out", o]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains(&missing.display().to_string()));

    let one = tmp.path().join("one");
    std::fs::create_dir_all(one.join("cats")).unwrap();
    image::RgbImage::new(4, 4)
        .save(one.join("cats/a.png"))
        .unwrap();
    let r = gpucnn(&["train", "--data", one.to_str().unwrap(), "--out", o]);
    assert_eq!(r.status.code(), Some(2));
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(e.contains("cats") || e.contains("class"), "{e}");

    for (flag, value) in [
        ("--epochs", "0"),
        ("--batch-size", "0"),
        ("--image-size", "0"),
        ("--validation-split", "1.5"),
    ] {
        let r = gpucnn(&[
            "train",
            "--data",
            one.to_str().unwrap(),
            "--out",
            o,
            flag,
            value,
        ]);
        assert_eq!(r.status.code(), Some(2), "{flag} {value}");
        assert!(
            String::from_utf8_lossy(&r.stderr).contains(flag),
            "{flag}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    assert!(!out.exists(), "nothing may be written on bad input");
}

#[test]
fn scan_lists_corrupt_files_and_deletes_them_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("shapes");
    let bad = make_dataset(&data);
    let r = gpucnn(&["scan", "--data", data.to_str().unwrap()]);
    let s = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{s}");
    for b in &bad {
        assert!(s.contains(&b.display().to_string()), "{s}");
        assert!(b.exists());
    }
    let r = gpucnn(&["scan", "--data", data.to_str().unwrap(), "--delete"]);
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
        let r = rng.random_range(4.0..7.0f32);
        let (cx, cy) = (
            rng.random_range(7.0..13.0f32),
            rng.random_range(7.0..13.0f32),
        );
        let fg = if red { [230, 40, 40] } else { [40, 60, 230] };
        let img = image::RgbImage::from_fn(20, 20, |x, y| {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let inside = if disc {
                dx * dx + dy * dy <= r * r
            } else {
                dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85
            };
            image::Rgb(if inside { fg } else { [20, 20, 20] })
        });
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
    let r = gpucnn(&[
        "train",
        "--labels",
        labels.to_str().unwrap(),
        "--data",
        root.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "8",
        "--image-size",
        "16",
        "--width",
        "0.0625",
        "--batch-size",
        "4",
        "--lr",
        "3e-3",
        "--augment",
        "flip",
    ]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(stderr.contains("with 2 labels (disc, red)"), "{stderr}");
    let rows = csv_rows(&out);
    let best = rows.iter().map(|r| r[4]).fold(0.0, f64::max);
    assert!(
        best >= 0.9,
        "best per-label validation accuracy {best}:\n{stderr}"
    );
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["multi_label"], true);

    let r = gpucnn(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        root.join("img000.png").to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{stdout}");
    assert!(
        stdout.contains(": labels: ") || stdout.contains(": no label at 50% or more"),
        "{stdout}"
    );
}
