//! Kernel variants chosen by measurement, once per adapter and driver, cached on disk.
//!
//! The first time the CLI compiles a model on an adapter (same name, backend, driver, driver
//! info and gpucnn version), [`prepare`] times every variant of the hot kernel families
//! (gemm, conv2d, batch_norm) that passes the family's tiny and odd parity checks on that
//! adapter, at a few of the model's own shapes, and keeps the fastest ([`fastest`], a pure
//! function). The result goes to `variants.json` in the user's cache directory
//! ([`cache_path`]), one entry per adapter key, written atomically; a corrupt file is ignored
//! with a warning and rewritten. [`super::variants::Variants::for_adapter`] then applies the
//! cached choice over the defaults, and `GPUCNN_VARIANT` over both.
//!
//! Tuning is off unless the process turns it on ([`enable`]: the `gpucnn` binary does, the
//! library and its tests do not, so they stay deterministic and never touch the user's cache);
//! `GPUCNN_TUNE=0` turns it off for the binary too, and `GPUCNN_CACHE_DIR` moves the cache.
//!
//! A family's variants are named by the strings `GPUCNN_VARIANT` takes, so a new variant of a
//! family (say a fourth GEMM) is measured as soon as the family lists it as available.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::batch_norm::{self, BackwardBuffers, BatchNorm, TrainBuffers};
use super::conv2d::{self, Conv2d};
use super::gemm::{self, Gemm};
use super::{Dispatch, WeightGrads, registry};
use crate::gpu::GpuContext;
use crate::harness::{ShapeClass, run_check};
use crate::shapes::{BnShape, Conv2dShape, GemmDims};

/// `GPUCNN_TUNE=0` (or `off`, `false`, `no`) turns measuring and the cache off.
pub const TUNE_VAR: &str = "GPUCNN_TUNE";
/// Folder of `variants.json` instead of the user's cache directory (tests point it at a
/// temporary folder).
pub const CACHE_DIR_VAR: &str = "GPUCNN_CACHE_DIR";
/// The cache file's name in its folder.
pub const CACHE_FILE: &str = "variants.json";
/// Bumped when the file's meaning changes; other formats are ignored and rewritten.
const FORMAT: u32 = 1;

/// Multiply-adds of one timed GEMM or convolution: enough work that launch overhead does not
/// decide, little enough that the slowest variant (naive GEMM on a CPU adapter, ~2 GFLOP/s)
/// takes a fraction of a second.
const MACS_PER_CASE: usize = 1 << 26;
/// Elements of one timed batch norm (16 MiB of f32).
const BN_ELEMENTS: usize = 1 << 22;
/// Timed runs per variant after the warm-up (which compiles its pipelines); the minimum counts.
const REPEATS: usize = 3;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// A corrupt cache has been warned about.
static WARNED: AtomicBool = AtomicBool::new(false);

/// What this process has loaded or measured, by adapter key.
static MEMO: Mutex<Option<HashMap<String, (Tuning, Source)>>> = Mutex::new(None);

/// Turns tuning on for this process (the `gpucnn` binary calls it first thing).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// True when this process tunes and reads the cache: [`enable`] was called and
/// `GPUCNN_TUNE` does not say no.
pub fn active() -> bool {
    ENABLED.load(Ordering::Relaxed) && !env_says_off(std::env::var(TUNE_VAR).ok().as_deref())
}

fn env_says_off(v: Option<&str>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "off" | "false" | "no"
        )
    })
}

/// Where a tuning came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Read from the cache file.
    Cache,
    /// Measured by this process (and written to the cache).
    Measured,
}

/// One variant's time: `seconds` of its timed shapes together (the minimum of [`REPEATS`]
/// runs), or `None` with the reason when it was not timed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub variant: String,
    pub seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// One family's measurement and choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyTuning {
    /// The family as `GPUCNN_VARIANT` names it ("gemm", "conv2d", "batch_norm").
    pub family: String,
    /// The shapes timed, e.g. "M1024 N256 K128 + M176 N728 K512".
    pub shapes: String,
    /// The fastest correct variant.
    pub chosen: String,
    pub timings: Vec<Timing>,
}

/// The measured choice for one adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    pub families: Vec<FamilyTuning>,
    /// Multiply-adds of the GEMM and convolution shapes timed ([`ModelShapes::work`]): a
    /// model with far more work per shape measures again (a tiny first model's timings are
    /// mostly launch overhead, and must not decide for a real one).
    #[serde(default)]
    pub work: u64,
}

impl Tuning {
    /// The choice as a `GPUCNN_VARIANT` spec, e.g. `gemm=subgroup,conv2d=subgroup`.
    pub fn spec(&self) -> String {
        (self.families.iter())
            .map(|f| format!("{}={}", f.family, f.chosen))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The family's entry, if measured.
    pub fn family(&self, name: &str) -> Option<&FamilyTuning> {
        self.families.iter().find(|f| f.family == name)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    /// By [`cache_key`].
    adapters: BTreeMap<String, Tuning>,
}

/// The fastest variant among those timed (`None` when none was); on a tie the earlier one,
/// so listing the default first keeps it unless another is strictly faster.
pub fn fastest(timings: &[Timing]) -> Option<&str> {
    let mut best: Option<(&str, f64)> = None;
    for t in timings {
        if let Some(s) = t.seconds.filter(|s| s.is_finite())
            && best.is_none_or(|(_, b)| s < b)
        {
            best = Some((&t.variant, s));
        }
    }
    best.map(|(v, _)| v)
}

/// The cache key of an adapter: what a driver update or a new gpucnn must re-measure.
pub fn cache_key(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} | {:?} | {} | {} | gpucnn {}",
        info.name,
        info.backend,
        info.driver,
        info.driver_info,
        env!("CARGO_PKG_VERSION")
    )
}

/// The cache file: `$GPUCNN_CACHE_DIR/variants.json`, else the user's cache directory's
/// `gpucnn/variants.json` (`$XDG_CACHE_HOME`, else `~/.cache` on Unix, `~/Library/Caches` on
/// macOS, `%LOCALAPPDATA%` on Windows). `None` when no folder is known.
pub fn cache_path() -> Option<PathBuf> {
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
fn read_cache(path: &std::path::Path) -> Result<CacheFile, String> {
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
pub fn load(path: &std::path::Path, key: &str) -> Result<Option<Tuning>, String> {
    Ok(read_cache(path)?.adapters.get(key).cloned())
}

/// Stores `tuning` for `key` in the file at `path` (other adapters' entries kept, a corrupt
/// file replaced), atomically.
pub fn store(path: &std::path::Path, key: &str, tuning: &Tuning) -> anyhow::Result<()> {
    let mut file = read_cache(path).unwrap_or_default();
    file.format = FORMAT;
    file.adapters.insert(key.to_string(), tuning.clone());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::atomic::write_atomic(path, &serde_json::to_vec_pretty(&file)?)?;
    Ok(())
}

fn memo() -> std::sync::MutexGuard<'static, Option<HashMap<String, (Tuning, Source)>>> {
    MEMO.lock().unwrap_or_else(|p| p.into_inner())
}

/// The tuning that applies to `ctx`, when tuning is [`active`]: measured by this process, or
/// read from the cache (once per process). A corrupt cache file is warned about and ignored.
pub fn cached(ctx: &GpuContext) -> Option<(Tuning, Source)> {
    if !active() {
        return None;
    }
    let key = cache_key(&ctx.info);
    if let Some(hit) = memo().as_ref().and_then(|m| m.get(&key)) {
        return Some(hit.clone());
    }
    let path = cache_path()?;
    match load(&path, &key) {
        Ok(Some(t)) => {
            let hit = (t, Source::Cache);
            memo().get_or_insert_default().insert(key, hit.clone());
            Some(hit)
        }
        Ok(None) => None,
        // Once per process: every compile and plan asks.
        Err(why) if !WARNED.swap(true, Ordering::Relaxed) => {
            eprintln!(
                "warning: ignoring the kernel-variant cache {}: {why}; it will be measured \
                 again and rewritten",
                path.display()
            );
            None
        }
        Err(_) => None,
    }
}

/// On first use of an adapter (tuning [`active`], nothing cached for it, or only a
/// measurement at shapes with under a quarter of these `shapes`' work): measures the hot
/// kernels' variants at `shapes` (a model's, see [`ModelShapes::pick`]), and caches the choice.
/// A failure to write the cache only costs measuring again next time (warned).
pub fn prepare(ctx: &GpuContext, shapes: &ModelShapes) {
    if !active() {
        return;
    }
    if cached(ctx).is_some_and(|(t, _)| !needs_remeasure(t.work, shapes.work())) {
        return;
    }
    let path = cache_path();
    eprintln!(
        "Measuring kernel variants for {} (once per adapter and driver{})…",
        ctx.info.name,
        path.as_ref()
            .map(|p| format!("; cached in {}", p.display()))
            .unwrap_or_default()
    );
    let tuning = measure(ctx, shapes);
    let key = cache_key(&ctx.info);
    if let Some(p) = &path
        && let Err(e) = store(p, &key, &tuning)
    {
        eprintln!(
            "warning: cannot write the kernel-variant cache {}: {e:#}",
            p.display()
        );
    }
    memo()
        .get_or_insert_default()
        .insert(key, (tuning, Source::Measured));
}

/// A cached measurement made at `measured` multiply-adds per pass no longer speaks for shapes
/// of `wanted`: over 4× more work (launch overhead weighs less, tiles fill up).
pub fn needs_remeasure(measured: u64, wanted: u64) -> bool {
    wanted > measured.saturating_mul(4)
}

/// Times every correct variant of each hot family at `shapes` (see the module doc).
pub fn measure(ctx: &GpuContext, shapes: &ModelShapes) -> Tuning {
    let mut families = Vec::new();
    for f in FAMILIES {
        let candidates = (f.candidates)(ctx);
        let cases = (f.cases)(shapes);
        if candidates.is_empty() || cases.is_empty() {
            continue;
        }
        let mut timings = Vec::new();
        let mut best = f64::INFINITY;
        for v in candidates {
            let t = if let Err(why) = passes_checks(ctx, f.name, v) {
                Timing {
                    variant: v.into(),
                    seconds: None,
                    note: why,
                }
            } else {
                let runs = (f.build)(ctx, v, &cases);
                let s = time_runs(ctx, &runs, best);
                best = best.min(s);
                Timing {
                    variant: v.into(),
                    seconds: Some(s),
                    note: String::new(),
                }
            };
            timings.push(t);
        }
        if let Some(chosen) = fastest(&timings) {
            families.push(FamilyTuning {
                family: f.name.into(),
                shapes: cases
                    .iter()
                    .map(|c| c.label())
                    .collect::<Vec<_>>()
                    .join(" + "),
                chosen: chosen.into(),
                timings,
            });
        }
    }
    Tuning {
        families,
        work: shapes.work(),
    }
}

/// The family's tiny and odd parity checks of `variant` on this adapter.
fn passes_checks(ctx: &GpuContext, family: &str, variant: &str) -> Result<(), String> {
    let fam = (registry::FAMILIES.iter())
        .find(|f| f.name == family)
        .ok_or_else(|| format!("no family {family}"))?;
    for c in (fam.checks)(ctx) {
        if c.variant == variant && matches!(c.class, ShapeClass::Tiny | ShapeClass::Odd) {
            let r = run_check(ctx, &c);
            if !r.ok {
                return Err(format!("fails parity: {}", r.title()));
            }
        }
    }
    Ok(())
}

/// Seconds of one pass over `runs` (each recorded and waited for): an untimed warm-up
/// (compiles the pipelines, which for an unrolled kernel can take far longer than a run), then
/// the minimum of [`REPEATS`] runs; a variant whose first timed run is over 4× `best` is not
/// repeated (it cannot win).
fn time_runs(ctx: &GpuContext, runs: &[Run], best: f64) -> f64 {
    let once = || -> f64 {
        let t = Instant::now();
        for r in runs {
            let refs: Vec<&Dispatch> = r.dispatches.iter().collect();
            if crate::kernels::run_all(ctx, &refs).is_err() {
                return f64::INFINITY;
            }
        }
        t.elapsed().as_secs_f64()
    };
    once();
    let first = once();
    if first > 4.0 * best {
        return first;
    }
    (1..REPEATS).map(|_| once()).fold(first, f64::min)
}

/// Dispatches of one timed shape and the buffers they bind.
struct Run {
    dispatches: Vec<Dispatch>,
    _buffers: Vec<wgpu::Buffer>,
}

/// A shape to time.
enum Case {
    Gemm(GemmDims),
    Conv(Conv2dShape),
    Bn(BnShape),
}

impl Case {
    fn label(&self) -> String {
        match self {
            Case::Gemm(d) => format!("M{} N{} K{}", d.m, d.n, d.k),
            Case::Conv(s) => format!(
                "{}x{}x{}x{}->{} k{} s{}",
                s.n, s.h, s.w, s.cin, s.cout, s.k, s.stride
            ),
            Case::Bn(s) => format!("{} rows x {} channels", s.rows, s.channels),
        }
    }
}

/// How to measure one family.
struct FamilyTuner {
    /// As `GPUCNN_VARIANT`, the registry and the checks name it.
    name: &'static str,
    /// Variant names that can run on the adapter, the default's usual choice first.
    candidates: fn(&GpuContext) -> Vec<&'static str>,
    /// The shapes to time.
    cases: fn(&ModelShapes) -> Vec<Case>,
    /// Dispatches of `variant` for each case.
    build: fn(&GpuContext, &str, &[Case]) -> Vec<Run>,
}

const FAMILIES: &[FamilyTuner] = &[
    FamilyTuner {
        name: "gemm",
        candidates: |ctx| {
            Gemm::new(ctx)
                .available()
                .iter()
                .map(|v| v.name())
                .collect()
        },
        cases: |s| s.gemm.iter().map(|&d| Case::Gemm(d)).collect(),
        build: build_gemm,
    },
    FamilyTuner {
        name: "conv2d",
        candidates: |ctx| {
            (conv2d::Variant::available(ctx).iter())
                .map(|v| v.name())
                .collect()
        },
        cases: |s| s.conv.iter().map(|&c| Case::Conv(c)).collect(),
        build: build_conv,
    },
    FamilyTuner {
        name: "batch_norm",
        candidates: |_| {
            vec![
                batch_norm::Variant::Tree.name(),
                batch_norm::Variant::Flat.name(),
            ]
        },
        cases: |s| s.bn.iter().map(|&b| Case::Bn(b)).collect(),
        build: build_bn,
    },
];

fn zeros(ctx: &GpuContext, len: usize) -> wgpu::Buffer {
    ctx.zeros("tune", len)
}

fn build_gemm(ctx: &GpuContext, variant: &str, cases: &[Case]) -> Vec<Run> {
    let g = Gemm::new(ctx);
    let Some(&v) = gemm::Variant::ALL.iter().find(|v| v.name() == variant) else {
        return Vec::new();
    };
    let mut runs = Vec::new();
    for c in cases {
        if let Case::Gemm(d) = c {
            let (a, b, out) = (
                zeros(ctx, d.m * d.k),
                zeros(ctx, d.k * d.n),
                zeros(ctx, d.m * d.n),
            );
            runs.push(Run {
                dispatches: vec![g.forward(ctx, v, &out, &a, &b, d)],
                _buffers: vec![a, b, out],
            });
        }
    }
    runs
}

fn build_conv(ctx: &GpuContext, variant: &str, cases: &[Case]) -> Vec<Run> {
    let Some(&v) = (conv2d::Variant::available(ctx).iter()).find(|v| v.name() == variant) else {
        return Vec::new();
    };
    let k = Conv2d::with_variant(ctx, v);
    let mut runs = Vec::new();
    for c in cases {
        if let Case::Conv(s) = c {
            let [x, w, b, y, dy, dw, db] = [
                s.x_len(),
                s.w_len(),
                s.cout,
                s.y_len(),
                s.y_len(),
                s.w_len(),
                s.cout,
            ]
            .map(|n| zeros(ctx, n));
            let scratch = zeros(ctx, k.backward_weight_scratch_len(s));
            // Training runs the forward and the weight gradient (the stem's input takes none).
            let mut dispatches = vec![k.forward(ctx, &y, &x, &w, &b, s)];
            let grads = WeightGrads {
                dw: &dw,
                db: &db,
                scratch: Some(&scratch),
            };
            dispatches.extend(k.backward_weight(ctx, grads, &dy, &x, s));
            runs.push(Run {
                dispatches,
                _buffers: vec![x, w, b, y, dy, dw, db, scratch],
            });
        }
    }
    runs
}

fn build_bn(ctx: &GpuContext, variant: &str, cases: &[Case]) -> Vec<Run> {
    let Some(v) = [batch_norm::Variant::Tree, batch_norm::Variant::Flat]
        .into_iter()
        .find(|v| v.name() == variant)
    else {
        return Vec::new();
    };
    let k = BatchNorm::with_variant(ctx, v);
    let mut runs = Vec::new();
    for c in cases {
        if let Case::Bn(s) = c {
            let (m, ch) = (s.rows, s.channels);
            let [x, y, dy, dx] = [0; 4].map(|_| zeros(ctx, m * ch));
            // Ones: a finite inverse std and moving variance.
            let vecs: Vec<wgpu::Buffer> = (0..8)
                .map(|_| ctx.upload("vec", &vec![1.0f32; ch]))
                .collect();
            let scratch = zeros(ctx, BatchNorm::scratch_len(s));
            let [g, b, mean, istd, mm, mv, dg, db] = [0, 1, 2, 3, 4, 5, 6, 7].map(|i| &vecs[i]);
            let mut dispatches = k.forward_train(
                ctx,
                &TrainBuffers {
                    y: &y,
                    mean,
                    inv_std: istd,
                    moving_mean: mm,
                    moving_var: mv,
                    x: &x,
                    gamma: g,
                    beta: b,
                    scratch: &scratch,
                },
                s,
            );
            dispatches.extend(k.backward(
                ctx,
                &BackwardBuffers {
                    dx: &dx,
                    dgamma: dg,
                    dbeta: db,
                    dy: &dy,
                    x: &x,
                    gamma: g,
                    beta: b,
                    mean,
                    inv_std: istd,
                    scratch: &scratch,
                },
                s,
            ));
            runs.push(Run {
                dispatches,
                _buffers: [x, y, dy, dx, scratch].into_iter().chain(vecs).collect(),
            });
        }
    }
    runs
}

/// A few representative shapes of a model's hot kernels, each at as many of a batch's images
/// as keep its work near [`MACS_PER_CASE`] (or [`BN_ELEMENTS`]).
#[derive(Debug, Default, PartialEq)]
pub struct ModelShapes {
    /// The GEMMs of the 1×1 convolutions with the most and the fewest rows.
    pub gemm: Vec<GemmDims>,
    /// The k×k convolution (k > 1) with the most multiply-adds.
    pub conv: Vec<Conv2dShape>,
    /// The largest batch norm.
    pub bn: Vec<BnShape>,
}

impl ModelShapes {
    /// Multiply-adds of the GEMM and convolution shapes (one forward pass of each).
    pub fn work(&self) -> u64 {
        let g = self.gemm.iter().map(|d| (d.m * d.n * d.k) as u64);
        let c = self.conv.iter().map(|s| s.macs() as u64);
        g.chain(c).sum()
    }

    /// The representative shapes among a model's `layers` (one image each) for batches of up
    /// to `batch` images: the 1×1 GEMMs with the most and the fewest pixels, the costliest k×k
    /// convolution and the largest batch norm.
    pub fn pick(layers: &[HotLayer], batch: usize) -> Self {
        // Never more images than a batch holds: a layer with few channels at thousands of
        // images is no shape training runs (and can take seconds on a CPU adapter).
        let images = |per_image: usize, cap: usize| (cap / per_image.max(1)).clamp(1, batch.max(1));
        let gemms: Vec<(usize, usize, usize)> = (layers.iter())
            .filter_map(|l| match *l {
                HotLayer::Gemm { pixels, k, n } => Some((pixels, k, n)),
                _ => None,
            })
            .collect();
        let gemm_dims = |&(px, k, n): &(usize, usize, usize)| GemmDims {
            m: px * images(px * k * n, MACS_PER_CASE),
            n,
            k,
        };
        let mut gemm = Vec::new();
        let most = gemms.iter().max_by_key(|g| g.0);
        if let Some(most) = most {
            gemm.push(gemm_dims(most));
        }
        if let Some(fewest) = gemms.iter().min_by_key(|g| g.0)
            && most != Some(fewest)
        {
            gemm.push(gemm_dims(fewest));
        }
        let conv = (layers.iter())
            .filter_map(|l| match l {
                HotLayer::Conv(s) => Some(*s),
                _ => None,
            })
            .max_by_key(|s| s.macs())
            .map(|s| Conv2dShape {
                n: images(s.macs(), MACS_PER_CASE),
                ..s
            })
            .into_iter()
            .collect();
        let bn = (layers.iter())
            .filter_map(|l| match *l {
                HotLayer::Bn { pixels, channels } => Some((pixels, channels)),
                _ => None,
            })
            .max_by_key(|&(px, c)| px * c)
            .map(|(px, c)| BnShape::keras(px * images(px * c, BN_ELEMENTS), c))
            .into_iter()
            .collect();
        Self { gemm, conv, bn }
    }
}

/// One layer's hot kernel, for one image, as [`ModelShapes::pick`] takes them (the graph
/// lists a model's: `graph::executor` calls [`prepare`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HotLayer {
    /// A 1×1 convolution's GEMM: output pixels, K = input channels, N = output channels.
    Gemm { pixels: usize, k: usize, n: usize },
    /// A k×k convolution (k > 1) of one image.
    Conv(Conv2dShape),
    /// A batch norm over `pixels` × `channels`.
    Bn { pixels: usize, channels: usize },
}

/// `gpucnn info`'s account of the tuning for `ctx`: where the choice came from and each
/// family's timings.
pub fn describe(ctx: &GpuContext) -> String {
    if !active() {
        return format!("tuning off ({TUNE_VAR}=0): defaults");
    }
    let path = cache_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "no cache folder".into());
    match cached(ctx) {
        None => format!(
            "not measured yet on this adapter and driver (the first train, profile or predict \
             measures; cache {path}): defaults"
        ),
        Some((t, source)) => {
            let from = match source {
                Source::Cache => format!("from the cache {path}"),
                Source::Measured => format!("measured now, cached in {path}"),
            };
            let fams: Vec<String> = (t.families.iter())
                .map(|f| {
                    let times: Vec<String> = (f.timings.iter())
                        .map(|t| match t.seconds {
                            Some(s) => format!("{} {:.3} ms", t.variant, s * 1e3),
                            None => format!("{} not timed: {}", t.variant, t.note),
                        })
                        .collect();
                    format!(
                        "{}={} ({}; at {})",
                        f.family,
                        f.chosen,
                        times.join(", "),
                        f.shapes
                    )
                })
                .collect();
            format!("{from}: {}", fams.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(v: &str, s: Option<f64>) -> Timing {
        Timing {
            variant: v.into(),
            seconds: s,
            note: String::new(),
        }
    }

    #[test]
    fn the_fastest_timed_variant_wins_and_ties_keep_the_first() {
        let t = [
            timing("tiled", Some(0.30)),
            timing("subgroup", Some(0.02)),
            timing("naive", Some(1.5)),
        ];
        assert_eq!(fastest(&t), Some("subgroup"));
        let t = [timing("tiled", Some(0.02)), timing("subgroup", Some(0.02))];
        assert_eq!(fastest(&t), Some("tiled"));
        // Untimed (failed parity) and non-finite times never win.
        let t = [
            timing("subgroup", None),
            timing("tiled", Some(f64::INFINITY)),
            timing("naive", Some(0.9)),
        ];
        assert_eq!(fastest(&t), Some("naive"));
        assert_eq!(fastest(&[timing("subgroup", None)]), None);
    }

    #[test]
    fn a_model_with_far_more_work_measures_again() {
        assert!(!needs_remeasure(1000, 1000));
        assert!(!needs_remeasure(1000, 4000));
        assert!(needs_remeasure(1000, 4001));
        assert!(
            !needs_remeasure(1000, 10),
            "a smaller model keeps the larger measurement"
        );
        // A cache without the field (0) is measured again by any model.
        assert!(needs_remeasure(0, 1));
    }

    #[test]
    fn tune_env_values_that_mean_off() {
        for v in ["0", "off", "FALSE", " no "] {
            assert!(env_says_off(Some(v)), "{v}");
        }
        for v in [None, Some("1"), Some(""), Some("on")] {
            assert!(!env_says_off(v), "{v:?}");
        }
    }

    fn sample() -> Tuning {
        Tuning {
            families: vec![FamilyTuning {
                family: "gemm".into(),
                shapes: "64x8x8".into(),
                chosen: "subgroup".into(),
                timings: vec![
                    timing("tiled", Some(0.5)),
                    timing("subgroup", Some(0.1)),
                    Timing {
                        variant: "naive".into(),
                        seconds: None,
                        note: "fails parity".into(),
                    },
                ],
            }],
            work: 1 << 20,
        }
    }

    #[test]
    fn the_cache_round_trips_and_keeps_other_adapters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(CACHE_FILE);
        assert_eq!(load(&path, "a").unwrap(), None, "no file: nothing cached");
        store(&path, "a", &sample()).unwrap();
        let mut other = sample();
        other.families[0].chosen = "tiled".into();
        store(&path, "b", &other).unwrap();
        assert_eq!(load(&path, "a").unwrap(), Some(sample()));
        assert_eq!(load(&path, "b").unwrap(), Some(other));
        assert_eq!(sample().spec(), "gemm=subgroup");
    }

    #[test]
    fn a_corrupt_cache_is_reported_then_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CACHE_FILE);
        for bad in [
            &b"{\"format\": 1, \"adapters\": {"[..],
            b"\xff\x00",
            b"{\"format\": 99, \"adapters\": {}}",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(load(&path, "a").is_err(), "{bad:?} must be reported");
            store(&path, "a", &sample()).unwrap();
            assert_eq!(load(&path, "a").unwrap(), Some(sample()));
        }
    }

    #[test]
    fn the_key_names_adapter_backend_driver_and_version() {
        let mut info = wgpu::AdapterInfo::new(wgpu::DeviceType::Cpu, wgpu::Backend::Vulkan);
        info.name = "llvmpipe (LLVM 15)".into();
        info.driver = "llvmpipe".into();
        info.driver_info = "Mesa 22.3.6".into();
        let k = cache_key(&info);
        for part in [
            "llvmpipe",
            "Vulkan",
            "Mesa 22.3.6",
            env!("CARGO_PKG_VERSION"),
        ] {
            assert!(k.contains(part), "{k}");
        }
    }

    #[test]
    fn picked_shapes_scale_to_bounded_work_within_the_batch() {
        let stem = Conv2dShape {
            n: 1,
            h: 64,
            w: 64,
            cin: 3,
            cout: 128,
            k: 3,
            stride: 2,
            padding: crate::shapes::Padding::Same,
        };
        let layers = [
            HotLayer::Conv(stem),
            HotLayer::Bn {
                pixels: 32 * 32,
                channels: 128,
            },
            HotLayer::Gemm {
                pixels: 32 * 32,
                k: 128,
                n: 256,
            },
            HotLayer::Gemm {
                pixels: 16,
                k: 728,
                n: 728,
            },
            HotLayer::Gemm {
                pixels: 256,
                k: 256,
                n: 256,
            },
        ];
        let s = ModelShapes::pick(&layers, 16);
        // 32×32×128×256 = 33.5M per image: 2 images; 16×728×728 = 8.5M: 7 images.
        assert_eq!(
            s.gemm,
            [
                GemmDims {
                    m: 2 * 1024,
                    n: 256,
                    k: 128
                },
                GemmDims {
                    m: 7 * 16,
                    n: 728,
                    k: 728
                }
            ]
        );
        // The stem: 32×32×128×27 = 3.5M per image, 19 would fit but the batch holds 16.
        assert_eq!((s.conv.len(), s.conv[0].n), (1, 16));
        assert_eq!((s.bn[0].rows, s.bn[0].channels), (16 * 1024, 128));
        assert!(ModelShapes::pick(&layers, 1).work() < s.work());
        assert_eq!(ModelShapes::pick(&[], 8), ModelShapes::default());
    }
}
