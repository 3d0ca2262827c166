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
//! - `backward`: partial → finalize (writes dγ, dβ) → input (writes dx). Saved tensors: the
//!   forward's input x (not x̂) and its `mean` and `inv_std`. Every output is written, never
//!   accumulated.
//!
//! Variants (same WGSL, different workgroup shape): `tree` is CW = 64 channels × RL = 4 row lanes
//! merged by a workgroup-memory tree (the portable variant for real GPUs: coalesced along C and
//! more invocations per chunk); `flat` is 64 channels × 1 row lane, so no workgroup memory and no
//! barrier, which lavapipe rewards (LAVAPIPE-NOTES.md). Software adapters get `flat`.

use std::sync::{Arc, OnceLock};

use bytemuck::{Pod, Zeroable};

use crate::cpu;
use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, ShaderFamily, groups_for};
use crate::selftest::{Check, Compared, ShapeClass, random_vec, to_f64};

/// Keras' default momentum of the moving statistics.
pub const MOMENTUM: f32 = 0.99;
/// Keras' default epsilon added to the variance.
pub const EPSILON: f32 = 1e-3;

/// Channels per workgroup (consecutive invocations, consecutive addresses).
pub(crate) const CW: u32 = 64;
/// Invocations per workgroup of the finalize passes (one per channel).
const FW: u32 = 64;
/// Smallest chunk of rows a workgroup reduces.
const MIN_ROWS_PER_CHUNK: usize = 128;
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
    pub _pad: [u32; 2],
}

/// The size of one batch-norm layer and its hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BnShape {
    /// M = N·H·W.
    pub rows: usize,
    /// C.
    pub channels: usize,
    pub momentum: f32,
    pub epsilon: f32,
}

impl BnShape {
    /// A layer with Keras' default momentum and epsilon.
    pub fn keras(rows: usize, channels: usize) -> Self {
        Self {
            rows,
            channels,
            momentum: MOMENTUM,
            epsilon: EPSILON,
        }
    }

    /// (rows per chunk, chunks) of the two-stage reductions.
    pub fn chunking(&self) -> (usize, usize) {
        let rows = self.rows.max(1);
        let per = rows.div_ceil(MAX_CHUNKS).max(MIN_ROWS_PER_CHUNK);
        (per, rows.div_ceil(per))
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
            _pad: [0; 2],
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
}

impl Variant {
    /// The variant for this adapter: `Flat` on CPU adapters (lavapipe, where workgroup memory
    /// and barriers are slow), `Tree` elsewhere.
    pub fn for_adapter(ctx: &GpuContext) -> Self {
        if ctx.is_software() {
            Variant::Flat
        } else {
            Variant::Tree
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Tree => "tree",
            Variant::Flat => "flat",
        }
    }

    pub(crate) fn row_lanes(self) -> u32 {
        match self {
            Variant::Tree => 4,
            Variant::Flat => 1,
        }
    }
}

/// Which batch-norm variant this adapter uses, for the printed report.
/// Pipelines of shaders/batch_norm.wgsl for one variant.
pub struct BatchNorm {
    family: ShaderFamily,
    variant: Variant,
}

impl BatchNorm {
    /// The variant chosen for this adapter.
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_variant(ctx, Variant::for_adapter(ctx))
    }

    pub fn with_variant(ctx: &GpuContext, variant: Variant) -> Self {
        let family = ShaderFamily::new(
            ctx,
            "batch_norm",
            include_str!("../../shaders/batch_norm.wgsl"),
            &[],
            &[
                ("CW", CW as f64),
                ("RL", variant.row_lanes() as f64),
                ("FW", FW as f64),
            ],
        );
        Self { family, variant }
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// f32 elements of the scratch buffer `forward_train` and `backward` need for a layer of
    /// this shape ([2, chunks, C]); one buffer of the largest `scratch_len` over the layers
    /// serves them all (their dispatches run one after another).
    pub fn scratch_len(shape: &BnShape) -> usize {
        2 * shape.chunking().1 * shape.channels
    }

    fn row_grid(shape: &BnShape) -> [u32; 3] {
        let (_, chunks) = shape.chunking();
        [groups_for(shape.channels, CW), chunks as u32, 1]
    }

    fn channel_grid(shape: &BnShape) -> [u32; 3] {
        [groups_for(shape.channels, FW), 1, 1]
    }

    fn check_scratch(scratch: &dyn Bind, shape: &BnShape) {
        let need = (Self::scratch_len(shape) * 4) as u64;
        assert!(
            scratch.size() >= need,
            "batch_norm scratch holds {} bytes, needs {need}",
            scratch.size()
        );
    }

    /// Training forward: three dispatches, to be recorded in order. Writes y [M, C] and the
    /// saved mean, inv_std [C]; updates moving_mean, moving_var [C] in place; reads x [M, C],
    /// gamma, beta [C]; scratch: [`Self::scratch_len`] f32.
    #[allow(clippy::too_many_arguments)] // the convention's flat order: outputs, inputs, sizes
    pub fn forward_train(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        mean: &dyn Bind,
        inv_std: &dyn Bind,
        moving_mean: &dyn Bind,
        moving_var: &dyn Bind,
        x: &dyn Bind,
        gamma: &dyn Bind,
        beta: &dyn Bind,
        scratch: &dyn Bind,
        shape: &BnShape,
    ) -> Vec<Dispatch> {
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
        let [partial, finalize, normalize] = [
            ("batch_norm_forward_train_partial", Self::row_grid(shape)),
            (
                "batch_norm_forward_train_finalize",
                Self::channel_grid(shape),
            ),
            ("batch_norm_forward_train_normalize", Self::row_grid(shape)),
        ]
        .map(|(entry, grid)| self.family.dispatch(ctx, entry, &slots, Some(&p), grid));
        vec![partial, finalize, normalize]
    }

    /// Inference forward: y = γ·(x − moving_mean)/sqrt(moving_var + ε) + β (writes y).
    /// y, x: [M, C]; gamma, beta, moving_mean, moving_var: [C].
    #[allow(clippy::too_many_arguments)] // the convention's flat order: outputs, inputs, sizes
    pub fn forward_inference(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        gamma: &dyn Bind,
        beta: &dyn Bind,
        moving_mean: &dyn Bind,
        moving_var: &dyn Bind,
        shape: &BnShape,
    ) -> Dispatch {
        let slots = [
            Some(y),
            Some(x),
            None,
            Some(gamma),
            Some(beta),
            None,
            None,
            Some(moving_mean),
            Some(moving_var),
        ];
        self.family.dispatch(
            ctx,
            "batch_norm_forward_inference",
            &slots,
            Some(&shape.params()),
            Self::row_grid(shape),
        )
    }

    /// Backward: three dispatches, to be recorded in order. Writes dx [M, C], dgamma, dbeta [C]
    /// (never accumulates); reads dy, x [M, C] (x is the forward's input), gamma [C] and the
    /// forward's saved mean, inv_std [C]; scratch: [`Self::scratch_len`] f32.
    #[allow(clippy::too_many_arguments)] // the convention's flat order: outputs, inputs, saved
    pub fn backward(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dgamma: &dyn Bind,
        dbeta: &dyn Bind,
        dy: &dyn Bind,
        x: &dyn Bind,
        gamma: &dyn Bind,
        mean: &dyn Bind,
        inv_std: &dyn Bind,
        scratch: &dyn Bind,
        shape: &BnShape,
    ) -> Vec<Dispatch> {
        Self::check_scratch(scratch, shape);
        let p = shape.params();
        // One binding table for the three passes: each binds only the slots it uses.
        let slots: [Option<&dyn Bind>; 12] = [
            Some(dx),
            Some(x),
            Some(dy),
            Some(gamma),
            None,
            Some(mean),
            Some(inv_std),
            None,
            None,
            Some(dgamma),
            Some(dbeta),
            Some(scratch),
        ];
        let [partial, finalize, input] = [
            ("batch_norm_backward_partial", Self::row_grid(shape)),
            ("batch_norm_backward_finalize", Self::channel_grid(shape)),
            ("batch_norm_backward_input", Self::row_grid(shape)),
        ]
        .map(|(entry, grid)| self.family.dispatch(ctx, entry, &slots, Some(&p), grid));
        vec![partial, finalize, input]
    }
}

/// Per variant, the family compiled once per `checks()` list on first use.
type Shared = Arc<[OnceLock<BatchNorm>; 2]>;

fn kernels<'a>(shared: &'a Shared, ctx: &GpuContext, variant: Variant) -> &'a BatchNorm {
    let i = match variant {
        Variant::Tree => 0,
        Variant::Flat => 1,
    };
    shared[i].get_or_init(|| BatchNorm::with_variant(ctx, variant))
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// One parity case: the layer's shape, the seed of its inputs, and the offset of x's values
/// (x = offset ± 1.5). A large offset is what breaks a naive E[x²] − E[x]² variance.
#[derive(Debug, Clone, Copy)]
struct Case {
    shape: BnShape,
    seed: u64,
    offset: f32,
}

impl Case {
    /// Absolute error of f32 values of magnitude ~offset: a few units in the last place.
    fn offset_atol(&self) -> f64 {
        4.0 * self.offset.abs().max(1.0) as f64 * f32::EPSILON as f64
    }
}

/// Seeded inputs of one layer: x, gamma, beta, moving statistics, dy.
struct Inputs {
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    moving_mean: Vec<f32>,
    moving_var: Vec<f32>,
    dy: Vec<f32>,
}

impl Inputs {
    fn new(case: &Case) -> Self {
        let (seed, m, c) = (case.seed, case.shape.rows, case.shape.channels);
        let o = case.offset;
        Self {
            x: random_vec(seed, m * c, o - 1.5, o + 1.5),
            gamma: random_vec(seed + 1, c, 0.5, 1.5),
            beta: random_vec(seed + 2, c, -0.5, 0.5),
            moving_mean: random_vec(seed + 3, c, -1.0, 1.0),
            moving_var: random_vec(seed + 4, c, 0.5, 1.5),
            dy: random_vec(seed + 5, m * c, -1.0, 1.0),
        }
    }
}

fn check_forward_train(ctx: &GpuContext, k: &BatchNorm, case: Case) -> CheckOut {
    let s = case.shape;
    let (m, c) = (s.rows, s.channels);
    let inp = Inputs::new(&case);
    let xb = ctx.upload("x", &inp.x);
    let (gb, bb) = (
        ctx.upload("gamma", &inp.gamma),
        ctx.upload("beta", &inp.beta),
    );
    let mmb = ctx.upload("moving_mean", &inp.moving_mean);
    let mvb = ctx.upload("moving_var", &inp.moving_var);
    let (yb, meanb, isb) = (
        ctx.zeros("y", m * c),
        ctx.zeros("mean", c),
        ctx.zeros("inv_std", c),
    );
    let scratch = ctx.zeros("scratch", BatchNorm::scratch_len(&s));
    let ds = k.forward_train(
        ctx, &yb, &meanb, &isb, &mmb, &mvb, &xb, &gb, &bb, &scratch, &s,
    );
    crate::kernels::run_all(ctx, &ds.iter().collect::<Vec<_>>())?;

    let mut y = vec![0.0; m * c];
    let (mut mean, mut istd) = (vec![0.0; c], vec![0.0; c]);
    let (mut mm, mut mv) = (to_f64(&inp.moving_mean), to_f64(&inp.moving_var));
    cpu::batch_norm::batch_norm_forward_train(
        &mut y,
        &mut mean,
        &mut istd,
        &mut mm,
        &mut mv,
        &to_f64(&inp.x),
        &to_f64(&inp.gamma),
        &to_f64(&inp.beta),
        m,
        c,
        s.momentum as f64,
        s.epsilon as f64,
    );
    // Tolerances: the f32 Welford/Chan mean is within a few ulps of the offset (offset_atol:
    // 2e-6 at offset 4); the variance (~0.75, M2 built from x − mean, never from x²) within
    // 1e-5 relative even at offset 1000; y = γ·(x − mean)·inv_std + β inherits the mean's
    // absolute error times γ·inv_std (≤ 1.5·1.2) plus its own roundings.
    let mean_atol = case.offset_atol();
    Ok(vec![
        Compared::new("y", ctx.read(&yb)?, y, 1e-5 + 2.0 * mean_atol, 1e-5),
        Compared::new("mean", ctx.read(&meanb)?, mean, mean_atol, 1e-6),
        Compared::new("inv_std", ctx.read(&isb)?, istd, 0.0, 1e-5),
        Compared::new("moving_mean", ctx.read(&mmb)?, mm, mean_atol, 1e-6),
        Compared::new("moving_var", ctx.read(&mvb)?, mv, 0.0, 1e-5),
    ])
}

fn check_forward_inference(ctx: &GpuContext, k: &BatchNorm, case: Case) -> CheckOut {
    let s = case.shape;
    let (m, c) = (s.rows, s.channels);
    let inp = Inputs::new(&case);
    let xb = ctx.upload("x", &inp.x);
    let (gb, bb) = (
        ctx.upload("gamma", &inp.gamma),
        ctx.upload("beta", &inp.beta),
    );
    let mmb = ctx.upload("moving_mean", &inp.moving_mean);
    let mvb = ctx.upload("moving_var", &inp.moving_var);
    let yb = ctx.zeros("y", m * c);
    let d = k.forward_inference(ctx, &yb, &xb, &gb, &bb, &mmb, &mvb, &s);
    crate::kernels::run_all(ctx, &[&d])?;
    let mut y = vec![0.0; m * c];
    cpu::batch_norm::batch_norm_forward_inference(
        &mut y,
        &to_f64(&inp.x),
        &to_f64(&inp.gamma),
        &to_f64(&inp.beta),
        &to_f64(&inp.moving_mean),
        &to_f64(&inp.moving_var),
        m,
        c,
        s.epsilon as f64,
    );
    // Elementwise, a handful of f32 roundings; x − moving_mean carries x's own ulp·γ·scale.
    let atol = 2e-6 + 2.0 * case.offset_atol();
    Ok(vec![Compared::new("y", ctx.read(&yb)?, y, atol, 2e-6)])
}

fn check_backward(ctx: &GpuContext, k: &BatchNorm, case: Case) -> CheckOut {
    let s = case.shape;
    let (m, c) = (s.rows, s.channels);
    let inp = Inputs::new(&case);
    // The saved statistics as the forward would have produced them, rounded to f32 so both
    // sides differentiate at the same point.
    let mut y = vec![0.0; m * c];
    let (mut mean, mut istd) = (vec![0.0; c], vec![0.0; c]);
    let (mut mm, mut mv) = (vec![0.0; c], vec![1.0; c]);
    cpu::batch_norm::batch_norm_forward_train(
        &mut y,
        &mut mean,
        &mut istd,
        &mut mm,
        &mut mv,
        &to_f64(&inp.x),
        &to_f64(&inp.gamma),
        &to_f64(&inp.beta),
        m,
        c,
        s.momentum as f64,
        s.epsilon as f64,
    );
    let (mean, istd) = (to_f32(&mean), to_f32(&istd));

    let (dyb, xb, gb) = (
        ctx.upload("dy", &inp.dy),
        ctx.upload("x", &inp.x),
        ctx.upload("gamma", &inp.gamma),
    );
    let (meanb, isb) = (ctx.upload("mean", &mean), ctx.upload("inv_std", &istd));
    let (dxb, dgb, dbb) = (
        ctx.zeros("dx", m * c),
        ctx.zeros("dgamma", c),
        ctx.zeros("dbeta", c),
    );
    let scratch = ctx.zeros("scratch", BatchNorm::scratch_len(&s));
    let ds = k.backward(
        ctx, &dxb, &dgb, &dbb, &dyb, &xb, &gb, &meanb, &isb, &scratch, &s,
    );
    crate::kernels::run_all(ctx, &ds.iter().collect::<Vec<_>>())?;

    let (mut dx, mut dg, mut db) = (vec![0.0; m * c], vec![0.0; c], vec![0.0; c]);
    cpu::batch_norm::batch_norm_backward(
        &mut dx,
        &mut dg,
        &mut db,
        &to_f64(&inp.dy),
        &to_f64(&inp.x),
        &to_f64(&inp.gamma),
        &to_f64(&mean),
        &to_f64(&istd),
        m,
        c,
    );
    // dγ, dβ are f32 sums of M terms of size ~1 (chunked, so the error grows like the chunk
    // length plus the chunk count, not M): atol 1e-6·sqrt(M)·4, rtol 1e-5. dx subtracts the
    // per-channel means Σdy/M and x̂·Σdy·x̂/M, whose absolute errors carry over: atol 1e-5.
    let sum_atol = 4e-6 * (m as f64).sqrt();
    Ok(vec![
        Compared::new("dx", ctx.read(&dxb)?, dx, 1e-5, 1e-5),
        Compared::new("dgamma", ctx.read(&dgb)?, dg, sum_atol, 1e-5),
        Compared::new("dbeta", ctx.read(&dbb)?, db, sum_atol, 1e-5),
    ])
}

type CheckOut = Result<Vec<Compared>, crate::gpu::GpuError>;
type CheckFn = fn(&GpuContext, &BatchNorm, Case) -> CheckOut;

/// Every pass × variant × shape class. The two large shapes use 64 and 127 chunks (the
/// multi-chunk merge, with a ragged last chunk).
pub fn checks(_ctx: &GpuContext) -> Vec<Check> {
    let shapes = [
        (ShapeClass::Tiny, 4, 3, "N1 H2 W2 C3"),
        (ShapeClass::Odd, 2 * 7 * 7, 5, "N2 H7 W7 C5"),
        (ShapeClass::Large, 4 * 45 * 45, 96, "N4 H45 W45 C96"),
        (ShapeClass::Large, 8 * 45 * 45, 64, "N8 H45 W45 C64"),
    ];
    // Every shape at offset 4, and the first large one again at offset 1000, where a naive
    // E[x²] − E[x]² variance in f32 would be off by tens of percent.
    let cases = shapes
        .iter()
        .map(|&(class, rows, ch, label)| (class, rows, ch, format!("{label}, x 4±1.5"), 4.0))
        .chain(std::iter::once((
            ShapeClass::Large,
            shapes[2].1,
            shapes[2].2,
            format!("{}, x 1000±1.5", shapes[2].3),
            1000.0,
        )))
        .collect::<Vec<_>>();
    let shared: Shared = Arc::default();
    let mut v = Vec::new();
    for variant in [Variant::Tree, Variant::Flat] {
        for (i, (class, rows, channels, label, offset)) in cases.iter().cloned().enumerate() {
            let case = Case {
                shape: BnShape::keras(rows, channels),
                seed: 100 + 10 * i as u64,
                offset,
            };
            let passes: [(&'static str, CheckFn); 3] = [
                ("forward_train", check_forward_train),
                ("forward_inference", check_forward_inference),
                ("backward", check_backward),
            ];
            for (pass, f) in passes {
                let sh = shared.clone();
                v.push(Check::new(
                    "batch_norm",
                    pass,
                    variant.name(),
                    class,
                    label.clone(),
                    move |ctx| f(ctx, kernels(&sh, ctx, variant), case),
                ));
            }
        }
    }
    v
}

/// The model's widest batch norm at batch 8: 8×90×90×256, each pass and variant (memory-bound,
/// GB/s of the [M, C] tensors read and written; the [C] vectors are negligible).
pub fn bench_cases(ctx: &GpuContext) -> Vec<crate::bench::BenchCase> {
    use crate::bench::{BenchCase, Work};
    let s = BnShape::keras(8 * 90 * 90, 256);
    let (m, c) = (s.rows, s.channels);
    let tensor = (m * c * 4) as u64;
    // Contents do not change the work: zero tensors keep creation cheap (var 0 is finite).
    let x = ctx.zeros("x", m * c);
    let dy = ctx.zeros("dy", m * c);
    let out = ctx.zeros("y", m * c);
    let vecs: Vec<wgpu::Buffer> = (0..8)
        .map(|_| ctx.upload("vec", &vec![1.0f32; c]))
        .collect();
    let scratch = ctx.zeros("scratch", BatchNorm::scratch_len(&s));
    let mut cases = Vec::new();
    for variant in [Variant::Flat, Variant::Tree] {
        let k = BatchNorm::with_variant(ctx, variant);
        let [g, b, mean, istd, mm, mv, dg, db] = [0, 1, 2, 3, 4, 5, 6, 7].map(|i| &vecs[i]);
        let v = variant.name();
        cases.push(BenchCase {
            group: "batch_norm",
            id: format!("8x90x90x256/forward_train/{v}"),
            // partial reads x; normalize reads x and writes y.
            work: Work::Bytes(3 * tensor),
            dispatches: k.forward_train(ctx, &out, mean, istd, mm, mv, &x, g, b, &scratch, &s),
            buffers: vec![],
        });
        cases.push(BenchCase {
            group: "batch_norm",
            id: format!("8x90x90x256/forward_inference/{v}"),
            work: Work::Bytes(2 * tensor),
            dispatches: vec![k.forward_inference(ctx, &out, &x, g, b, mm, mv, &s)],
            buffers: vec![],
        });
        cases.push(BenchCase {
            group: "batch_norm",
            id: format!("8x90x90x256/backward/{v}"),
            // partial reads dy and x; input reads dy and x and writes dx.
            work: Work::Bytes(5 * tensor),
            dispatches: k.backward(ctx, &out, dg, db, &dy, &x, g, mean, istd, &scratch, &s),
            buffers: vec![],
        });
    }
    if let Some(last) = cases.last_mut() {
        last.buffers = [x, dy, out, scratch].into_iter().chain(vecs).collect();
    }
    cases
}
