//! A parallel pre-scan that decodes every file once and reports those that cannot be used
//! (unreadable, zero-byte, not an image, truncated, corrupt, too large), optionally deleting them.
//!
//! The Keras example deletes files whose first bytes lack `JFIF` before loading; this scan is the
//! thorough version of that step. A bad file never aborts the scan. To reproduce the example's
//! split exactly, delete first and then open the dataset again; otherwise drop the bad files from
//! their splits with [`super::DirectoryDataset::remove_paths`].

use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use super::dataset::Sample;
use super::decode::decode_rgb8;

/// Options of [`scan`] (default: all cores, at least 2; delete nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Decoding threads (0: the number of available cores, at least 2).
    pub threads: usize,
    /// Delete the bad files from disk.
    pub delete: bool,
}

/// A file the scan rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadFile {
    /// The file.
    pub path: PathBuf,
    /// Why it cannot be used (the decoder's error, naming the file).
    pub reason: String,
}

/// What [`scan`] found.
#[derive(Clone, Debug, Default)]
pub struct ScanReport {
    /// Number of files scanned.
    pub total: usize,
    /// The samples that decoded, in input order.
    pub good: Vec<Sample>,
    /// The files that did not, in input order, with the reason.
    pub bad: Vec<BadFile>,
    /// Bad files removed from disk (with `delete`).
    pub deleted: Vec<PathBuf>,
    /// Bad files that could not be removed, with the I/O error.
    pub delete_failures: Vec<BadFile>,
}

impl ScanReport {
    /// The paths of the bad files, for [`super::DirectoryDataset::remove_paths`].
    pub fn bad_paths(&self) -> std::collections::HashSet<PathBuf> {
        self.bad.iter().map(|b| b.path.clone()).collect()
    }

    /// A human summary: counts, then one line per bad file.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "Scanned {} files: {} good, {} unusable",
            self.total,
            self.good.len(),
            self.bad.len()
        );
        if !self.deleted.is_empty() {
            s += &format!(", {} deleted", self.deleted.len());
        }
        s.push('\n');
        for b in &self.bad {
            s += &format!("  skipped: {}\n", b.reason);
        }
        for f in &self.delete_failures {
            s += &format!("  could not delete {}: {}\n", f.path.display(), f.reason);
        }
        s
    }
}

/// Resolves a thread count: 0 means all available cores, and at least 2 (decoding overlaps
/// file reads); an explicit count is taken as given.
pub(crate) fn thread_count(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        thread::available_parallelism().map_or(2, |n| n.get().max(2))
    }
}

/// Decodes every sample once on `options.threads` threads (work-stealing by a shared index) and
/// sorts them into good and bad; with `options.delete`, removes the bad files.
pub fn scan(samples: &[Sample], options: &ScanOptions) -> ScanReport {
    let threads = thread_count(options.threads).min(samples.len().max(1));
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(sample) = samples.get(i) else { break };
            if let Err(e) = decode_rgb8(&sample.path) {
                failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, e.to_string()));
            }
        }
    };
    thread::scope(|s| {
        // If the OS refuses threads, the ones started (or this one) do all the work.
        let started = (0..threads)
            .filter(|_| thread::Builder::new().spawn_scoped(s, work).is_ok())
            .count();
        if started == 0 {
            work();
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failures.sort_by_key(|f| f.0);
    let mut report = ScanReport {
        total: samples.len(),
        ..ScanReport::default()
    };
    let mut fi = failures.into_iter().peekable();
    for (i, sample) in samples.iter().enumerate() {
        match fi.next_if(|f| f.0 == i) {
            Some((_, reason)) => report.bad.push(BadFile {
                path: sample.path.clone(),
                reason,
            }),
            None => report.good.push(sample.clone()),
        }
    }
    if options.delete {
        for b in &report.bad {
            match fs::remove_file(&b.path) {
                Ok(()) => report.deleted.push(b.path.clone()),
                Err(e) => report.delete_failures.push(BadFile {
                    path: b.path.clone(),
                    reason: e.to_string(),
                }),
            }
        }
    }
    report
}
