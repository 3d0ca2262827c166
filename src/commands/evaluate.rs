//! `gpucnn evaluate`: judge a trained model on labelled images ([`crate::eval::evaluate`]) and
//! print the report, as a table or JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::open_gpu;
use super::output::{out, outln};
use crate::eval::evaluate::{evaluate_folder, evaluate_labels, plots_folder, write_plots};
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
    let (report, labels, probs) = evaluate_folder(&ctx, &a.model, data, a.batch_size as usize)?;
    let folder = plots_folder(&a.model, a.out.as_deref());
    let confusion = write_plots(&folder, &report, &labels, &probs)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        out!("{}", report.render());
        eprintln!("Wrote {}", confusion.display());
    }
    Ok(ExitCode::SUCCESS)
}
