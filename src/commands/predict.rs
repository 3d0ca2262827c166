//! `gpucnn predict`: one line per image on stdout (text, or a JSON object with `--json`), and
//! optionally every class's probability in a CSV. The model and the preprocessing are
//! [`crate::predict`]'s.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::output::outln;
use super::{open_gpu, success_unless};
use crate::gpu::AdapterOptions;
use crate::predict::{
    DEFAULT_THRESHOLD, Prediction, Report, collect_images, describe_with, locate_model, predict,
    present, ranked,
};
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
    /// Print one JSON object per image, one per line (JSON Lines), instead of the sentences:
    /// {"path", "probabilities": {class: p, ...} in class order, "top_class",
    /// "top_probability"}; with --top-k also "top_k": [{"class", "probability"}, ...], largest
    /// first; for a multi-label model also "threshold" and "present" (the labels at or over
    /// it, in class order). An unreadable image is {"path", "error"} (the exit status is then
    /// 1). Paths that are not UTF-8 are written lossily.
    #[arg(long)]
    pub json: bool,
    /// List the K most probable classes, largest first, in the text and (as "top_k") in the
    /// JSON. A K over the model's class count lists every class. Without it: the sentence for
    /// two classes, the top 3 for more, the labels present for a multi-label model.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub top_k: Option<u32>,
    /// Multi-label models only: report a label as present when its probability is at or over
    /// T (0 < T < 1) [default: 0.5].
    #[arg(long, value_name = "T", value_parser = parse_threshold)]
    pub threshold: Option<f32>,
}

/// `--threshold`: a probability strictly between 0 and 1 (at 0 or 1 every label, or none,
/// would be present whatever the image).
fn parse_threshold(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(t) if t > 0.0 && t < 1.0 => Ok(t),
        _ => Err("expected a probability strictly between 0 and 1, such as 0.7".into()),
    }
}

/// Runs `gpucnn predict`. Unreadable images are named on stderr and skipped; the exit status
/// is then 1, after every other image was predicted and the --csv written.
pub fn run(a: &PredictArgs, adapter: &AdapterOptions) -> anyhow::Result<ExitCode> {
    if a.threshold.is_some() {
        // Refused before any image is read or the GPU opened.
        let (cfg, _) = locate_model(&a.model)?;
        crate::ensure_input!(
            cfg.multi_label,
            "--threshold applies to multi-label models (trained with --labels), and the model \
             at {} is single-label (classes {}): leave --threshold out, or use --top-k to list \
             the most probable classes",
            a.model.display(),
            cfg.classes.join(", ")
        );
    }
    let images = collect_images(&a.inputs)?;
    if images.is_empty() {
        crate::bail_input!("no image files (.jpg .jpeg .png .bmp .gif .webp) in the inputs given");
    }
    let ctx = open_gpu(adapter)?;
    let (cfg, preds) = predict(&ctx, &a.model, &images, a.batch_size as usize)?;
    let report = Report {
        top_k: a.top_k.map(|k| k as usize),
        threshold: a.threshold.unwrap_or(DEFAULT_THRESHOLD),
    };
    let mut failed = 0;
    for p in &preds {
        if a.json {
            outln!("{}", json_line(&cfg, p, &report)?);
        }
        match &p.result {
            Ok(probs) => {
                if !a.json {
                    outln!(
                        "{}: {}",
                        p.path.display(),
                        describe_with(&cfg.classes, probs, cfg.multi_label, &report)
                    );
                }
            }
            Err(e) => {
                failed += 1;
                crate::msgln!("{}: skipped: {e}", p.path.display());
            }
        }
    }
    if let Some(path) = &a.csv {
        crate::atomic::write_atomic(path, &csv_rows(&cfg, &preds)?)?;
    }
    Ok(success_unless(failed))
}

/// A class name and its probability, in `--json`'s "top_k".
#[derive(serde::Serialize)]
struct Ranked<'a> {
    class: &'a str,
    probability: f32,
}

/// Every class's probability as one JSON object keyed by class name, in class order (a
/// `serde_json::Map` would sort the names).
struct ByClass<'a>(&'a [String], &'a [f32]);

impl serde::Serialize for ByClass<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().zip(self.1))
    }
}

/// `--json`'s object for a readable image.
#[derive(serde::Serialize)]
struct JsonPrediction<'a> {
    path: &'a str,
    probabilities: ByClass<'a>,
    top_class: &'a str,
    top_probability: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<Vec<Ranked<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    present: Option<Vec<&'a str>>,
}

/// `--json`'s object for an unreadable image.
#[derive(serde::Serialize)]
struct JsonError<'a> {
    path: &'a str,
    error: &'a str,
}

/// One line of `--json` (JSON Lines) for `p`: see [`PredictArgs::json`] for its fields.
/// Probabilities are written as the shortest decimal that reads back as the same f32.
pub fn json_line(cfg: &ModelConfig, p: &Prediction, report: &Report) -> anyhow::Result<String> {
    let path = p.path.to_string_lossy();
    let line = match &p.result {
        Err(error) => serde_json::to_string(&JsonError { path: &path, error }),
        Ok(probs) => {
            let classes = &cfg.classes;
            let entry = |i: usize| Ranked {
                class: &classes[i],
                probability: probs[i],
            };
            let top = entry(ranked(probs, 1)[0]);
            let ml = cfg.multi_label;
            serde_json::to_string(&JsonPrediction {
                path: &path,
                probabilities: ByClass(classes, probs),
                top_class: top.class,
                top_probability: top.probability,
                top_k: report
                    .top_k
                    .map(|k| ranked(probs, k).into_iter().map(entry).collect()),
                threshold: ml.then_some(report.threshold),
                present: ml.then(|| {
                    present(probs, report.threshold)
                        .into_iter()
                        .map(|i| classes[i].as_str())
                        .collect()
                }),
            })
        }
    };
    line.context("formatting a --json line")
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

    #[test]
    fn json_lines_keep_class_order_and_name_errors() {
        let classes = vec!["zebra".to_string(), "ant".to_string(), "moth".to_string()];
        let mut cfg = ModelConfig::xception_mini(&XceptionConfig::default(), classes);
        let ok = Prediction {
            path: "x/1.png".into(),
            result: Ok(vec![0.25, 0.125, 0.625]),
        };
        let line = json_line(&cfg, &ok, &Report::default()).unwrap();
        assert_eq!(
            line,
            r#"{"path":"x/1.png","probabilities":{"zebra":0.25,"ant":0.125,"moth":0.625},"top_class":"moth","top_probability":0.625}"#
        );
        let top2 = Report {
            top_k: Some(2),
            ..Report::default()
        };
        let v: serde_json::Value =
            serde_json::from_str(&json_line(&cfg, &ok, &top2).unwrap()).unwrap();
        assert_eq!(
            v["top_k"],
            serde_json::json!([
                {"class": "moth", "probability": 0.625},
                {"class": "zebra", "probability": 0.25}
            ])
        );
        cfg.multi_label = true;
        let at = Report {
            top_k: None,
            threshold: 0.25,
        };
        let v: serde_json::Value =
            serde_json::from_str(&json_line(&cfg, &ok, &at).unwrap()).unwrap();
        assert_eq!(v["threshold"], 0.25);
        assert_eq!(v["present"], serde_json::json!(["zebra", "moth"]));
        let bad = Prediction {
            path: "say \"hi\".png".into(),
            result: Err("not an image".into()),
        };
        assert_eq!(
            json_line(&cfg, &bad, &at).unwrap(),
            r#"{"path":"say \"hi\".png","error":"not an image"}"#
        );
    }
}
