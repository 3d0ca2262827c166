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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::batch_norm::{self, BackwardBuffers, BatchNorm, TrainBuffers};
use super::conv2d::{self, Conv2d};
use super::gemm::{self, Gemm};
use super::{Dispatch, WeightGrads, registry};
use crate::gpu::GpuContext;
use crate::harness::{ShapeClass, run_check};
use crate::shapes::{BnShape, Conv2dShape, GemmDims};

mod cache;
mod runs;
mod shapes;

use cache::*;
#[cfg(feature = "serde")]
pub use cache::{CacheWriteError, load, store};
pub use cache::{cache_key, cache_path, cached};
use runs::*;
pub use shapes::{HotLayer, ModelShapes};

/// `GPUCNN_TUNE=0` (or `off`, `false`, `no`) turns measuring and the cache off.
pub const TUNE_VAR: &str = "GPUCNN_TUNE";
/// Folder of `variants.json` instead of the user's cache directory (tests point it at a
/// temporary folder).
pub const CACHE_DIR_VAR: &str = "GPUCNN_CACHE_DIR";
/// The cache file's name in its folder.
pub const CACHE_FILE: &str = "variants.json";
/// Bumped when the file's meaning changes; other formats are ignored and rewritten.
#[cfg(feature = "serde")]
const FORMAT: u32 = 1;

/// Multiply-adds of one timed GEMM or convolution: enough work that launch overhead does not
/// decide, little enough that the slowest variant (naive GEMM on a CPU adapter, ~2 GFLOP/s)
/// takes a fraction of a second.
const MACS_PER_CASE: usize = 1 << 26;
/// Elements of one timed batch norm (16 MiB of f32).
const BN_ELEMENTS: usize = 1 << 22;
/// The fewest timed runs per variant after the warm-up (which compiles its pipelines); the
/// minimum counts.
const REPEATS: usize = 3;
/// Timed runs go on while they add up to less than this many seconds (see `runs::time_runs`).
const MIN_TIMED: f64 = 0.25;
/// The most timed runs of one variant.
const MAX_REPEATS: usize = 50;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// A corrupt cache has been warned about.
#[cfg(feature = "serde")]
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

/// One variant's time: `seconds` of its timed shapes together (the minimum of its timed
/// runs), or `None` with the reason when it was not timed.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timing {
    pub variant: String,
    pub seconds: Option<f64>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "String::is_empty")
    )]
    pub note: String,
}

/// One family's measurement and choice.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Tuning {
    pub families: Vec<FamilyTuning>,
    /// Multiply-adds of the GEMM and convolution shapes timed ([`ModelShapes::work`]): a
    /// model with far more work per shape measures again (a tiny first model's timings are
    /// mostly launch overhead, and must not decide for a real one).
    #[cfg_attr(feature = "serde", serde(default))]
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
    crate::msgln!(
        "Measuring kernel variants for {} (once per adapter and driver{})…",
        ctx.info.name,
        path.as_ref()
            .map(|p| format!("; cached in {}", p.display()))
            .unwrap_or_default()
    );
    let tuning = measure(ctx, shapes);
    let key = cache_key(&ctx.info, ctx.zero_copy_mirrors());
    #[cfg(feature = "serde")]
    if let Some(p) = &path
        && let Err(e) = store(p, &key, &tuning)
    {
        crate::msgln!(
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

    #[cfg(feature = "serde")]
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

    #[cfg(feature = "serde")]
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

    #[cfg(feature = "serde")]
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
    fn the_key_names_adapter_backend_driver_version_and_tuned_kernels() {
        let mut info = wgpu::AdapterInfo::new(wgpu::DeviceType::Cpu, wgpu::Backend::Vulkan);
        info.name = "llvmpipe (LLVM 15)".into();
        info.driver = "llvmpipe".into();
        info.driver_info = "Mesa 22.3.6".into();
        assert!(!cache_key(&info, false).contains("zero-copy"));
        let k = cache_key(&info, true);
        assert!(k.contains("zero-copy mirrors"), "{k}");
        for part in [
            "llvmpipe",
            "Vulkan",
            "Mesa 22.3.6",
            env!("CARGO_PKG_VERSION"),
            &format!("kernels {:016x}", cache::tuned_kernels_fingerprint()),
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
