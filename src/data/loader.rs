//! Batches of decoded, resized images, prepared by worker threads ahead of the consumer.
//!
//! - [`Loader::epoch`] takes an order of sample indices (e.g. [`super::epoch_order`] for
//!   training, `0..n` for validation) and yields [`Batch`]es in that order; the last partial batch
//!   is kept, never dropped.
//! - Workers claim whole batches from a shared counter, decode and resize them, and send them
//!   through a bounded `sync_channel`; they never run more than `prefetch + workers` batches ahead
//!   of the consumer, so memory stays bounded however slow the consumer is.
//! - Every image, once decoded, is stored in a cache of resized u8 HWC records: in memory when all
//!   of them fit `CacheOptions::memory_budget`, else in one file of fixed-size records under
//!   `CacheOptions::disk_dir` (deleted when the loader is dropped), else not at all. Later epochs
//!   read the cache instead of decoding again.
//! - Pixel values: the resize's output rounded to the nearest integer, given as u8 0–255. Keras
//!   feeds the unrounded floats; rounding (≤ 0.5/255 after Rescaling) is what lets the first epoch
//!   and the cached ones give identical data, a u8 cache a quarter of the size, and the upload
//!   to the GPU a quarter of f32's (the trainer widens the bytes on the GPU, exactly).
//! - A file that fails to decode (despite a scan) is skipped and reported in
//!   [`LoaderStats::skipped`], every epoch; its batch is one image shorter. Nothing panics.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::dataset::Sample;
use super::decode::{ResizeOptions, decode_rgb8, quantize_u8, resize_rgb8};
use super::scan::{BadFile, thread_count};

/// Where decoded images may be cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheOptions {
    /// Most bytes the in-memory cache may take (all images as u8 HWC must fit, or none is kept
    /// in memory).
    pub memory_budget: u64,
    /// Folder for the on-disk cache file when memory does not suffice; `None`: no disk cache.
    pub disk_dir: Option<PathBuf>,
}

/// Options of [`Loader::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderOptions {
    /// Output size (and crop) of every image.
    pub resize: ResizeOptions,
    /// Images per batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Decoding threads (0: the number of available cores).
    pub workers: usize,
    /// Finished batches the queue holds ahead of the consumer (at least 1).
    pub prefetch: usize,
    /// Cache of decoded images.
    pub cache: CacheOptions,
}

/// Which cache a loader uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheKind {
    /// Every image decoded every epoch.
    None,
    /// Decoded images kept in memory.
    Memory,
    /// Decoded images kept in this file.
    Disk(PathBuf),
}

/// Why a loader cannot be built or an epoch started.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// Nonsensical options.
    #[error("invalid loader option: {0}")]
    Options(String),
    /// The disk cache file cannot be created.
    #[error(
        "cannot create the image cache file {path}: {source} (free disk space or pick another output folder)"
    )]
    CacheFile {
        /// The file at fault.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// Not even one worker thread could be started.
    #[error(
        "cannot start a data loader thread: {0} (lower the worker count or free system resources)"
    )]
    Spawn(#[source] io::Error),
    /// An epoch order names a sample that does not exist.
    #[error("epoch order holds index {index}, but the loader has {len} samples")]
    IndexOutOfRange {
        /// The bad index.
        index: usize,
        /// Number of samples.
        len: usize,
    },
}

/// One batch: `images` [len, H, W, 3] u8 0–255 (NHWC), `labels` [len].
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Pixels, NHWC, values 0–255 (the resize rounded to whole values).
    pub images: Vec<u8>,
    /// Class index of each image.
    pub labels: Vec<u32>,
    /// Index (into the loader's samples) of each image.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of images in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when every image of the batch was skipped.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// What one epoch cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoaderStats {
    /// Time the consumer spent waiting for a batch (0 when the workers keep ahead).
    pub wait: Duration,
    /// Images decoded from their files.
    pub decoded: usize,
    /// Images read from the cache.
    pub from_cache: usize,
    /// Files that failed to decode and were left out, with the reason.
    pub skipped: Vec<BadFile>,
}

const EMPTY: u8 = 0;
const FILLED: u8 = 1;
const BAD: u8 = 2;

enum Store {
    None,
    Memory(Vec<OnceLock<Box<[u8]>>>),
    Disk { file: File, path: PathBuf },
}

/// Resized u8 HWC images by sample index, filled by the workers as they decode.
struct Cache {
    store: Store,
    state: Vec<AtomicU8>,
    record: usize,
    bad: Mutex<HashMap<usize, String>>,
}

impl Cache {
    fn get(&self, i: usize, out: &mut [u8]) -> bool {
        if self.state[i].load(Ordering::Acquire) != FILLED {
            return false;
        }
        match &self.store {
            Store::None => false,
            Store::Memory(slots) => slots[i].get().map(|b| out.copy_from_slice(b)).is_some(),
            Store::Disk { file, .. } => read_at(file, out, (i * self.record) as u64).is_ok(),
        }
    }

    fn put(&self, i: usize, data: &[u8]) {
        let stored = match &self.store {
            Store::None => false,
            Store::Memory(slots) => {
                let _ = slots[i].set(data.into());
                true
            }
            // A failed write (disk full) only means this image is decoded again next epoch.
            Store::Disk { file, .. } => write_at(file, data, (i * self.record) as u64).is_ok(),
        };
        if stored {
            self.state[i].store(FILLED, Ordering::Release);
        }
    }

    fn mark_bad(&self, i: usize, reason: &str) {
        self.state[i].store(BAD, Ordering::Release);
        lock(&self.bad).insert(i, reason.to_string());
    }

    fn bad_reason(&self, i: usize) -> Option<String> {
        if self.state[i].load(Ordering::Acquire) != BAD {
            return None;
        }
        lock(&self.bad).get(&i).cloned()
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Store::Disk { path, .. } = &self.store {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => {
                buf = &buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Decodes, resizes and caches the images of a fixed list of samples, batch by batch.
pub struct Loader {
    samples: Arc<Vec<Sample>>,
    options: LoaderOptions,
    cache: Arc<Cache>,
}

impl Loader {
    /// A loader over `samples`; creates the disk cache file when memory does not suffice.
    pub fn new(samples: Vec<Sample>, options: LoaderOptions) -> Result<Self, LoaderError> {
        let r = &options.resize;
        if options.batch_size == 0 || r.height == 0 || r.width == 0 {
            return Err(LoaderError::Options(format!(
                "batch size {} and image size {}×{} must be positive",
                options.batch_size, r.height, r.width
            )));
        }
        let record = r.record_len();
        let n = samples.len();
        let total = record as u64 * n as u64;
        let store = if total <= options.cache.memory_budget {
            Store::Memory((0..n).map(|_| OnceLock::new()).collect())
        } else if let Some(dir) = &options.cache.disk_dir {
            let (file, path) = create_cache_file(dir, total)?;
            Store::Disk { file, path }
        } else {
            Store::None
        };
        let cache = Cache {
            store,
            state: (0..n).map(|_| AtomicU8::new(EMPTY)).collect(),
            record,
            bad: Mutex::new(HashMap::new()),
        };
        Ok(Self {
            samples: Arc::new(samples),
            options,
            cache: Arc::new(cache),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples, indexed as epoch orders index them.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The cache in use.
    pub fn cache_kind(&self) -> CacheKind {
        match &self.cache.store {
            Store::None => CacheKind::None,
            Store::Memory(_) => CacheKind::Memory,
            Store::Disk { path, .. } => CacheKind::Disk(path.clone()),
        }
    }

    /// Number of batches an order of `n` indices makes (the last one partial if need be).
    pub fn batch_count(&self, n: usize) -> usize {
        n.div_ceil(self.options.batch_size)
    }

    /// Starts an epoch visiting the samples in `order` (indices into [`Self::samples`]); the
    /// workers start decoding at once. Iterate the result for the batches.
    pub fn epoch(&self, order: &[usize]) -> Result<Epoch, LoaderError> {
        let b = self.options.batch_size;
        let sizes: Vec<usize> = (0..self.batch_count(order.len()))
            .map(|k| b.min(order.len() - k * b))
            .collect();
        self.epoch_in_batches(order, &sizes)
    }

    /// As [`Self::epoch`] with batches of the given sizes (summing to `order.len()`; a size
    /// may be 0, for an empty batch): a data-parallel rank's shards of each global batch.
    pub fn epoch_in_batches(&self, order: &[usize], sizes: &[usize]) -> Result<Epoch, LoaderError> {
        let len = self.samples.len();
        if let Some(&index) = order.iter().find(|&&i| i >= len) {
            return Err(LoaderError::IndexOutOfRange { index, len });
        }
        assert_eq!(sizes.iter().sum::<usize>(), order.len(), "batch sizes");
        let bounds: Vec<usize> = std::iter::once(0)
            .chain(sizes.iter().scan(0, |at, &n| {
                *at += n;
                Some(*at)
            }))
            .collect();
        let n_batches = sizes.len();
        let workers = thread_count(self.options.workers).min(n_batches.max(1));
        let prefetch = self.options.prefetch.max(1);
        let shared = Arc::new(EpochShared {
            order: order.to_vec(),
            samples: Arc::clone(&self.samples),
            cache: Arc::clone(&self.cache),
            resize: self.options.resize,
            bounds,
            ahead: prefetch + workers,
            next_batch: AtomicUsize::new(0),
            consumed: Mutex::new(0),
            progress: Condvar::new(),
            cancel: AtomicBool::new(false),
            decoded: AtomicUsize::new(0),
            from_cache: AtomicUsize::new(0),
            skipped: Mutex::new(Vec::new()),
        });
        let (tx, rx) = sync_channel(prefetch);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (shared, tx) = (Arc::clone(&shared), tx.clone());
            match thread::Builder::new()
                .name("gpucnn-loader".into())
                .spawn(move || worker(&shared, &tx))
            {
                Ok(h) => handles.push(h),
                // Fewer workers only means slower loading; none at all is an error.
                Err(source) if handles.is_empty() => return Err(LoaderError::Spawn(source)),
                Err(_) => break,
            }
        }
        Ok(Epoch {
            shared,
            rx: Some(rx),
            workers: handles,
            pending: BTreeMap::new(),
            next: 0,
            n_batches,
            wait: Duration::ZERO,
        })
    }
}

fn create_cache_file(dir: &Path, len: u64) -> Result<(File, PathBuf), LoaderError> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = dir.join(format!(
        "gpucnn-image-cache-{}-{nanos}.u8",
        std::process::id()
    ));
    let err = |source| LoaderError::CacheFile {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(err)?;
    if let Err(e) = file.set_len(len) {
        let _ = fs::remove_file(&path);
        return Err(err(e));
    }
    Ok((file, path))
}

struct EpochShared {
    order: Vec<usize>,
    samples: Arc<Vec<Sample>>,
    cache: Arc<Cache>,
    resize: ResizeOptions,
    /// Batch k is `order[bounds[k]..bounds[k + 1]]`.
    bounds: Vec<usize>,
    /// Workers may start batch k only while k < consumed + ahead.
    ahead: usize,
    next_batch: AtomicUsize,
    consumed: Mutex<usize>,
    progress: Condvar,
    cancel: AtomicBool,
    decoded: AtomicUsize,
    from_cache: AtomicUsize,
    skipped: Mutex<Vec<BadFile>>,
}

fn worker(shared: &EpochShared, tx: &SyncSender<(usize, Batch)>) {
    let n_batches = shared.bounds.len() - 1;
    loop {
        let k = shared.next_batch.fetch_add(1, Ordering::Relaxed);
        if k >= n_batches {
            return;
        }
        {
            let mut consumed = lock(&shared.consumed);
            while k >= *consumed + shared.ahead && !shared.cancel.load(Ordering::Acquire) {
                consumed = shared
                    .progress
                    .wait(consumed)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        if shared.cancel.load(Ordering::Acquire) {
            return;
        }
        let batch = build_batch(shared, k);
        if tx.send((k, batch)).is_err() {
            return; // the consumer is gone
        }
    }
}

fn build_batch(shared: &EpochShared, k: usize) -> Batch {
    let (start, end) = (shared.bounds[k], shared.bounds[k + 1]);
    let record = shared.cache.record;
    let mut batch = Batch {
        images: Vec::with_capacity((end - start) * record),
        labels: Vec::with_capacity(end - start),
        indices: Vec::with_capacity(end - start),
    };
    let mut pixels = vec![0u8; record];
    for &i in &shared.order[start..end] {
        if shared.cancel.load(Ordering::Relaxed) {
            break;
        }
        let sample = &shared.samples[i];
        if let Some(reason) = shared.cache.bad_reason(i) {
            lock(&shared.skipped).push(BadFile {
                path: sample.path.clone(),
                reason,
            });
            continue;
        }
        if shared.cache.get(i, &mut pixels) {
            shared.from_cache.fetch_add(1, Ordering::Relaxed);
        } else {
            match decode_rgb8(&sample.path) {
                Ok(img) => {
                    quantize_u8(&resize_rgb8(&img, &shared.resize), &mut pixels);
                    shared.cache.put(i, &pixels);
                    shared.decoded.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    let reason = e.to_string();
                    shared.cache.mark_bad(i, &reason);
                    lock(&shared.skipped).push(BadFile {
                        path: sample.path.clone(),
                        reason,
                    });
                    continue;
                }
            }
        }
        batch.images.extend_from_slice(&pixels);
        batch.labels.push(sample.label as u32);
        batch.indices.push(i);
    }
    batch
}

/// The batches of one epoch, in order; dropping it early stops the workers.
pub struct Epoch {
    shared: Arc<EpochShared>,
    rx: Option<Receiver<(usize, Batch)>>,
    workers: Vec<JoinHandle<()>>,
    pending: BTreeMap<usize, Batch>,
    next: usize,
    n_batches: usize,
    wait: Duration,
}

impl Epoch {
    /// Number of batches of this epoch.
    pub fn batch_count(&self) -> usize {
        self.n_batches
    }

    /// Statistics so far (complete once the iterator has returned `None`).
    pub fn stats(&self) -> LoaderStats {
        let mut skipped = lock(&self.shared.skipped).clone();
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        LoaderStats {
            wait: self.wait,
            decoded: self.shared.decoded.load(Ordering::Relaxed),
            from_cache: self.shared.from_cache.load(Ordering::Relaxed),
            skipped,
        }
    }

    fn stop_workers(&mut self) {
        self.shared.cancel.store(true, Ordering::Release);
        {
            let _guard = lock(&self.shared.consumed);
            self.shared.progress.notify_all();
        }
        self.rx = None; // a worker blocked in send() now gets an error
        for h in self.workers.drain(..) {
            if let Err(panic) = h.join()
                && !thread::panicking()
            {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Iterator for Epoch {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.n_batches {
            return None;
        }
        loop {
            if let Some(batch) = self.pending.remove(&self.next) {
                self.next += 1;
                *lock(&self.shared.consumed) = self.next;
                self.shared.progress.notify_all();
                return Some(batch);
            }
            let started = Instant::now();
            let received = self.rx.as_ref()?.recv();
            self.wait += started.elapsed();
            match received {
                Ok((k, batch)) => {
                    self.pending.insert(k, batch);
                }
                Err(_) => {
                    // Every worker is gone with batches missing: only a worker panic does that;
                    // stop_workers re-raises it.
                    self.stop_workers();
                    self.next = self.n_batches;
                    return None;
                }
            }
        }
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("samples", &self.samples.len())
            .field("options", &self.options)
            .field("cache", &self.cache_kind())
            .finish()
    }
}
