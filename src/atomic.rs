//! Crash-safe file replacement: write a temporary sibling, fsync it, rename it over the target,
//! fsync the directory. A reader (or a crash) sees either the old file or the new one, never a
//! mix; no temporary file survives an error.
//!
//! For the crash tests (tests/run_folder.rs) the environment variable
//! `GPUCNN_TEST_KILL_AT_RENAME=K` makes the process send itself SIGKILL just before its K-th
//! atomic rename (counted from 1 over the whole process), on Unix: a real kill at the exact
//! point a write becomes visible. Unset, it costs one cached lookup per write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// A failed atomic write: the target path, the step that failed and the OS error.
#[derive(Debug, Error)]
#[error("could not write {}: {step}: {source}", path.display())]
pub struct AtomicWriteError {
    /// The file that was to be written.
    pub path: PathBuf,
    /// What failed (creating the temporary file, writing, syncing, renaming).
    pub step: &'static str,
    /// The underlying I/O error.
    #[source]
    pub source: io::Error,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
/// fsynced and renamed over `path` (replacing an existing file); the directory is fsynced where
/// the platform supports it. On error the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    let path = path.as_ref();
    let err = |step, source| AtomicWriteError {
        path: path.to_path_buf(),
        step,
        source,
    };
    let file_name = path.file_name().ok_or_else(|| {
        err(
            "the path has no file name",
            io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (tmp_path, mut file) = create_temp(dir, file_name).map_err(|e| {
        err(
            "creating a temporary file in its directory (does the directory exist and is it writable?)",
            e,
        )
    })?;
    let result = (|| {
        file.write_all(bytes).map_err(|e| err("writing", e))?;
        file.sync_all().map_err(|e| err("syncing to disk", e))?;
        drop(file);
        kill_hook();
        fs::rename(&tmp_path, path).map_err(|e| err("renaming the temporary file over it", e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
        return result;
    }
    sync_dir(dir).map_err(|e| err("syncing its directory", e))
}

/// Sends SIGKILL to this process before the K-th rename when `GPUCNN_TEST_KILL_AT_RENAME=K`.
fn kill_hook() {
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    static RENAMES: AtomicU64 = AtomicU64::new(0);
    let at = AT.get_or_init(|| {
        std::env::var("GPUCNN_TEST_KILL_AT_RENAME")
            .ok()
            .and_then(|v| v.trim().parse().ok())
    });
    if let Some(k) = *at
        && RENAMES.fetch_add(1, Ordering::SeqCst) + 1 == k
    {
        // The crash tests drive the CLI, so the hook (and libc) comes with the `cli` feature.
        #[cfg(all(unix, feature = "cli"))]
        // SAFETY: kill(2) on our own pid; SIGKILL ends the process here.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// A fresh `.{name}.{pid}.{n}.tmp` in `dir`, created exclusively (never clobbers a file).
fn create_temp(dir: &Path, file_name: &std::ffi::OsStr) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = std::ffi::OsString::from(".");
        name.push(file_name);
        name.push(format!(".{}.{n}.tmp", std::process::id()));
        let tmp = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Makes the rename durable: on Unix a directory can be opened and fsynced; elsewhere (Windows)
/// it cannot, and the rename is as durable as the file system makes it.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_then_replaces_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write_atomic(&p, b"first").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"first");
        write_atomic(&p, b"second, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second, longer");
        write_atomic(&p, b"").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"");
        assert_eq!(entries(dir.path()), vec!["a.bin".to_string()]);
    }

    #[test]
    fn missing_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/dir/x.json");
        let e = write_atomic(&p, b"{}").unwrap_err();
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_rename_removes_the_temporary_file_and_keeps_the_target() {
        // Renaming a file over a non-empty directory fails on every platform.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("target");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("keep"), b"x").unwrap();
        let e = write_atomic(&p, b"data").unwrap_err();
        assert!(e.to_string().contains("target"), "{e}");
        assert_eq!(entries(dir.path()), vec!["target".to_string()]);
        assert_eq!(fs::read(p.join("keep")).unwrap(), b"x");
    }
}
