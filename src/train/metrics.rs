//! The per-epoch metrics log, `metrics.csv` (Keras' CSVLogger, one row per epoch).
//!
//! Every append rewrites the whole file through [`write_atomic`], so after a crash the file
//! holds either the rows before the epoch or the rows with it, never a torn line. The file is
//! tiny (one short row per epoch), so rewriting costs nothing measurable.
//!
//! Losses and accuracies are written with Rust's shortest round-trip formatting (`NaN` for a
//! diverged value), `seconds` with 3 decimals and `images_per_sec` with 1. An epoch without
//! validation has empty `val_loss` and `val_accuracy` fields; [`read`] also accepts `NA`
//! (what Keras writes) and `NaN` there, all read as `None` (a NaN validation value is as
//! unplottable as a missing one).

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::atomic::{AtomicWriteError, write_atomic};

/// The header line, exactly.
pub const HEADER: &str = "epoch,loss,accuracy,val_loss,val_accuracy,seconds,images_per_sec,lr";

/// The header of files written before the `lr` column (read, and continued on `--resume`).
pub const HEADER_WITHOUT_LR: &str =
    "epoch,loss,accuracy,val_loss,val_accuracy,seconds,images_per_sec";

/// One epoch's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochMetrics {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub loss: f32,
    /// Training accuracy over the epoch.
    pub accuracy: f32,
    /// Validation loss, `None` when the epoch was not validated.
    pub val_loss: Option<f32>,
    /// Validation accuracy, `None` when the epoch was not validated.
    pub val_accuracy: Option<f32>,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
    /// Training throughput in images per second.
    pub images_per_sec: f64,
    /// The epoch's learning rate (`None` in rows of files written before the column).
    pub lr: Option<f32>,
}

impl crate::plot::curves::EpochValues for EpochMetrics {
    fn epoch(&self) -> usize {
        self.epoch
    }
    fn loss(&self) -> f32 {
        self.loss
    }
    fn accuracy(&self) -> f32 {
        self.accuracy
    }
    fn val_loss(&self) -> Option<f32> {
        self.val_loss
    }
    fn val_accuracy(&self) -> Option<f32> {
        self.val_accuracy
    }
}

impl EpochMetrics {
    /// The CSV row for this epoch (no line break).
    pub fn to_csv_row(&self) -> String {
        let opt = |v: Option<f32>| v.map(|x| x.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{:.3},{:.1},{}",
            self.epoch,
            self.loss,
            self.accuracy,
            opt(self.val_loss),
            opt(self.val_accuracy),
            self.seconds,
            self.images_per_sec,
            opt(self.lr)
        )
    }

    /// The row as one JSON object (one line of `metrics.jsonl`): the same fields and
    /// roundings as the CSV row, a value that is missing or not a finite number as `null`.
    pub fn to_json_line(&self) -> String {
        // f32 values through their shortest text, so that 0.1 stays 0.1 rather than the f64
        // nearest the f32.
        let short = |v: Option<f32>| -> serde_json::Value {
            v.filter(|x| x.is_finite())
                .and_then(|x| x.to_string().parse::<f64>().ok())
                .map_or(serde_json::Value::Null, serde_json::Value::from)
        };
        let round = |x: f64, scale: f64| -> serde_json::Value {
            if x.is_finite() {
                ((x * scale).round() / scale).into()
            } else {
                serde_json::Value::Null
            }
        };
        serde_json::json!({
            "epoch": self.epoch,
            "loss": short(Some(self.loss)),
            "accuracy": short(Some(self.accuracy)),
            "val_loss": short(self.val_loss),
            "val_accuracy": short(self.val_accuracy),
            "seconds": round(self.seconds, 1e3),
            "images_per_sec": round(self.images_per_sec, 10.0),
            "lr": short(self.lr),
        })
        .to_string()
    }
}

/// A metrics file error, naming the file (and line).
#[derive(Debug, Error)]
pub enum MetricsError {
    /// Writing failed; the previous file is intact.
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    /// The file could not be read.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Appending to `metrics.jsonl` failed (metrics.csv holds the row).
    #[error("could not append to {}: {source}", path.display())]
    Append {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a metrics CSV of this format.
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Epochs must increase row by row.
    #[error(
        "{}: epoch {epoch} appended after epoch {last}; epochs must increase",
        path.display()
    )]
    OutOfOrder {
        /// The file.
        path: PathBuf,
        /// The last epoch in the file.
        last: usize,
        /// The epoch appended.
        epoch: usize,
    },
}

/// `metrics.csv` of one run: the rows so far, mirrored on disk after every change; and beside
/// it `metrics.jsonl`, the same rows as one JSON object per line, appended as each epoch ends
/// (for `tail -f` and scripts), rewritten whole only when a log is created or resumed.
#[derive(Debug, Clone)]
pub struct MetricsCsv {
    path: PathBuf,
    rows: Vec<EpochMetrics>,
}

impl MetricsCsv {
    /// Starts a fresh log at `path` (replacing any file there) holding just the header.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, MetricsError> {
        let csv = Self {
            path: path.as_ref().to_path_buf(),
            rows: Vec::new(),
        };
        csv.flush()?;
        csv.rewrite_jsonl()?;
        Ok(csv)
    }

    /// Continues the log at `path` after resuming from epoch `epoch`: keeps the rows of epochs
    /// up to `epoch` and drops later ones (they belong to the run after the checkpoint). A
    /// missing file starts a fresh log.
    pub fn resume(path: impl AsRef<Path>, epoch: usize) -> Result<Self, MetricsError> {
        let path = path.as_ref().to_path_buf();
        let rows = match read(&path) {
            Ok(rows) => rows,
            Err(MetricsError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let csv = Self {
            path,
            rows: rows.into_iter().filter(|r| r.epoch <= epoch).collect(),
        };
        csv.flush()?;
        csv.rewrite_jsonl()?;
        Ok(csv)
    }

    /// Adds one epoch's row and rewrites the file atomically.
    pub fn append(&mut self, row: EpochMetrics) -> Result<(), MetricsError> {
        if let Some(last) = self.rows.last()
            && row.epoch <= last.epoch
        {
            return Err(MetricsError::OutOfOrder {
                path: self.path.clone(),
                last: last.epoch,
                epoch: row.epoch,
            });
        }
        self.rows.push(row);
        if let Err(e) = self.flush() {
            self.rows.pop();
            return Err(e);
        }
        self.append_jsonl(&row)
    }

    /// `metrics.jsonl`, beside `metrics.csv`.
    pub fn jsonl_path(&self) -> PathBuf {
        self.path.with_file_name("metrics.jsonl")
    }

    fn rewrite_jsonl(&self) -> Result<(), MetricsError> {
        let text: String = self.rows.iter().map(|r| r.to_json_line() + "\n").collect();
        write_atomic(self.jsonl_path(), text.as_bytes())?;
        Ok(())
    }

    /// One line appended and synced (a crash leaves at most a torn last line, which the next
    /// `--resume` rewrites from metrics.csv).
    fn append_jsonl(&self, row: &EpochMetrics) -> Result<(), MetricsError> {
        use std::io::Write;
        let path = self.jsonl_path();
        let err = |source| MetricsError::Append {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(err)?;
        f.write_all((row.to_json_line() + "\n").as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(err)
    }

    /// The rows so far, in epoch order.
    pub fn rows(&self) -> &[EpochMetrics] {
        &self.rows
    }

    /// The file this log writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn flush(&self) -> Result<(), MetricsError> {
        write_atomic(&self.path, render(&self.rows).as_bytes())?;
        Ok(())
    }
}

/// The whole file's text: header and one line per row, each ending in `\n`.
pub fn render(rows: &[EpochMetrics]) -> String {
    let mut s = String::with_capacity(HEADER.len() + 1 + rows.len() * 64);
    s.push_str(HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&r.to_csv_row());
        s.push('\n');
    }
    s
}

/// Reads a metrics CSV written by [`MetricsCsv`]; errors name the file and line.
pub fn read(path: impl AsRef<Path>) -> Result<Vec<EpochMetrics>, MetricsError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| MetricsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let err = |line: usize, reason: String| MetricsError::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text.lines().enumerate();
    let fields = match lines.next() {
        Some((_, h)) if h.trim_end() == HEADER => 8,
        Some((_, h)) if h.trim_end() == HEADER_WITHOUT_LR => 7,
        Some((_, h)) => {
            return Err(err(
                1,
                format!("header is '{h}', expected '{HEADER}': not a gpucnn metrics file"),
            ));
        }
        None => return Err(err(1, "empty file, expected the header".into())),
    };
    let mut rows: Vec<EpochMetrics> = Vec::new();
    for (i, line) in lines {
        let n = i + 1;
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != fields {
            return Err(err(n, format!("{} fields, expected {fields}", f.len())));
        }
        let bad = |k: usize| err(n, format!("{} '{}' is not a number", header_field(k), f[k]));
        // f32 fields are parsed as f32: the shortest round-trip text gives back the exact value.
        let num32 = |k: usize| f[k].trim().parse::<f32>().map_err(|_| bad(k));
        let num64 = |k: usize| f[k].trim().parse::<f64>().map_err(|_| bad(k));
        let opt = |k: usize| -> Result<Option<f32>, MetricsError> {
            match f[k].trim() {
                "" | "NA" | "nan" | "NaN" => Ok(None),
                _ => num32(k).map(Some),
            }
        };
        let epoch: usize = f[0]
            .trim()
            .parse()
            .map_err(|_| err(n, format!("epoch '{}' is not a whole number", f[0])))?;
        if let Some(last) = rows.last()
            && epoch <= last.epoch
        {
            return Err(err(
                n,
                format!(
                    "epoch {epoch} after epoch {}; epochs must increase",
                    last.epoch
                ),
            ));
        }
        rows.push(EpochMetrics {
            epoch,
            loss: num32(1)?,
            accuracy: num32(2)?,
            val_loss: opt(3)?,
            val_accuracy: opt(4)?,
            seconds: num64(5)?,
            images_per_sec: num64(6)?,
            lr: if fields == 8 { opt(7)? } else { None },
        });
    }
    Ok(rows)
}

fn header_field(k: usize) -> &'static str {
    HEADER.split(',').nth(k).unwrap_or("field")
}
