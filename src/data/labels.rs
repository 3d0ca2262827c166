//! Multi-label datasets: `gpucnn train --labels labels.csv`, rows `path,label1;label2`.
//!
//! Paths are relative to the image root (`--data`, by default the CSV's folder) unless
//! absolute. An optional first row `path,labels` is a header. Label names are the sorted set of
//! every label seen; an image may have none. The split is the directory dataset's: the rows are
//! shuffled with the seed and the last int(split·N) go to validation. Each [`Sample`]'s `label`
//! is its row in [`LabelTable::targets`], the multi-hot vector the loss trains against.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::dataset::{DatasetOptions, Sample, epoch_order};

/// A parsed labels CSV, split into training and validation samples.
#[derive(Debug, Clone)]
pub struct LabelTable {
    /// Sorted label names.
    pub label_names: Vec<String>,
    /// Multi-hot targets, one row per sample index (`Sample::label`), [labels] f32 in {0, 1}.
    pub targets: Vec<Vec<f32>>,
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
}

/// Why a labels CSV cannot be used; each names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("cannot read the labels file {path} (--labels): {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Row {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path} (--labels) has no rows: write one `path,label1;label2` row per image")]
    Empty { path: PathBuf },
    #[error("--validation-split must be strictly between 0 and 1, got {0}")]
    Split(f32),
}

impl LabelTable {
    /// Reads `csv` (see the module doc); `root` is the folder relative paths start from.
    pub fn from_csv(csv: &Path, root: &Path, opts: &DatasetOptions) -> Result<Self, LabelsError> {
        if !(opts.validation_split > 0.0 && opts.validation_split < 1.0) {
            return Err(LabelsError::Split(opts.validation_split));
        }
        let text = std::fs::read_to_string(csv).map_err(|source| LabelsError::Read {
            path: csv.into(),
            source,
        })?;
        let mut rows: Vec<(PathBuf, Vec<String>)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || (i == 0 && line.to_ascii_lowercase().starts_with("path,")) {
                continue;
            }
            let (path, labels) = line.split_once(',').ok_or_else(|| LabelsError::Row {
                path: csv.into(),
                line: i + 1,
                message: format!("expected `path,label1;label2`, got `{line}`"),
            })?;
            let path = path.trim();
            if path.is_empty() {
                return Err(LabelsError::Row {
                    path: csv.into(),
                    line: i + 1,
                    message: "empty image path".into(),
                });
            }
            let p = Path::new(path);
            let full = if p.is_absolute() {
                p.to_path_buf()
            } else {
                root.join(p)
            };
            let labels = labels
                .split(';')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            rows.push((full, labels));
        }
        if rows.is_empty() {
            return Err(LabelsError::Empty { path: csv.into() });
        }
        let names: BTreeSet<&String> = rows.iter().flat_map(|(_, l)| l).collect();
        let label_names: Vec<String> = names.into_iter().cloned().collect();
        let targets: Vec<Vec<f32>> = rows
            .iter()
            .map(|(_, l)| {
                label_names
                    .iter()
                    .map(|n| if l.contains(n) { 1.0 } else { 0.0 })
                    .collect()
            })
            .collect();
        // The split: rows shuffled with the seed (the dataset's shuffle), the last int(split·N)
        // to validation.
        let n = rows.len();
        let order = epoch_order(n, 0, opts.seed);
        let n_val = ((opts.validation_split as f64) * n as f64) as usize;
        let samples: Vec<Sample> = order
            .iter()
            .map(|&i| Sample {
                path: rows[i].0.clone(),
                label: i,
            })
            .collect();
        let (train, val) = samples.split_at(n - n_val);
        Ok(Self {
            label_names,
            targets,
            train: train.to_vec(),
            val: val.to_vec(),
        })
    }

    /// The targets of a batch, flattened [n, labels], from its samples' row indices.
    pub fn batch_targets(&self, rows: &[u32]) -> Vec<f32> {
        rows.iter()
            .flat_map(|&r| self.targets[r as usize].iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_builds_multi_hot_targets_and_splits() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("labels.csv");
        std::fs::write(
            &csv,
            "path,labels\na.png,red;disc\nb.png,red\nc.png,\nd.png,disc\ne.png,disc;red\n",
        )
        .unwrap();
        let t = LabelTable::from_csv(
            &csv,
            dir.path(),
            &DatasetOptions {
                validation_split: 0.4,
                seed: 1,
            },
        )
        .unwrap();
        assert_eq!(t.label_names, vec!["disc", "red"]);
        assert_eq!(
            t.targets,
            vec![
                vec![1.0, 1.0],
                vec![0.0, 1.0],
                vec![0.0, 0.0],
                vec![1.0, 0.0],
                vec![1.0, 1.0]
            ]
        );
        assert_eq!((t.train.len(), t.val.len()), (3, 2));
        let mut all: Vec<usize> = t.train.iter().chain(&t.val).map(|s| s.label).collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
        assert_eq!(t.batch_targets(&[1, 3]), vec![0.0, 1.0, 1.0, 0.0]);
        assert!(t.train.iter().all(|s| s.path.starts_with(dir.path())));
    }

    #[test]
    fn bad_rows_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("l.csv");
        std::fs::write(&csv, "a.png,x\nno-comma-here\n").unwrap();
        let e = LabelTable::from_csv(&csv, dir.path(), &DatasetOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("l.csv:2"), "{e}");
        std::fs::write(&csv, "path,labels\n").unwrap();
        let e = LabelTable::from_csv(&csv, dir.path(), &DatasetOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no rows"), "{e}");
    }
}
