//! `gpucnn inspect` end to end on a generated folder with planted problems: exact duplicates
//! within a class, across classes and across the train/validation split, near-duplicates (a
//! re-encode and a brightened copy), a corrupt file, mixed sizes and a grayscale image; and the
//! one-line leak warning of `gpucnn train`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{assert_exit, assert_success, gpucnn, gpucnn_cmd, s, stdout};
use rand::{Rng, SeedableRng};

/// A 20×20 PNG of random pixels from `seed`, its folder created. Unlike flat colour blocks
/// (whose equal neighbours give the difference hash the same bits in every image), noise
/// hashes to unrelated bits, so no two such images are near-duplicates.
fn write_image(path: &Path, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let img = image::RgbImage::from_fn(20, 20, |_, _| image::Rgb(rng.random()));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

/// A 64×48 picture with structure a perceptual hash can see (diagonal bands and a checker of
/// 16×12 tiles), `shift` added to every channel.
fn picture(shift: u8) -> image::RgbImage {
    image::RgbImage::from_fn(64, 48, |x, y| {
        let v = ((x * 3 + y * 2) % 200) as u8 / 2 + if (x / 16 + y / 12) % 2 == 0 { 60 } else { 0 };
        image::Rgb([
            v.saturating_add(shift),
            (v / 2).saturating_add(shift),
            90 + shift,
        ])
    })
}

/// The planted dataset: `train/{cats,dogs}` and a separate `val/{cats,dogs}` (so that which
/// split a file is in does not depend on the seeded shuffle). Returns (train, val).
fn planted(root: &Path) -> (PathBuf, PathBuf) {
    let (train, val) = (root.join("train"), root.join("val"));
    for i in 0..8 {
        write_image(&train.join(format!("cats/c{i}.png")), 100 + i);
        write_image(&train.join(format!("dogs/d{i}.png")), 200 + i);
    }
    for i in 0..3 {
        write_image(&val.join(format!("cats/vc{i}.png")), 300 + i);
        write_image(&val.join(format!("dogs/vd{i}.png")), 400 + i);
    }
    // Exact: within a class, across classes, across the split.
    fs::copy(train.join("cats/c0.png"), train.join("cats/c0_copy.png")).unwrap();
    fs::copy(
        train.join("cats/c1.png"),
        train.join("dogs/looks_like_a_cat.png"),
    )
    .unwrap();
    fs::copy(train.join("dogs/d2.png"), val.join("dogs/leaked.png")).unwrap();
    // Near: the same picture as PNG, re-encoded as JPEG, and brightened (other sizes than the
    // 20×20 block images).
    picture(0).save(train.join("dogs/big.png")).unwrap();
    picture(0)
        .save(train.join("dogs/big_reencoded.jpg"))
        .unwrap();
    picture(14)
        .save(train.join("dogs/big_brighter.png"))
        .unwrap();
    // A corrupt file and a grayscale one.
    fs::write(
        train.join("cats/broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    image::GrayImage::from_fn(30, 10, |x, _| image::Luma([x as u8 * 8]))
        .save(train.join("cats/gray.png"))
        .unwrap();
    (train, val)
}

#[test]
fn inspect_reports_planted_duplicates_sizes_modes_and_bad_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, val) = planted(tmp.path());
    let out = tmp.path().join("report");
    let o = gpucnn(&[
        "inspect",
        "--data",
        s(&train),
        "--val-data",
        s(&val),
        "--out",
        s(&out),
    ]);
    assert_success(&o);
    let text = stdout(&o);
    for line in text.lines() {
        // Paths aside, the table fits 100 columns.
        assert!(
            line.chars().count() <= 100 || line.contains(".png"),
            "{line}"
        );
    }
    assert!(
        text.contains("Exact duplicates (same file bytes): 3 group(s), 3 extra cop(ies)"),
        "{text}"
    );
    assert!(
        text.contains("within a class: 2, across classes: 1, across train/validation: 1"),
        "{text}"
    );
    assert!(text.contains("looks_like_a_cat.png"), "{text}");
    assert!(
        text.contains("Near-duplicates (perceptual hashes within 8 bits): 1 group(s)"),
        "{text}"
    );
    assert!(text.contains("broken.png"), "{text}");
    assert!(text.contains("Unreadable files (1)"), "{text}");
    assert!(text.contains("L8 (1)") && text.contains("Rgb8"), "{text}");
    assert!(text.contains("JPEG (1)"), "{text}");

    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("report.json")).unwrap()).unwrap();
    // cats: 8 + copy + gray (broken left out); dogs: 8 + cat copy + 3 big.
    let classes = json["classes"].as_array().unwrap();
    assert_eq!(classes[0]["name"], "cats");
    assert_eq!(classes[0]["train"], 10);
    assert_eq!(classes[0]["validation"], 3);
    assert_eq!(classes[1]["train"], 12);
    assert_eq!(classes[1]["validation"], 4);
    assert!((json["imbalance_ratio"].as_f64().unwrap() - 16.0 / 13.0).abs() < 1e-9);
    let exact = json["exact_duplicates"].as_array().unwrap();
    // Worst first: the picture with two labels.
    assert_eq!(exact[0]["across_classes"], true);
    assert_eq!(exact[1]["across_split"], true);
    assert_eq!(exact[1]["files"][1]["split"], "validation");
    assert_eq!(json["exact_counts"]["across_split"], 1);
    let near = json["near_duplicates"].as_array().unwrap();
    assert_eq!(near.len(), 1);
    let names: Vec<&str> = near[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|n| n.contains("big")), "{names:?}");
    assert!(near[0]["max_distance"].as_u64().unwrap() <= 8);
    assert_eq!(json["unreadable"].as_array().unwrap().len(), 1);
    assert_eq!(json["readable_train"], 22);
    assert_eq!(json["readable_validation"], 7);
    assert_eq!(json["sizes"]["width_max"], 64);
    assert_eq!(json["sizes"]["most_common"][0]["value"], "20x20");
    let modes = json["color_modes"].as_array().unwrap();
    assert!(
        modes.iter().any(|m| m["value"] == "L8" && m["count"] == 1),
        "{modes:?}"
    );

    for png in ["classes.png", "duplicates.png"] {
        let img = image::open(out.join(png)).unwrap();
        assert!(img.width() > 300 && img.height() > 100, "{png}");
    }

    // --json: the same report on stdout.
    let o = gpucnn(&[
        "inspect",
        "--data",
        s(&train),
        "--val-data",
        s(&val),
        "--json",
    ]);
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(printed, json);
}

#[test]
fn inspect_uses_the_training_split_and_finds_no_duplicates_where_there_are_none() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for i in 0..10 {
        write_image(&data.join(format!("a/{i}.png")), i);
        write_image(&data.join(format!("b/{i}.png")), 50 + i);
    }
    let o = gpucnn(&[
        "inspect",
        "--data",
        s(&data),
        "--validation-split",
        "0.3",
        "--seed",
        "7",
        "--json",
    ]);
    let e = assert_success(&o);
    assert!(!e.contains("warning"), "{e}");
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // int(0.3 · 20) = 6 validation images, as train draws them.
    let val: u64 = json["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["validation"].as_u64().unwrap())
        .sum();
    assert_eq!(val, 6);
    assert_eq!(json["exact_counts"]["groups"], 0);
    assert_eq!(json["near_counts"]["groups"], 0);
    assert_eq!(json["imbalance_ratio"], 1.0);
}

#[test]
fn a_closed_stdout_and_bad_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, val) = planted(tmp.path());
    // `inspect --json | head -c 10`: the reader goes away; no panic, exit 0.
    let mut child = gpucnn_cmd()
        .args([
            "inspect",
            "--data",
            s(&train),
            "--val-data",
            s(&val),
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut head).unwrap();
    assert_eq!(head[0], b'{');
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let e = assert_exit(&o, 0);
    assert!(!e.contains("panicked") && !e.contains("Broken pipe"), "{e}");
    // Closed before the first byte is written.
    let mut child = gpucnn_cmd()
        .args(["inspect", "--data", s(&train), "--val-data", s(&val)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let e = assert_exit(&child.wait_with_output().unwrap(), 0);
    assert!(!e.contains("panicked"), "{e}");

    let missing = tmp.path().join("nowhere");
    let e = assert_exit(&gpucnn(&["inspect", "--data", s(&missing)]), 2);
    assert!(e.contains("nowhere"), "{e}");
    let file = train.join("cats/c0.png");
    assert_exit(&gpucnn(&["inspect", "--data", s(&file)]), 2);
    let e = assert_exit(
        &gpucnn(&["inspect", "--data", s(&train), "--near-threshold", "65"]),
        2,
    );
    assert!(e.contains("--near-threshold"), "{e}");
    // An --out that is a file: refused before any work, naming the flag.
    let e = assert_exit(
        &gpucnn(&["inspect", "--data", s(&train), "--out", s(&file)]),
        2,
    );
    assert!(e.contains("--out") && e.contains("c0.png"), "{e}");
}

/// `train` says once, at start, when validation images are copies of training images. The
/// run is stopped right after by an --out that is a file (the run folder is opened just after
/// the data), so no training is needed to see the line.
#[test]
fn train_warns_about_a_leaking_split_and_only_then() {
    if gpucnn::gpu::test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (train, val) = planted(tmp.path());
    let not_a_folder = tmp.path().join("file");
    fs::write(&not_a_folder, b"").unwrap();
    let start = |val: &Path| {
        let o = common::run(
            common::tiny_train(&not_a_folder, "1", "4")
                .arg("--data")
                .arg(&train)
                .arg("--val-data")
                .arg(val),
        );
        assert!(!o.status.success());
        common::stderr(&o)
    };
    let e = start(&val);
    let warnings: Vec<&str> = e.lines().filter(|l| l.contains("exact copies")).collect();
    assert_eq!(warnings.len(), 1, "{e}");
    assert!(
        warnings[0].starts_with("warning: 1 validation image(s)")
            && warnings[0].contains("leaked.png"),
        "{e}"
    );
    fs::remove_file(val.join("dogs/leaked.png")).unwrap();
    let e = start(&val);
    assert!(!e.contains("exact copies"), "{e}");
}

/// Multi-label (`--labels`): counts per label, images counted once in the totals, and a copy
/// with another label set is a picture with two labelings.
#[test]
fn inspect_reads_a_multi_label_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for i in 0..9 {
        write_image(&dir.join(format!("{i}.png")), 500 + i);
    }
    fs::copy(dir.join("0.png"), dir.join("0_copy.png")).unwrap();
    let mut csv = String::from("path,labels\n0.png,cat\n0_copy.png,cat;indoor\n");
    for i in 1..9 {
        csv += &format!(
            "{i}.png,{}\n",
            if i % 2 == 0 { "dog" } else { "dog;indoor" }
        );
    }
    fs::write(dir.join("labels.csv"), csv).unwrap();
    let o = gpucnn(&["inspect", "--labels", s(&dir.join("labels.csv")), "--json"]);
    assert_success(&o);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["readable"], 10);
    let images =
        json["readable_train"].as_u64().unwrap() + json["readable_validation"].as_u64().unwrap();
    assert_eq!(images, 10);
    let total = |i: usize| json["classes"][i]["total"].as_u64().unwrap();
    // cat, dog, indoor (sorted): 2, 8, 1 + 4.
    assert_eq!((total(0), total(1), total(2)), (2, 8, 5));
    assert_eq!(json["exact_counts"]["across_classes"], 1);
    let classes: Vec<&str> = json["exact_duplicates"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["class"].as_str().unwrap())
        .collect();
    let mut sorted = classes.clone();
    sorted.sort();
    assert_eq!(sorted, ["cat", "cat;indoor"]);
}
