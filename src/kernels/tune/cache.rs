//! The on-disk cache of measured variant choices: one JSON file, an entry per adapter key, written atomically; and the per-process memo in front of it.
//! The file needs the `serde` feature; without it a process keeps its measurement in the memo.

use super::*;
#[cfg(feature = "serde")]
use std::collections::BTreeMap;

#[cfg(feature = "serde")]
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct CacheFile {
    format: u32,
    /// By [`cache_key`].
    adapters: BTreeMap<String, Tuning>,
}

/// The cache key of an adapter: what a driver update, a new gpucnn or a change to a tuned
/// kernel must re-measure; `zero_copy` ([`GpuContext::zero_copy_mirrors`]): texture mirrors
/// are read in place rather than copied, which makes the textured variants cheaper.
pub fn cache_key(info: &wgpu::AdapterInfo, zero_copy: bool) -> String {
    format!(
        "{} | {:?} | {} | {} | gpucnn {} | kernels {:016x}{}",
        info.name,
        info.backend,
        info.driver,
        info.driver_info,
        env!("CARGO_PKG_VERSION"),
        tuned_kernels_fingerprint(),
        if zero_copy {
            " | zero-copy mirrors"
        } else {
            ""
        }
    )
}

/// The sources of the families that are tuned (and the mirror type of their texture forms).
/// Timings measured with other sources say nothing about these: a change that made
/// `subgroup64` faster than `subgroup` at small shapes left a cache that still chose
/// `subgroup` under the same version.
const TUNED_SOURCES: [&str; 8] = [
    include_str!("../../../shaders/gemm.wgsl"),
    include_str!("../../../shaders/gemm_subgroup.wgsl"),
    include_str!("../../../shaders/gemm_subgroup64.wgsl"),
    include_str!("../../../shaders/gemm_subgroup64_texture.wgsl"),
    include_str!("../../../shaders/conv2d.wgsl"),
    include_str!("../../../shaders/conv2d_subgroup.wgsl"),
    include_str!("../../../shaders/batch_norm.wgsl"),
    // batch_norm's flat_texture is batch_norm.wgsl rewritten by gpu::mirror::texture_form.
    crate::gpu::mirror::MIRROR_TYPE,
];

/// FNV-1a (64-bit) over [`TUNED_SOURCES`]: stable across runs and platforms, unlike std's
/// hasher.
pub fn tuned_kernels_fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for src in TUNED_SOURCES {
        for b in src.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The cache file: `$GPUCNN_CACHE_DIR/variants.json`, else the user's cache directory's
/// `gpucnn/variants.json` (`$XDG_CACHE_HOME`, else `~/.cache` on Unix, `~/Library/Caches` on
/// macOS, `%LOCALAPPDATA%` on Windows). `None` when no folder is known, and always without the
/// `serde` feature (no file is read or written).
pub fn cache_path() -> Option<PathBuf> {
    if !cfg!(feature = "serde") {
        return None;
    }
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var(CACHE_DIR_VAR) {
        return Some(d.join(CACHE_FILE));
    }
    let base = if cfg!(windows) {
        var("LOCALAPPDATA")
    } else if cfg!(target_os = "macos") {
        var("HOME").map(|h| h.join("Library/Caches"))
    } else {
        var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))
    };
    base.map(|b| b.join("gpucnn").join(CACHE_FILE))
}

/// Reads the file's entries; `Err` says why a file that exists cannot be used.
#[cfg(feature = "serde")]
pub(super) fn read_cache(path: &std::path::Path) -> Result<CacheFile, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheFile::default()),
        Err(e) => return Err(e.to_string()),
    };
    let file: CacheFile = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if file.format != FORMAT {
        return Err(format!(
            "format {} (this gpucnn writes {FORMAT})",
            file.format
        ));
    }
    Ok(file)
}

/// The tuning stored for `key` in the file at `path`. A file that cannot be read or parsed is
/// reported (`Err`, the caller warns) and treated as empty, so the next store rewrites it.
#[cfg(feature = "serde")]
pub fn load(path: &std::path::Path, key: &str) -> Result<Option<Tuning>, String> {
    Ok(read_cache(path)?.adapters.get(key).cloned())
}

/// Stores `tuning` for `key` in the file at `path` (other adapters' entries kept, a corrupt
/// file replaced), atomically.
#[cfg(feature = "serde")]
pub fn store(path: &std::path::Path, key: &str, tuning: &Tuning) -> Result<(), CacheWriteError> {
    let mut file = read_cache(path).unwrap_or_default();
    file.format = FORMAT;
    file.adapters.insert(key.to_string(), tuning.clone());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| CacheWriteError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    crate::atomic::write_atomic(path, &serde_json::to_vec_pretty(&file)?)?;
    Ok(())
}

/// Why [`store`] could not write the cache file.
#[cfg(feature = "serde")]
#[derive(Debug, thiserror::Error)]
pub enum CacheWriteError {
    #[error("creating the folder {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding the cache as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Write(#[from] crate::atomic::AtomicWriteError),
}

pub(super) fn memo() -> std::sync::MutexGuard<'static, Option<HashMap<String, (Tuning, Source)>>> {
    MEMO.lock().unwrap_or_else(|p| p.into_inner())
}

/// The tuning that applies to `ctx`, when tuning is [`active`]: measured by this process, or
/// read from the cache (once per process). A corrupt cache file is warned about and ignored.
pub fn cached(ctx: &GpuContext) -> Option<(Tuning, Source)> {
    if !active() {
        return None;
    }
    let key = cache_key(&ctx.info, ctx.zero_copy_mirrors());
    if let Some(hit) = memo().as_ref().and_then(|m| m.get(&key)) {
        return Some(hit.clone());
    }
    let path = cache_path()?;
    file_entry(&path, key)
}

/// The cache file's entry for `key`, remembered in the memo; a corrupt file is warned about.
#[cfg(feature = "serde")]
fn file_entry(path: &std::path::Path, key: String) -> Option<(Tuning, Source)> {
    match load(path, &key) {
        Ok(Some(t)) => {
            let hit = (t, Source::Cache);
            memo().get_or_insert_default().insert(key, hit.clone());
            Some(hit)
        }
        Ok(None) => None,
        // Once per process: every compile and plan asks.
        Err(why) if !WARNED.swap(true, Ordering::Relaxed) => {
            crate::msgln!(
                "warning: ignoring the kernel-variant cache {}: {why}; it will be measured \
                 again and rewritten",
                path.display()
            );
            None
        }
        Err(_) => None,
    }
}

/// Without the `serde` feature there is no file ([`cache_path`] is `None`).
#[cfg(not(feature = "serde"))]
fn file_entry(_path: &std::path::Path, _key: String) -> Option<(Tuning, Source)> {
    None
}
