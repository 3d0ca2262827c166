//! The run folder of `gpucnn train` (`--out`): which run it holds, who may write it, and what an
//! interrupted run left behind.
//!
//! - **Fingerprint.** `run.json` records a [`RunFingerprint`]: every setting that changes what
//!   an epoch computes (seed, split, learning rate, batch and image size, colour mode, width,
//!   augmentation, crop, classes, the labels CSV) and a digest of the data (the sorted relative
//!   paths and sizes of the files). `--epochs` is not part of it: a resume may raise it. Every
//!   resumable checkpoint carries the same fingerprint, so a `save_at_N` is tied to the run
//!   that wrote it.
//! - **Who may start what** ([`RunFolder::plan`]): `--resume` continues only a run with the same
//!   fingerprint; a new run starts only in a folder that holds no run's results, or with
//!   `--overwrite`, which first deletes the old run's files (gpucnn's own, nothing else). So a
//!   stale `save_at_N` of an earlier run can never be picked up by a later `--resume`.
//! - **Lock.** A run holds an exclusive lock on `.gpucnn.lock` in the folder ([`RunFolder::lock`])
//!   from before it reads the folder until it exits; the OS releases it when the process dies,
//!   `kill -9` included, so a crash never leaves a stale lock.
//! - **Leftovers.** Temporary files of gpucnn's atomic writes (`.<name>.<pid>.<n>.tmp`) and image
//!   cache files of a killed run are deleted when the lock is taken: nobody else can own them.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::metrics;
use super::regularization::Regularization;
use crate::atomic::write_atomic;
use crate::data::geometry::{ColorMode, ImageSize};

/// File name of the fingerprint in a run folder.
pub const RUN_JSON: &str = "run.json";
/// File name of the lock file in a run folder.
pub const LOCK_FILE: &str = ".gpucnn.lock";

/// The files `gpucnn train` (and `evaluate`, by default) write into a run folder besides the
/// checkpoints `save_at_<N>.safetensors`: what `--overwrite` deletes.
const OWN_FILES: &[&str] = &[
    "best.safetensors",
    "metrics.csv",
    "metrics.jsonl",
    "interrupted.safetensors",
    "curves.png",
    "model.json",
    "confusion.png",
    "roc.png",
    RUN_JSON,
];

/// Everything that decides what a run computes, epoch by epoch (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFingerprint {
    /// `--seed`.
    pub seed: u64,
    /// `--validation-split`.
    pub validation_split: f32,
    /// `--lr`.
    pub lr: f32,
    /// `--batch-size`.
    pub batch_size: usize,
    /// `--image-size`: a number when square (as every run.json before non-square sizes),
    /// else `[height, width]`.
    pub image_size: ImageSize,
    /// `--width`.
    pub width: f32,
    /// `--augment`, `--rotation` and the other augmentation flags: `none`, `flip`, `rotate 0.1`
    /// or `flip,rotate 0.1`; then, only when given, `crop HxW` first and `zoom F`, `translate F`,
    /// `fill MODE`, `contrast F`, `brightness F` after (e.g.
    /// `crop 160x160,flip,rotate 0.1,zoom 0.2,fill constant 0,contrast 0.2`).
    pub augment: String,
    /// `--crop-to-aspect-ratio`.
    pub crop_to_aspect_ratio: bool,
    /// Class (or label) names in label order.
    pub classes: Vec<String>,
    /// Multi-label training from a labels CSV.
    pub multi_label: bool,
    /// Digest of the labels CSV's bytes (`--labels`), if any.
    pub labels_csv: Option<String>,
    /// The data: file count, total bytes and a digest of the sorted relative paths and sizes
    /// (of `--data`'s training files alone with `--val-data`).
    pub data: DataDigest,
    /// `--val-data`: the digest of the separate validation folder's files (paths relative to
    /// it); `None` for a split of `--data`. Absent from the JSON of such runs, so a run.json
    /// written before the flag existed reads as a split run, and a split run's run.json is as
    /// it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_data: Option<DataDigest>,
    /// `--weight-decay` and `--dropout`: absent from the JSON at the example's values, so a
    /// run.json written before the flags existed reads as them, and such a run's is as it was.
    #[serde(default, skip_serializing_if = "Regularization::is_default")]
    pub regularization: Regularization,
    /// `--class-weight` (`auto`, or `NAME=W,...`); `None` without class weights. Absent from
    /// the JSON of such runs, so run.json files written before the flag read as unweighted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weight: Option<String>,
    /// `--color-mode`. Absent from the JSON of an RGB run, so a run.json written before the
    /// flag existed reads as RGB, and an RGB run's run.json is as it was.
    #[serde(default, skip_serializing_if = "is_rgb")]
    pub color_mode: ColorMode,
}

fn is_rgb(mode: &ColorMode) -> bool {
    *mode == ColorMode::Rgb
}

/// A cheap digest of a dataset's files: their relative paths and sizes, not their contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataDigest {
    /// Number of files listed (readable or not).
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// 64-bit FNV-1a of the sorted `relative/path\0size\0` records, in hex.
    pub hash: String,
}

impl std::fmt::Display for DataDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files, {} bytes, digest {}",
            self.files, self.bytes, self.hash
        )
    }
}

/// 64-bit FNV-1a: stable across Rust versions and platforms (std's hasher is not), and enough to
/// notice a changed file list; this is not a security check.
#[derive(Clone, Copy)]
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Digest of a file's bytes (the labels CSV); errors name the file.
pub fn file_digest(path: &Path) -> anyhow::Result<String> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Fnv64::new();
    h.write(&bytes);
    Ok(h.hex())
}

/// The [`DataDigest`] of `files` under `root`: each file's path relative to `root` (components
/// joined by `/`, so the digest does not depend on the platform's separator) and its size.
/// The order of `files` does not matter.
pub fn data_digest<'a>(
    root: &Path,
    files: impl IntoIterator<Item = &'a Path>,
) -> anyhow::Result<DataDigest> {
    let mut records: Vec<(Vec<u8>, u64)> = Vec::new();
    for path in files {
        let size = fs::metadata(path)
            .with_context(|| format!("cannot read the size of {}", path.display()))?
            .len();
        let rel = path.strip_prefix(root).unwrap_or(path);
        let mut key = Vec::new();
        for (i, c) in rel.components().enumerate() {
            if i > 0 {
                key.push(b'/');
            }
            key.extend_from_slice(c.as_os_str().as_encoded_bytes());
        }
        records.push((key, size));
    }
    records.sort();
    let mut h = Fnv64::new();
    for (key, size) in &records {
        h.write(key);
        h.write(&[0]);
        h.write(size.to_string().as_bytes());
        h.write(&[0]);
    }
    Ok(DataDigest {
        files: records.len(),
        bytes: records.iter().map(|r| r.1).sum(),
        hash: h.hex(),
    })
}

impl RunFingerprint {
    /// One line per setting in which `new` differs from `self` (the recorded run):
    /// `--seed 1337 → 99`.
    pub fn differences(&self, new: &RunFingerprint) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |what: &str, old: String, new: String| {
            if old != new {
                d.push(format!("{what} {old} → {new}"));
            }
        };
        cmp("--seed", self.seed.to_string(), new.seed.to_string());
        cmp(
            "--validation-split",
            self.validation_split.to_string(),
            new.validation_split.to_string(),
        );
        cmp("--lr", self.lr.to_string(), new.lr.to_string());
        cmp(
            "--batch-size",
            self.batch_size.to_string(),
            new.batch_size.to_string(),
        );
        cmp(
            "--image-size",
            self.image_size.to_string(),
            new.image_size.to_string(),
        );
        cmp(
            "--color-mode",
            self.color_mode.to_string(),
            new.color_mode.to_string(),
        );
        cmp("--width", self.width.to_string(), new.width.to_string());
        cmp(
            "--augment/--rotation/--zoom/--translate/--fill-mode/--random-crop/--contrast/--brightness",
            self.augment.clone(),
            new.augment.clone(),
        );
        cmp(
            "--crop-to-aspect-ratio",
            self.crop_to_aspect_ratio.to_string(),
            new.crop_to_aspect_ratio.to_string(),
        );
        cmp(
            "classes",
            format!("{:?}", self.classes),
            format!("{:?}", new.classes),
        );
        cmp(
            "multi-label (--labels)",
            self.multi_label.to_string(),
            new.multi_label.to_string(),
        );
        let csv = |c: &Option<String>| c.clone().unwrap_or_else(|| "none".into());
        cmp(
            "labels CSV content (--labels)",
            csv(&self.labels_csv),
            csv(&new.labels_csv),
        );
        cmp(
            "data files (--data)",
            self.data.to_string(),
            new.data.to_string(),
        );
        let val = |v: &Option<DataDigest>| match v {
            Some(v) => v.to_string(),
            None => "none (--validation-split of --data)".into(),
        };
        cmp(
            "validation files (--val-data)",
            val(&self.val_data),
            val(&new.val_data),
        );
        let (mine, theirs) = (self.regularization.by_flag(), new.regularization.by_flag());
        for ((flag, a), (_, b)) in mine.into_iter().zip(theirs) {
            cmp(flag, a.to_string(), b.to_string());
        }
        let cw = |c: &Option<String>| c.clone().unwrap_or_else(|| "none".into());
        cmp(
            "--class-weight",
            cw(&self.class_weight),
            cw(&new.class_weight),
        );
        d
    }
}

/// What a run does with its folder, decided by [`RunFolder::plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Start from scratch; [`RunFolder::begin`] deletes whatever gpucnn files are there first
    /// (the old run's, with `--overwrite`; leftovers of a run that saved nothing, otherwise).
    Fresh,
    /// Continue the run recorded in the folder (`--resume`, same fingerprint).
    Resume,
}

/// A locked run folder: only the process holding this may write the folder's files.
#[derive(Debug)]
pub struct RunFolder {
    dir: PathBuf,
    /// Held for the lifetime of the run; the OS releases the lock when the file is closed or
    /// the process dies.
    _lock: File,
}

impl RunFolder {
    /// Creates `dir` if needed and takes its lock; fails at once, naming the folder, when another
    /// gpucnn run holds it. Then deletes leftovers of interrupted runs (temporary files of
    /// gpucnn's atomic writes, image cache files).
    pub fn lock(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| {
            format!("cannot create the output folder {} (--out)", dir.display())
        })?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot create the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => crate::bail_input!(
                "{} (--out) is in use by another gpucnn run (it holds the lock on {}): wait for \
                 that run to finish, or pick another --out",
                dir.display(),
                path.display()
            ),
            // A file system without locks (some network mounts): run unprotected rather than
            // not at all; the user is told.
            Err(fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                crate::msgln!(
                    "warning: {} cannot be locked on this file system ({e}); do not start a \
                     second run on this --out while this one runs",
                    path.display()
                );
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        let folder = Self {
            dir: dir.to_path_buf(),
            _lock: file,
        };
        folder.remove_leftovers()?;
        Ok(folder)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes `.<name>.<pid>.<n>.tmp` files of the files gpucnn train writes, and
    /// `gpucnn-image-cache-*.u8` files: under the lock, no live process owns them.
    fn remove_leftovers(&self) -> anyhow::Result<()> {
        for name in self.file_names()? {
            if is_own_temp(&name) || is_image_cache(&name) {
                let path = self.dir.join(&name);
                fs::remove_file(&path).with_context(|| {
                    format!(
                        "cannot delete {}, left by an interrupted run",
                        path.display()
                    )
                })?;
            }
        }
        Ok(())
    }

    fn file_names(&self) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list {} (--out)", self.dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", self.dir.display()))?;
            // Names that are not UTF-8 are never gpucnn's.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The epochs of the `save_at_<N>.safetensors` files in the folder, ascending.
    fn checkpoint_epochs(&self) -> anyhow::Result<Vec<usize>> {
        let mut epochs: Vec<usize> = self
            .file_names()?
            .iter()
            .filter_map(|n| checkpoint_epoch(n))
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// The fingerprint recorded in `run.json`, if the folder has one.
    pub fn recorded(&self) -> anyhow::Result<Option<RunFingerprint>> {
        let path = self.dir.join(RUN_JSON);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        match serde_json::from_str(&text) {
            Ok(fp) => Ok(Some(fp)),
            Err(e) => crate::bail_input!(
                "{} is not a run description gpucnn wrote ({e}): pass --overwrite to delete \
                 the run in {} and start afresh, or pick another --out",
                path.display(),
                self.dir.display()
            ),
        }
    }

    /// Decides whether this run may start, and how (see the module doc). Refusals are bad
    /// input (exit 2) and name each differing setting, old → new, and how to start afresh.
    /// Reads only; [`Self::begin`] acts on the decision.
    pub fn plan(
        &self,
        new: &RunFingerprint,
        resume: bool,
        overwrite: bool,
    ) -> anyhow::Result<Plan> {
        if overwrite {
            return Ok(Plan::Fresh);
        }
        let dir = self.dir.display();
        let afresh = format!(
            "To start afresh, pick another --out, or pass --overwrite to delete the old run's \
             files in {dir} (gpucnn's own files only) first"
        );
        let epochs = self.checkpoint_epochs()?;
        let saved = match (epochs.first(), epochs.last()) {
            (Some(a), Some(b)) if a == b => format!("the checkpoint of epoch {a}"),
            (Some(a), Some(b)) => format!("checkpoints of epochs {a}–{b}"),
            _ => "no checkpoint".into(),
        };
        match self.recorded()? {
            Some(old) => {
                let diffs = old.differences(new);
                if !diffs.is_empty() {
                    crate::bail_input!(
                        "{dir} (--out) holds another run ({saved}), trained with other settings \
                         or data: {}. {}. To continue that run, use the settings in {}.",
                        diffs.join("; "),
                        afresh,
                        self.dir.join(RUN_JSON).display()
                    );
                }
                if resume {
                    return Ok(Plan::Resume);
                }
                if self.has_results()? {
                    crate::bail_input!(
                        "{dir} (--out) already holds a run with these settings ({saved}): pass \
                         --resume to continue it (with a higher --epochs to train longer). {afresh}."
                    );
                }
                Ok(Plan::Fresh)
            }
            None if self.has_results()? => crate::bail_input!(
                "{dir} (--out) holds results of a run ({saved}) without {RUN_JSON} (written by an \
                 older gpucnn, or the file was deleted), so its settings cannot be checked. {afresh}."
            ),
            // Nothing of value: a new folder, or one that a run left before its first epoch.
            None => Ok(if resume { Plan::Resume } else { Plan::Fresh }),
        }
    }

    /// Whether the folder holds anything a run produced that would be lost: a checkpoint,
    /// best.safetensors or a metrics.csv with rows.
    fn has_results(&self) -> anyhow::Result<bool> {
        if !self.checkpoint_epochs()?.is_empty()
            || self.dir.join("best.safetensors").exists()
            || self.dir.join("interrupted.safetensors").exists()
        {
            return Ok(true);
        }
        let csv = self.dir.join("metrics.csv");
        Ok(csv.exists() && metrics::read(&csv).map_or(true, |rows| !rows.is_empty()))
    }

    /// Acts on `plan`: for a fresh start, deletes gpucnn's files of any earlier run
    /// (checkpoints first, `run.json` last, so an interruption never leaves checkpoints without
    /// their fingerprint) and records `fp` in `run.json`.
    pub fn begin(&self, plan: Plan, fp: &RunFingerprint) -> anyhow::Result<()> {
        if plan == Plan::Resume && self.dir.join(RUN_JSON).exists() {
            return Ok(());
        }
        if plan == Plan::Fresh {
            let names = self.file_names()?;
            let mut doomed: Vec<&String> = names
                .iter()
                .filter(|n| checkpoint_epoch(n).is_some())
                .collect();
            doomed.extend(
                names
                    .iter()
                    .filter(|n| OWN_FILES.contains(&n.as_str()) && *n != RUN_JSON),
            );
            // TensorBoard's event files (`--tensorboard`), which would mix into the new run's.
            for sub in ["train", "validation"] {
                let dir = self.dir.join("logs").join(sub);
                let Ok(entries) = fs::read_dir(&dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .starts_with("events.out.tfevents.")
                    {
                        fs::remove_file(e.path()).with_context(|| {
                            format!("cannot delete {} of the earlier run", e.path().display())
                        })?;
                    }
                }
            }
            doomed.extend(names.iter().filter(|n| *n == RUN_JSON));
            for name in doomed {
                let path = self.dir.join(name);
                fs::remove_file(&path).with_context(|| {
                    format!("cannot delete {} of the earlier run", path.display())
                })?;
            }
        }
        let mut json = serde_json::to_string_pretty(fp).expect("a fingerprint always serializes");
        json.push('\n');
        write_atomic(self.dir.join(RUN_JSON), json.as_bytes())?;
        Ok(())
    }
}

/// `N` of `save_at_N.safetensors`.
fn checkpoint_epoch(name: &str) -> Option<usize> {
    name.strip_prefix("save_at_")?
        .strip_suffix(".safetensors")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

/// `.<name>.<pid>.<n>.tmp` (the naming of [`crate::atomic::write_atomic`]) of a file gpucnn
/// train writes.
fn is_own_temp(file: &str) -> bool {
    let Some(inner) = file.strip_prefix('.').and_then(|f| f.strip_suffix(".tmp")) else {
        return false;
    };
    let mut parts = inner.rsplitn(3, '.');
    let (Some(n), Some(pid), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(n) && digits(pid) && (OWN_FILES.contains(&name) || checkpoint_epoch(name).is_some())
}

/// The loader's disk cache file, `gpucnn-image-cache-<pid>-<nanos>.u8`.
fn is_image_cache(file: &str) -> bool {
    file.strip_prefix("gpucnn-image-cache-")
        .and_then(|f| f.strip_suffix(".u8"))
        .is_some_and(|f| f.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
}

/// Bytes free for an unprivileged user on the file system holding `dir`, where the platform
/// tells (`None` elsewhere).
pub fn free_space(dir: &Path) -> io::Result<Option<u64>> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(st.f_bavail as u64 * st.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint() -> RunFingerprint {
        RunFingerprint {
            seed: 1337,
            validation_split: 0.2,
            lr: 1e-3,
            batch_size: 8,
            image_size: ImageSize::square(16),
            width: 0.0625,
            augment: "flip".into(),
            crop_to_aspect_ratio: false,
            classes: vec!["a".into(), "b".into()],
            multi_label: false,
            labels_csv: None,
            data: DataDigest {
                files: 2,
                bytes: 10,
                hash: "0".into(),
            },
            val_data: None,
            regularization: Regularization::default(),
            class_weight: None,
            color_mode: ColorMode::Rgb,
        }
    }

    #[test]
    fn regularization_is_absent_at_the_defaults_and_named_when_it_differs() {
        let plain = fingerprint();
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("regularization"), "{json}");
        let decayed = RunFingerprint {
            regularization: Regularization {
                weight_decay: 0.004,
                dropout: 0.3,
                l2: 1e-4,
                ..Regularization::default()
            },
            ..fingerprint()
        };
        let json = serde_json::to_string(&decayed).unwrap();
        let back: RunFingerprint = serde_json::from_str(&json).unwrap();
        assert_eq!(back, decayed);
        assert_eq!(
            plain.differences(&decayed),
            [
                "--weight-decay 0 → 0.004",
                "--dropout 0.5 → 0.3",
                "--l2 0 → 0.0001"
            ]
        );
    }

    #[test]
    fn geometry_reads_from_old_json_and_differences_name_the_flags() {
        let old = fingerprint();
        let json = serde_json::to_string(&old).unwrap();
        // An RGB square run's JSON is as before either flag existed.
        assert!(
            json.contains("\"image_size\":16,") && !json.contains("color_mode"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<RunFingerprint>(&json).unwrap(), old);
        let mut new = old.clone();
        new.image_size = ImageSize {
            height: 12,
            width: 20,
        };
        new.color_mode = ColorMode::Grayscale;
        let json = serde_json::to_string(&new).unwrap();
        assert!(json.contains("\"image_size\":[12,20]"), "{json}");
        assert!(json.contains("\"color_mode\":\"grayscale\""), "{json}");
        assert_eq!(serde_json::from_str::<RunFingerprint>(&json).unwrap(), new);
        assert_eq!(
            old.differences(&new),
            vec!["--image-size 16 → 12,20", "--color-mode rgb → grayscale"]
        );
    }

    #[test]
    fn val_data_is_absent_from_a_split_runs_json_and_old_json_reads_as_a_split() {
        let split = fingerprint();
        let json = serde_json::to_string(&split).unwrap();
        assert!(!json.contains("val_data"), "{json}");
        // A run.json written before --val-data existed has no such key.
        let old: RunFingerprint = serde_json::from_str(&json).unwrap();
        assert_eq!(old, split);
        let mut separate = split.clone();
        separate.val_data = Some(DataDigest {
            files: 3,
            bytes: 7,
            hash: "1".into(),
        });
        let back: RunFingerprint =
            serde_json::from_str(&serde_json::to_string(&separate).unwrap()).unwrap();
        assert_eq!(back, separate);
        assert_eq!(
            split.differences(&separate),
            vec![
                "validation files (--val-data) none (--validation-split of --data) → 3 files, \
                 7 bytes, digest 1"
            ]
        );
    }

    #[test]
    fn differences_name_each_setting_old_then_new() {
        let old = fingerprint();
        assert!(old.differences(&old).is_empty());
        let mut new = old.clone();
        new.seed = 99;
        new.lr = 0.01;
        assert_eq!(
            old.differences(&new),
            vec!["--seed 1337 → 99", "--lr 0.001 → 0.01"]
        );
        // --class-weight: absent from an unweighted run's JSON; a change is a difference.
        assert!(
            !serde_json::to_string(&old)
                .unwrap()
                .contains("class_weight")
        );
        let mut weighted = old.clone();
        weighted.class_weight = Some("auto".into());
        assert_eq!(
            old.differences(&weighted),
            vec!["--class-weight none → auto"]
        );
    }

    #[test]
    fn data_digest_sees_names_and_sizes_not_order_or_root() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            fs::create_dir_all(d.join("x")).unwrap();
            fs::write(d.join("x/1.png"), b"12345").unwrap();
            fs::write(d.join("x/2.png"), b"1").unwrap();
        }
        let files = |d: &Path| vec![d.join("x/1.png"), d.join("x/2.png")];
        let fa = files(a.path());
        let da = data_digest(a.path(), fa.iter().map(PathBuf::as_path)).unwrap();
        let fb = files(b.path());
        let db = data_digest(b.path(), fb.iter().rev().map(PathBuf::as_path)).unwrap();
        assert_eq!(da, db);
        assert_eq!((da.files, da.bytes), (2, 6));
        fs::write(b.path().join("x/2.png"), b"22").unwrap();
        let db = data_digest(b.path(), fb.iter().map(PathBuf::as_path)).unwrap();
        assert_ne!(da.hash, db.hash);
        fs::rename(b.path().join("x/2.png"), b.path().join("x/3.png")).unwrap();
        fs::write(b.path().join("x/3.png"), b"1").unwrap();
        let fb = [b.path().join("x/1.png"), b.path().join("x/3.png")];
        let db = data_digest(b.path(), fb.iter().map(PathBuf::as_path)).unwrap();
        assert_ne!(da.hash, db.hash);
    }

    #[test]
    fn only_gpucnn_temporary_and_cache_files_count_as_leftovers() {
        assert!(is_own_temp(".metrics.csv.123.0.tmp"));
        assert!(is_own_temp(".save_at_12.safetensors.9.41.tmp"));
        assert!(is_own_temp(".best.safetensors.9.41.tmp"));
        assert!(!is_own_temp(".notes.txt.9.41.tmp"));
        assert!(!is_own_temp(".metrics.csv.tmp"));
        assert!(!is_own_temp("metrics.csv.1.2.tmp"));
        assert!(!is_own_temp(".metrics.csv.x.2.tmp"));
        assert!(is_image_cache("gpucnn-image-cache-77-1234567.u8"));
        assert!(!is_image_cache("gpucnn-image-cache-77-1234567.u8.bak"));
    }

    #[test]
    fn lock_deletes_leftovers_and_keeps_other_files() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            ".metrics.csv.5.0.tmp",
            "gpucnn-image-cache-5-9.u8",
            ".mine.5.0.tmp",
            "notes.txt",
        ] {
            fs::write(d.path().join(f), b"x").unwrap();
        }
        let folder = RunFolder::lock(d.path()).unwrap();
        assert_eq!(
            folder.file_names().unwrap(),
            vec![".gpucnn.lock", ".mine.5.0.tmp", "notes.txt"]
        );
    }
}
