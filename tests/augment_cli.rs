//! The geometric augmentations from the command line: `train --augment` with zoom,
//! translation, fill modes and `--random-crop`, the flags' bad values (exit 2, naming the flag),
//! and `preview --augment` drawing them.

mod common;

use std::path::Path;

use common::{Shape, assert_exit, assert_success, gpucnn, run, s, shapes_dataset, tiny_train};
use gpucnn::gpu::test_context;
use gpucnn::plot::grid::{GRID_CELL, cell_origin};

/// `per_class` 20×20 discs and squares, light on dark.
fn make_dataset(root: &Path, per_class: usize) {
    shapes_dataset(
        root,
        7,
        per_class,
        |rng, disc| Shape::random(disc, rng).draw([230, 200, 90], [20, 40, 60]),
        |class, i| format!("{class}_{i:03}.png"),
    );
}

fn run_json(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap()
}

#[test]
fn train_runs_with_zoom_translate_and_a_fill_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 12);
    if test_context().is_none() {
        return;
    }
    let out = tmp.path().join("run");
    let r = run(tiny_train(&out, "1", "8").arg("--data").arg(&data).args([
        "--augment",
        "zoom,flip,translate",
        "--zoom",
        "0.2",
        "--fill-mode",
        "constant",
        "--fill-value",
        "127.5",
    ]));
    assert_success(&r);
    assert!(out.join("metrics.csv").is_file());
    // The fingerprint records the settings (in the fixed order, --translate's default 0.1).
    let fp = run_json(&out).to_string();
    assert!(
        fp.contains("flip,zoom 0.2,translate 0.1,fill constant 127.5"),
        "{fp}"
    );
}

/// `--random-crop 12,10` of 16×16 images: the model's input (model.json) is the crop's size,
/// training steps on random windows and validates, and predict and evaluate load images at the
/// crop's size directly; the micro-batched path (--micro-batch) copies training samples of the
/// larger size.
#[test]
fn random_crop_trains_at_the_crop_size_and_predicts_at_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 12);
    if test_context().is_none() {
        return;
    }
    let out = tmp.path().join("run");
    let r = run(tiny_train(&out, "1", "8").arg("--data").arg(&data).args([
        "--augment",
        "flip,rotate",
        "--random-crop",
        "12,10",
        "--micro-batch",
        "3",
    ]));
    let log = assert_success(&r);
    assert!(log.contains("Epoch 1/1"), "{log}");
    let model = std::fs::read_to_string(out.join("model.json")).unwrap();
    assert!(
        model.contains("\"image_size\": [\n    12,\n    10\n  ]"),
        "{model}"
    );
    let fp = run_json(&out).to_string();
    assert!(fp.contains("crop 12x10,flip,rotate 0.1"), "{fp}");
    assert!(fp.contains("\"image_size\":16"), "{fp}");
    let rows = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(rows.lines().count(), 2, "{rows}");
    assert!(!rows.contains("NaN"), "{rows}");
    let image = data.join("discs/discs_000.png");
    let r = gpucnn(&["predict", "--model", s(&out), s(&image)]);
    let said = common::stdout(&r);
    assert_success(&r);
    assert!(said.contains("discs_000.png"), "{said}");
    assert_success(&gpucnn(&[
        "evaluate",
        "--model",
        s(&out),
        "--data",
        s(&data),
    ]));
}

#[test]
fn bad_augmentation_values_exit_2_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 2);
    let out = tmp.path().join("run");
    let cases: [(&[&str], &[&str]); 7] = [
        // Beyond Keras' [-1, 1] (and a negative single factor, which Keras reads as |F|).
        (&["--augment", "zoom", "--zoom", "-1.5"], &["--zoom"]),
        (&["--augment", "zoom", "--zoom", "1.5"], &["--zoom"]),
        (
            &["--augment", "translate", "--translate", "2"],
            &["--translate"],
        ),
        (&["--fill-mode", "mirror"], &["--fill-mode", "mirror"]),
        (&["--augment", "flip,shear"], &["--augment", "shear"]),
        // A factor whose augmentation is not listed would be silently ignored.
        (&["--augment", "flip", "--zoom", "0.2"], &["--zoom", "zoom"]),
        // tiny_train's --image-size is 16.
        (&["--random-crop", "20"], &["--random-crop", "--image-size"]),
    ];
    for (args, named) in cases {
        let r = run(tiny_train(&out, "1", "8")
            .arg("--data")
            .arg(&data)
            .args(args));
        let err = assert_exit(&r, 2);
        for n in named {
            assert!(err.contains(n), "{args:?}: {n} not in {err}");
        }
        assert!(!out.join("metrics.csv").exists());
    }
    // --fill-value without --fill-mode constant does nothing: refused.
    let r = run(tiny_train(&out, "1", "8")
        .arg("--data")
        .arg(&data)
        .args(["--fill-value", "3"]));
    let err = assert_exit(&r, 2);
    assert!(
        err.contains("--fill-value") && err.contains("constant"),
        "{err}"
    );
}

/// The nine tiles of a preview grid (each GRID_CELL² square, RGB).
fn tiles(grid: &Path) -> Vec<Vec<u8>> {
    let img = image::open(grid).unwrap().to_rgb8();
    (0..9)
        .map(|i| {
            let (x0, y0) = cell_origin(i, GRID_CELL);
            let mut t = Vec::new();
            for y in y0..y0 + GRID_CELL {
                for x in x0..x0 + GRID_CELL {
                    t.extend_from_slice(&img.get_pixel(x, y).0);
                }
            }
            t
        })
        .collect()
}

#[test]
fn preview_draws_zoomed_translated_and_cropped_augmentations() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 3);
    let grid = tmp.path().join("grid.png");
    let base = ["preview", "--data", s(&data), "--out", s(&grid)];
    // Without --augment the geometric flags have nothing to act on.
    let mut args = base.to_vec();
    args.extend(["--zoom", "0.3"]);
    assert_exit(&gpucnn(&args), 2);
    if test_context().is_none() {
        return;
    }
    for extra in [
        &[
            "--augment",
            "zoom",
            "--zoom",
            "0.5",
            "--fill-mode",
            "constant",
        ][..],
        &[
            "--augment",
            "translate",
            "--translate",
            "0.3",
            "--fill-mode",
            "wrap",
        ],
        &[
            "--augment",
            "none",
            "--random-crop",
            "12",
            "--image-size",
            "40",
        ],
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        if !extra.contains(&"--image-size") {
            args.extend(["--image-size", "20"]);
        }
        assert_success(&gpucnn(&args));
        let t = tiles(&grid);
        for i in 0..9 {
            for j in i + 1..9 {
                assert_ne!(t[i], t[j], "{extra:?}: tiles {i} and {j} are the same");
            }
        }
    }
}
