//! `gpucnn predict`: run a trained model on new images, with the training pipeline's
//! preprocessing (same decoder, same resize, the centre crop when the model was trained with
//! `--crop-to-aspect-ratio`, the colour mode of model.json, values rounded to whole 0–255 as
//! the loader feeds them; no augmentation) and inference semantics (batch-norm moving statistics, no dropout).
//!
//! Before running, the weights are checked against `model.json`: the description stored in the
//! checkpoint must be the same model (an edited `image_size` would silently feed the network
//! other images than it learned from), and every weight must be finite (a diverged training
//! saves NaN weights whose outputs mean nothing).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::data::dataset::image_files;
use crate::data::decode::{ResizeOptions, load_resized, quantize_u8};
use crate::gpu::GpuContext;
use crate::graph::ParamLayout;
use crate::graph::executor::TrainStep;
use crate::model::xception_mini;
use crate::train::checkpoint::{
    MODEL_JSON, ModelConfig, latest_checkpoint, load_checkpoint, read_model_json,
};

/// One image's class probabilities (in `ModelConfig::classes` order), or why it was skipped.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The image file.
    pub path: PathBuf,
    /// Its probabilities, or the reason it could not be read.
    pub result: Result<Vec<f32>, String>,
}

/// Finds the model description and weights: a run folder (its `best.safetensors`, else the
/// last `save_at_{epoch}.safetensors`) or a `.safetensors` file beside its `model.json`.
pub fn locate_model(model: &Path) -> anyhow::Result<(ModelConfig, PathBuf)> {
    let (dir, weights) = if model.is_dir() {
        let best = model.join("best.safetensors");
        let weights = if best.is_file() {
            best
        } else {
            latest_checkpoint(model)?.map(|(_, p)| p).with_context(|| {
                format!(
                    "{} holds no best.safetensors or save_at_N.safetensors (--model)",
                    model.display()
                )
            })?
        };
        (model.to_path_buf(), weights)
    } else if model.is_file() {
        (
            model.parent().unwrap_or(Path::new(".")).to_path_buf(),
            model.to_path_buf(),
        )
    } else {
        crate::bail_input!(
            "--model {}: no such run folder or .safetensors file",
            model.display()
        );
    };
    let json = dir.join(MODEL_JSON);
    let cfg =
        read_model_json(&json).with_context(|| format!("reading {} (--model)", json.display()))?;
    Ok((cfg, weights))
}

/// The model description stored in the metadata of the safetensors file `weights` (key
/// `model`), or `None` when the file has none (written by another tool). Reads only the header.
pub fn stored_model_config(weights: &Path) -> anyhow::Result<Option<ModelConfig>> {
    // safetensors' own limit on the header's size.
    const MAX_HEADER: u64 = 100 * 1024 * 1024;
    let mut file = std::fs::File::open(weights)
        .with_context(|| format!("cannot read {} (--model)", weights.display()))?;
    let mut len = [0u8; 8];
    let header = file.read_exact(&mut len).ok().and_then(|()| {
        let n = u64::from_le_bytes(len);
        let mut h = Vec::new();
        let read = (&mut file).take(n).read_to_end(&mut h);
        (n <= MAX_HEADER && read.is_ok_and(|r| r as u64 == n)).then_some(h)
    });
    let not_st = || {
        crate::error::bad_input(format!(
            "{} is not a safetensors file (--model); pass a run folder or a \
             .safetensors file written by gpucnn train",
            weights.display()
        ))
    };
    let header: serde_json::Value = header
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(not_st)?;
    let Some(json) = header["__metadata__"]["model"].as_str() else {
        return Ok(None);
    };
    let cfg = serde_json::from_str(json).map_err(|e| {
        crate::error::bad_input(format!(
            "{}: its metadata `model` is not a model description ({e}) (--model)",
            weights.display()
        ))
    })?;
    Ok(Some(cfg))
}

/// Fails (bad input) when `json_cfg`, read from `json`, describes another model than `stored`,
/// the description in the checkpoint `weights`; the message names both files and every field
/// that differs ([`ModelConfig::differences_with`]). The gpucnn version is not compared.
pub fn ensure_same_model(
    json: &Path,
    json_cfg: &ModelConfig,
    weights: &Path,
    stored: &ModelConfig,
) -> anyhow::Result<()> {
    let diffs = stored.differences_with(json_cfg, |field, ckpt, json, _| {
        format!("{field} is {json} in {MODEL_JSON} but {ckpt} in the checkpoint")
    });
    crate::ensure_input!(
        diffs.is_empty(),
        "{} does not describe the model whose weights are in {}: {}. The model.json was edited \
         or belongs to another run: restore the run's own model.json (the checkpoint was \
         trained as {}), or pass --model the checkpoint that goes with it",
        json.display(),
        weights.display(),
        diffs.join("; "),
        stored.summary()
    );
    Ok(())
}

/// Fails (run-time failure, exit 1) when a weight of `params` is NaN or infinite, naming
/// `weights` and the first such tensor: a diverged training saves such weights, and every
/// output of the model would be NaN.
pub fn ensure_finite_weights(
    weights: &Path,
    layout: &ParamLayout,
    params: &[f32],
) -> anyhow::Result<()> {
    for slot in &layout.slots {
        let values = &params[slot.offset..slot.offset + slot.len];
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            let count = values.iter().filter(|v| !v.is_finite()).count();
            anyhow::bail!(
                "the model's outputs are not finite: {} holds {bad} in tensor '{}' ({count} \
                 of its {} values are NaN or infinite). The training that wrote it diverged \
                 (too high a --lr?): train again with a lower --lr, or use an earlier \
                 save_at_N.safetensors whose weights are finite",
                weights.display(),
                slot.name,
                values.len()
            );
        }
    }
    Ok(())
}

/// The image files named by `inputs`: files as given, folders walked recursively by
/// [`image_files`] (image extensions only, sorted; symlink loops walked once; FIFOs, sockets
/// and devices never listed).
pub fn collect_images(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        let Ok(meta) = std::fs::metadata(input) else {
            crate::bail_input!("{}: no such image file or folder", input.display());
        };
        if meta.is_dir() {
            out.extend(image_files(input)?);
        } else if meta.is_file() {
            out.push(input.clone());
        } else {
            // Opening a FIFO for reading blocks until a writer comes: never try.
            crate::bail_input!(
                "{}: not a regular file or folder (a FIFO, socket or device): pass image files \
                 or folders of them",
                input.display()
            );
        }
    }
    Ok(out)
}

/// Runs the model at `model` (see [`locate_model`]) on `images`, `batch` at a time on the GPU.
/// The predictions are in the order of `images`, one per image, unreadable ones included.
///
/// Refuses (bad input) a `model.json` that does not describe the checkpoint's model, and fails
/// (exit 1) on weights or outputs that are not finite.
pub fn predict(
    ctx: &GpuContext,
    model: &Path,
    images: &[PathBuf],
    batch: usize,
) -> anyhow::Result<(ModelConfig, Vec<Prediction>)> {
    let (cfg, weights) = locate_model(model)?;
    if let Some(stored) = stored_model_config(&weights)? {
        let json = weights.parent().unwrap_or(Path::new(".")).join(MODEL_JSON);
        ensure_same_model(&json, &cfg, &weights, &stored)?;
    }
    let net = xception_mini(&cfg.xception_config())?;
    let step = TrainStep::for_inference(ctx, &net, batch.max(1))?;
    let ck = load_checkpoint(&weights, &step.layout)?;
    ensure_finite_weights(&weights, &step.layout, &ck.params)?;
    step.load_params(ctx, &ck.params);
    let resize = ResizeOptions {
        height: cfg.image_size.height,
        width: cfg.image_size.width,
        crop_to_aspect_ratio: cfg.crop_to_aspect_ratio,
        // Whatever a file holds, the model gets the colour mode it was trained on: a gray
        // file is replicated for an RGB model, a colour file converted for a grayscale one.
        color_mode: cfg.color_mode,
    };
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch.max(1)) {
        let mut pixels = Vec::new();
        let mut results: Vec<Result<Vec<f32>, String>> = Vec::with_capacity(chunk.len());
        let mut readable = Vec::new();
        for (i, path) in chunk.iter().enumerate() {
            match load_resized(path, &resize) {
                Ok(v) => {
                    // Rounded to whole values as the loader feeds training (and uploaded as
                    // bytes, widened exactly on the GPU).
                    let at = pixels.len();
                    pixels.resize(at + v.len(), 0);
                    quantize_u8(&v, &mut pixels[at..]);
                    readable.push(i);
                    results.push(Ok(Vec::new()));
                }
                Err(e) => results.push(Err(e.to_string())),
            }
        }
        if !readable.is_empty() {
            let logits = step.predict_logits_u8(ctx, &pixels)?;
            let k = logits.len() / readable.len();
            for (&i, z) in readable.iter().zip(logits.chunks(k)) {
                // Finite weights can still overflow; a NaN would print as `NaN%`.
                anyhow::ensure!(
                    z.iter().all(|v| v.is_finite()),
                    "the model's outputs are not finite for {} (logits {z:?}): the weights in {} \
                     overflow. Train again with a lower --lr",
                    chunk[i].display(),
                    weights.display()
                );
                results[i] = Ok(probabilities(z, cfg.multi_label));
            }
        }
        out.extend(chunk.iter().zip(results).map(|(path, result)| Prediction {
            path: path.clone(),
            result,
        }));
    }
    Ok((cfg, out))
}

/// [`predict`] for a library user, with a typed error: runs a trained model on `images` as
/// `gpucnn predict` does, `batch` at a time (at least 1). `model` is a run folder (its
/// best.safetensors) or a .safetensors file beside its model.json. Returns the model's
/// description and one [`Prediction`] per image, in order; an unreadable image is an `Err` in
/// its own result, not a failure of the call. Fails with
/// [`crate::train::api::ErrorKind::BadInput`] when the model is missing or does not match its
/// model.json.
pub fn classify(
    ctx: &GpuContext,
    model: &Path,
    images: &[PathBuf],
    batch: usize,
) -> Result<(ModelConfig, Vec<Prediction>), crate::train::api::Error> {
    predict(ctx, model, images, batch.max(1)).map_err(crate::train::api::Error::new)
}

/// Class probabilities from logits: multi-label → one sigmoid per label; one sigmoid output →
/// [1 − p, p]; K outputs → softmax.
pub fn probabilities(z: &[f32], multi_label: bool) -> Vec<f32> {
    if multi_label {
        return z.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect();
    }
    if z.len() == 1 {
        let p = 1.0 / (1.0 + (-z[0]).exp());
        return vec![1.0 - p, p];
    }
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f32> = z.iter().map(|&v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// The probability at or over which a multi-label model reports a label as present, unless
/// `--threshold` says otherwise (Keras' `binary_accuracy` threshold).
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// How each image's result is worded (`gpucnn predict --top-k` and `--threshold`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// List the K most probable classes, largest first (clamped to the class count); `None`
    /// keeps the default wording of [`describe`].
    pub top_k: Option<usize>,
    /// Multi-label models: a label whose probability is at or over this is present.
    pub threshold: f32,
}

impl Default for Report {
    fn default() -> Self {
        Self {
            top_k: None,
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

/// The indices of the `k` largest of `probs`, largest first; at most `probs.len()` of them
/// (a `k` over the class count lists every class). Equal probabilities keep class order, so
/// the first is the argmax `evaluate` takes.
pub fn ranked(probs: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    // A stable sort: ties stay in class order.
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order.truncate(k);
    order
}

/// The indices of the labels whose probability is at or over `threshold`, in class order.
pub fn present(probs: &[f32], threshold: f32) -> Vec<usize> {
    (0..probs.len())
        .filter(|&i| probs[i] >= threshold)
        .collect()
}

/// `threshold` as a percentage without trailing zeros: 0.5 → "50", 0.125 → "12.5".
fn percent(threshold: f32) -> String {
    let s = format!("{:.4}", 100.0 * f64::from(threshold));
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The line `gpucnn predict` prints: the example's sentence for two classes, the top 3 for more;
/// for a multi-label model, every label at 50% or more. [`describe_with`] the default
/// [`Report`].
pub fn describe(classes: &[String], probs: &[f32], multi_label: bool) -> String {
    describe_with(classes, probs, multi_label, &Report::default())
}

/// The line `gpucnn predict` prints for one image under `report`:
/// - no `top_k`: [`describe`]'s wording, a multi-label model's labels at or over
///   `report.threshold` in class order (`labels: a 50.00%, b 100.00%`);
/// - `top_k` K: the K most probable classes, largest first (`b 65.72%, c 24.18%`); for a
///   multi-label model each label at or over the threshold is marked `(present)`.
pub fn describe_with(
    classes: &[String],
    probs: &[f32],
    multi_label: bool,
    report: &Report,
) -> String {
    let entry = |i: usize| format!("{} {:.2}%", classes[i], 100.0 * probs[i]);
    if let Some(k) = report.top_k {
        return ranked(probs, k)
            .into_iter()
            .map(|i| {
                if multi_label && probs[i] >= report.threshold {
                    format!("{} (present)", entry(i))
                } else {
                    entry(i)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
    }
    if multi_label {
        let on = present(probs, report.threshold);
        return if on.is_empty() {
            format!("no label at {}% or more", percent(report.threshold))
        } else {
            let on: Vec<String> = on.into_iter().map(entry).collect();
            format!("labels: {}", on.join(", "))
        };
    }
    if probs.len() == 2 {
        return format!(
            "This image is {:.2}% {} and {:.2}% {}.",
            100.0 * probs[0],
            classes[0],
            100.0 * probs[1],
            classes[1]
        );
    }
    ranked(probs, 3)
        .into_iter()
        .map(entry)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_and_sentences() {
        let p = probabilities(&[0.0], false);
        assert_eq!(p, vec![0.5, 0.5]);
        let m = probabilities(&[0.0, 10.0, -10.0], true);
        assert!((m[0] - 0.5).abs() < 1e-6 && m[1] > 0.99 && m[2] < 0.01);
        let abc: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(describe(&abc, &m, true), "labels: a 50.00%, b 100.00%");
        assert_eq!(
            describe(&abc, &[0.1, 0.2, 0.3], true),
            "no label at 50% or more"
        );
        let classes: Vec<String> = ["Cats", "Dogs"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            describe(&classes, &[0.943, 0.057], false),
            "This image is 94.30% Cats and 5.70% Dogs."
        );
        let p = probabilities(&[1.0, 3.0, 2.0, -1.0], false);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        // softmax([1, 3, 2, −1]) = [0.0889, 0.6572, 0.2418, 0.0120]: the top 3, largest first.
        assert_eq!(describe(&names, &p, false), "b 65.72%, c 24.18%, a 8.89%");
    }

    #[test]
    fn top_k_and_threshold_wording() {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let p = [0.1, 0.5, 0.3, 0.1];
        let top = |k| Report {
            top_k: Some(k),
            ..Report::default()
        };
        assert_eq!(describe_with(&names, &p, false, &top(1)), "b 50.00%");
        // Ties keep class order; a K over the class count lists every class.
        assert_eq!(
            describe_with(&names, &p, false, &top(9)),
            "b 50.00%, c 30.00%, a 10.00%, d 10.00%"
        );
        assert_eq!(ranked(&p, 9), vec![1, 2, 0, 3]);
        // Two classes with --top-k: the list, not the sentence.
        let ab: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            describe_with(&ab, &[0.25, 0.75], false, &top(2)),
            "b 75.00%, a 25.00%"
        );
        // Multi-label: the threshold decides which labels are present.
        let at = |threshold| Report {
            top_k: None,
            threshold,
        };
        assert_eq!(
            describe_with(&names, &p, true, &at(0.3)),
            "labels: b 50.00%, c 30.00%"
        );
        assert_eq!(
            describe_with(&names, &p, true, &at(0.7)),
            "no label at 70% or more"
        );
        assert_eq!(
            describe_with(&names, &[0.1, 0.05], true, &at(0.125)),
            "no label at 12.5% or more"
        );
        let both = Report {
            top_k: Some(3),
            threshold: 0.3,
        };
        assert_eq!(
            describe_with(&names, &p, true, &both),
            "b 50.00% (present), c 30.00% (present), a 10.00%"
        );
        assert_eq!(present(&p, 0.3), vec![1, 2]);
    }
}
