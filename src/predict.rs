//! `gpucnn predict`: run a trained model on new images, with the training pipeline's
//! preprocessing (same decoder, same resize, values rounded to whole 0–255 as the loader feeds
//! them; no augmentation) and inference semantics (batch-norm moving statistics, no dropout).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::data::dataset::IMAGE_EXTENSIONS;
use crate::data::decode::{ResizeOptions, load_resized};
use crate::gpu::GpuContext;
use crate::graph::executor::TrainStep;
use crate::model::xception_mini;
use crate::train::checkpoint::{
    MODEL_JSON, ModelConfig, latest_checkpoint, load_checkpoint, read_model_json,
};

/// One image's class probabilities (in `ModelConfig::classes` order), or why it was skipped.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub path: PathBuf,
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

/// The image files named by `inputs`: files as given, folders walked recursively (image
/// extensions only, sorted).
pub fn collect_images(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut out)?;
        } else if input.is_file() {
            out.push(input.clone());
        } else {
            crate::bail_input!("{}: no such image file or folder", input.display());
        }
    }
    Ok(out)
}

/// Runs the model at `model` (see [`locate_model`]) on `images`, `batch` at a time on the GPU.
pub fn predict(
    ctx: &GpuContext,
    model: &Path,
    images: &[PathBuf],
    batch: usize,
) -> anyhow::Result<(ModelConfig, Vec<Prediction>)> {
    let (cfg, weights) = locate_model(model)?;
    let net = xception_mini(&cfg.xception_config())?;
    let step = TrainStep::for_inference(ctx, &net, batch.max(1))?;
    let ck = load_checkpoint(&weights, &step.layout)?;
    step.load_params(ctx, &ck.params);
    let resize = ResizeOptions {
        height: cfg.image_size,
        width: cfg.image_size,
        crop_to_aspect_ratio: false,
    };
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch.max(1)) {
        let mut pixels = Vec::new();
        let mut ok = Vec::new();
        for path in chunk {
            match load_resized(path, &resize) {
                Ok(v) => {
                    pixels.extend(v.iter().map(|x| x.round()));
                    ok.push(path.clone());
                }
                Err(e) => out.push(Prediction {
                    path: path.clone(),
                    result: Err(e.to_string()),
                }),
            }
        }
        if ok.is_empty() {
            continue;
        }
        let logits = step.predict_logits(ctx, &pixels)?;
        let k = logits.len() / ok.len();
        for (path, z) in ok.into_iter().zip(logits.chunks(k)) {
            out.push(Prediction {
                path,
                result: Ok(probabilities(z, cfg.multi_label)),
            });
        }
    }
    Ok((cfg, out))
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

/// The line `gpucnn predict` prints: the example's sentence for two classes, the top 3 for more;
/// for a multi-label model, every label at 50% or more.
pub fn describe(classes: &[String], probs: &[f32], multi_label: bool) -> String {
    if multi_label {
        let on: Vec<String> = classes
            .iter()
            .zip(probs)
            .filter(|(_, p)| **p >= 0.5)
            .map(|(c, p)| format!("{c} {:.2}%", 100.0 * p))
            .collect();
        return if on.is_empty() {
            "no label at 50% or more".into()
        } else {
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
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order
        .iter()
        .take(3)
        .map(|&i| format!("{} {:.2}%", classes[i], 100.0 * probs[i]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `gpucnn evaluate`: the model on every image of the class folders of `data` (all files, no
/// split), with the model's class names matched to the folder's. Returns the report and, for
/// plots, each image's true label and probabilities.
pub fn evaluate_folder(
    ctx: &GpuContext,
    model: &Path,
    data: &Path,
    batch: usize,
) -> anyhow::Result<(crate::eval::metrics::EvalReport, Vec<usize>, Vec<Vec<f32>>)> {
    use crate::data::dataset::{DatasetOptions, DirectoryDataset};
    let ds = DirectoryDataset::open(data, &DatasetOptions::default())?;
    let (cfg, _) = locate_model(model)?;
    crate::ensure_input!(
        !cfg.multi_label,
        "{}: a multi-label model; evaluate takes single-label class folders",
        model.display()
    );
    crate::ensure_input!(
        ds.class_names == cfg.classes,
        "the class folders of {} ({}) are not the model's classes ({}) from {}",
        data.display(),
        ds.class_names.join(", "),
        cfg.classes.join(", "),
        model.display()
    );
    let mut samples: Vec<_> = ds.train.iter().chain(&ds.val).cloned().collect();
    samples.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<PathBuf> = samples.iter().map(|s| s.path.clone()).collect();
    let (_, preds) = predict(ctx, model, &paths, batch)?;
    let mut labels = Vec::new();
    let mut probs = Vec::new();
    for (s, p) in samples.iter().zip(&preds) {
        if let Ok(v) = &p.result {
            labels.push(s.label);
            probs.push(v.clone());
        }
    }
    crate::ensure_input!(
        !labels.is_empty(),
        "no readable image in {}",
        data.display()
    );
    let report = crate::eval::metrics::evaluate(&cfg.classes, &labels, &probs);
    Ok((report, labels, probs))
}

/// `gpucnn evaluate --labels`: a multi-label model on the images of a labels CSV (paths
/// relative to `root`); one binary report per label (classes `not <label>`, `<label>`).
pub fn evaluate_labels(
    ctx: &GpuContext,
    model: &Path,
    csv: &Path,
    root: &Path,
    batch: usize,
) -> anyhow::Result<Vec<(String, crate::eval::metrics::EvalReport)>> {
    use crate::data::dataset::DatasetOptions;
    use crate::data::labels::LabelTable;
    let (cfg, _) = locate_model(model)?;
    crate::ensure_input!(
        cfg.multi_label,
        "{}: not a multi-label model; evaluate it with --data DIR",
        model.display()
    );
    // Every row is evaluated: a split of 1/N keeps all but one row in `train`, so take both.
    let table = LabelTable::from_csv(
        csv,
        root,
        &DatasetOptions {
            validation_split: 0.5,
            seed: 0,
        },
    )?;
    crate::ensure_input!(
        table.label_names == cfg.classes,
        "the labels of {} ({}) are not the model's ({}) from {}",
        csv.display(),
        table.label_names.join(", "),
        cfg.classes.join(", "),
        model.display()
    );
    let samples: Vec<_> = table.train.iter().chain(&table.val).cloned().collect();
    let paths: Vec<PathBuf> = samples.iter().map(|s| s.path.clone()).collect();
    let (_, preds) = predict(ctx, model, &paths, batch)?;
    let mut out = Vec::new();
    for (j, name) in cfg.classes.iter().enumerate() {
        let (mut labels, mut probs) = (Vec::new(), Vec::new());
        for (s, p) in samples.iter().zip(&preds) {
            if let Ok(v) = &p.result {
                labels.push(table.targets[s.label][j] as usize);
                probs.push(vec![1.0 - v[j], v[j]]);
            }
        }
        crate::ensure_input!(!labels.is_empty(), "no readable image in {}", csv.display());
        let names = [format!("not {name}"), name.clone()];
        out.push((
            name.clone(),
            crate::eval::metrics::evaluate(&names, &labels, &probs),
        ));
    }
    Ok(out)
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
}
