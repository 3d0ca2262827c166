//! A labelled image folder with the semantics of Keras' `image_dataset_from_directory`.
//!
//! - Class names are the sorted names of the sub-folders of the root (names starting with `.`
//!   skipped); the class index is the position in that list. A folder name that is not UTF-8
//!   is shown lossily (U+FFFD for its odd bytes) and still read by its own name.
//! - Keras' `class_names` ([`ClassSelection`], `--class-names a,b,c`): only the sub-folders named
//!   are used, in the order given (class index = position in the list); a name without a folder
//!   is an error. Other sub-folders are ignored.
//! - Files are found recursively under each class folder (symlinked folders followed, cycles
//!   skipped) with the extensions `.bmp .gif .jpeg .jpg .png .webp` in any case, sorted by path;
//!   only regular files are listed ([`image_files`], the walk `predict` uses too).
//! - The whole list (classes in order, each class's files in path order) is shuffled with the seed;
//!   validation takes the last `int(split · N)` files, training the rest.
//! - With a separate validation folder ([`DirectoryDataset::open_separate`], `--val-data`, the
//!   common `train/` + `val/` layout, i.e. two `image_dataset_from_directory` calls), every
//!   image of the training folder trains, in class and path order, and every image of the
//!   validation folder validates, in the same order; no split is drawn. Both folders must have
//!   the same class sub-folders (or, with a [`ClassSelection`], both must hold every class named).
//! - Training is reshuffled every epoch ([`DirectoryDataset::epoch_order`]); validation is read in
//!   order. The last partial batch is kept (the loader never drops samples).
//!
//! Where gpucnn differs from Keras: Keras shuffles with numpy's MT19937 and the training set with a
//! 1,024-element shuffle buffer; gpucnn uses its own SplitMix64 Fisher–Yates shuffle (stable across
//! gpucnn versions and platforms) and a full reshuffle per epoch. Same seed, same split and order
//! within gpucnn; not bit-identical to a Keras split.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// File extensions (lower case, no dot) that Keras and gpucnn accept as images.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["bmp", "gif", "jpeg", "jpg", "png", "webp"];

/// Which class sub-folders a dataset uses, and in which order (Keras' `class_names`).
/// `None` where a function takes an `Option<&ClassSelection>`: every sub-folder, sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassSelection {
    names: Vec<String>,
}

impl ClassSelection {
    /// The classes `names`, in this order; at least two, none empty, no name twice.
    pub fn new(names: Vec<String>) -> Result<Self, DatasetError> {
        let bad = |message: String| Err(DatasetError::BadClassNames { message });
        if names.len() < 2 {
            return bad(format!(
                "{} class name(s) given ({}): a classifier needs at least two",
                names.len(),
                names.join(",")
            ));
        }
        let mut seen = HashSet::new();
        for n in &names {
            if n.is_empty() {
                return bad("an empty class name (two commas in a row, or one at an end)".into());
            }
            if !seen.insert(n.as_str()) {
                return bad(format!("`{n}` is named twice"));
            }
        }
        Ok(Self { names })
    }

    /// Parses a comma-separated list (`--class-names Dog,Cat`); spaces around names are trimmed.
    pub fn parse(list: &str) -> Result<Self, DatasetError> {
        Self::new(list.split(',').map(|n| n.trim().to_string()).collect())
    }

    /// The class names, in label order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Options of [`DirectoryDataset::open`].
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetOptions {
    /// Fraction of the files held out for validation, strictly between 0 and 1 (Keras: 0.2).
    pub validation_split: f32,
    /// Seed of the split shuffle (and, by default, of the per-epoch shuffles).
    pub seed: u64,
}

impl Default for DatasetOptions {
    /// The Keras example's choice: `validation_split=0.2, seed=1337`.
    fn default() -> Self {
        Self {
            validation_split: 0.2,
            seed: 1337,
        }
    }
}

/// One image file and its class index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sample {
    /// Path of the image file.
    pub path: PathBuf,
    /// Index into [`DirectoryDataset::class_names`].
    pub label: usize,
}

/// Images per class among `samples`: each sample counts once for its class, or, multi-label
/// (`targets`: the multi-hot row of each [`Sample::label`]), once for every label it has.
pub fn class_counts<'a>(
    samples: impl IntoIterator<Item = &'a Sample>,
    classes: usize,
    targets: Option<&[Vec<f32>]>,
) -> Vec<usize> {
    let mut counts = vec![0; classes];
    for s in samples {
        match targets {
            Some(t) => {
                for (c, &on) in counts.iter_mut().zip(&t[s.label]) {
                    if on > 0.5 {
                        *c += 1;
                    }
                }
            }
            None => counts[s.label] += 1,
        }
    }
    counts
}

/// Why a dataset folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The folder (or a folder below it) is missing or cannot be read.
    #[error("cannot read the data folder {path}: {source} (check that it exists and is readable)")]
    Unreadable {
        /// The folder at fault.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The path exists but is a file.
    #[error(
        "{path} is not a folder: pass (to --data, or --val-data) a folder with one sub-folder of \
         images per class"
    )]
    NotADirectory {
        /// The path at fault.
        path: PathBuf,
    },
    /// No class sub-folders.
    #[error(
        "{path} has no class sub-folders: put each class's images in its own sub-folder \
         (e.g. {path}/Cat/*.jpg and {path}/Dog/*.jpg)"
    )]
    NoClasses {
        /// The root folder.
        path: PathBuf,
    },
    /// Only one class sub-folder: nothing to classify.
    #[error(
        "{path} has a single class sub-folder `{class}`: a classifier needs at least two; \
         add another sub-folder of images"
    )]
    SingleClass {
        /// The root folder.
        path: PathBuf,
        /// The one class found.
        class: String,
    },
    /// A class folder holds no image files.
    #[error(
        "class `{class}` ({path}) has no image files (.bmp .gif .jpeg .jpg .png .webp): \
         add images or remove the folder"
    )]
    EmptyClass {
        /// The class folder at fault.
        path: PathBuf,
        /// Its class name.
        class: String,
    },
    /// Two class folders have the same name once shown as UTF-8 (they differ only in bytes
    /// that are not UTF-8).
    #[error(
        "{path} has two class sub-folders named `{class}` once shown as UTF-8 (their names \
         differ only in bytes that are not UTF-8): rename one of them"
    )]
    DuplicateClass {
        /// The root folder.
        path: PathBuf,
        /// The class name both folders show as.
        class: String,
    },
    /// `--class-names` is not a usable list.
    #[error("--class-names: {message}; pass two or more distinct class folder names, e.g. Cat,Dog")]
    BadClassNames {
        /// What is wrong with the list.
        message: String,
    },
    /// A class named by `--class-names` has no sub-folder.
    #[error(
        "--class-names names `{class}`, but {path} has no sub-folder `{class}`: its class \
         sub-folders are {available}; fix the name or add the folder"
    )]
    UnknownClass {
        /// The folder searched.
        path: PathBuf,
        /// The name without a folder.
        class: String,
        /// The class sub-folders that are there, comma-separated.
        available: String,
    },
    /// The training and validation folders have different class sub-folders.
    #[error(
        "the class sub-folders of {train} (--data) and {val} (--val-data) differ: {details}; \
         both need the same classes (or choose the classes of both with --class-names)"
    )]
    ClassMismatch {
        /// The training folder.
        train: PathBuf,
        /// The validation folder.
        val: PathBuf,
        /// Which classes are in only one of them: `only in …: a, b; only in …: c`.
        details: String,
    },
    /// The validation split is not strictly between 0 and 1.
    #[error("--validation-split {split} is outside (0, 1): pass a fraction such as 0.2")]
    InvalidSplit {
        /// The value given.
        split: f32,
    },
}

/// The files of a class-per-folder image dataset, split into training and validation.
#[derive(Clone, Debug)]
pub struct DirectoryDataset {
    /// The folder the dataset was read from (the training folder with a separate validation
    /// folder).
    pub root: PathBuf,
    /// The separate validation folder ([`Self::open_separate`]); `None` for a split.
    pub val_root: Option<PathBuf>,
    /// Class names, sorted; a sample's label indexes this list.
    pub class_names: Vec<String>,
    /// Training samples, in split order (use [`Self::epoch_order`] to visit them).
    pub train: Vec<Sample>,
    /// Validation samples, in the order they are evaluated.
    pub val: Vec<Sample>,
    /// The options the dataset was opened with (`validation_split` unused with `val_root`).
    pub options: DatasetOptions,
}

impl DirectoryDataset {
    /// Reads the class folders under `dir`, lists their images and splits them (see module docs).
    pub fn open(dir: &Path, options: &DatasetOptions) -> Result<Self, DatasetError> {
        Self::open_selected(dir, options, None)
    }

    /// [`Self::open`] with Keras' `class_names`: only the classes of `classes`, in its order.
    pub fn open_selected(
        dir: &Path,
        options: &DatasetOptions,
        classes: Option<&ClassSelection>,
    ) -> Result<Self, DatasetError> {
        let split = options.validation_split;
        if !(split > 0.0 && split < 1.0) {
            return Err(DatasetError::InvalidSplit { split });
        }
        let (class_names, all) = labelled_files(dir, classes)?;
        let n = all.len();
        let num_val = validation_count(n, split);
        let mut order: Vec<usize> = (0..n).collect();
        shuffle(
            &mut order,
            &mut SplitMix64::new(mix(options.seed, SPLIT_STREAM)),
        );
        let mut shuffled: Vec<Sample> = order.into_iter().map(|i| all[i].clone()).collect();
        let val = shuffled.split_off(n - num_val);
        Ok(Self {
            root: dir.to_path_buf(),
            val_root: None,
            class_names,
            train: shuffled,
            val,
            options: options.clone(),
        })
    }

    /// A training folder and a separate validation folder (`train/` + `val/`): every image of
    /// `train_dir` trains and every image of `val_dir` validates, both in class and path order
    /// (training is reshuffled each epoch by [`Self::epoch_order`]). The two folders must have
    /// the same class sub-folders, or with `classes` both must hold each class it names.
    /// `options.validation_split` is not used (nor checked).
    pub fn open_separate(
        train_dir: &Path,
        val_dir: &Path,
        options: &DatasetOptions,
        classes: Option<&ClassSelection>,
    ) -> Result<Self, DatasetError> {
        let (class_names, train) = labelled_files(train_dir, classes)?;
        ensure_dir(val_dir)?;
        if classes.is_none() {
            let val_names: Vec<String> = class_folders(val_dir)?.into_iter().map(|c| c.0).collect();
            if val_names != class_names {
                let only = |a: &[String], b: &[String]| -> Vec<String> {
                    a.iter().filter(|n| !b.contains(n)).cloned().collect()
                };
                let mut parts = Vec::new();
                for (dir, names) in [
                    (train_dir, only(&class_names, &val_names)),
                    (val_dir, only(&val_names, &class_names)),
                ] {
                    if !names.is_empty() {
                        parts.push(format!("only in {}: {}", dir.display(), names.join(", ")));
                    }
                }
                return Err(DatasetError::ClassMismatch {
                    train: train_dir.to_path_buf(),
                    val: val_dir.to_path_buf(),
                    details: parts.join("; "),
                });
            }
        }
        // With no selection the names now match; with one, the same selection applies to both.
        let selection = match classes {
            Some(c) => c.clone(),
            None => ClassSelection::new(class_names.clone())?,
        };
        let (_, val) = labelled_files(val_dir, Some(&selection))?;
        Ok(Self {
            root: train_dir.to_path_buf(),
            val_root: Some(val_dir.to_path_buf()),
            class_names,
            train,
            val,
            options: options.clone(),
        })
    }

    /// Number of training samples of each class, indexed by label.
    pub fn train_class_counts(&self) -> Vec<usize> {
        class_counts(&self.train, self.class_names.len(), None)
    }

    /// Number of validation samples of each class, indexed by label.
    pub fn val_class_counts(&self) -> Vec<usize> {
        class_counts(&self.val, self.class_names.len(), None)
    }

    /// Training order of `epoch` (0-based): a permutation of `0..train.len()`, different for each
    /// epoch and deterministic for (`seed`, `epoch`).
    pub fn epoch_order(&self, epoch: usize, seed: u64) -> Vec<usize> {
        epoch_order(self.train.len(), epoch, seed)
    }

    /// Drops the samples whose path is in `bad` from both splits (e.g. files a scan rejected);
    /// returns how many were dropped. The split is otherwise kept as it was.
    pub fn remove_paths(&mut self, bad: &HashSet<PathBuf>) -> usize {
        let before = self.train.len() + self.val.len();
        self.train.retain(|s| !bad.contains(&s.path));
        self.val.retain(|s| !bad.contains(&s.path));
        before - self.train.len() - self.val.len()
    }

    /// Keras-style report of what was found, plus the class ↔ index map and per-split counts.
    pub fn summary(&self) -> String {
        let (t, v) = (self.train.len(), self.val.len());
        let k = self.class_names.len();
        let mut s = match &self.val_root {
            None => format!("Found {} files belonging to {k} classes.\n", t + v),
            // Two folders, as Keras reports two image_dataset_from_directory calls.
            Some(val_root) => format!(
                "Found {t} files belonging to {k} classes in {}.\n\
                 Found {v} files belonging to {k} classes in {} (--val-data).\n",
                self.root.display(),
                val_root.display()
            ),
        };
        let _ = write!(
            s,
            "Using {t} files for training.\nUsing {v} files for validation.\n"
        );
        let (tc, vc) = (self.train_class_counts(), self.val_class_counts());
        for (i, name) in self.class_names.iter().enumerate() {
            let _ = writeln!(
                s,
                "  class {i} = {name}: {} training, {} validation",
                tc[i], vc[i]
            );
        }
        s
    }
}

/// Training order of `epoch` for `n` samples: a permutation of `0..n`, deterministic for
/// (`seed`, `epoch`) and independent of the split shuffle.
pub fn epoch_order(n: usize, epoch: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let stream = mix(EPOCH_STREAM, epoch as u64);
    shuffle(&mut order, &mut SplitMix64::new(mix(seed, stream)));
    order
}

/// `int(split · n)` as Keras computes it with a Python float: the f32 is widened through its
/// shortest decimal form so that 0.7 means 0.7, not 0.699999988.
fn validation_count(n: usize, split: f32) -> usize {
    let split64: f64 = split.to_string().parse().unwrap_or(split as f64);
    ((split64 * n as f64).floor() as usize).min(n)
}

/// The classes of `dir` (all sub-folders sorted, or those of `classes` in its order) and their
/// image files: classes in order, each class's files in path order, labelled by class index.
fn labelled_files(
    dir: &Path,
    classes: Option<&ClassSelection>,
) -> Result<(Vec<String>, Vec<Sample>), DatasetError> {
    ensure_dir(dir)?;
    let mut folders = class_folders(dir)?;
    if let Some(sel) = classes {
        let mut chosen = Vec::new();
        for name in sel.names() {
            match folders.iter().find(|(n, _)| n == name) {
                Some(f) => chosen.push(f.clone()),
                None => {
                    let available: Vec<&str> = folders.iter().map(|f| f.0.as_str()).collect();
                    return Err(DatasetError::UnknownClass {
                        path: dir.to_path_buf(),
                        class: name.clone(),
                        available: if available.is_empty() {
                            "none".into()
                        } else {
                            available.join(", ")
                        },
                    });
                }
            }
        }
        folders = chosen;
    }
    let class_names: Vec<String> = folders.iter().map(|(name, _)| name.clone()).collect();
    match class_names.len() {
        0 => {
            return Err(DatasetError::NoClasses {
                path: dir.to_path_buf(),
            });
        }
        1 => {
            return Err(DatasetError::SingleClass {
                path: dir.to_path_buf(),
                class: class_names[0].clone(),
            });
        }
        _ => {}
    }
    let mut all = Vec::new();
    for (label, (class, folder)) in folders.iter().enumerate() {
        let class_dir = dir.join(folder);
        let files = image_files(&class_dir)?;
        if files.is_empty() {
            return Err(DatasetError::EmptyClass {
                path: class_dir,
                class: class.clone(),
            });
        }
        all.extend(files.into_iter().map(|path| Sample { path, label }));
    }
    Ok((class_names, all))
}

fn ensure_dir(dir: &Path) -> Result<(), DatasetError> {
    let meta = fs::metadata(dir).map_err(unreadable(dir))?;
    if !meta.is_dir() {
        return Err(DatasetError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

fn unreadable(path: &Path) -> impl FnOnce(io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Unreadable {
        path: path.to_path_buf(),
        source,
    }
}

/// The non-hidden sub-folders of `dir` (symlinks to folders count) as (class name, folder name),
/// sorted by class name. The folder is read by its own name, which need not be UTF-8; the class
/// name is its lossy UTF-8 form (what messages and `model.json` show).
fn class_folders(dir: &Path) -> Result<Vec<(String, OsString)>, DatasetError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(unreadable(dir))? {
        let entry = entry.map_err(unreadable(dir))?;
        let folder = entry.file_name();
        let name = folder.to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // fs::metadata follows symlinks, as Keras' os.walk(followlinks=True) does.
        if fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
            names.push((name, folder));
        }
    }
    names.sort();
    // Two folders whose names differ only in bytes that are not UTF-8 would get the same class
    // name, and a model could not tell its outputs apart.
    if let Some(w) = names.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(DatasetError::DuplicateClass {
            path: dir.to_path_buf(),
            class: w[0].0.clone(),
        });
    }
    Ok(names)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The image files under `dir`, recursively, sorted by path: the one folder walk of gpucnn
/// (train, scan, evaluate and predict all use it).
///
/// - Symlinks are followed (Keras' `os.walk(followlinks=True)`), but a folder reached a second
///   time (a symlink loop, or two links to one folder) is walked only once, so the walk ends and
///   each file is listed once.
/// - Only regular files with an image extension are listed: a FIFO, socket or device named
///   `*.png` is never listed, so nothing blocks opening it. Dangling symlinks are skipped.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut out = Vec::new();
    walk_images(dir, &mut out, &mut HashSet::new())?;
    out.sort();
    Ok(out)
}

/// Appends the image files under `dir` (see [`image_files`]); entries are visited in name order
/// so that which of two paths to one folder is kept does not depend on the file system.
fn walk_images(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
) -> Result<(), DatasetError> {
    let canonical = fs::canonicalize(dir).map_err(unreadable(dir))?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(unreadable(dir))? {
        entries.push(entry.map_err(unreadable(dir))?.path());
    }
    entries.sort();
    for path in entries {
        let Ok(meta) = fs::metadata(&path) else {
            continue; // a dangling symlink is not an image
        };
        if meta.is_dir() {
            walk_images(&path, out, visited)?;
        } else if meta.is_file() && has_image_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

const SPLIT_STREAM: u64 = 0x5350_4c49_545f_5631; // "SPLIT_V1"
const EPOCH_STREAM: u64 = 0x4550_4f43_485f_5631; // "EPOCH_V1"

/// Combines two words into a well-mixed seed.
fn mix(a: u64, b: u64) -> u64 {
    let mut r = SplitMix64::new(a ^ b.rotate_left(32));
    r.next_u64() ^ b
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and its output is fixed forever, so a seed
/// means the same split in every gpucnn version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias (Lemire's multiply-and-reject).
    fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// Fisher–Yates shuffle.
fn shuffle<T>(v: &mut [T], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_count_matches_python_int() {
        assert_eq!(validation_count(25000, 0.2), 5000);
        assert_eq!(validation_count(10, 0.7), 7); // 0.7f32 as f64 would give 6
        assert_eq!(validation_count(9, 0.2), 1);
        assert_eq!(validation_count(4, 0.2), 0);
    }

    #[test]
    fn shuffle_is_a_fair_permutation() {
        let mut counts = [[0u32; 4]; 4];
        for seed in 0..4000u64 {
            let o = epoch_order(4, 0, seed);
            let mut sorted = o.clone();
            sorted.sort();
            assert_eq!(sorted, vec![0, 1, 2, 3]);
            for (pos, &x) in o.iter().enumerate() {
                counts[pos][x] += 1;
            }
        }
        // Each value lands in each position ~1000 times; a biased shuffle would skew this.
        for row in counts {
            for c in row {
                assert!((850..1150).contains(&c), "{counts:?}");
            }
        }
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = SplitMix64::new(7);
        for n in [1u64, 2, 3, 7, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(r.below(n) < n);
            }
        }
    }
}
