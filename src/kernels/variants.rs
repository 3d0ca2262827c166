//! The one place that chooses every hot kernel's variant.
//!
//! [`Variants`] is plain data (no pipelines), so a training step can be planned, and its scratch
//! buffers sized, without a GPU. [`Variants::for_adapter`] gives the choice for an adapter:
//! the measured defaults (subgroup kernels and flat batch norm on software adapters such as
//! lavapipe, workgroup-memory tiles on real GPUs), then the `GPUCNN_VARIANT` override, e.g.
//! `GPUCNN_VARIANT=gemm=tiled,conv2d=portable,batch_norm=tree`.

use std::fmt;

use thiserror::Error;

use super::{batch_norm, conv2d, depthwise_conv2d, gemm};
use crate::gpu::GpuContext;

/// The environment variable that overrides the variant choice.
pub const OVERRIDE_VAR: &str = "GPUCNN_VARIANT";

/// Each hot kernel family's variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variants {
    /// Dense and 1×1 convolutions (pointwise, the residual projections).
    pub gemm: gemm::Variant,
    /// k×k convolutions (the stem).
    pub conv2d: conv2d::Variant,
    /// Batch norm's row passes.
    pub batch_norm: batch_norm::Variant,
    /// Depthwise convolutions: inputs from storage buffers or texture mirrors.
    pub depthwise_conv2d: depthwise_conv2d::Variant,
    /// Lanes of one gemm_subgroup workgroup (the adapter's largest subgroup, clamped to
    /// 8..=64): it sets that variant's tile, and so its split-K plans and scratch sizes.
    pub subgroup_width: u32,
}

/// A `GPUCNN_VARIANT` the adapter cannot honour.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VariantError {
    #[error(
        "{OVERRIDE_VAR}: '{item}' is not FAMILY=VARIANT; families and variants: {}",
        Variants::CHOICES
    )]
    Syntax { item: String },
    #[error(
        "{OVERRIDE_VAR}: '{family}' has no variant '{variant}'; families and variants: {}",
        Variants::CHOICES
    )]
    Unknown { family: String, variant: String },
    #[error(
        "{OVERRIDE_VAR}: {family}={variant} cannot run on this device: {why}; choose another \
         variant or unset {OVERRIDE_VAR}"
    )]
    Unavailable {
        family: &'static str,
        variant: &'static str,
        why: String,
    },
    /// A family built directly with a variant the device cannot run (before any pipeline).
    #[error(
        "kernels::{family}: the {variant} variant cannot run on this device: {why}; use a \
         variant the family lists as available"
    )]
    Unsupported {
        family: &'static str,
        variant: &'static str,
        why: String,
    },
}

impl Variants {
    /// What `GPUCNN_VARIANT` accepts, for messages and `--help`.
    pub const CHOICES: &'static str = "gemm=naive|tiled|subgroup|subgroup64|texture64, conv2d=portable|subgroup, batch_norm=tree|flat|flat_texture, \
         depthwise_conv2d=storage|texture";

    /// Whether any of these variants reads operands through texture mirrors
    /// ([`crate::gpu::mirror`]; the max pool follows the depthwise convolutions).
    pub fn mirrors(&self) -> bool {
        self.gemm == gemm::Variant::Texture64
            || self.batch_norm == batch_norm::Variant::FlatTexture
            || self.depthwise_conv2d == depthwise_conv2d::Variant::Texture
    }

    /// The variants every adapter runs: what a real GPU gets by default, and what a plan made
    /// without a GPU assumes.
    pub fn portable() -> Self {
        Self {
            gemm: gemm::Variant::Tiled,
            conv2d: conv2d::Variant::Portable,
            batch_norm: batch_norm::Variant::Tree,
            depthwise_conv2d: depthwise_conv2d::Variant::Storage,
            subgroup_width: 8,
        }
    }

    /// The measured default for `ctx` (no override), with the reason for each choice. On a
    /// software adapter (lavapipe) per-lane loads, workgroup memory and barriers are what
    /// costs: the subgroup GEMM (A shared by subgroup shuffles, measured 10–20× faster than
    /// workgroup-memory tiles there; its 64-row tiles ~1.1–1.2× the 32-row ones), reading A
    /// and B through texture mirrors (`texture64`: 1.5× the whole step on an AVX2 EPYC, where a
    /// storage load costs ~7× a texel fetch; about even where they cost the same) where
    /// subgroups have ≥ 8 lanes, the subgroup conv2d where
    /// the subgroup size is fixed and divides 16, and the flat batch norm (no workgroup memory,
    /// no barriers; with `texture64`, batch norm and the depthwise convolutions also read
    /// through texture mirrors: 1.37× and 1.38× on the same EPYC). Real GPUs get the portable variants: workgroup-memory tiles and coalesced
    /// loads, which is what they reward.
    pub fn default_for(ctx: &GpuContext) -> (Self, [String; 3]) {
        let software = ctx.is_software();
        let (g, why_g) = match gemm::subgroup_usable(ctx) {
            Ok(()) if software => match crate::gpu::mirror::MirrorScratch::supported(ctx) {
                Ok(()) => (
                    gemm::Variant::Texture64,
                    format!(
                        "CPU adapter with {}..{}-lane subgroups: A shared by subgroup shuffles, \
                         64-row register tiles, A and B read through texture mirrors",
                        ctx.info.subgroup_min_size, ctx.info.subgroup_max_size
                    ),
                ),
                Err(why) => (
                    gemm::Variant::Subgroup64,
                    format!(
                        "CPU adapter with {}..{}-lane subgroups: A shared by subgroup shuffles, \
                         64-row register tiles; no texture mirrors: {why}",
                        ctx.info.subgroup_min_size, ctx.info.subgroup_max_size
                    ),
                ),
            },
            Ok(()) => (
                gemm::Variant::Tiled,
                "hardware GPU: workgroup-memory tiles (subgroup variant is tuned for CPU \
                 adapters)"
                    .into(),
            ),
            Err(why) => (
                gemm::Variant::Tiled,
                format!("portable tiles; subgroup off: {why}"),
            ),
        };
        let c = if software && conv2d::Variant::subgroup_size(ctx).is_some() {
            conv2d::Variant::Subgroup
        } else {
            conv2d::Variant::Portable
        };
        // Texture mirrors for batch norm and the depthwise convolutions where the GEMM reads
        // through them (the same trait of the adapter: storage loads dearer than texel fetches).
        let mirrors = g == gemm::Variant::Texture64;
        let b = match (software, mirrors) {
            (true, true) => batch_norm::Variant::FlatTexture,
            (true, false) => batch_norm::Variant::Flat,
            (false, _) => batch_norm::Variant::Tree,
        };
        let why_c = match c {
            conv2d::Variant::Subgroup => format!(
                "subgroup size {}; > 16 GEMM columns shuffle the im2col operand, fewer use the \
                 portable narrow tiles",
                ctx.info.subgroup_min_size
            ),
            conv2d::Variant::Portable => "register-blocked implicit GEMM".to_string(),
        };
        let why_b = format!(
            "{} lanes (a channel each, four where C % 4 = 0) × {} row lanes per workgroup{}",
            batch_norm::CW,
            b.row_lanes(),
            if mirrors {
                ", x and dy through texture mirrors"
            } else {
                ""
            }
        );
        let d = if mirrors {
            depthwise_conv2d::Variant::Texture
        } else {
            depthwise_conv2d::Variant::Storage
        };
        let v = Self {
            gemm: g,
            conv2d: c,
            batch_norm: b,
            depthwise_conv2d: d,
            subgroup_width: gemm::subgroup_width(ctx),
        };
        (v, [why_g, why_c, why_b])
    }

    /// The variants a training step on `ctx` uses: [`Self::default_for`], then the measured
    /// choice where tuning is on and has one for this adapter ([`super::tune`]), then the
    /// `GPUCNN_VARIANT` override where set.
    pub fn for_adapter(ctx: &GpuContext) -> Result<Self, VariantError> {
        let (mut v, _) = Self::default_for(ctx);
        if let Some((t, _)) = super::tune::cached(ctx) {
            v = v.with_tuning(ctx, &t.spec());
        }
        if let Ok(spec) = std::env::var(OVERRIDE_VAR) {
            v.apply(&spec)?;
            v.check_available(ctx)?;
        }
        Ok(v)
    }

    /// `self` with a measured `spec` applied, or unchanged when the spec no longer fits (a
    /// cache written by another gpucnn naming a variant this one lacks, say).
    fn with_tuning(self, ctx: &GpuContext, spec: &str) -> Self {
        let mut tuned = self;
        match tuned.apply(spec).and_then(|()| tuned.check_available(ctx)) {
            Ok(()) => tuned,
            Err(e) => {
                crate::msgln!(
                    "warning: ignoring the measured kernel variants ({e}); using defaults"
                );
                self
            }
        }
    }

    /// Applies an override such as `gemm=tiled,conv2d=portable` (names only; see
    /// [`Self::check_available`] for whether an adapter runs them).
    pub fn apply(&mut self, spec: &str) -> Result<(), VariantError> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((family, variant)) = item.split_once('=') else {
                return Err(VariantError::Syntax { item: item.into() });
            };
            let (family, variant) = (family.trim(), variant.trim());
            let unknown = || VariantError::Unknown {
                family: family.into(),
                variant: variant.into(),
            };
            match family {
                "gemm" => self.gemm = gemm::Variant::from_name(variant).ok_or_else(unknown)?,
                "conv2d" => {
                    self.conv2d = conv2d::Variant::from_name(variant).ok_or_else(unknown)?
                }
                "batch_norm" => {
                    self.batch_norm = batch_norm::Variant::from_name(variant).ok_or_else(unknown)?
                }
                "depthwise_conv2d" => {
                    self.depthwise_conv2d =
                        depthwise_conv2d::Variant::from_name(variant).ok_or_else(unknown)?
                }
                _ => return Err(unknown()),
            }
        }
        Ok(())
    }

    /// Fails when a variant cannot run on `ctx` (the subgroup kernels need subgroups).
    pub fn check_available(&self, ctx: &GpuContext) -> Result<(), VariantError> {
        if self.gemm.uses_subgroups()
            && let Err(why) = gemm::subgroup_usable(ctx)
        {
            return Err(VariantError::Unavailable {
                family: "gemm",
                variant: self.gemm.name(),
                why,
            });
        }
        if self.conv2d == conv2d::Variant::Subgroup
            && let Err(why) = conv2d::Variant::subgroup_usable(ctx)
        {
            return Err(VariantError::Unavailable {
                family: "conv2d",
                variant: self.conv2d.name(),
                why,
            });
        }
        if self.gemm == gemm::Variant::Texture64
            && let Err(why) = crate::gpu::mirror::MirrorScratch::supported(ctx)
        {
            return Err(VariantError::Unavailable {
                family: "gemm",
                variant: self.gemm.name(),
                why,
            });
        }
        if let Err(why) = self.depthwise_conv2d.usable(ctx) {
            return Err(VariantError::Unavailable {
                family: "depthwise_conv2d",
                variant: self.depthwise_conv2d.name(),
                why,
            });
        }
        Ok(())
    }
}

impl fmt::Display for Variants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gemm={},conv2d={},batch_norm={},depthwise_conv2d={}",
            self.gemm.name(),
            self.conv2d.name(),
            self.batch_norm.name(),
            self.depthwise_conv2d.name()
        )
    }
}

/// Which variant of each hot kernel a training step on `ctx` uses, and why (the default's
/// reason, the measurement with each variant's time, or `GPUCNN_VARIANT`), as printed with the
/// adapter.
pub fn report(ctx: &GpuContext) -> String {
    let (default, why) = Variants::default_for(ctx);
    let chosen = match Variants::for_adapter(ctx) {
        Ok(v) => v,
        Err(e) => return format!("{e}"),
    };
    let tuning = super::tune::cached(ctx).map(|(t, _)| t);
    let overridden = std::env::var(OVERRIDE_VAR).unwrap_or_default();
    // (family, chosen, default, the default's reason)
    let rows = [
        ("gemm", chosen.gemm.name(), default.gemm.name(), &why[0]),
        (
            "conv2d",
            chosen.conv2d.name(),
            default.conv2d.name(),
            &why[1],
        ),
        (
            "batch_norm",
            chosen.batch_norm.name(),
            default.batch_norm.name(),
            &why[2],
        ),
    ];
    let reason_of = |(family, chosen, default, why): (&str, &str, &str, &String)| -> String {
        let measured = tuning
            .as_ref()
            .and_then(|t| t.family(family))
            .filter(|f| f.chosen == chosen);
        if overridden.contains(&format!("{family}=")) {
            format!("{OVERRIDE_VAR} (default {default}: {why})")
        } else if let Some(f) = measured {
            let times: Vec<String> = (f.timings.iter())
                .map(|t| match t.seconds {
                    Some(s) => format!("{} {:.3} ms", t.variant, s * 1e3),
                    None => format!("{} untimed: {}", t.variant, t.note),
                })
                .collect();
            format!("fastest measured at {}: {}", f.shapes, times.join(", "))
        } else {
            why.to_string()
        }
    };
    let sg = match gemm::subgroup_usable(ctx) {
        Ok(()) => "subgroup variant available".to_string(),
        Err(e) => format!("subgroup variant unavailable: {e}"),
    };
    let [g, c, b] = rows.map(|r| (r.0, r.1, reason_of(r)));
    [
        format!("{}: {} ({}; {sg})", g.0, g.1, g.2),
        format!("{}: {} ({})", c.0, c.1, c.2),
        super::depthwise_conv2d::variant_report(chosen.depthwise_conv2d),
        format!("{}: {} ({})", b.0, b.1, b.2),
    ]
    .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_sets_only_the_families_it_names() {
        let mut v = Variants::portable();
        v.apply("conv2d=subgroup, batch_norm=flat").unwrap();
        assert_eq!(v.gemm, gemm::Variant::Tiled);
        assert_eq!(v.conv2d, conv2d::Variant::Subgroup);
        assert_eq!(v.batch_norm, batch_norm::Variant::Flat);
        v.apply("").unwrap();
        assert_eq!(
            v.to_string(),
            "gemm=tiled,conv2d=subgroup,batch_norm=flat,depthwise_conv2d=storage"
        );
    }

    #[test]
    fn a_bad_override_names_the_item_and_the_choices() {
        let mut v = Variants::portable();
        let e = v.apply("gemm=fast").unwrap_err();
        assert_eq!(
            e,
            VariantError::Unknown {
                family: "gemm".into(),
                variant: "fast".into()
            }
        );
        assert!(e.to_string().contains("gemm=naive|tiled|subgroup"), "{e}");
        let e = v.apply("tiled").unwrap_err();
        assert!(
            e.to_string().contains("'tiled' is not FAMILY=VARIANT"),
            "{e}"
        );
        assert!(v.apply("pool=fast").is_err());
        // A failed override leaves what it had not reached yet untouched.
        assert_eq!(v, Variants::portable());
    }
}
