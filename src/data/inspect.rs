//! What `gpucnn inspect` finds in a dataset, and the leak check `gpucnn train` runs at start.
//!
//! [`inspect`] reads every file of both splits once, on all cores: it hashes the file's bytes
//! (BLAKE3: exact duplicates), decodes it with the trainer's decoder (unreadable files, with
//! the same reasons `scan` gives), hashes the decoded image perceptually ([`difference_hash`]:
//! near-duplicates) and notes its size, colour mode and format from the decoder. A folder
//! therefore costs about one `scan`.
//!
//! The difference hash is computed here rather than with the `image_hasher` crate: that crate
//! shrinks the image with `image::imageops::resize`, which took 80% of the time of an inspect
//! (a profile of 2,000 JPEGs of 500×375: 17 s against 2.7 s for `scan`); the box average below
//! reads at most about 18,000 pixels of an image.
//!
//! Then, without touching the files again:
//! - exact duplicates: groups of files with the same content hash, each marked as within one
//!   class, across classes (one image, two labels) and/or across the train/validation split
//!   (a validation image the model trained on: val_accuracy is inflated);
//! - near-duplicates: distinct files whose perceptual hashes differ in at most `near_threshold`
//!   bits, joined into groups (an exact duplicate counts once). Every pair of distinct images is
//!   compared: 25,000 images are 3·10⁸ XOR-and-popcounts of two words, 1.1 s measured in a
//!   debug build on a loaded 2-core machine (`near_groups_at_25000_images`), small beside
//!   decoding 25,000 photos, which is why no locality-sensitive bucketing is done;
//! - per-class counts in each split and the imbalance ratio (largest class / smallest);
//! - the distribution of image sizes, aspect ratios, colour modes and formats.
//!
//! [`split_leaks`] is the trainer's cheap version of the across-split check: it compares file
//! sizes first and hashes only files whose size occurs in both splits.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use image::{ImageDecoder, ImageReader};
use serde::Serialize;

use super::dataset::{Sample, class_counts};
use super::decode::{decode_bytes_rgb8, read_image_file};
use super::scan::{one_line, thread_count};

/// Default largest Hamming distance (in bits, of 64) between the perceptual hashes of two
/// near-duplicates (`--near-threshold`). A re-encode, a resize or a brightness change of the
/// same picture moves a difference hash by a few bits; unrelated pictures differ in about 32,
/// less when both have large flat areas (equal neighbours give the same, unset, bits).
pub const DEFAULT_NEAR_THRESHOLD: u32 = 8;

/// Images whose shorter side is below this many pixels get no perceptual hash: a 9×8 grid of
/// box means over fewer pixels repeats pixels between boxes and leaves most bits 0, so
/// different pictures collide (on an 8×8 digits set, groups of a hundred across classes).
pub const MIN_HASH_SIDE: u32 = 16;

/// Which split a file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training split.
    Train,
    /// The validation split (held out of `--data`, or the `--val-data` folder).
    Validation,
}

impl Split {
    /// `train` or `validation`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Validation => "validation",
        }
    }
}

/// The dataset to inspect, as the trainer opens it ([`crate::train::setup::load_data`]).
pub struct InspectInput<'a> {
    /// Class names (multi-label: label names), indexed by [`Sample::label`] when single-label.
    pub class_names: &'a [String],
    /// The training split.
    pub train: &'a [Sample],
    /// The validation split.
    pub val: &'a [Sample],
    /// Multi-label: the multi-hot target row of each `Sample::label`; `None`: single-label.
    pub targets: Option<&'a [Vec<f32>]>,
}

impl InspectInput<'_> {
    /// A sample's label as a report shows it: its class, or (multi-label) its labels joined
    /// with `;` (`(none)` for an image without a label).
    pub fn label_text(&self, s: &Sample) -> String {
        match self.targets {
            None => self.class_names[s.label].clone(),
            Some(t) => {
                let on: Vec<&str> = t[s.label]
                    .iter()
                    .zip(self.class_names)
                    .filter(|(v, _)| **v > 0.5)
                    .map(|(_, n)| n.as_str())
                    .collect();
                if on.is_empty() {
                    "(none)".into()
                } else {
                    on.join(";")
                }
            }
        }
    }
}

/// Options of [`inspect`].
#[derive(Clone, Debug)]
pub struct InspectOptions {
    /// Decoding threads (0: all cores, at least 2).
    pub threads: usize,
    /// Largest Hamming distance between perceptual hashes of near-duplicates.
    pub near_threshold: u32,
}

impl Default for InspectOptions {
    fn default() -> Self {
        Self {
            threads: 0,
            near_threshold: DEFAULT_NEAR_THRESHOLD,
        }
    }
}

/// What the decoder says about a readable image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageFacts {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The colour mode as stored (the image crate's `ColorType`: `L8`, `La8`, `Rgb8`, `Rgba8`,
    /// `L16`, …), before the trainer converts it to RGB.
    pub color: String,
    /// The format its content is in (`JPEG`, `PNG`, `BMP`, `GIF`, `WEBP`).
    pub format: String,
    /// The 64-bit difference hash of the decoded image.
    #[serde(skip)]
    pub phash: u64,
}

/// One file as [`inspect`] read it.
#[derive(Clone, Debug)]
pub struct FileRecord {
    /// The sample (path and label).
    pub sample: Sample,
    /// Its split.
    pub split: Split,
    /// The BLAKE3 hash of the file's bytes; `None` when the file could not be read.
    pub content: Option<[u8; 32]>,
    /// Size, colour mode, format and perceptual hash; `None` when it does not decode.
    pub image: Option<ImageFacts>,
    /// Why it cannot be used (the decoder's message), when it cannot.
    pub error: Option<String>,
}

/// Reads, hashes and decodes one file (see the module docs).
pub fn read_file(sample: &Sample, split: Split) -> FileRecord {
    let mut record = FileRecord {
        sample: sample.clone(),
        split,
        content: None,
        image: None,
        error: None,
    };
    let bytes = match read_image_file(&sample.path) {
        Ok(b) => b,
        Err(e) => {
            record.error = Some(one_line(&e.to_string()));
            return record;
        }
    };
    record.content = Some(*blake3::hash(&bytes).as_bytes());
    match decode_bytes_rgb8(&sample.path, &bytes) {
        Ok(decoded) => {
            let (color, format) = header_facts(&bytes);
            record.image = Some(ImageFacts {
                width: decoded.width(),
                height: decoded.height(),
                color,
                format,
                phash: difference_hash(&decoded),
            });
        }
        Err(e) => record.error = Some(one_line(&e.to_string())),
    }
    record
}

/// The 64-bit difference hash (dHash, Krawetz 2013) of an image: its luma (ITU-R 601, as
/// PIL's `convert("L")` that the `imagehash` package uses) averaged over a 9×8 grid of boxes,
/// then one bit per pair of horizontal neighbours, set where the right box is brighter; row
/// by row, the first bit the most significant. A re-encode, a resize or a change of brightness
/// keeps the order of neighbouring averages and so nearly all bits.
///
/// Box `(i, j)` covers columns `i·W/9 ..` `(i+1)·W/9` (at least one column when the image is
/// narrower than 9 pixels), rows likewise by 8. A large image is sampled on a regular grid
/// (every k-th pixel and row, k ≥ 1 the largest that leaves 16×16 samples a box); others are
/// read whole.
pub fn difference_hash(img: &image::RgbImage) -> u64 {
    const COLS: usize = 9;
    const ROWS: usize = 8;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return 0;
    }
    let span = |i: usize, n: usize, parts: usize| {
        let lo = (i * n / parts).min(n - 1);
        lo..((i + 1) * n / parts).max(lo + 1)
    };
    // Every `step`-th pixel of every `step`-th row: at least 16×16 samples a box, so that a
    // 12-Mpixel photo costs no more than a thumbnail (the mean of 256 samples moves little).
    let step = (w / (COLS * 16)).min(h / (ROWS * 16)).max(1);
    let raw = img.as_raw();
    // Sums of 1000 × luma, and sample counts, per box.
    let mut sums = [[0u64; COLS]; ROWS];
    let mut counts = [[0u64; COLS]; ROWS];
    for (r, (sum_row, count_row)) in sums.iter_mut().zip(&mut counts).enumerate() {
        let ys = span(r, h, ROWS);
        for (c, (sum, count)) in sum_row.iter_mut().zip(count_row.iter_mut()).enumerate() {
            let xs = span(c, w, COLS);
            for y in ys.clone().step_by(step) {
                let row = &raw[(y * w + xs.start) * 3..(y * w + xs.end) * 3];
                for p in row.chunks_exact(3).step_by(step) {
                    *sum += (299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32) as u64;
                    *count += 1;
                }
            }
        }
    }
    let mut hash = 0u64;
    for r in 0..ROWS {
        for c in 0..COLS - 1 {
            // mean(right) > mean(left), without dividing.
            let brighter = sums[r][c + 1] * counts[r][c] > sums[r][c] * counts[r][c + 1];
            hash = (hash << 1) | brighter as u64;
        }
    }
    hash
}

/// The stored colour mode and the format of a file that decoded (read from its header again:
/// the decoder converts to RGB and keeps neither).
fn header_facts(bytes: &[u8]) -> (String, String) {
    let Ok(format) = image::guess_format(bytes) else {
        return ("unknown".into(), "unknown".into());
    };
    let color = ImageReader::with_format(Cursor::new(bytes), format)
        .into_decoder()
        .map_or_else(|_| "unknown".into(), |d| format!("{:?}", d.color_type()));
    (color, format!("{format:?}").to_uppercase())
}

/// Runs `f` on every item on `threads` threads (work-stealing by a shared index), calling
/// `tick` after each; results in input order.
fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
    tick: &(dyn Fn() + Sync),
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    let work = || {
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            mine.push((i, f(item)));
            tick();
        }
        out.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
    };
    thread::scope(|s| {
        let threads = thread_count(threads).min(items.len().max(1));
        let started = (0..threads)
            .filter(|_| thread::Builder::new().spawn_scoped(s, work).is_ok())
            .count();
        if started == 0 {
            work();
        }
    });
    let mut out = out.into_inner().unwrap_or_else(|p| p.into_inner());
    out.sort_by_key(|r| r.0);
    out.into_iter().map(|r| r.1).collect()
}

fn lossy_path<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// One file of a duplicate group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupFile {
    /// The file (in JSON lossily as UTF-8: a name need not be).
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    /// Its class (multi-label: its labels joined with `;`).
    pub class: String,
    /// Its split.
    pub split: Split,
}

/// Files that hold the same picture: exactly (same bytes) or nearly (close perceptual hashes).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DuplicateGroup {
    /// The files, in split then path order.
    pub files: Vec<GroupFile>,
    /// All files have the same class.
    pub within_class: bool,
    /// The files have two or more classes: one picture, several labels.
    pub across_classes: bool,
    /// The group has files in both splits: the model trains on a validation image.
    pub across_split: bool,
    /// Near-duplicates: the largest Hamming distance between two of the group's hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_distance: Option<u32>,
}

impl DuplicateGroup {
    fn new(mut files: Vec<GroupFile>, max_distance: Option<u32>) -> Self {
        files.sort_by(|a, b| (a.split, &a.path).cmp(&(b.split, &b.path)));
        let across_classes = files.iter().any(|f| f.class != files[0].class);
        let across_split = files.iter().any(|f| f.split != files[0].split);
        Self {
            within_class: !across_classes,
            across_classes,
            across_split,
            max_distance,
            files,
        }
    }

    /// Worst first: a picture with two labels, then a leak into validation, then the largest
    /// group (then the closest, then by path, so the order is deterministic).
    fn badness(&self) -> impl Ord + '_ {
        (
            std::cmp::Reverse(self.across_classes),
            std::cmp::Reverse(self.across_split),
            std::cmp::Reverse(self.files.len()),
            self.max_distance,
            &self.files[0].path,
        )
    }

    /// What kind of duplicate this is, for a human: `across classes, across split`.
    pub fn kind(&self) -> String {
        let mut parts = Vec::new();
        if self.across_classes {
            parts.push("across classes");
        } else {
            parts.push("within a class");
        }
        if self.across_split {
            parts.push("across train/validation");
        }
        parts.join(", ")
    }
}

/// Counts of duplicate groups by kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DuplicateCounts {
    /// Groups.
    pub groups: usize,
    /// Files beyond the first of each group.
    pub extra_copies: usize,
    /// Groups whose files all have one class.
    pub within_class: usize,
    /// Groups with two or more classes.
    pub across_classes: usize,
    /// Groups with files in both splits.
    pub across_split: usize,
}

impl DuplicateCounts {
    fn of(groups: &[DuplicateGroup]) -> Self {
        let count = |f: fn(&DuplicateGroup) -> bool| groups.iter().filter(|g| f(g)).count();
        Self {
            groups: groups.len(),
            extra_copies: groups.iter().map(|g| g.files.len() - 1).sum(),
            within_class: count(|g| g.within_class),
            across_classes: count(|g| g.across_classes),
            across_split: count(|g| g.across_split),
        }
    }
}

/// Images of one class in each split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassCount {
    /// The class (multi-label: the label; an image counts under each of its labels).
    pub name: String,
    /// Readable training images.
    pub train: usize,
    /// Readable validation images.
    pub validation: usize,
    /// Both.
    pub total: usize,
}

/// A value and how many images have it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tally {
    /// The value (`640x480`, `Rgb8`, `JPEG`, `0.95-1.05`).
    pub value: String,
    /// Images with it.
    pub count: usize,
}

/// The distribution of image sizes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SizeStats {
    /// Smallest and largest width.
    pub width_min: u32,
    /// Largest width.
    pub width_max: u32,
    /// Median width.
    pub width_median: u32,
    /// Smallest height.
    pub height_min: u32,
    /// Largest height.
    pub height_max: u32,
    /// Median height.
    pub height_median: u32,
    /// The most common `WxH` sizes, most common first (at most 10).
    pub most_common: Vec<Tally>,
    /// Distinct sizes.
    pub distinct: usize,
}

/// A file that cannot be used.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Unreadable {
    /// The file (in JSON lossily as UTF-8: a name need not be).
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    /// Its split.
    pub split: Split,
    /// Why (the decoder's message, as `scan` gives it).
    pub reason: String,
}

/// Everything [`inspect`] found (serialized as `report.json` and by `--json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InspectReport {
    /// Files listed in both splits.
    pub files: usize,
    /// Files that decode.
    pub readable: usize,
    /// Readable training images.
    pub readable_train: usize,
    /// Readable validation images.
    pub readable_validation: usize,
    /// Per class (label), readable images in each split.
    pub classes: Vec<ClassCount>,
    /// Largest class total / smallest class total (`null` when a class has no readable image).
    pub imbalance_ratio: Option<f64>,
    /// Exact duplicate groups by kind.
    pub exact_counts: DuplicateCounts,
    /// Exact duplicates (same bytes), worst first.
    pub exact_duplicates: Vec<DuplicateGroup>,
    /// The near-duplicate threshold used (Hamming distance of 64-bit difference hashes).
    pub near_threshold: u32,
    /// Near-duplicate groups by kind.
    pub near_counts: DuplicateCounts,
    /// Readable images left out of the near-duplicate search: shorter side under
    /// [`MIN_HASH_SIDE`] pixels.
    pub too_small_to_hash: usize,
    /// Near-duplicates (distinct files, close perceptual hashes), worst first.
    pub near_duplicates: Vec<DuplicateGroup>,
    /// Image sizes (readable images).
    pub sizes: SizeStats,
    /// Aspect ratios (width / height) in fixed buckets, narrowest first.
    pub aspect_ratios: Vec<Tally>,
    /// Stored colour modes, most common first.
    pub color_modes: Vec<Tally>,
    /// File formats, most common first.
    pub formats: Vec<Tally>,
    /// Files that cannot be used, in split then path order.
    pub unreadable: Vec<Unreadable>,
}

/// Reads every file of both splits once (calling `tick` after each) and reports on the dataset
/// (see the module docs).
pub fn inspect(
    input: &InspectInput,
    options: &InspectOptions,
    tick: &(dyn Fn() + Sync),
) -> InspectReport {
    let items: Vec<(&Sample, Split)> = input
        .train
        .iter()
        .map(|s| (s, Split::Train))
        .chain(input.val.iter().map(|s| (s, Split::Validation)))
        .collect();
    let records = par_map(
        &items,
        options.threads,
        |(s, split)| read_file(s, *split),
        tick,
    );
    report(input, &records, options.near_threshold)
}

/// The report on files already read ([`read_file`]).
pub fn report(input: &InspectInput, records: &[FileRecord], near_threshold: u32) -> InspectReport {
    let group_file = |r: &FileRecord| GroupFile {
        path: r.sample.path.clone(),
        class: input.label_text(&r.sample),
        split: r.split,
    };
    let exact = exact_groups(records);
    let mut exact_duplicates: Vec<DuplicateGroup> = exact
        .iter()
        .map(|g| DuplicateGroup::new(g.iter().map(|&i| group_file(&records[i])).collect(), None))
        .collect();
    exact_duplicates.sort_by(|a, b| a.badness().cmp(&b.badness()));

    // One image per content: exact copies are reported above, not again as near-duplicates.
    let mut seen = std::collections::HashSet::new();
    let hashable =
        |i: usize| matches!(&records[i].image, Some(f) if f.width.min(f.height) >= MIN_HASH_SIDE);
    let too_small_to_hash = (0..records.len())
        .filter(|&i| records[i].image.is_some() && !hashable(i))
        .count();
    let reps: Vec<usize> = (0..records.len())
        .filter(|&i| hashable(i))
        .filter(|&i| seen.insert(records[i].content))
        .collect();
    let hashes: Vec<u64> = reps
        .iter()
        .map(|&i| records[i].image.as_ref().map_or(0, |f| f.phash))
        .collect();
    let mut near_duplicates: Vec<DuplicateGroup> = near_groups(&hashes, near_threshold)
        .into_iter()
        .map(|g| {
            let hashes = &hashes;
            let max = g
                .iter()
                .flat_map(|&a| g.iter().map(move |&b| (hashes[a] ^ hashes[b]).count_ones()))
                .max();
            DuplicateGroup::new(
                g.iter().map(|&k| group_file(&records[reps[k]])).collect(),
                max,
            )
        })
        .collect();
    near_duplicates.sort_by(|a, b| a.badness().cmp(&b.badness()));

    let readable: Vec<&FileRecord> = records.iter().filter(|r| r.image.is_some()).collect();
    let readable_in = |split: Split| {
        let samples = readable.iter().filter(move |r| r.split == split);
        class_counts(
            samples.map(|r| &r.sample),
            input.class_names.len(),
            input.targets,
        )
    };
    let (train, validation) = (readable_in(Split::Train), readable_in(Split::Validation));
    let classes: Vec<ClassCount> = input
        .class_names
        .iter()
        .zip(train.iter().zip(&validation))
        .map(|(name, (&train, &validation))| ClassCount {
            name: name.clone(),
            train,
            validation,
            total: train + validation,
        })
        .collect();
    let largest = classes.iter().map(|c| c.total).max().unwrap_or(0);
    let smallest = classes.iter().map(|c| c.total).min().unwrap_or(0);
    let facts: Vec<&ImageFacts> = readable.iter().filter_map(|r| r.image.as_ref()).collect();
    let mut unreadable: Vec<Unreadable> = records
        .iter()
        .filter_map(|r| {
            r.error.as_ref().map(|e| Unreadable {
                path: r.sample.path.clone(),
                split: r.split,
                reason: e.clone(),
            })
        })
        .collect();
    unreadable.sort_by(|a, b| (a.split, &a.path).cmp(&(b.split, &b.path)));
    InspectReport {
        files: records.len(),
        readable: readable.len(),
        readable_train: readable.iter().filter(|r| r.split == Split::Train).count(),
        readable_validation: readable
            .iter()
            .filter(|r| r.split == Split::Validation)
            .count(),
        classes,
        imbalance_ratio: (smallest > 0).then(|| largest as f64 / smallest as f64),
        exact_counts: DuplicateCounts::of(&exact_duplicates),
        exact_duplicates,
        near_threshold,
        near_counts: DuplicateCounts::of(&near_duplicates),
        too_small_to_hash,
        near_duplicates,
        sizes: size_stats(&facts),
        aspect_ratios: aspect_buckets(&facts),
        color_modes: tally(facts.iter().map(|f| f.color.clone())),
        formats: tally(facts.iter().map(|f| f.format.clone())),
        unreadable,
    }
}

/// Indices of records with the same content hash, groups of two or more, in input order.
pub fn exact_groups(records: &[FileRecord]) -> Vec<Vec<usize>> {
    let mut by_hash: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(h) = r.content {
            by_hash.entry(h).or_default().push(i);
        }
    }
    let mut groups: Vec<Vec<usize>> = by_hash.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    groups
}

/// Groups of indices of `hashes` within `threshold` bits of their group's first member, groups
/// of two or more, in index order. Greedy: each index not yet grouped leads a new group and
/// takes every later ungrouped index near it. Not connected components: on a collection of
/// similar pictures (small digits, product shots on white) "A near B near C" chains would join
/// everything into one group; here two members of a group are at most 2·threshold apart.
///
/// At most n²/2 XOR-popcounts of two words (see the module docs for the cost).
pub fn near_groups(hashes: &[u64], threshold: u32) -> Vec<Vec<usize>> {
    let mut grouped = vec![false; hashes.len()];
    let mut groups = Vec::new();
    for (a, &ha) in hashes.iter().enumerate() {
        if grouped[a] {
            continue;
        }
        let mut g = vec![a];
        for (b, &hb) in hashes.iter().enumerate().skip(a + 1) {
            if !grouped[b] && (ha ^ hb).count_ones() <= threshold {
                grouped[b] = true;
                g.push(b);
            }
        }
        if g.len() > 1 {
            groups.push(g);
        }
    }
    groups
}

/// Counts of each value, most common first (ties by value).
fn tally(values: impl Iterator<Item = String>) -> Vec<Tally> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let mut out: Vec<Tally> = counts
        .into_iter()
        .map(|(value, count)| Tally { value, count })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    out
}

fn size_stats(facts: &[&ImageFacts]) -> SizeStats {
    if facts.is_empty() {
        return SizeStats::default();
    }
    let median = |mut v: Vec<u32>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let widths: Vec<u32> = facts.iter().map(|f| f.width).collect();
    let heights: Vec<u32> = facts.iter().map(|f| f.height).collect();
    let sizes = tally(facts.iter().map(|f| format!("{}x{}", f.width, f.height)));
    SizeStats {
        width_min: *widths.iter().min().expect("not empty"),
        width_max: *widths.iter().max().expect("not empty"),
        width_median: median(widths),
        height_min: *heights.iter().min().expect("not empty"),
        height_max: *heights.iter().max().expect("not empty"),
        height_median: median(heights),
        distinct: sizes.len(),
        most_common: sizes.into_iter().take(10).collect(),
    }
}

/// Aspect-ratio buckets (width / height; upper bound exclusive): portrait to panorama, with
/// "square" as 0.95–1.05 so that a 1:1 crop off by a pixel still counts as square.
const ASPECT_BUCKETS: [(f64, &str); 7] = [
    (0.5, "<0.5"),
    (0.75, "0.5-0.75"),
    (0.95, "0.75-0.95"),
    (1.05, "0.95-1.05"),
    (1.34, "1.05-1.34"),
    (2.0, "1.34-2"),
    (f64::INFINITY, ">=2"),
];

/// Every bucket of [`ASPECT_BUCKETS`] with its count (empty ones too), narrowest first.
fn aspect_buckets(facts: &[&ImageFacts]) -> Vec<Tally> {
    let mut counts = [0usize; ASPECT_BUCKETS.len()];
    for f in facts {
        let r = f.width as f64 / f.height as f64;
        let b = ASPECT_BUCKETS
            .iter()
            .position(|(hi, _)| r < *hi)
            .unwrap_or(ASPECT_BUCKETS.len() - 1);
        counts[b] += 1;
    }
    ASPECT_BUCKETS
        .iter()
        .zip(counts)
        .map(|((_, name), count)| Tally {
            value: (*name).into(),
            count,
        })
        .collect()
}

/// Exact copies between the splits, cheaply: file sizes first (one `stat` per file), then the
/// BLAKE3 hash of only the files whose size occurs in both splits. Returns (validation file,
/// a training file with the same bytes) pairs, in validation order; unreadable files are
/// skipped (the trainer's scan reports them).
pub fn split_leaks(train: &[Sample], val: &[Sample]) -> Vec<(PathBuf, PathBuf)> {
    let size = |s: &Sample| fs::metadata(&s.path).ok().map(|m| m.len());
    let mut train_sizes: HashMap<u64, Vec<&Sample>> = HashMap::new();
    for s in train {
        if let Some(n) = size(s) {
            train_sizes.entry(n).or_default().push(s);
        }
    }
    let candidates: Vec<(&Sample, &Vec<&Sample>)> = val
        .iter()
        .filter_map(|s| size(s).and_then(|n| train_sizes.get(&n)).map(|t| (s, t)))
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let mut to_hash: Vec<&Path> = candidates
        .iter()
        .flat_map(|(v, t)| {
            std::iter::once(v.path.as_path()).chain(t.iter().map(|s| s.path.as_path()))
        })
        .collect();
    to_hash.sort();
    to_hash.dedup();
    let hashes: HashMap<&Path, [u8; 32]> = to_hash
        .iter()
        .zip(par_map(&to_hash, 0, |p| content_hash(p), &|| {}))
        .filter_map(|(p, h)| h.map(|h| (*p, h)))
        .collect();
    candidates
        .iter()
        .filter_map(|(v, t)| {
            let hv = hashes.get(v.path.as_path())?;
            let twin = t
                .iter()
                .find(|s| hashes.get(s.path.as_path()) == Some(hv))?;
            Some((v.path.clone(), twin.path.clone()))
        })
        .collect()
}

/// BLAKE3 of a file's bytes, `None` when it cannot be read.
fn content_hash(path: &Path) -> Option<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let mut file = fs::File::open(path).ok()?;
    io::copy(&mut file, &mut hasher).ok()?;
    Some(*hasher.finalize().as_bytes())
}

/// Logs one warning line when validation images are exact copies of training images
/// ([`split_leaks`]): the trainer calls this at start.
pub fn warn_split_leaks(train: &[Sample], val: &[Sample], log: &mut dyn FnMut(&str)) {
    let leaks = split_leaks(train, val);
    if let Some((v, t)) = leaks.first() {
        log(&format!(
            "warning: {} validation image(s) are exact copies of training images (e.g. {} = {}): \
             val_accuracy is inflated; `gpucnn inspect` lists them all",
            leaks.len(),
            v.display(),
            t.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        path: &str,
        label: usize,
        split: Split,
        content: u8,
        phash: Option<u64>,
    ) -> FileRecord {
        FileRecord {
            sample: Sample {
                path: path.into(),
                label,
            },
            split,
            content: Some([content; 32]),
            image: phash.map(|phash| ImageFacts {
                width: 40,
                height: 20,
                color: "Rgb8".into(),
                format: "PNG".into(),
                phash,
            }),
            error: phash.is_none().then(|| "corrupt".to_string()),
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_file_name_that_is_not_utf8_still_serializes() {
        use std::os::unix::ffi::OsStrExt;
        let names = ["a".to_string(), "b".to_string()];
        let odd = std::ffi::OsStr::from_bytes(b"a/\xFF.png")
            .to_str()
            .map(|_| ());
        assert!(odd.is_none());
        let mut recs = vec![
            record("a/1", 0, Split::Train, 1, Some(0)),
            record("b/1", 1, Split::Validation, 1, Some(0)),
        ];
        recs[0].sample.path = PathBuf::from(std::ffi::OsStr::from_bytes(b"a/\xFF.png"));
        let input = InspectInput {
            class_names: &names,
            train: &[],
            val: &[],
            targets: None,
        };
        let json = serde_json::to_string(&report(&input, &recs, 2)).unwrap();
        assert!(json.contains("a/\u{FFFD}.png"), "{json}");
    }

    #[test]
    fn images_too_small_for_a_perceptual_hash_are_counted_not_grouped() {
        let names = ["a".to_string(), "b".to_string()];
        let tiny = |path: &str, label: usize, content: u8| {
            let mut r = record(path, label, Split::Train, content, Some(0));
            if let Some(f) = r.image.as_mut() {
                (f.width, f.height) = (8, 8);
            }
            r
        };
        // Same (all-zero) hash, different contents: near-duplicates if they were hashed.
        let recs = vec![
            tiny("a/1", 0, 1),
            tiny("b/1", 1, 2),
            record("a/2", 0, Split::Train, 3, Some(0)),
        ];
        let input = InspectInput {
            class_names: &names,
            train: &[],
            val: &[],
            targets: None,
        };
        let r = report(&input, &recs, 8);
        assert_eq!(r.too_small_to_hash, 2);
        assert!(r.near_duplicates.is_empty(), "{:?}", r.near_duplicates);
    }

    #[test]
    fn near_groups_gather_around_a_leader_and_never_chain() {
        // 0 and 1 differ in 2 bits, 1 and 2 in 3 (0 and 2 in 5), 3 is far from all.
        let h = [0u64, 0b11, 0b11111, u64::MAX];
        // 2 is within 3 bits of 1 but not of the group's first member 0: no chain.
        assert_eq!(near_groups(&h, 3), vec![vec![0, 1]]);
        assert_eq!(near_groups(&h, 5), vec![vec![0, 1, 2]]);
        assert_eq!(near_groups(&h, 2), vec![vec![0, 1]]);
        assert_eq!(near_groups(&h, 1), Vec::<Vec<usize>>::new());
        assert_eq!(near_groups(&h, 64), vec![vec![0, 1, 2, 3]]);
        // 64 hashes each one bit from the next: groups of threshold + 1, not one of 64.
        let chain: Vec<u64> = (0..64)
            .map(|i| (1u128 << i).wrapping_sub(1) as u64)
            .collect();
        let g = near_groups(&chain, 4);
        assert_eq!(g.len(), 13, "{g:?}");
        assert_eq!(g[0], [0, 1, 2, 3, 4]);
        assert_eq!(g[12], [60, 61, 62, 63]);
    }

    #[test]
    fn exact_groups_are_classified_within_across_classes_and_across_the_split() {
        let names = ["a".to_string(), "b".to_string()];
        let recs = vec![
            record("a/1", 0, Split::Train, 1, Some(0)),
            record("a/2", 0, Split::Train, 1, Some(0)), // within class a
            record("a/3", 0, Split::Train, 2, Some(0xFF)),
            record("b/3", 1, Split::Validation, 2, Some(0xFF)), // across classes and split
            record("b/4", 1, Split::Train, 3, Some(0x0F0F_0F0F)),
            record("b/5", 1, Split::Train, 4, Some(0x0F0F_0F0E)), // near b/4 (1 bit)
            record("b/6", 1, Split::Validation, 5, None),         // unreadable
        ];
        let input = InspectInput {
            class_names: &names,
            train: &[],
            val: &[],
            targets: None,
        };
        let r = report(&input, &recs, 2);
        assert_eq!(r.exact_duplicates.len(), 2);
        // Worst first: the picture with two labels that also leaks.
        let g = &r.exact_duplicates[0];
        assert!(g.across_classes && g.across_split && !g.within_class);
        assert_eq!(g.files[0].path, PathBuf::from("a/3"));
        assert_eq!(g.files[1].split, Split::Validation);
        let g = &r.exact_duplicates[1];
        assert!(g.within_class && !g.across_split);
        assert_eq!(
            r.exact_counts,
            DuplicateCounts {
                groups: 2,
                extra_copies: 2,
                within_class: 1,
                across_classes: 1,
                across_split: 1
            }
        );
        // a/1 and a/2 share hash 0 with a/3's group at distance 8: only the near pair counts,
        // and each exact group once.
        assert_eq!(r.near_duplicates.len(), 1, "{:?}", r.near_duplicates);
        assert_eq!(r.near_duplicates[0].max_distance, Some(1));
        assert_eq!(
            (r.readable, r.readable_train, r.readable_validation),
            (6, 5, 1)
        );
        assert_eq!(r.unreadable.len(), 1);
        assert_eq!(r.classes[0].total, 3);
        assert_eq!(r.classes[1].train, 2);
        assert_eq!(r.classes[1].validation, 1);
        assert_eq!(r.imbalance_ratio, Some(1.0));
        assert_eq!(
            r.aspect_ratios
                .iter()
                .find(|t| t.value == "1.34-2")
                .unwrap()
                .count,
            0
        );
        assert_eq!(
            r.aspect_ratios
                .iter()
                .find(|t| t.value == ">=2")
                .unwrap()
                .count,
            6
        );
    }

    #[test]
    fn the_difference_hash_ignores_a_re_encode_and_a_brightening_but_not_another_picture() {
        let picture = |shift: u8, flip: bool| {
            image::RgbImage::from_fn(64, 48, |x, y| {
                let (x, y) = if flip { (63 - x, y) } else { (x, y) };
                let v = ((x * 3 + y * 2) % 200) as u8 / 2
                    + if (x / 16 + y / 12) % 2 == 0 { 60 } else { 0 };
                image::Rgb([v.saturating_add(shift), v / 2 + shift, 90])
            })
        };
        let hash = difference_hash;
        let base = hash(&picture(0, false));
        let brighter = hash(&picture(12, false));
        let other = hash(&picture(0, true));
        let d = |a: u64, b: u64| (a ^ b).count_ones();
        assert!(d(base, brighter) <= 2, "{}", d(base, brighter));
        assert!(
            d(base, other) > DEFAULT_NEAR_THRESHOLD,
            "{}",
            d(base, other)
        );
        // Half the size (a resize): nearly the same box averages.
        let half = image::imageops::resize(&picture(0, false), 32, 24, image::imageops::Triangle);
        assert!(d(base, hash(&half)) <= 4, "{}", d(base, hash(&half)));
        // A re-encode as JPEG.
        let mut jpeg = Vec::new();
        picture(0, false)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let reencoded = image::load_from_memory(&jpeg).unwrap().into_rgb8();
        assert!(
            d(base, hash(&reencoded)) <= 4,
            "{}",
            d(base, hash(&reencoded))
        );
    }

    #[test]
    fn the_difference_hash_sets_a_bit_where_the_right_box_is_brighter() {
        // Brightness rises left to right: every bit set. Falls: none. Flat: none.
        let ramp = |up: bool| {
            image::RgbImage::from_fn(18, 8, |x, _| {
                let v = if up { x * 10 } else { 200 - x * 10 } as u8;
                image::Rgb([v, v, v])
            })
        };
        assert_eq!(difference_hash(&ramp(true)), u64::MAX);
        assert_eq!(difference_hash(&ramp(false)), 0);
        assert_eq!(difference_hash(&image::RgbImage::new(3, 2)), 0);
        // Only the top row rises: the first 8 bits, the most significant.
        let top = image::RgbImage::from_fn(9, 8, |x, y| {
            let v = if y == 0 { x as u8 * 20 } else { 0 };
            image::Rgb([v, v, v])
        });
        assert_eq!(difference_hash(&top), 0xFF << 56);
        // A 1×1 image: every box is the one pixel.
        assert_eq!(difference_hash(&image::RgbImage::new(1, 1)), 0);
    }

    #[test]
    fn split_leaks_finds_copies_between_the_splits_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8], label| {
            let p = dir.path().join(name);
            fs::write(&p, bytes).unwrap();
            Sample { path: p, label }
        };
        let train = vec![
            file("t1", b"same-bytes", 0),
            file("t2", b"same-sizes", 0), // same size as the copy, other bytes
            file("t3", b"twin", 1),
        ];
        let val = vec![
            file("v1", b"same-bytes", 1),
            file("v2", b"other-size!", 0),
            file("v3", b"tw1n", 1),
        ];
        let leaks = split_leaks(&train, &val);
        assert_eq!(leaks, vec![(val[0].path.clone(), train[0].path.clone())]);
        assert!(split_leaks(&train[1..], &val).is_empty());
    }

    /// The all-pairs near-duplicate search at the scale; run with `--ignored
    /// --nocapture` to see the time.
    #[test]
    #[ignore = "a timing, not a check"]
    fn near_groups_at_25000_images() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let hashes: Vec<u64> = (0..25_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect();
        let t = std::time::Instant::now();
        let g = near_groups(&hashes, DEFAULT_NEAR_THRESHOLD);
        crate::msgln!("25,000 hashes: {} groups in {:?}", g.len(), t.elapsed());
    }
}
