//! Multi-label datasets: `gpucnn train --labels labels.csv`, rows `path,label1;label2`.
//!
//! The file is CSV (RFC 4180, read with the `csv` crate): a path holding a comma or a quote is
//! written quoted (`"a,b.png",red`), a leading UTF-8 byte-order mark is ignored, cells are
//! trimmed, blank lines skipped. Each row has two cells: the image path, relative to the image
//! root (`--data`, by default the CSV's folder) unless absolute, and its labels separated by
//! `;` (empty for none). The first row is a header when its first cell is one of
//! [`PATH_HEADERS`] (any case), e.g. `path,labels` or `filename,tags`. Label names are the
//! sorted set of every label seen; an image may have none, but some image must have one. The
//! split is the directory dataset's: the rows are shuffled with the seed and the last
//! int(split·N) go to validation. Each [`Sample`]'s `label` is its row in
//! [`LabelTable::targets`], the multi-hot vector the loss trains against.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::dataset::{DatasetOptions, Sample, epoch_order};

/// First cells (compared case-insensitively) that make the first row a header.
pub const PATH_HEADERS: [&str; 7] = [
    "path",
    "file",
    "filename",
    "file_name",
    "filepath",
    "image",
    "image_path",
];

/// A parsed labels CSV, split into training and validation samples.
#[derive(Debug, Clone)]
pub struct LabelTable {
    /// Sorted label names.
    pub label_names: Vec<String>,
    /// Multi-hot targets, one row per sample index (`Sample::label`), [labels] f32 in {0, 1}.
    pub targets: Vec<Vec<f32>>,
    /// Training samples, in split order.
    pub train: Vec<Sample>,
    /// Validation samples.
    pub val: Vec<Sample>,
}

/// Why a labels CSV cannot be used; each names the file (and line).
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// The file cannot be read.
    #[error("cannot read the labels file {path} (--labels): {source}")]
    Read {
        /// The CSV.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A row is malformed.
    #[error("{path}:{line}: {message}")]
    Row {
        /// The CSV.
        path: PathBuf,
        /// 1-based line of the row.
        line: usize,
        /// What is wrong and how to write it.
        message: String,
    },
    /// No data rows.
    #[error("{path} (--labels) has no rows: write one `path,label1;label2` row per image")]
    Empty {
        /// The CSV.
        path: PathBuf,
    },
    /// Rows, but not one label in any of them: nothing to train or evaluate.
    #[error(
        "{path} (--labels): none of its {rows} rows has a label; give each image its labels \
         after the comma, separated by `;` (`cat.jpg,indoor;cat`)"
    )]
    NoLabels {
        /// The CSV.
        path: PathBuf,
        /// How many rows it has.
        rows: usize,
    },
    /// The validation split is not strictly between 0 and 1.
    #[error("--validation-split must be strictly between 0 and 1, got {0}")]
    Split(f32),
}

impl LabelTable {
    /// Reads `csv` (see the module doc); `root` is the folder relative paths start from.
    pub fn from_csv(csv: &Path, root: &Path, opts: &DatasetOptions) -> Result<Self, LabelsError> {
        if !(opts.validation_split > 0.0 && opts.validation_split < 1.0) {
            return Err(LabelsError::Split(opts.validation_split));
        }
        let rows = read_rows(csv)?
            .into_iter()
            .map(|(path, labels)| {
                let p = Path::new(&path);
                let full = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    root.join(p)
                };
                (full, labels)
            })
            .collect::<Vec<_>>();
        if rows.is_empty() {
            return Err(LabelsError::Empty { path: csv.into() });
        }
        let names: BTreeSet<&String> = rows.iter().flat_map(|(_, l)| l).collect();
        let label_names: Vec<String> = names.into_iter().cloned().collect();
        if label_names.is_empty() {
            return Err(LabelsError::NoLabels {
                path: csv.into(),
                rows: rows.len(),
            });
        }
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

/// The data rows of a labels CSV as (path as written, labels); see the module doc.
fn read_rows(csv: &Path) -> Result<Vec<(String, Vec<String>)>, LabelsError> {
    let bytes = std::fs::read(csv).map_err(|source| LabelsError::Read {
        path: csv.into(),
        source,
    })?;
    // Spreadsheet programs write a byte-order mark; the csv crate would keep it in the first cell.
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let row_error = |line: u64, message: String| LabelsError::Row {
        path: csv.into(),
        line: line as usize,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text);
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            row_error(line, format!("not valid CSV: {e}"))
        })?;
        let line = record.position().map_or(i as u64 + 1, |p| p.line());
        if record.iter().all(str::is_empty) && record.len() <= 1 {
            continue;
        }
        let first = &record[0];
        if i == 0 && PATH_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(first)) {
            continue;
        }
        if record.len() != 2 {
            let got = record.iter().collect::<Vec<_>>().join("|");
            return Err(row_error(
                line,
                format!(
                    "expected 2 cells `path,label1;label2`, got {} ({got}); separate labels \
                     with `;` and quote a path that holds a comma (`\"a,b.png\",red`)",
                    record.len()
                ),
            ));
        }
        if first.is_empty() {
            return Err(row_error(line, "empty image path".into()));
        }
        let labels = record[1]
            .split(';')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        rows.push((first.to_string(), labels));
    }
    Ok(rows)
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

    fn table(text: &[u8]) -> Result<LabelTable, LabelsError> {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("l.csv");
        std::fs::write(&csv, text).unwrap();
        LabelTable::from_csv(&csv, Path::new("/r"), &DatasetOptions::default())
    }

    fn rows(t: &LabelTable) -> Vec<(String, Vec<String>)> {
        let mut all: Vec<_> = t.train.iter().chain(&t.val).collect();
        all.sort_by_key(|s| s.label);
        all.iter()
            .map(|s| {
                let on = t.label_names.iter().zip(&t.targets[s.label]);
                let labels = on.filter(|(_, v)| **v == 1.0).map(|(n, _)| n.clone());
                (s.path.display().to_string(), labels.collect())
            })
            .collect()
    }

    #[test]
    fn a_byte_order_mark_and_header_names_make_no_phantom_label() {
        for header in [
            "path,labels",
            "Path,Labels",
            "filename,tags",
            "IMAGE,classes",
        ] {
            let text = format!("\u{FEFF}{header}\r\na.png,x\r\nb.png,y;x\r\n");
            let t = table(text.as_bytes()).unwrap();
            assert_eq!(t.label_names, vec!["x", "y"], "{header}");
            assert_eq!(t.targets.len(), 2, "{header}");
        }
        // Without a header, the first row is data (BOM or not).
        let t = table("\u{FEFF}a.png,x\nb.png,y\n".as_bytes()).unwrap();
        assert_eq!(rows(&t)[0], ("/r/a.png".to_string(), vec!["x".to_string()]));
    }

    #[test]
    fn a_quoted_path_may_hold_commas_and_quotes() {
        let t =
            table(b"path,labels\n\"a,b.png\",red\n\"say \"\"hi\"\".png\",\"red;blue\"\n").unwrap();
        assert_eq!(t.label_names, vec!["blue", "red"]);
        assert_eq!(
            rows(&t),
            vec![
                ("/r/a,b.png".to_string(), vec!["red".to_string()]),
                (
                    "/r/say \"hi\".png".to_string(),
                    vec!["blue".to_string(), "red".to_string()]
                ),
            ]
        );
        // An unquoted comma makes a third cell: refused, with how to write it.
        let e = table(b"a,b.png,red\n").unwrap_err().to_string();
        assert!(e.contains("l.csv:1") && e.contains("quote a path"), "{e}");
    }

    #[test]
    fn no_label_in_any_row_is_refused() {
        let e = table(b"path,labels\na.png,\nb.png,;\n").unwrap_err();
        assert!(matches!(e, LabelsError::NoLabels { rows: 2, .. }), "{e}");
        assert!(
            e.to_string().contains("none of its 2 rows has a label"),
            "{e}"
        );
    }
}
