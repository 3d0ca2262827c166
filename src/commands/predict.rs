//! `gpucnn predict`: one line per image on stdout, and optionally every class's probability in
//! a CSV. The model and the preprocessing are [`crate::predict`]'s.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::output::outln;
use super::{open_gpu, success_unless};
use crate::gpu::AdapterOptions;
use crate::predict::{Prediction, collect_images, describe, predict};
use crate::train::checkpoint::ModelConfig;

/// The flags of `gpucnn predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// A run folder (uses its best.safetensors) or a .safetensors file beside its model.json.
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,
    /// Image files and/or folders (walked recursively).
    #[arg(required = true, value_name = "IMAGE_OR_DIR")]
    pub inputs: Vec<PathBuf>,
    /// Also write one CSV row per image: path, then each class's probability (RFC 4180: a
    /// path holding a comma or a quote is quoted).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Images per GPU batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
}

/// Runs `gpucnn predict`. Unreadable images are named on stderr and skipped; the exit status
/// is then 1, after every other image was predicted and the --csv written.
pub fn run(a: &PredictArgs, adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    let images = collect_images(&a.inputs)?;
    if images.is_empty() {
        crate::bail_input!("no image files (.jpg .jpeg .png .bmp .gif .webp) in the inputs given");
    }
    let ctx = open_gpu(adapter)?;
    let (cfg, preds) = predict(&ctx, &a.model, &images, a.batch_size as usize)?;
    let mut failed = 0;
    for p in &preds {
        match &p.result {
            Ok(probs) => outln!(
                "{}: {}",
                p.path.display(),
                describe(&cfg.classes, probs, cfg.multi_label)
            ),
            Err(e) => {
                failed += 1;
                eprintln!("{}: skipped: {e}", p.path.display());
            }
        }
    }
    if let Some(path) = &a.csv {
        crate::atomic::write_atomic(path, &csv_rows(&cfg, &preds)?)?;
    }
    Ok(success_unless(failed))
}

/// The --csv file: a header `path,<class>…`, then one row per readable image with each class's
/// probability to 6 decimals. RFC 4180 via the csv crate: a path or class name holding a comma
/// or a quote is quoted, so every row has one path and one cell per class.
pub fn csv_rows(cfg: &ModelConfig, preds: &[Prediction]) -> anyhow::Result<Vec<u8>> {
    let mut rows = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["path".to_string()];
    header.extend(cfg.classes.iter().cloned());
    rows.write_record(&header)?;
    for p in preds {
        if let Ok(probs) = &p.result {
            let mut row = vec![p.path.to_string_lossy().into_owned()];
            row.extend(probs.iter().map(|v| format!("{v:.6}")));
            rows.write_record(&row)?;
        }
    }
    rows.into_inner().context("formatting the --csv rows")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::XceptionConfig;

    #[test]
    fn csv_quotes_commas_and_skips_unreadable_images() {
        let classes = vec!["Chats, tigrés".to_string(), "dogs".to_string()];
        let cfg = ModelConfig::xception_mini(&XceptionConfig::default(), classes);
        let preds = [
            Prediction {
                path: "a,b.png".into(),
                result: Ok(vec![0.25, 0.75]),
            },
            Prediction {
                path: "broken.png".into(),
                result: Err("not an image".into()),
            },
            Prediction {
                path: "c.png".into(),
                result: Ok(vec![1.0, 0.0]),
            },
        ];
        let text = String::from_utf8(csv_rows(&cfg, &preds).unwrap()).unwrap();
        assert_eq!(
            text,
            "path,\"Chats, tigrés\",dogs\n\"a,b.png\",0.250000,0.750000\nc.png,1.000000,0.000000\n"
        );
    }
}
