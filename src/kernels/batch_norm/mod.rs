//! `batch_norm` (Keras semantics, channels last): shaders/batch_norm.wgsl.
//!
//! x [N, H, W, C] is viewed as [M, C], M = N·H·W. Per-channel reductions run in two stages:
//! each workgroup reduces one chunk of rows for CW consecutive channels into a partial in a
//! caller-provided scratch buffer (length [`BatchNorm::scratch_len`]), then a finalize pass
//! merges the chunk partials per channel. The variance is the Welford/Chan merge of per-lane
//! and per-chunk (count, mean, M2) states: numerically sound, never E[x²] − E[x]².
//!
//! Passes and their dispatches (recorded in the order returned):
//! - `forward_train`: partial → finalize (writes the saved `mean` and `inv_std` = 1/sqrt(var + ε),
//!   updates moving_mean/var in place) → normalize (writes y).
//! - `forward_inference`: one dispatch, normalising with the moving statistics.
//! - `fold`: one dispatch that folds the inference batch norm into the convolution before it
//!   (W' = W·s, b' = (b − moving_mean)·s + β per output channel, s = γ/sqrt(moving_var + ε)):
//!   the kernel [k, k, Cin, Cout] is viewed as [M = k·k·Cin, C = Cout], so it is a row pass
//!   like the others. The graph runs it before each folded convolution of an inference program.
//! - `backward`: partial → finalize (writes dγ, dβ) → input (writes dx). Saved tensors: the
//!   forward's input x (not x̂) and its `mean` and `inv_std`. Every output is written, never
//!   accumulated.
//! - With [`BnShape::relu`], a following ReLU is fused into all three: the forwards write
//!   max(y, 0) and the backward takes the ReLU's output gradient, masked where the forward's y
//!   was ≤ 0 (recomputed from x and the saved statistics, which the passes load anyway); it then
//!   also reads beta ([`BackwardBuffers::beta`]).
//!
//! Variants (same WGSL, different workgroup shape): `tree` is CW = 64 channels × RL = 4 row lanes
//! merged by a workgroup-memory tree (the portable variant for real GPUs: coalesced along C and
//! more invocations per chunk); `flat` is 64 channels × 1 row lane, so no workgroup memory and no
//! barrier, which lavapipe rewards (LAVAPIPE-NOTES.md). Software adapters get `flat`.
//!
//! Every variant runs one channel per lane, or four (a vec4) where C is divisible by 4: the
//! file's [`lanes`] form ([`crate::gpu::shader::lane_form`]), compiled on first use.

use bytemuck::{Pod, Zeroable};

use crate::gpu::GpuContext;
use crate::gpu::mirror::{LaneFamilies, MirroredFamily, lanes_for};
use crate::kernels::Bind;
use crate::kernels::{Dispatch, groups_for};

pub mod bench;
pub mod checks;

pub use crate::shapes::{EPSILON, MOMENTUM};

/// Channels per workgroup (consecutive invocations, consecutive addresses).
pub(crate) const CW: u32 = 64;
/// Invocations per workgroup of the finalize passes (one per channel).
const FW: u32 = 64;
/// Smallest chunk of rows a workgroup reduces.
const MIN_ROWS_PER_CHUNK: usize = 128;
/// Rows per chunk of the elementwise passes ([`BnShape::elementwise_chunking`]).
const ELEMENTWISE_ROWS: usize = 32;
/// Most workgroups along a grid's y dimension (WebGPU's default limit).
const MAX_GRID_Y: usize = 65_535;
/// Most chunks: bounds the finalize passes' loop and the scratch buffer. At the model's
/// largest layer (batch 128, 90×90: 1,036,800 rows) chunks hold 1,013 rows.
const MAX_CHUNKS: usize = 1024;

/// Mirrors `struct Params` in shaders/batch_norm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub rows: u32,
    pub channels: u32,
    pub rows_per_chunk: u32,
    pub chunks: u32,
    pub momentum: f32,
    pub epsilon: f32,
    /// 1: a ReLU is fused after the normalisation (see [`BnShape::relu`]).
    pub relu: u32,
    pub _pad: u32,
}

pub use crate::shapes::BnShape;

/// The buffers of [`BatchNorm::forward_train`], named because ten `&dyn Bind` in a row are
/// easy to swap. Writes y [M, C] and the saved mean, inv_std [C]; updates moving_mean,
/// moving_var [C] in place; reads x [M, C], gamma, beta [C]; scratch: [`BatchNorm::scratch_len`]
/// f32.
#[derive(Clone, Copy)]
pub struct TrainBuffers<'a> {
    pub y: &'a dyn Bind,
    pub mean: &'a dyn Bind,
    pub inv_std: &'a dyn Bind,
    pub moving_mean: &'a dyn Bind,
    pub moving_var: &'a dyn Bind,
    pub x: &'a dyn Bind,
    pub gamma: &'a dyn Bind,
    pub beta: &'a dyn Bind,
    pub scratch: &'a dyn Bind,
}

/// The buffers of [`BatchNorm::forward_inference`]: writes y [M, C]; reads x [M, C] and the
/// layer's gamma, beta, moving_mean, moving_var [C].
#[derive(Clone, Copy)]
pub struct InferenceBuffers<'a> {
    pub y: &'a dyn Bind,
    pub x: &'a dyn Bind,
    pub gamma: &'a dyn Bind,
    pub beta: &'a dyn Bind,
    pub moving_mean: &'a dyn Bind,
    pub moving_var: &'a dyn Bind,
}

/// The buffers of [`BatchNorm::fold`]: writes w_out [K, C] (the folded kernel) and b_out [C];
/// reads the convolution's kernel w [K, C] (Keras' [k, k, Cin, Cout] with K = k·k·Cin,
/// C = Cout), its bias b [C], and the batch norm's gamma, beta, moving_mean, moving_var [C].
#[derive(Clone, Copy)]
pub struct FoldBuffers<'a> {
    pub w_out: &'a dyn Bind,
    pub b_out: &'a dyn Bind,
    pub w: &'a dyn Bind,
    pub b: &'a dyn Bind,
    pub gamma: &'a dyn Bind,
    pub beta: &'a dyn Bind,
    pub moving_mean: &'a dyn Bind,
    pub moving_var: &'a dyn Bind,
}

/// The buffers of [`BatchNorm::backward`]: writes dx [M, C], dgamma, dbeta [C]; reads dy,
/// x [M, C] (x is the forward's input), gamma [C] and the forward's saved mean, inv_std [C];
/// scratch: [`BatchNorm::scratch_len`] f32.
#[derive(Clone, Copy)]
pub struct BackwardBuffers<'a> {
    pub dx: &'a dyn Bind,
    pub dgamma: &'a dyn Bind,
    pub dbeta: &'a dyn Bind,
    pub dy: &'a dyn Bind,
    pub x: &'a dyn Bind,
    pub gamma: &'a dyn Bind,
    /// Read only with the fused ReLU (its mask needs the forward's y).
    pub beta: &'a dyn Bind,
    pub mean: &'a dyn Bind,
    pub inv_std: &'a dyn Bind,
    pub scratch: &'a dyn Bind,
}

impl BnShape {
    /// (rows per chunk, chunks) of the two-stage reductions.
    pub fn chunking(&self) -> (usize, usize) {
        let rows = self.rows.max(1);
        let per = rows.div_ceil(MAX_CHUNKS).max(MIN_ROWS_PER_CHUNK);
        (per, rows.div_ceil(per))
    }

    /// (rows per chunk, chunks) of the elementwise row passes (normalize, inference, input
    /// gradient): small chunks, so that the workgroups that run one after another walk
    /// neighbouring rows. A workgroup's lanes span the row's channels but run as several
    /// subgroups, each through all of its chunk's rows before the next starts (lavapipe), so a
    /// long chunk makes each subgroup stride through memory a row at a time. On lavapipe
    /// (kernels bench, 8×90×90×256, `flat_texture`), chunks of 32 rows instead of 507: the
    /// inference pass 46 → 25 ms, the backward 74 → 55 ms; 8, 16 and 64 rows did as well or
    /// a little worse, 128 much worse. The grid's y dimension bounds the chunks (65,535).
    pub fn elementwise_chunking(&self) -> (usize, usize) {
        let rows = self.rows.max(1);
        let per = rows.div_ceil(MAX_GRID_Y).max(ELEMENTWISE_ROWS);
        (per, rows.div_ceil(per))
    }

    /// [`Self::params`] with the elementwise passes' chunking.
    fn elementwise_params(&self) -> Params {
        let (per, chunks) = self.elementwise_chunking();
        Params {
            rows_per_chunk: per as u32,
            chunks: chunks as u32,
            ..self.params()
        }
    }

    fn params(&self) -> Params {
        let (per, chunks) = self.chunking();
        Params {
            rows: self.rows as u32,
            channels: self.channels as u32,
            rows_per_chunk: per as u32,
            chunks: chunks as u32,
            momentum: self.momentum,
            epsilon: self.epsilon,
            relu: self.relu as u32,
            _pad: 0,
        }
    }
}

/// Kernel variant: the workgroup shape of the row passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// 64 channels × 4 row lanes, lanes merged through workgroup memory: real GPUs.
    Tree,
    /// 64 channels × 1 row lane, no workgroup memory or barriers: software adapters.
    Flat,
    /// `flat` reading x and dy through texture mirrors ([`crate::gpu::mirror`]): software
    /// adapters whose storage loads cost more than texel fetches.
    FlatTexture,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Tree, Variant::Flat, Variant::FlatTexture];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Tree => "tree",
            Variant::Flat => "flat",
            Variant::FlatTexture => "flat_texture",
        }
    }

    /// The variant [`Self::name`] calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    pub(crate) fn row_lanes(self) -> u32 {
        match self {
            Variant::Tree => 4,
            Variant::Flat | Variant::FlatTexture => 1,
        }
    }
}

/// shaders/batch_norm.wgsl, written for a lane of VW channels
/// ([`crate::gpu::shader::lane_form`]).
const SOURCE: &str = include_str!("../../../shaders/batch_norm.wgsl");

/// Pipelines of shaders/batch_norm.wgsl for one variant.
pub struct BatchNorm {
    /// The one- and four-channel lane forms ([`lanes`]), each compiled on first use.
    families: LaneFamilies,
    variant: Variant,
}

/// Channels per lane for a shape: 4 (a vec4, one texel of a mirror) when C allows, else 1.
pub fn lanes(shape: &BnShape) -> usize {
    lanes_for(shape.channels)
}

impl BatchNorm {
    /// The variant chosen for this adapter.
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_variant(
            ctx,
            crate::kernels::variants::Variants::default_for(ctx)
                .0
                .batch_norm,
        )
    }

    pub fn with_variant(_ctx: &GpuContext, variant: Variant) -> Self {
        // The big reads; the per-channel vectors are small and stay in storage.
        let mirrored: &'static [&'static str] = match variant {
            Variant::FlatTexture => &["x", "dy"],
            Variant::Tree | Variant::Flat => &[],
        };
        let constants = vec![
            ("CW", CW as f64),
            ("RL", variant.row_lanes() as f64),
            ("FW", FW as f64),
        ];
        let names = ["batch_norm", "batch_norm_vec4"];
        Self {
            families: LaneFamilies::new(names, SOURCE, mirrored, &[], constants),
            variant,
        }
    }

    /// The compiled form for `shape`'s lane width.
    fn family(&self, ctx: &GpuContext, shape: &BnShape) -> &MirroredFamily {
        self.families.get(ctx, lanes(shape))
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// f32 elements of the scratch buffer `forward_train` and `backward` need for a layer of
    /// this shape ([max(2·chunks, 5), C]: the chunk partials, then backward_input's five
    /// per-channel factors); one buffer of the largest `scratch_len` over the layers serves
    /// them all (their dispatches run one after another).
    pub fn scratch_len(shape: &BnShape) -> usize {
        (2 * shape.chunking().1).max(5) * shape.channels
    }

    /// The grid of a row pass dispatched with `p`: a workgroup per CW lanes of channels and
    /// per chunk of `p`'s chunking (the statistics passes' or the elementwise passes').
    fn row_grid(shape: &BnShape, p: &Params) -> [u32; 3] {
        [groups_for(shape.channels / lanes(shape), CW), p.chunks, 1]
    }

    fn channel_grid(shape: &BnShape) -> [u32; 3] {
        [groups_for(shape.channels / lanes(shape), FW), 1, 1]
    }

    fn check_scratch(scratch: &dyn Bind, shape: &BnShape) {
        let need = (Self::scratch_len(shape) * 4) as u64;
        assert!(
            scratch.size() >= need,
            "batch_norm scratch holds {} bytes, needs {need}",
            scratch.size()
        );
    }

    /// Training forward: three dispatches, to be recorded in order (see [`TrainBuffers`] for
    /// what it reads and writes).
    pub fn forward_train(
        &self,
        ctx: &GpuContext,
        b: &TrainBuffers,
        shape: &BnShape,
    ) -> Vec<Dispatch> {
        let TrainBuffers {
            y,
            mean,
            inv_std,
            moving_mean,
            moving_var,
            x,
            gamma,
            beta,
            scratch,
        } = *b;
        Self::check_scratch(scratch, shape);
        let p = shape.params();
        // One binding table for the three passes: each binds only the slots it uses.
        let slots: [Option<&dyn Bind>; 12] = [
            Some(y),
            Some(x),
            None,
            Some(gamma),
            Some(beta),
            Some(mean),
            Some(inv_std),
            Some(moving_mean),
            Some(moving_var),
            None,
            None,
            Some(scratch),
        ];
        let e = shape.elementwise_params();
        let [partial, finalize, normalize] = [
            (
                "batch_norm_forward_train_partial",
                Self::row_grid(shape, &p),
                &p,
            ),
            (
                "batch_norm_forward_train_finalize",
                Self::channel_grid(shape),
                &p,
            ),
            (
                "batch_norm_forward_train_normalize",
                Self::row_grid(shape, &e),
                &e,
            ),
        ]
        .map(|(entry, grid, p)| {
            self.family(ctx, shape)
                .dispatch(ctx, entry, &slots, Some(p), grid)
        });
        // Only finalize (per-channel statistics) runs between the two passes over x, so the
        // normalize pass reads the mirror of x its statistics pass copied (gpu::shader::copy_plan).
        vec![partial, finalize, normalize]
    }

    /// Inference forward: y = γ·(x − moving_mean)/sqrt(moving_var + ε) + β (writes y; see
    /// [`InferenceBuffers`]).
    pub fn forward_inference(
        &self,
        ctx: &GpuContext,
        b: &InferenceBuffers,
        shape: &BnShape,
    ) -> Dispatch {
        let InferenceBuffers {
            y,
            x,
            gamma,
            beta,
            moving_mean,
            moving_var,
        } = *b;
        // The moving statistics go to the read-only slots 15 and 16.
        let mut slots: [Option<&dyn Bind>; 17] = [None; 17];
        slots[..5].copy_from_slice(&[Some(y), Some(x), None, Some(gamma), Some(beta)]);
        slots[15] = Some(moving_mean);
        slots[16] = Some(moving_var);
        let e = shape.elementwise_params();
        self.family(ctx, shape).dispatch(
            ctx,
            "batch_norm_forward_inference",
            &slots,
            Some(&e),
            Self::row_grid(shape, &e),
        )
    }

    /// The batch norm folded into the convolution before it (writes w_out and b_out; see
    /// [`FoldBuffers`]). `shape`: rows = K (the kernel's k·k·Cin), channels = Cout, and the
    /// batch norm's ε; `relu` is ignored (the ReLU goes into the convolution's epilogue).
    pub fn fold(&self, ctx: &GpuContext, b: &FoldBuffers, shape: &BnShape) -> Dispatch {
        let FoldBuffers {
            w_out,
            b_out,
            w,
            b,
            gamma,
            beta,
            moving_mean,
            moving_var,
        } = *b;
        let shape = BnShape {
            relu: false,
            ..*shape
        };
        let slots: [Option<&dyn Bind>; 17] = [
            Some(w_out),
            Some(w),
            None,
            Some(gamma),
            Some(beta),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some(b_out),
            Some(b),
            Some(moving_mean),
            Some(moving_var),
        ];
        let p = shape.params();
        self.family(ctx, &shape).dispatch(
            ctx,
            "batch_norm_fold",
            &slots,
            Some(&p),
            Self::row_grid(&shape, &p),
        )
    }

    /// Backward: three dispatches, to be recorded in order; never accumulates (see
    /// [`BackwardBuffers`] for what it reads and writes).
    pub fn backward(
        &self,
        ctx: &GpuContext,
        b: &BackwardBuffers,
        shape: &BnShape,
    ) -> Vec<Dispatch> {
        let BackwardBuffers {
            dx,
            dgamma,
            dbeta,
            dy,
            x,
            gamma,
            beta,
            mean,
            inv_std,
            scratch,
        } = *b;
        Self::check_scratch(scratch, shape);
        let p = shape.params();
        // One binding table for the three passes: each binds only the slots it uses.
        let slots: [Option<&dyn Bind>; 12] = [
            Some(dx),
            Some(x),
            Some(dy),
            Some(gamma),
            Some(beta),
            Some(mean),
            Some(inv_std),
            None,
            None,
            Some(dgamma),
            Some(dbeta),
            Some(scratch),
        ];
        let e = shape.elementwise_params();
        let [partial, finalize, input] = [
            ("batch_norm_backward_partial", Self::row_grid(shape, &p), &p),
            (
                "batch_norm_backward_finalize",
                Self::channel_grid(shape),
                &p,
            ),
            ("batch_norm_backward_input", Self::row_grid(shape, &e), &e),
        ]
        .map(|(entry, grid, p)| {
            self.family(ctx, shape)
                .dispatch(ctx, entry, &slots, Some(p), grid)
        });
        // As forward_train: finalize writes only per-channel values, so the input pass reads
        // the mirrors of x and dy that the partial pass copied.
        vec![partial, finalize, input]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test adapter, where it can hold texture mirrors.
    fn mirrored_context() -> Option<GpuContext> {
        let ctx = crate::gpu::test_context()?;
        crate::gpu::mirror::MirrorScratch::supported(&ctx).ok()?;
        Some(ctx)
    }

    /// 37 rows of `channels` channels, Keras' momentum and ε.
    fn shape_of(channels: usize, relu: bool) -> BnShape {
        BnShape {
            rows: 37,
            channels,
            momentum: 0.99,
            epsilon: 1e-3,
            relu,
        }
    }

    /// flat_texture's row passes read x through mirrors (not the storage fallback); flat's do
    /// not.
    #[test]
    fn flat_texture_mirrors_x() {
        let Some(ctx) = mirrored_context() else {
            return;
        };
        let shape = shape_of(5, false);
        let big = ctx.zeros("x", 37 * 5);
        let small: Vec<wgpu::Buffer> = (0..6).map(|_| ctx.zeros("v", 5)).collect();
        let scratch = ctx.zeros("scratch", BatchNorm::scratch_len(&shape));
        let b = TrainBuffers {
            y: &big,
            mean: &small[0],
            inv_std: &small[1],
            moving_mean: &small[2],
            moving_var: &small[3],
            x: &big,
            gamma: &small[4],
            beta: &small[5],
            scratch: &scratch,
        };
        for (variant, mirrored) in [(Variant::FlatTexture, true), (Variant::Flat, false)] {
            let k = BatchNorm::with_variant(&ctx, variant);
            let ds = k.forward_train(&ctx, &b, &shape);
            assert!(
                ds.iter().any(|d| d.has_mirrors() == mirrored),
                "{variant:?}"
            );
            if !mirrored {
                assert!(ds.iter().all(|d| !d.has_mirrors()));
            }
        }
    }

    /// flat_texture's second pass over x (and dy) reads the mirrors its first pass copied:
    /// no copies of its own after the first pass, its own copies when recorded alone or after
    /// another copy into the same mirror.
    #[test]
    fn the_second_pass_reuses_the_first_pass_copies() {
        let Some(ctx) = mirrored_context() else {
            return;
        };
        use crate::gpu::shader::copy_plan;
        let shape = shape_of(8, true);
        let n = 37 * 8;
        let [x, x2, y, dy, dx] = ["x", "x2", "y", "dy", "dx"].map(|l| ctx.zeros(l, n));
        let small: Vec<wgpu::Buffer> = (0..8).map(|_| ctx.zeros("v", 8)).collect();
        let scratch = ctx.zeros("scratch", BatchNorm::scratch_len(&shape));
        let train = |x| TrainBuffers {
            y: &y,
            mean: &small[0],
            inv_std: &small[1],
            moving_mean: &small[2],
            moving_var: &small[3],
            x,
            gamma: &small[4],
            beta: &small[5],
            scratch: &scratch,
        };
        let k = BatchNorm::with_variant(&ctx, Variant::FlatTexture);
        let fwd = k.forward_train(&ctx, &train(&x), &shape);
        let other = k.forward_train(&ctx, &train(&x2), &shape);
        let bwd = k.backward(
            &ctx,
            &BackwardBuffers {
                dx: &dx,
                dgamma: &small[6],
                dbeta: &small[7],
                dy: &dy,
                x: &x,
                gamma: &small[4],
                beta: &small[5],
                mean: &small[0],
                inv_std: &small[1],
                scratch: &scratch,
            },
            &shape,
        );
        let (t, f) = (true, false);
        for (ds, copies) in [(&fwd, vec![t]), (&bwd, vec![t, t])] {
            assert!(ds[0].has_mirrors() && ds[2].has_mirrors());
            let refs: Vec<&Dispatch> = ds.iter().collect();
            let none = vec![f; copies.len()];
            assert_eq!(copy_plan(&refs), [copies.clone(), vec![], none]);
            assert_eq!(copy_plan(&refs[2..]), [copies], "recorded alone, it copies");
        }
        // Another x mirrored between the passes: the second pass copies its own again.
        let between = [&fwd[0], &fwd[1], &other[0], &fwd[2]];
        assert_eq!(copy_plan(&between), [vec![t], vec![], vec![t], vec![t]]);
        // The backward's second pass after the forward's first: x is in mirror 0, dy never
        // was, so it copies dy alone.
        assert_eq!(copy_plan(&[&fwd[0], &bwd[2]]), [vec![t], vec![f, t]]);
        // After the forward's normalize pass wrote y = x in place, x's mirror is stale.
        let in_place = k.forward_train(&ctx, &TrainBuffers { y: &x, ..train(&x) }, &shape);
        let refs: Vec<&Dispatch> = in_place.iter().chain([&fwd[2]]).collect();
        assert_eq!(copy_plan(&refs), [vec![t], vec![], vec![f], vec![t]]);
    }

    /// Both lane forms, and their texture forms, are made at run time: each must validate.
    #[test]
    fn the_lane_and_texture_forms_validate() {
        for lanes in [1, 4] {
            let form = crate::gpu::shader::lane_form(super::SOURCE, lanes).unwrap();
            crate::kernels::validate_wgsl("batch_norm lane form", &form)
                .unwrap_or_else(|e| panic!("{lanes} lanes: {e}"));
            let textured = crate::gpu::mirror::texture_form(&form, &["x", "dy"]).unwrap();
            crate::kernels::validate_wgsl("batch_norm texture form", &textured)
                .unwrap_or_else(|e| panic!("{lanes} lanes, textured: {e}"));
        }
    }
}
