//! `gpucnn evaluate`: judge a trained model on labelled images ([`crate::eval::evaluate`]) and
//! print the report, as a table or JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::open_gpu;
use super::output::{out, outln};
use crate::eval::evaluate::{evaluate_folder, evaluate_labels, plots_folder, write_plots};
use crate::eval::worst::{most_suspect, render, to_json, write_suspects_png};
use crate::gpu::AdapterOptions;

/// The flags of `gpucnn evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// A run folder (uses its best.safetensors) or a .safetensors file beside its model.json.
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// Folder with one subfolder of images per class, named as the model's classes (with
    /// --labels: the folder the CSV's paths are relative to, default the CSV's folder).
    #[arg(long, value_name = "DIR", required_unless_present = "labels")]
    pub data: Option<PathBuf>,
    /// Multi-label model: a CSV of `path,label1;label2` rows; reports each label.
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// Print the metrics as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where confusion.png and roc.png go [default: the run folder of --model].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also list the K images with the highest loss −ln p(given label): where the model is
    /// most confidently wrong, often a wrong label (confident learning). Printed after the
    /// report (in the JSON as "worst") and drawn, nine at most, into worst.png beside
    /// confusion.png, each titled "given → predicted p". Not with --labels.
    #[arg(long, value_name = "K", conflicts_with = "labels", value_parser = clap::value_parser!(u32).range(1..))]
    pub worst: Option<u32>,
    /// Images per GPU batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
}

/// Runs `gpucnn evaluate`: a multi-label model with --labels, else a folder of classes.
pub fn run(a: &EvaluateArgs, adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    match &a.labels {
        Some(csv) => run_labels(a, csv, adapter),
        None => run_folder(a, adapter),
    }
}

/// `--labels CSV`: one binary report per label, paths relative to --data or the CSV's folder.
fn run_labels(a: &EvaluateArgs, csv: &Path, adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    let root = a
        .data
        .clone()
        .unwrap_or_else(|| csv.parent().map(|p| p.to_path_buf()).unwrap_or_default());
    let ctx = open_gpu(adapter)?;
    let reports = evaluate_labels(&ctx, &a.model, csv, &root, a.batch_size as usize)?;
    if a.json {
        let per: serde_json::Map<String, serde_json::Value> = reports
            .iter()
            .map(|(n, r)| (n.clone(), r.to_json()))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "labels": per }))?
        );
    } else {
        for (name, r) in &reports {
            outln!("label {name}:\n{}", r.render());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--data DIR`: the report of every image of the class folders, and its plots.
fn run_folder(a: &EvaluateArgs, adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    let data = a
        .data
        .as_ref()
        .expect("clap requires --data without --labels");
    let ctx = open_gpu(adapter)?;
    let e = evaluate_folder(&ctx, &a.model, data, a.batch_size as usize)?;
    let folder = plots_folder(&a.model, a.out.as_deref());
    let confusion = write_plots(&folder, &e.report, &e.labels, &e.probs)?;
    let classes = &e.report.class_names;
    let worst = a
        .worst
        .map(|k| most_suspect(&e.paths, &e.labels, &e.probs, k as usize));
    let grid = folder.join("worst.png");
    if let Some(w) = &worst {
        write_suspects_png(&grid, w, classes)?;
    }
    if a.json {
        let mut json = e.report.to_json();
        if let (Some(w), Some(obj)) = (&worst, json.as_object_mut()) {
            obj.insert("worst".into(), to_json(w, classes));
        }
        outln!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        out!("{}", e.report.render());
        if let Some(w) = &worst {
            outln!();
            out!("{}", render(w, classes, data));
        }
        crate::msgln!("Wrote {}", confusion.display());
        if worst.is_some() {
            crate::msgln!("Wrote {}", grid.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
