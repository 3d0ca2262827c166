//! `gpucnn evaluate`'s work: the model on every image of a labelled data set (a folder of
//! class subfolders, or a multi-label CSV), each prediction paired with its true label and
//! turned into an [`EvalReport`]; then `confusion.png` and, for two classes, `roc.png`.
//!
//! Predictions come from [`crate::predict::predict`], so evaluation sees exactly what `gpucnn
//! predict` would print for the same images.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::metrics::{EvalReport, evaluate, roc_curve};
use crate::data::dataset::{ClassSelection, DatasetOptions, DirectoryDataset};
use crate::data::labels::LabelTable;
use crate::gpu::GpuContext;
use crate::plot::confusion::write_confusion_png;
use crate::plot::roc::write_roc_png;
use crate::predict::{Prediction, locate_model, predict};

/// `gpucnn evaluate`: the model on every image of the class folders of `data` (all files, no
/// split), with the model's class names matched to the folder's. A model trained with
/// `--class-names` reads only its classes' folders, in its order (it cannot predict the
/// others). Returns the report and, for plots and `--worst`, each readable image's path, true
/// label and probabilities.
pub fn evaluate_folder(
    ctx: &GpuContext,
    model: &Path,
    data: &Path,
    batch: usize,
) -> anyhow::Result<FolderEvaluation> {
    let mut ds = DirectoryDataset::open(data, &DatasetOptions::default())?;
    let (cfg, _) = locate_model(model)?;
    if ds.class_names != cfg.classes && cfg.classes.iter().all(|c| ds.class_names.contains(c)) {
        let chosen = ClassSelection::new(cfg.classes.clone())?;
        ds = DirectoryDataset::open_selected(data, &DatasetOptions::default(), Some(&chosen))?;
    }
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
    ensure_paired(&paths, &preds)?;
    let (mut labels, mut probs, mut read) = (Vec::new(), Vec::new(), Vec::new());
    for (s, p) in samples.iter().zip(&preds) {
        if let Ok(v) = &p.result {
            labels.push(s.label);
            probs.push(v.clone());
            read.push(s.path.clone());
        }
    }
    crate::ensure_input!(
        !labels.is_empty(),
        "no readable image in {}",
        data.display()
    );
    let report = evaluate(&cfg.classes, &labels, &probs);
    Ok(FolderEvaluation {
        report,
        paths: read,
        labels,
        probs,
    })
}

/// [`evaluate_folder`]'s result: the report, and per readable image (sorted by path) its
/// path, true label and class probabilities.
pub struct FolderEvaluation {
    pub report: EvalReport,
    pub paths: Vec<PathBuf>,
    pub labels: Vec<usize>,
    pub probs: Vec<Vec<f32>>,
}

/// `gpucnn evaluate --labels`: a multi-label model on the images of a labels CSV (paths
/// relative to `root`); one binary report per label (classes `not <label>`, `<label>`).
pub fn evaluate_labels(
    ctx: &GpuContext,
    model: &Path,
    csv: &Path,
    root: &Path,
    batch: usize,
) -> anyhow::Result<Vec<(String, EvalReport)>> {
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
    ensure_paired(&paths, &preds)?;
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
        out.push((name.clone(), evaluate(&names, &labels, &probs)));
    }
    Ok(out)
}

/// Evaluation pairs each sample's label with the prediction at its position: check that
/// [`predict`] kept the order (one prediction per path, same path), as a label shifted by one
/// would silently corrupt every metric.
fn ensure_paired(paths: &[PathBuf], preds: &[Prediction]) -> anyhow::Result<()> {
    anyhow::ensure!(
        paths.len() == preds.len() && paths.iter().zip(preds).all(|(a, p)| *a == p.path),
        "internal error: predictions out of step with the images evaluated"
    );
    Ok(())
}

/// Where `gpucnn evaluate` writes its plots: `out` if given, else the run folder of `model`
/// (the folder itself, or the folder holding the `.safetensors` file).
pub fn plots_folder(model: &Path, out: Option<&Path>) -> PathBuf {
    match out {
        Some(o) => o.to_path_buf(),
        None if model.is_dir() => model.to_path_buf(),
        None => model.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
    }
}

/// Writes `confusion.png` into `out` (created if missing) and, for a two-class `report`,
/// `roc.png` of the class-1 probabilities in `probs` against `labels`; returns the confusion
/// matrix's path.
pub fn write_plots(
    out: &Path,
    report: &EvalReport,
    labels: &[usize],
    probs: &[Vec<f32>],
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create {} (--out)", out.display()))?;
    let confusion = out.join("confusion.png");
    write_confusion_png(&confusion, report)?;
    if report.class_names.len() == 2 {
        let positive: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
        let scores: Vec<f32> = probs.iter().map(|p| p[1]).collect();
        let curve = roc_curve(&positive, &scores);
        write_roc_png(out.join("roc.png"), &curve, report.auc)?;
    }
    Ok(confusion)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_go_to_out_else_to_the_models_run_folder() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        let weights = run.join("save_at_3.safetensors");
        std::fs::write(&weights, b"").unwrap();
        let elsewhere = dir.path().join("plots");
        assert_eq!(plots_folder(&run, Some(&elsewhere)), elsewhere);
        assert_eq!(plots_folder(&run, None), run);
        assert_eq!(plots_folder(&weights, None), run);
    }

    #[test]
    fn two_classes_get_a_roc_curve_more_get_only_the_matrix() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new folder");
        let names: Vec<String> = ["Cats", "Dogs"].iter().map(|s| s.to_string()).collect();
        let (labels, probs) = (
            vec![0, 1, 1],
            vec![vec![0.9, 0.1], vec![0.2, 0.8], vec![0.6, 0.4]],
        );
        let report = evaluate(&names, &labels, &probs);
        let confusion = write_plots(&out, &report, &labels, &probs).unwrap();
        assert_eq!(confusion, out.join("confusion.png"));
        assert!(confusion.is_file() && out.join("roc.png").is_file());

        let out3 = dir.path().join("three");
        let names3: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let probs3 = vec![
            vec![0.8, 0.1, 0.1],
            vec![0.1, 0.8, 0.1],
            vec![0.1, 0.1, 0.8],
        ];
        let report3 = evaluate(&names3, &[0, 1, 2], &probs3);
        write_plots(&out3, &report3, &[0, 1, 2], &probs3).unwrap();
        assert!(out3.join("confusion.png").is_file() && !out3.join("roc.png").exists());
    }
}
