//! A parallel pre-scan that decodes every file once and reports those that cannot be used
//! (unreadable, zero-byte, not an image, truncated, corrupt, too large), optionally deleting them.
//!
//! What differs from the Keras example's own filter: the example deletes every file whose first
//! 10 bytes lack `JFIF` *before* the dataset is opened (so the split is drawn from the survivors),
//! whether or not the file decodes; gpucnn instead decodes each file and skips the undecodable
//! ones *after* the split, keeping JPEGs without a JFIF header (EXIF, Adobe) and PNG, BMP, GIF
//! and WebP files. [`keras_jfif_filter`] (`gpucnn scan --keras-jfif-filter --delete`) applies the example's
//! test to reproduce its file set, and hence its split, exactly. A bad file never aborts the scan.
//! To keep the split of a folder as it was, drop the bad files from their splits with
//! [`super::DirectoryDataset::remove_paths`]; after `--delete`, open the dataset again.

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

/// A reason on one line: a file name may hold line breaks (and a message may end in them),
/// which would break the one-line-per-file lists into unreadable, even blank, lines. Control
/// characters are shown escaped (`\n`), so the name stays findable; trailing ones are dropped.
pub(crate) fn one_line(message: &str) -> String {
    message
        .trim_end()
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Whether a file passes the Keras example's filter: `b"JFIF"` within its first 10 bytes.
pub fn has_jfif_header(path: &std::path::Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut head = Vec::with_capacity(10);
    fs::File::open(path)?.take(10).read_to_end(&mut head)?;
    Ok(head.windows(4).any(|w| w == b"JFIF"))
}

/// The Keras example's filter: every sample whose first 10 bytes lack `JFIF` (or that cannot
/// be read) is bad, whether or not it decodes; with `delete`, those files are removed.
pub fn keras_jfif_filter(samples: &[Sample], delete: bool) -> ScanReport {
    let mut report = ScanReport {
        total: samples.len(),
        ..ScanReport::default()
    };
    for sample in samples {
        let reason = match has_jfif_header(&sample.path) {
            Ok(true) => {
                report.good.push(sample.clone());
                continue;
            }
            Ok(false) => format!(
                "{}: no JFIF marker in its first 10 bytes (the Keras example's filter)",
                sample.path.display()
            ),
            Err(e) => format!(
                "cannot read {}: {}",
                sample.path.display(),
                one_line(&e.to_string())
            ),
        };
        report.bad.push(BadFile {
            path: sample.path.clone(),
            reason,
        });
    }
    if delete {
        delete_bad(&mut report);
    }
    report
}

/// Removes the bad files of `report` from disk, recording what was and was not removed.
fn delete_bad(report: &mut ScanReport) {
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
                    .push((i, one_line(&e.to_string())));
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
        delete_bad(&mut report);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_reason_becomes_one_line() {
        assert_eq!(one_line("bad data\r\n\n"), "bad data");
        assert_eq!(
            one_line("/d/tr\nunc\n\n.png is empty"),
            "/d/tr\\nunc\\n\\n.png is empty"
        );
    }

    #[test]
    fn the_keras_filter_keeps_only_files_with_jfif_in_the_first_ten_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            fs::write(&p, bytes).unwrap();
            Sample { path: p, label: 0 }
        };
        let samples = vec![
            file("jfif.jpg", b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00rest"),
            file("exif.jpg", b"\xFF\xD8\xFF\xE1\x00\x10Exif\x00\x00JFIF"),
            file("short.jpg", b"JFI"),
            file("a.png", b"\x89PNG\r\n\x1a\n"),
        ];
        let r = keras_jfif_filter(&samples, true);
        assert_eq!(r.good.len(), 1);
        assert_eq!(r.good[0].path, samples[0].path);
        assert_eq!(r.bad.len(), 3);
        assert_eq!(r.deleted.len(), 3);
        assert!(samples[0].path.exists() && !samples[1].path.exists());
        assert!(r.bad[0].reason.contains("exif.jpg"), "{}", r.bad[0].reason);
    }
}
