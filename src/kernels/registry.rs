//! The one list of kernel families: for each, its name, its parity checks, its bench cases and
//! its variants. `gpucnn selftest` (via [`crate::selftest::all_checks`]), `tests/parity.rs` and
//! `benches/kernels.rs` iterate [`FAMILIES`]; a new family is one more entry here.

use crate::bench::BenchCase;
use crate::gpu::GpuContext;
use crate::harness::Check;

use super::{
    adam, augment, augment_color, batch_norm, conv2d, dense, depthwise_conv2d, elementwise, gemm,
    loss, pointwise_conv2d, pool, relu, rescale,
};

/// One kernel family (one `kernels/<name>/` directory).
pub struct Family {
    /// The module's name, e.g. "conv2d" (the ops its checks name may differ: `pool` checks
    /// max_pool2d and global_avg_pool2d).
    pub name: &'static str,
    /// Every parity check of the family, at every shape class and every variant this adapter
    /// runs. Listing them compiles nothing (pipelines are built when a check runs).
    pub checks: fn(&GpuContext) -> Vec<Check>,
    /// The family's benchmark cases (pipelines and buffers built here).
    pub bench_cases: fn(&GpuContext) -> Vec<BenchCase>,
    /// The variants `GPUCNN_VARIANT` can choose for this family (empty: one kernel for all
    /// adapters; see [`super::variants`]).
    pub variants: &'static [&'static str],
}

/// Every kernel family, in the order of `gpucnn selftest`'s rows and the benches' groups.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "conv2d",
        checks: conv2d::checks::all,
        bench_cases: conv2d::bench::cases,
        variants: &["portable", "subgroup"],
    },
    Family {
        name: "depthwise_conv2d",
        checks: depthwise_conv2d::checks::all,
        bench_cases: depthwise_conv2d::bench::cases,
        variants: &["storage", "texture"],
    },
    Family {
        name: "pointwise_conv2d",
        checks: pointwise_conv2d::checks::all,
        bench_cases: pointwise_conv2d::bench::cases,
        variants: &[],
    },
    Family {
        name: "dense",
        checks: dense::checks::all,
        bench_cases: dense::bench::cases,
        variants: &[],
    },
    Family {
        name: "gemm",
        checks: gemm::checks::all,
        bench_cases: gemm::bench::cases,
        variants: &["naive", "tiled", "subgroup", "subgroup64", "texture64"],
    },
    Family {
        name: "batch_norm",
        checks: batch_norm::checks::all,
        bench_cases: batch_norm::bench::cases,
        variants: &["tree", "flat", "flat_texture"],
    },
    Family {
        name: "relu",
        checks: relu::checks::all,
        bench_cases: relu::bench::cases,
        variants: &[],
    },
    Family {
        name: "rescale",
        checks: rescale::checks::all,
        bench_cases: rescale::bench::cases,
        variants: &[],
    },
    Family {
        name: "pool",
        checks: pool::checks::all,
        bench_cases: pool::bench::cases,
        variants: &[],
    },
    Family {
        name: "elementwise",
        checks: elementwise::checks::all,
        bench_cases: elementwise::bench::cases,
        variants: &[],
    },
    Family {
        name: "loss",
        checks: loss::checks::all,
        bench_cases: loss::bench::cases,
        variants: &[],
    },
    Family {
        name: "adam",
        checks: adam::checks::all,
        bench_cases: adam::bench::cases,
        variants: &[],
    },
    Family {
        name: "augment",
        checks: augment::checks::all,
        bench_cases: augment::bench::cases,
        variants: &[],
    },
    Family {
        name: "augment_color",
        checks: augment_color::checks::all,
        bench_cases: augment_color::bench::cases,
        variants: &[],
    },
];

/// The family named `name`.
pub fn family(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::variants::Variants;

    #[test]
    fn the_registry_lists_the_variants_that_gpucnn_variant_accepts() {
        let mut listed: Vec<String> = FAMILIES
            .iter()
            .filter(|f| !f.variants.is_empty())
            .map(|f| format!("{}={}", f.name, f.variants.join("|")))
            .collect();
        listed.sort();
        let mut choices: Vec<&str> = Variants::CHOICES.split(", ").collect();
        choices.sort();
        assert_eq!(listed, choices);
        let gemm: Vec<&str> = gemm::Variant::ALL.iter().map(|v| v.name()).collect();
        assert_eq!(family("gemm").unwrap().variants, gemm.as_slice());
        for f in FAMILIES.iter().filter(|f| !f.variants.is_empty()) {
            for v in f.variants {
                let mut chosen = Variants::portable();
                chosen
                    .apply(&format!("{}={v}", f.name))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    #[test]
    fn every_family_is_listed_once() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kernels");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("mod.rs").is_file())
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = FAMILIES.iter().map(|f| f.name.to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk, "kernels/<family>/ directories vs FAMILIES");
    }
}
