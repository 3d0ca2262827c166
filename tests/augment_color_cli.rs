//! `gpucnn train --augment ...,contrast,brightness` end to end on a small generated folder: the
//! factors reach the run's fingerprint and the GPU step (the weights differ from a run without
//! them, same seed), and bad factors exit 2 naming the flag. (The op's arithmetic is proven
//! against the CPU reference by the `augment_color` parity checks and tests/train_step.rs.)

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_exit, assert_success, run, s, tensors, tiny_train};

fn make_data(root: &Path) {
    common::light_shapes(root, 9, 12);
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    run(tiny_train(out, "1", "8")
        .args(["--data", s(data), "--seed", "5"])
        .args(extra))
}

#[test]
fn contrast_and_brightness_reach_the_step_and_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_data(&data);
    let colour = dir.path().join("colour");
    let flags = ["--augment", "flip,contrast,brightness", "--contrast", "0.5"];
    assert_success(&train(&data, &colour, &flags));
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(colour.join("run.json")).unwrap()).unwrap();
    // --brightness keeps its default, 0.2.
    assert_eq!(
        run_json["augment"], "flip,contrast 0.5,brightness 0.2",
        "{run_json}"
    );
    // The same run without them trains on other pixels, so ends with other weights.
    let plain = dir.path().join("plain");
    assert_success(&train(&data, &plain, &["--augment", "flip"]));
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(plain.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["augment"], "flip", "off: left out of the label");
    let (a, b) = (
        tensors(&colour.join("save_at_1.safetensors")),
        tensors(&plain.join("save_at_1.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    assert_ne!(a, b, "contrast and brightness changed nothing");
    // Resuming with another contrast is another run: refused, naming the flag.
    let o = run(tiny_train(&colour, "2", "8")
        .args(["--data", s(&data), "--seed", "5", "--resume"])
        .args(["--augment", "flip,contrast,brightness", "--contrast", "0.4"]));
    let e = assert_exit(&o, 2);
    assert!(e.contains("--contrast"), "{e}");
}

#[test]
fn bad_colour_factors_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("run");
    for (flags, named) in [
        (["--contrast", "1.5"], "--contrast"),
        (["--contrast", "-0.1"], "--contrast"),
        (["--contrast", "nan"], "--contrast"),
        (["--brightness", "1.01"], "--brightness"),
        (["--brightness", "-2"], "--brightness"),
    ] {
        let o = train(
            &data,
            &out,
            &[&["--augment", "contrast,brightness"][..], &flags].concat(),
        );
        let e = assert_exit(&o, 2);
        assert!(e.contains(named), "{flags:?}: {e}");
        assert!(!out.exists(), "nothing is written for {flags:?}");
    }
    let e = assert_exit(&train(&data, &out, &["--augment", "flip,hue"]), 2);
    assert!(e.contains("--augment") && e.contains("brightness"), "{e}");
}

/// `preview`'s augmentations run the colour op after the geometric one: with flip and rotation
/// off the geometric op is a copy, so the nine images differ from the original (and from each
/// other) only through contrast and brightness, and stay within 0..255.
#[test]
fn preview_shows_contrast_and_brightness() {
    use gpucnn::cpu::augment::AugmentConfig;
    use gpucnn::data::geometry::{ColorMode, ImageSize};
    let Some(ctx) = gpucnn::gpu::test_context() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_data(&data);
    let size = ImageSize::square(16);
    let plain = gpucnn::preview::preview_images(None, &data, size, ColorMode::Rgb, 3, None)
        .unwrap()
        .remove(0)
        .0;
    let cfg = AugmentConfig {
        flip: false,
        rotate: false,
        contrast: 0.5,
        brightness: 0.5,
        ..AugmentConfig::NONE
    };
    let shown =
        gpucnn::preview::preview_images(Some(&ctx), &data, size, ColorMode::Rgb, 3, Some(cfg))
            .unwrap();
    assert_eq!(shown.len(), 9);
    for (px, title) in &shown {
        assert_eq!(px.len(), plain.len());
        assert_ne!(px, &plain, "{title} is the original");
        assert!(px.iter().all(|v| (0.0..=255.0).contains(v)), "{title}");
    }
    assert_ne!(shown[0].0, shown[1].0);
}
