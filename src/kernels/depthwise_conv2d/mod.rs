//! `depthwise_conv2d`: K×K depthwise convolution, stride 1, no bias, forward and both backward
//! passes (shaders/depthwise_conv2d.wgsl).
//!
//! One channel per lane (loads coalesced along C), or four (a vec4) where C is divisible by 4
//! (the file's [`lanes`] form, [`crate::gpu::shader::lane_form`]), 16 output pixels of a row per invocation with
//! each loaded input reused across the K taps that read it; registers only, no workgroup memory,
//! which suits real GPUs and lavapipe alike (LAVAPIPE-NOTES: loads are the cost there, workgroup
//! memory is slow). backward_weight is a two-stage reduction over N·OH·OW: splits of output rows
//! into a caller-provided scratch buffer ([`DepthwiseConv2d::backward_weight_scratch_len`]), then
//! a reduction pass into dw.
//!
//! A ReLU in front of the convolution can be folded in (the `_relu` methods): the passes take
//! the ReLU's input x, forward and backward_weight read max(x, 0), and backward_input masks dx
//! by x > 0 as it writes, so the ReLU's output and its backward pass never exist.
//!
//! Two variants of the same WGSL: `storage` reads x and dy from storage buffers; `texture`
//! compiles its texture form ([`crate::gpu::mirror::texture_form`]), reading `src` and `grad`
//! from texture mirrors that each dispatch fills by an encoder copy first: on CPU adapters whose
//! storage loads are per-lane loops (lavapipe on an AVX2 EPYC) a texel fetch costs far less.

use bytemuck::{Pod, Zeroable};

use crate::cpu::Padding;
use crate::cpu::depthwise_conv2d::{
    DepthwiseShape, depthwise_conv2d_backward_input, depthwise_conv2d_backward_weight,
    depthwise_conv2d_forward,
};
use crate::gpu::GpuContext;
use crate::gpu::mirror::{LaneFamilies, MirrorScratch, MirroredFamily, lanes_for};
use crate::kernels::variants::VariantError;
use crate::kernels::{Bind, BufferRange};
use crate::kernels::{Dispatch, grid_1d, groups_for};

pub mod bench;
pub mod checks;

/// Mirrors `struct Params` in shaders/depthwise_conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub oh: u32,
    pub ow: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub c_tiles: u32,
    pub w_tiles: u32,
    pub splits: u32,
    pub rows_per_split: u32,
    pub groups: u32,
    /// 1: x is read as max(x, 0) (a ReLU folded into the loads).
    pub relu: u32,
    pub _pad: [u32; 2],
}

const WG: u32 = 64;
/// Output pixels per invocation along W (`TW` in the WGSL).
const TW: usize = 16;
/// Largest kernel size the shader's register windows hold (`KMAX`).
pub const MAX_K: usize = 7;
/// backward_weight: the workgroup count splitting aims for.
const TARGET_GROUPS: usize = 256;

/// How the passes read their inputs (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Storage,
    Texture,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Storage, Variant::Texture];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Storage => "storage",
            Variant::Texture => "texture",
        }
    }

    /// The variant [`Self::name`] calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// `Ok` when `ctx` can run it; else why not.
    pub fn usable(self, ctx: &GpuContext) -> Result<(), String> {
        match self {
            Variant::Storage => Ok(()),
            Variant::Texture => MirrorScratch::supported(ctx),
        }
    }

    /// The variants `ctx` can run.
    pub fn available(ctx: &GpuContext) -> Vec<Variant> {
        (Self::ALL.into_iter())
            .filter(|v| v.usable(ctx).is_ok())
            .collect()
    }
}

/// Pipelines of shaders/depthwise_conv2d.wgsl for one kernel size and variant, in its one- and
/// four-channel lane forms ([`lanes`]), each compiled on first use.
pub struct DepthwiseConv2d {
    families: LaneFamilies,
    k: usize,
    pub variant: Variant,
}

/// Channels per lane for a shape: 4 (a vec4, one texel of a mirror) when C allows, else 1.
pub fn lanes(s: &DepthwiseShape) -> usize {
    lanes_for(s.c)
}

/// Workgroups along C: WG lanes of [`lanes`] channels each.
fn c_tiles(s: &DepthwiseShape) -> usize {
    (s.c / lanes(s)).div_ceil(WG as usize)
}

/// (splits, rows per split) of backward_weight's reduction over the N·OH output rows.
fn split_rows(s: &DepthwiseShape) -> (usize, usize) {
    let rows = s.n * s.oh();
    let c_tiles = c_tiles(s);
    let want = TARGET_GROUPS.div_ceil(c_tiles).clamp(1, rows.max(1));
    let per = rows.div_ceil(want).max(1);
    (rows.div_ceil(per).max(1), per)
}

fn params(s: &DepthwiseShape) -> Params {
    assert!(
        s.n > 0 && s.h > 0 && s.w > 0 && s.c > 0,
        "depthwise_conv2d: every size must be positive: {s:?}"
    );
    assert!(
        s.padding == Padding::Same || (s.h >= s.k && s.w >= s.k),
        "depthwise_conv2d: valid padding needs an input at least as large as the kernel: {s:?}"
    );
    let (oh, pad_top) = s.oh_pad();
    let (ow, pad_left) = s.ow_pad();
    Params {
        n: s.n as u32,
        h: s.h as u32,
        w: s.w as u32,
        c: s.c as u32,
        oh: oh as u32,
        ow: ow as u32,
        pad_top: pad_top as u32,
        pad_left: pad_left as u32,
        c_tiles: c_tiles(s) as u32,
        w_tiles: 1,
        splits: 1,
        rows_per_split: 1,
        groups: 1,
        relu: 0,
        _pad: [0; 2],
    }
}

impl DepthwiseConv2d {
    /// The model's 3×3 kernels, storage variant.
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_kernel_size(ctx, 3)
    }

    /// Pipelines specialised for k×k kernels (k ≤ [`MAX_K`]), storage variant.
    pub fn with_kernel_size(ctx: &GpuContext, k: usize) -> Self {
        Self::with_variant(ctx, k, Variant::Storage).expect("the storage variant runs anywhere")
    }

    /// Pipelines for k×k kernels in `variant`; `Err` when the device cannot run it.
    pub fn with_variant(
        ctx: &GpuContext,
        k: usize,
        variant: Variant,
    ) -> Result<Self, VariantError> {
        assert!(
            (1..=MAX_K).contains(&k),
            "depthwise_conv2d: kernel size {k} not in 1..={MAX_K}"
        );
        variant
            .usable(ctx)
            .map_err(|why| VariantError::Unsupported {
                family: "depthwise_conv2d",
                variant: variant.name(),
                why,
            })?;
        let mirrored: &'static [&'static str] = match variant {
            Variant::Storage => &[],
            Variant::Texture => &TEXTURE_READS,
        };
        let families = LaneFamilies::new(
            ["depthwise_conv2d", "depthwise_conv2d_vec4"],
            SOURCE,
            mirrored,
            &ENTRIES,
            vec![("WG", WG as f64), ("K", k as f64)],
        );
        Ok(Self {
            families,
            k,
            variant,
        })
    }

    /// The compiled form for `s`'s lane width.
    fn family(&self, ctx: &GpuContext, s: &DepthwiseShape) -> &MirroredFamily {
        self.families.get(ctx, lanes(s))
    }

    fn check_shape(&self, s: &DepthwiseShape) {
        assert_eq!(
            s.k, self.k,
            "depthwise_conv2d: pipelines built for k={}, shape has k={}",
            self.k, s.k
        );
    }

    /// Floats of scratch [`DepthwiseConv2d::backward_weight`] needs: splits × k·k·C.
    pub fn backward_weight_scratch_len(s: &DepthwiseShape) -> usize {
        split_rows(s).0 * s.w_len()
    }

    /// One pass writing a [N, rows, cols, C] tensor, TW pixels of a row per invocation.
    fn row_pass(
        &self,
        ctx: &GpuContext,
        entry: &str,
        slots: &[Option<&dyn Bind>],
        s: &DepthwiseShape,
        (rows, cols): (usize, usize),
        relu: bool,
    ) -> Dispatch {
        self.check_shape(s);
        let p = params(s);
        let w_tiles = cols.div_ceil(TW).max(1);
        let groups = p.c_tiles as usize * w_tiles * s.n * rows;
        let p = Params {
            w_tiles: w_tiles as u32,
            groups: groups as u32,
            relu: relu as u32,
            ..p
        };
        // The input gradient reads dy at `src` and x at `grad`, the weight gradient the
        // reverse: rotated, it finds both in the mirrors where backward_weight, recorded just
        // before it in a step, copied them (gpu::shader::MirrorState).
        let rotate = usize::from(entry.starts_with("depthwise_conv2d_backward_input"));
        self.family(ctx, s).dispatch_rotated(
            ctx,
            entry,
            slots,
            Some(&p),
            grid_1d(groups as u32),
            rotate,
        )
    }

    /// y = depthwise(x, w) (writes y). y: [N, OH, OW, C], x: [N, H, W, C], w: [k, k, C, 1];
    /// NHWC f32.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        w: &dyn Bind,
        s: &DepthwiseShape,
    ) -> Dispatch {
        self.row_pass(
            ctx,
            "depthwise_conv2d_forward",
            &[Some(y), Some(x), Some(w)],
            s,
            (s.oh(), s.ow()),
            false,
        )
    }

    /// y = depthwise(max(x, 0), w): [`Self::forward`] of the ReLU of x (writes y).
    pub fn forward_relu(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        w: &dyn Bind,
        s: &DepthwiseShape,
    ) -> Dispatch {
        self.row_pass(
            ctx,
            "depthwise_conv2d_forward",
            &[Some(y), Some(x), Some(w)],
            s,
            (s.oh(), s.ow()),
            true,
        )
    }

    /// dx = ∂(Σ y·dy)/∂x (writes dx). dx: [N, H, W, C], dy: [N, OH, OW, C], w: [k, k, C, 1].
    pub fn backward_input(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        w: &dyn Bind,
        s: &DepthwiseShape,
    ) -> Dispatch {
        self.row_pass(
            ctx,
            "depthwise_conv2d_backward_input",
            &[Some(dx), Some(dy), Some(w)],
            s,
            (s.h, s.w),
            false,
        )
    }

    /// The gradient of x through r = max(x, 0) and the convolution of r: [`Self::backward_input`],
    /// then 0 where x ≤ 0 (writes dx). x: [N, H, W, C], the ReLU's input.
    pub fn backward_input_relu(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        w: &dyn Bind,
        x: &dyn Bind,
        s: &DepthwiseShape,
    ) -> Dispatch {
        self.row_pass(
            ctx,
            "depthwise_conv2d_backward_input_relu",
            &[Some(dx), Some(dy), Some(w), Some(x)],
            s,
            (s.h, s.w),
            false,
        )
    }

    /// dw = ∂(Σ y·dy)/∂w (writes dw): partial sums over splits of the N·OH output rows into
    /// `scratch` (at least [`DepthwiseConv2d::backward_weight_scratch_len`] floats), then their
    /// reduction; record both in this order. dw: [k, k, C, 1], dy: [N, OH, OW, C],
    /// x: [N, H, W, C] saved from the forward pass.
    pub fn backward_weight(
        &self,
        ctx: &GpuContext,
        dw: &dyn Bind,
        scratch: &dyn Bind,
        dy: &dyn Bind,
        x: &dyn Bind,
        s: &DepthwiseShape,
    ) -> [Dispatch; 2] {
        self.weight_passes(ctx, [dw, scratch, dy, x], s, false)
    }

    /// [`Self::backward_weight`] of the convolution of max(x, 0): x is the ReLU's input.
    pub fn backward_weight_relu(
        &self,
        ctx: &GpuContext,
        dw: &dyn Bind,
        scratch: &dyn Bind,
        dy: &dyn Bind,
        x: &dyn Bind,
        s: &DepthwiseShape,
    ) -> [Dispatch; 2] {
        self.weight_passes(ctx, [dw, scratch, dy, x], s, true)
    }

    /// backward_weight's two passes; `relu`: x is read as max(x, 0).
    fn weight_passes(
        &self,
        ctx: &GpuContext,
        [dw, scratch, dy, x]: [&dyn Bind; 4],
        s: &DepthwiseShape,
        relu: bool,
    ) -> [Dispatch; 2] {
        self.check_shape(s);
        let need = Self::backward_weight_scratch_len(s) as u64 * 4;
        assert!(
            scratch.size() >= need,
            "depthwise_conv2d backward_weight: scratch has {} bytes, needs {need}",
            scratch.size()
        );
        let (splits, per) = split_rows(s);
        let p = params(s);
        let groups = p.c_tiles as usize * splits;
        let p = Params {
            splits: splits as u32,
            rows_per_split: per as u32,
            groups: groups as u32,
            relu: relu as u32,
            ..p
        };
        // The partials alone (not the whole shared scratch): the reduce's mirror copies them.
        let scratch = &BufferRange::prefix(scratch, need);
        let family = self.family(ctx, s);
        let partial = family.dispatch(
            ctx,
            "depthwise_conv2d_backward_weight",
            &[Some(scratch), Some(x), None, Some(dy)],
            Some(&p),
            grid_1d(groups as u32),
        );
        let reduce_groups = groups_for(s.w_len() / lanes(s), WG);
        let reduce = family.dispatch(
            ctx,
            "depthwise_conv2d_backward_weight_reduce",
            &[Some(dw), Some(scratch)],
            Some(&Params {
                groups: reduce_groups,
                ..p
            }),
            grid_1d(reduce_groups),
        );
        [partial, reduce]
    }
}

/// shaders/depthwise_conv2d.wgsl, written for a lane of VW channels
/// ([`crate::gpu::shader::lane_form`]).
const SOURCE: &str = include_str!("../../../shaders/depthwise_conv2d.wgsl");

/// Its entry points.
const ENTRIES: [&str; 5] = [
    "depthwise_conv2d_forward",
    "depthwise_conv2d_backward_input",
    "depthwise_conv2d_backward_input_relu",
    "depthwise_conv2d_backward_weight",
    "depthwise_conv2d_backward_weight_reduce",
];

/// The arrays the texture variant reads from mirrors: x or dy (`src`, and the split partials
/// in the reduce), dy or x (`grad`). The weights (`wt`) are small and stay in storage.
const TEXTURE_READS: [&str; 2] = ["src", "grad"];

/// What `variant` does, as `gpucnn info` shows it.
pub fn variant_report(variant: Variant) -> String {
    let reads = match variant {
        Variant::Storage => "inputs from storage buffers",
        Variant::Texture => "x and dy through texture mirrors (CPU adapters)",
    };
    format!(
        "depthwise_conv2d: {} (one channel per lane, four (a vec4) where C % 4 = 0, {TW} pixels per invocation in registers; \
         backward_weight split over rows + reduce; {reads})",
        variant.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input gradient, recorded after the weight gradient, reads dy where the weight
    /// gradient mirrored it: no copy of dy (the reduce between refills the other mirror, so
    /// the ReLU form copies x again); recorded alone it copies all it reads.
    #[test]
    fn the_input_gradient_reuses_the_weight_gradients_copy_of_dy() {
        let Some(ctx) = crate::gpu::test_context() else {
            return;
        };
        if Variant::Texture.usable(&ctx).is_err() {
            return;
        }
        use crate::gpu::shader::copy_plan;
        let s = DepthwiseShape {
            n: 2,
            h: 9,
            w: 9,
            c: 8,
            k: 3,
            padding: Padding::Same,
        };
        let [x, w, dy, dx, dw, scratch] = [
            s.x_len(),
            s.w_len(),
            s.y_len(),
            s.x_len(),
            s.w_len(),
            DepthwiseConv2d::backward_weight_scratch_len(&s) + 4096,
        ]
        .map(|n| ctx.zeros("t", n));
        let k = DepthwiseConv2d::with_variant(&ctx, 3, Variant::Texture).unwrap();
        let [partial, reduce] = k.backward_weight_relu(&ctx, &dw, &scratch, &dy, &x, &s);
        let bi = k.backward_input(&ctx, &dx, &dy, &w, &s);
        let bi_relu = k.backward_input_relu(&ctx, &dx, &dy, &w, &x, &s);
        let (t, f) = (true, false);
        // The partials alone are mirrored for the reduce, not the whole scratch buffer.
        let floats = DepthwiseConv2d::backward_weight_scratch_len(&s) as u64;
        assert_eq!(reduce.mirrors[0].floats(), floats);
        assert_eq!(
            copy_plan(&[&partial, &reduce, &bi]),
            [vec![t, t], vec![t], vec![f]]
        );
        // bi_relu reads dy (reused) and x (the reduce's partials replaced it).
        assert_eq!(copy_plan(&[&partial, &reduce, &bi_relu])[2], [f, t]);
        assert_eq!(copy_plan(&[&partial, &bi_relu])[1], [f, f]);
        assert_eq!(copy_plan(&[&bi_relu]), [[t, t]]);
    }

    /// The texture variant's dispatches read through mirrors (not the storage fallback), and
    /// the storage variant's do not.
    #[test]
    fn the_texture_variant_mirrors_x_and_dy() {
        let Some(ctx) = crate::gpu::test_context() else {
            return;
        };
        if Variant::Texture.usable(&ctx).is_err() {
            return;
        }
        for c in [5, 8] {
            let s = DepthwiseShape {
                n: 2,
                h: 7,
                w: 7,
                c,
                k: 3,
                padding: Padding::Same,
            };
            let [x, w, y, dw, scratch] = [
                s.x_len(),
                s.w_len(),
                s.y_len(),
                s.w_len(),
                DepthwiseConv2d::backward_weight_scratch_len(&s),
            ]
            .map(|n| ctx.zeros("t", n));
            for (variant, mirrored) in [(Variant::Texture, true), (Variant::Storage, false)] {
                let k = DepthwiseConv2d::with_variant(&ctx, 3, variant).unwrap();
                let mut ds = vec![k.forward(&ctx, &y, &x, &w, &s)];
                ds.extend(k.backward_weight(&ctx, &dw, &scratch, &y, &x, &s));
                assert!(
                    ds.iter().all(|d| d.has_mirrors() == mirrored),
                    "{variant:?}, c {c}"
                );
            }
        }
    }

    /// Both lane forms and their texture forms are made at run time: each must validate, the
    /// four-channel one must read vec4s, and the texture forms must read every mirrored array
    /// through its mirror (no storage declaration of them left).
    #[test]
    fn the_lane_and_texture_forms_validate() {
        for lanes in [1, 4] {
            let form = crate::gpu::shader::lane_form(super::SOURCE, lanes).unwrap();
            crate::kernels::validate_wgsl("depthwise_conv2d lane form", &form)
                .unwrap_or_else(|e| panic!("{lanes} lanes: {e}"));
            let ty = if lanes == 4 {
                "array<vec4<f32>>"
            } else {
                "array<f32>"
            };
            assert!(form.contains(&format!("var<storage, read> src: {ty};")));
            let textured = crate::gpu::mirror::texture_form(&form, &super::TEXTURE_READS).unwrap();
            crate::kernels::validate_wgsl("depthwise_conv2d texture form", &textured)
                .unwrap_or_else(|e| panic!("{lanes} lanes, textured: {e}"));
            for name in super::TEXTURE_READS {
                assert!(textured.contains(&format!(
                    "var {name}_mirror: {};",
                    crate::gpu::mirror::MIRROR_TYPE
                )));
                assert!(!textured.contains(&format!("var<storage, read> {name}:")));
            }
        }
    }

    #[test]
    fn lane_form_refuses_files_without_the_alias() {
        let e = crate::gpu::shader::lane_form("const VW: u32 = 1u;\n", 4).unwrap_err();
        assert!(e.contains("alias V = f32;"), "{e}");
        let e = crate::gpu::shader::lane_form("alias V = f32;\nconst VW: u32 = 1u;\n", 2);
        assert!(e.unwrap_err().contains("1 or 4"));
    }
}
