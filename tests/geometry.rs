//! The input geometry end to end: `--color-mode grayscale` and a non-square `--image-size H,W`
//! through train, model.json, run.json, predict, evaluate and `--resume`; bad values refused
//! with exit 2 naming the flag.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_exit, assert_success, gpucnn, gpucnn_cmd, run, s, stdout, write_ab_images};
use gpucnn::data::geometry::rgb_to_gray;
use gpucnn::data::{ColorMode, ImageSize};
use gpucnn::gpu::test_context;
use gpucnn::graph::ParamLayout;
use gpucnn::model::{XceptionConfig, xception_mini};
use gpucnn::train::checkpoint::{ModelConfig, read_model_json, save_checkpoint, write_model_json};
use rand::{Rng, SeedableRng};

const WIDE: ImageSize = ImageSize {
    height: 12,
    width: 20,
};

/// `gpucnn train` for `epochs` at tiny settings (width 1/16, batch 4, flips and rotations),
/// plus `extra` (the geometry flags).
fn train(data: &Path, out: &Path, epochs: &str, extra: &[&str]) -> Command {
    let mut c = gpucnn_cmd();
    c.arg("train").arg("--data").arg(data).arg("--out").arg(out);
    c.args(["--epochs", epochs, "--width", "0.0625", "--batch-size", "4"]);
    c.args(["--augment", "flip,rotate"]).args(extra);
    c
}

/// Probabilities per input, in input order, from `predict --csv`.
fn predict(model: &Path, inputs: &[&Path], csv: &Path) -> Vec<Vec<f64>> {
    let mut args = vec!["predict", "--model", s(model), "--csv", s(csv)];
    args.extend(inputs.iter().map(|p| s(p)));
    assert_success(&gpucnn(&args));
    let mut r = csv::Reader::from_path(csv).unwrap();
    let rows: Vec<(String, Vec<f64>)> = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            let probs = rec.iter().skip(1).map(|v| v.parse().unwrap()).collect();
            (rec[0].to_string(), probs)
        })
        .collect();
    inputs
        .iter()
        .map(|p| {
            let row = rows.iter().find(|(path, _)| path == s(p));
            row.unwrap_or_else(|| panic!("{} not in {rows:?}", p.display()))
                .1
                .clone()
        })
        .collect()
}

/// A 30×24 colour PNG of random pixels, and the same image converted to one gray channel
/// with TensorFlow's weights (an L8 PNG).
fn colour_and_gray(dir: &Path, seed: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let colour = image::RgbImage::from_fn(30, 24, |_, _| image::Rgb(rng.random()));
    let luma = rgb_to_gray(colour.as_raw());
    let gray = image::GrayImage::from_raw(30, 24, luma).unwrap();
    let (c, g) = (dir.join("colour.png"), dir.join("gray.png"));
    colour.save(&c).unwrap();
    gray.save(&g).unwrap();
    (c, g)
}

/// Train one epoch at `--color-mode grayscale --image-size 12,20`: model.json and run.json
/// record both; predict feeds a colour file as its gray conversion (same probabilities as the
/// gray file); evaluate runs; `--resume` with another colour mode or size is refused naming
/// the flag, and with the same ones goes on.
#[test]
fn grayscale_non_square_training_predicts_evaluates_and_guards_resume() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_ab_images(&data, 8);
    let out = tmp.path().join("run");
    let geometry = ["--color-mode", "grayscale", "--image-size", "12,20"];
    // --tensorboard draws the first batch: one gray channel, 12×20, drawn as RGB.
    let log = assert_success(&run(train(&data, &out, "1", &geometry).arg("--tensorboard")));
    assert!(log.contains("Epoch 1/1"), "{log}");
    assert!(out.join("logs/train").read_dir().unwrap().next().is_some());

    let cfg = read_model_json(out.join("model.json")).unwrap();
    assert_eq!(
        (cfg.image_size, cfg.channels, cfg.color_mode),
        (WIDE, 1, ColorMode::Grayscale)
    );
    let json = std::fs::read_to_string(out.join("model.json")).unwrap();
    assert!(json.contains("\"color_mode\": \"grayscale\""), "{json}");
    assert!(
        json.contains("\"image_size\": [\n    12,\n    20\n  ]"),
        "{json}"
    );
    let run_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let fingerprint = run_json.to_string();
    assert!(
        fingerprint.contains("\"color_mode\":\"grayscale\""),
        "{fingerprint}"
    );
    assert!(
        fingerprint.contains("\"image_size\":[12,20]"),
        "{fingerprint}"
    );

    // A colour file is converted as training converted its images: it predicts exactly as
    // its gray version does.
    let (colour, gray) = colour_and_gray(tmp.path(), 3);
    let p = predict(&out, &[&colour, &gray], &tmp.path().join("p.csv"));
    assert_eq!(
        p[0], p[1],
        "the colour file was not fed as its gray conversion"
    );
    assert_eq!(p[0].len(), 2);

    let r = gpucnn(&["evaluate", "--model", s(&out), "--data", s(&data), "--json"]);
    let text = assert_success(&r);
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&r)).unwrap_or_else(|e| panic!("{e}: {text}{}", stdout(&r)));
    assert_eq!(v["samples"].as_u64(), Some(16), "{v}");

    // --resume must keep the geometry: each change is refused naming its flag.
    for (other, flag) in [
        (
            ["--color-mode", "rgb", "--image-size", "12,20"],
            "--color-mode",
        ),
        (
            ["--color-mode", "grayscale", "--image-size", "20,12"],
            "--image-size",
        ),
    ] {
        let r = run(train(&data, &out, "2", &other).arg("--resume"));
        let e = assert_exit(&r, 2);
        assert!(e.contains(flag), "{flag} not named: {e}");
    }
    let log = assert_success(&run(train(&data, &out, "2", &geometry).arg("--resume")));
    assert!(log.contains("Epoch 2/2"), "{log}");
}

/// An RGB model fed a grayscale file: the file is replicated to three channels (as TF's
/// decode_image(channels=3)), so it predicts as the same picture saved as RGB.
#[test]
fn an_rgb_model_predicts_a_grayscale_file_as_its_rgb_copy() {
    if test_context().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("run");
    let xcfg = XceptionConfig {
        image_size: WIDE,
        width: 0.0625,
        ..Default::default()
    };
    let layout = ParamLayout::new(&xception_mini(&xcfg).unwrap());
    let cfg = ModelConfig::xception_mini(&xcfg, vec!["a".into(), "b".into()]);
    assert_eq!(cfg.color_mode, ColorMode::Rgb);
    std::fs::create_dir_all(&model).unwrap();
    let params = layout.initial_values(5);
    save_checkpoint(model.join("best.safetensors"), &layout, &params, &cfg, None).unwrap();
    write_model_json(&model, &cfg).unwrap();
    let (_, gray) = colour_and_gray(tmp.path(), 4);
    let rgb = image::open(&gray).unwrap().to_rgb8();
    let rgb_path = tmp.path().join("gray_as_rgb.png");
    rgb.save(&rgb_path).unwrap();
    let p = predict(&model, &[&gray, &rgb_path], &tmp.path().join("p.csv"));
    assert_eq!(p[0], p[1]);

    // A model.json written before color_mode existed reads as rgb.
    let json = model.join("model.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("color_mode");
    std::fs::write(&json, v.to_string()).unwrap();
    assert_eq!(read_model_json(&json).unwrap().color_mode, ColorMode::Rgb);
    // And a model.json whose channels contradict its colour mode is refused.
    v["color_mode"] = "grayscale".into();
    std::fs::write(&json, v.to_string()).unwrap();
    let e = read_model_json(&json).unwrap_err().to_string();
    assert!(e.contains("color_mode"), "{e}");
}

/// Bad values exit 2 before anything runs, naming the flag.
#[test]
fn bad_geometry_values_exit_2_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for bad in ["0", "a,b", "1,2,3", "12,0", ""] {
        let r = gpucnn(&["train", "--data", s(&data), "--image-size", bad]);
        let e = assert_exit(&r, 2);
        assert!(e.contains("--image-size"), "{bad}: {e}");
    }
    for (bad, says) in [("rgba", "not supported"), ("cmyk", "rgb or grayscale")] {
        let r = gpucnn(&["train", "--data", s(&data), "--color-mode", bad]);
        let e = assert_exit(&r, 2);
        assert!(e.contains("--color-mode") && e.contains(says), "{bad}: {e}");
    }
    let r = gpucnn(&["summary", "--image-size", "1,2,3"]);
    assert!(assert_exit(&r, 2).contains("--image-size"));
}

/// `summary` builds the model at a non-square gray input: the input layer is (12, 20, 1).
#[test]
fn summary_shows_a_non_square_gray_input() {
    let r = gpucnn(&[
        "summary",
        "--image-size",
        "12,20",
        "--color-mode",
        "grayscale",
        "--width",
        "0.0625",
        "--batch-size",
        "2",
    ]);
    assert_success(&r);
    let out = stdout(&r);
    assert!(out.contains("(None, 12, 20, 1)"), "{out}");
    assert!(out.contains("(None, 6, 10, 8)"), "{out}");
}

/// `preview` at a non-square gray size: the nine images and nine GPU augmentations of the
/// first are drawn (gray as RGB) into a grid; `profile` steps the gray 12×20 model.
#[test]
fn preview_and_profile_take_the_geometry() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_ab_images(&data, 5);
    let grid = tmp.path().join("grid.png");
    let geometry = ["--image-size", "12,20", "--color-mode", "grayscale"];
    let mut args = vec!["preview", "--data", s(&data), "--out", s(&grid)];
    args.extend(geometry);
    assert_success(&gpucnn(&args));
    let img = image::open(&grid).unwrap().to_rgb8();
    // Gray images drawn as RGB: every pixel of the grid has R = G = B.
    assert!(img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    if test_context().is_none() {
        return;
    }
    args.push("--augment");
    assert_success(&gpucnn(&args));
    let img = image::open(&grid).unwrap().to_rgb8();
    assert!(img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    let mut args = vec!["profile", "--width", "0.0625", "--batch-size", "2"];
    args.extend(["--steps", "1", "--json"]);
    args.extend(geometry);
    let r = gpucnn(&args);
    assert_success(&r);
    let v: serde_json::Value = serde_json::from_str(&stdout(&r)).unwrap();
    assert_eq!(v["image_size"], serde_json::json!([12, 20]), "{v}");
    assert_eq!(v["color_mode"], "grayscale", "{v}");
}
