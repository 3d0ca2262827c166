//! `pointwise_conv2d`: 1×1 convolution, stride 1 or 2, "same" padding, with bias, as GEMMs on
//! the shared core of [`crate::kernels::gemm`] (shaders/gemm*.wgsl):
//!
//! - forward: y[N·OH·OW, COUT] = x rows gathered at (oh·s, ow·s) [.., CIN] × W[CIN, COUT] + b;
//! - backward_input: dx rows at the strided pixels = dy × Wᵀ, zeros elsewhere (writes all dx);
//! - backward_weight: dW = xᵀ·dy reduced over N·OH·OW with split-K (partials in a caller's
//!   scratch buffer, then a reduction pass), db = column sums of dy, split the same way.
//!
//! Weights in Keras layout `[1, 1, CIN, COUT]` (= [CIN, COUT] row-major), bias `[COUT]`.
//! No saved tensors beyond the forward input x (backward_weight reads it).

use std::sync::Arc;

use crate::cpu;
use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::Dispatch;
use crate::kernels::gemm::{
    Gemm, PixelMap, SharedGemm, Variant, selected_variant, shared_gemm, tolerance,
};
use crate::selftest::{Check, Compared, ShapeClass, random_vec, to_f64};

/// Shape of one 1×1 convolution: input [N, H, W, CIN], output [N, OH, OW, COUT].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointwiseShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub stride: usize,
}

impl PointwiseShape {
    /// (OH, OW) = (ceil(H/s), ceil(W/s)).
    pub fn out_hw(&self) -> (usize, usize) {
        cpu::pointwise_conv2d::out_hw(self.h, self.w, self.stride)
    }

    /// Output pixels N·OH·OW: the GEMM's M (forward) or K (weight gradient).
    pub fn pixels(&self) -> usize {
        let (oh, ow) = self.out_hw();
        self.n * oh * ow
    }

    /// The row gather, None at stride 1 (identity).
    fn map(&self) -> Option<PixelMap> {
        let (oh, ow) = self.out_hw();
        (self.stride > 1).then_some(PixelMap {
            oh,
            ow,
            in_h: self.h,
            in_w: self.w,
            stride: self.stride,
        })
    }

    fn label(&self) -> String {
        format!(
            "N{} H{} W{} C{}→{} s{}",
            self.n, self.h, self.w, self.cin, self.cout, self.stride
        )
    }
}

/// Pointwise convolution passes on a (possibly shared) compiled [`Gemm`].
pub struct PointwiseConv2d {
    gemm: Arc<Gemm>,
    variant: Variant,
}

impl PointwiseConv2d {
    /// Compiles the GEMM core and uses the adapter's variant.
    pub fn new(ctx: &GpuContext) -> Self {
        let gemm = Arc::new(Gemm::new(ctx));
        let variant = super::gemm::selected_variant(ctx);
        Self { gemm, variant }
    }

    /// Shares an already compiled core, with an explicit variant.
    pub fn with_gemm(gemm: Arc<Gemm>, variant: Variant) -> Self {
        Self { gemm, variant }
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// y = conv1x1(x, W) + b (writes y). y: [N, OH, OW, COUT], x: [N, H, W, CIN],
    /// w: [1, 1, CIN, COUT], b: [COUT].
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        w: &dyn Bind,
        b: &dyn Bind,
        s: &PointwiseShape,
    ) -> Dispatch {
        self.gemm.linear_forward(
            ctx,
            self.variant,
            y,
            x,
            w,
            b,
            s.pixels(),
            s.cin,
            s.cout,
            s.map(),
        )
    }

    /// dx = dy·Wᵀ at the strided pixels, zero elsewhere (writes all of dx).
    /// dx: [N, H, W, CIN], dy: [N, OH, OW, COUT], w: [1, 1, CIN, COUT].
    pub fn backward_input(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        w: &dyn Bind,
        s: &PointwiseShape,
    ) -> Vec<Dispatch> {
        self.gemm.linear_backward_input(
            ctx,
            self.variant,
            dx,
            dy,
            w,
            s.pixels(),
            s.cin,
            s.cout,
            s.map(),
        )
    }

    /// f32 elements of scratch [`Self::backward_weight`] needs (0: none).
    pub fn backward_weight_scratch_len(&self, s: &PointwiseShape) -> usize {
        self.gemm
            .weight_scratch_len(self.variant, s.pixels(), s.cin, s.cout)
    }

    /// dW = Σ_pixels xᵀ·dy, db = Σ_pixels dy (writes both). dw: [1, 1, CIN, COUT], db: [COUT],
    /// dy: [N, OH, OW, COUT], x: [N, H, W, CIN] (the forward input); `scratch` holds
    /// [`Self::backward_weight_scratch_len`] f32 (None when that is 0).
    #[allow(clippy::too_many_arguments)]
    pub fn backward_weight(
        &self,
        ctx: &GpuContext,
        dw: &dyn Bind,
        db: &dyn Bind,
        scratch: Option<&dyn Bind>,
        dy: &dyn Bind,
        x: &dyn Bind,
        s: &PointwiseShape,
    ) -> Vec<Dispatch> {
        self.gemm.linear_backward_weight(
            ctx,
            self.variant,
            dw,
            db,
            scratch,
            x,
            dy,
            s.pixels(),
            s.cin,
            s.cout,
            s.map(),
        )
    }
}

/// The CPU reference of one linear-layer family.
#[derive(Clone, Copy)]
pub(crate) enum Reference {
    Pointwise,
    Dense,
}

/// Checks of the three passes of a linear family (`op` = "pointwise_conv2d" or "dense";
/// dense shapes have H = W = stride = 1 and use cpu::dense).
pub(crate) fn linear_checks(
    ctx: &GpuContext,
    op: &'static str,
    reference: Reference,
    shapes: &[(ShapeClass, PointwiseShape)],
) -> Vec<Check> {
    let selected = selected_variant(ctx);
    let mut variants = vec![selected];
    if selected != Variant::Tiled {
        variants.push(Variant::Tiled);
    }
    let cell: SharedGemm = Arc::default();
    let mut v = Vec::new();
    for &variant in &variants {
        for &(class, s) in shapes {
            for pass in ["forward", "backward_input", "backward_weight"] {
                let cell = cell.clone();
                v.push(Check::new(
                    op,
                    pass,
                    variant.name(),
                    class,
                    s.label(),
                    move |ctx| {
                        let g = shared_gemm(&cell, ctx);
                        run_linear_check(ctx, g, variant, reference, pass, &s)
                    },
                ));
            }
        }
    }
    v
}

fn run_linear_check(
    ctx: &GpuContext,
    g: Arc<Gemm>,
    variant: Variant,
    reference: Reference,
    pass: &str,
    s: &PointwiseShape,
) -> Result<Vec<Compared>, crate::gpu::GpuError> {
    let (oh, ow) = s.out_hw();
    let (xl, yl) = (s.n * s.h * s.w * s.cin, s.n * oh * ow * s.cout);
    let x = random_vec(31, xl, -1.0, 1.0);
    let w = random_vec(32, s.cin * s.cout, -1.0, 1.0);
    let b = random_vec(33, s.cout, -1.0, 1.0);
    let dy = random_vec(34, yl, -1.0, 1.0);
    let (xd, wd, bd, dyd) = (to_f64(&x), to_f64(&w), to_f64(&b), to_f64(&dy));
    let k = PointwiseConv2d::with_gemm(g, variant);
    let run = |d: &[Dispatch]| crate::kernels::run_all(ctx, &d.iter().collect::<Vec<_>>());
    let (n, h, wi, ci, co, st) = (s.n, s.h, s.w, s.cin, s.cout, s.stride);
    match pass {
        "forward" => {
            let (xb, wb, bb) = (
                ctx.upload("x", &x),
                ctx.upload("w", &w),
                ctx.upload("b", &b),
            );
            let yb = ctx.upload("y", &vec![f32::NAN; yl]);
            run(&[k.forward(ctx, &yb, &xb, &wb, &bb, s)])?;
            let mut want = vec![0.0; yl];
            match reference {
                Reference::Pointwise => cpu::pointwise_conv2d::pointwise_conv2d_forward(
                    &mut want, &xd, &wd, &bd, n, h, wi, ci, co, st,
                ),
                Reference::Dense => cpu::dense::dense_forward(&mut want, &xd, &wd, &bd, n, ci, co),
            }
            let (atol, rtol) = tolerance(ci);
            Ok(vec![Compared::new("y", ctx.read(&yb)?, want, atol, rtol)])
        }
        "backward_input" => {
            let (dyb, wb) = (ctx.upload("dy", &dy), ctx.upload("w", &w));
            // NaN-filled: the pass must write every element of dx.
            let dxb = ctx.upload("dx", &vec![f32::NAN; xl]);
            run(&k.backward_input(ctx, &dxb, &dyb, &wb, s))?;
            let mut want = vec![0.0; xl];
            match reference {
                Reference::Pointwise => cpu::pointwise_conv2d::pointwise_conv2d_backward_input(
                    &mut want, &dyd, &wd, n, h, wi, ci, co, st,
                ),
                Reference::Dense => {
                    cpu::dense::dense_backward_input(&mut want, &dyd, &wd, n, ci, co)
                }
            }
            let (atol, rtol) = tolerance(co);
            Ok(vec![Compared::new("dx", ctx.read(&dxb)?, want, atol, rtol)])
        }
        _ => {
            let (xb, dyb) = (ctx.upload("x", &x), ctx.upload("dy", &dy));
            let dwb = ctx.upload("dw", &vec![f32::NAN; ci * co]);
            let dbb = ctx.upload("db", &vec![f32::NAN; co]);
            let sl = k.backward_weight_scratch_len(s);
            let scratch = (sl > 0).then(|| ctx.upload("scratch", &vec![f32::NAN; sl]));
            run(&k.backward_weight(
                ctx,
                &dwb,
                &dbb,
                scratch.as_ref().map(|b| b as &dyn Bind),
                &dyb,
                &xb,
                s,
            ))?;
            let (mut dw, mut db) = (vec![0.0; ci * co], vec![0.0; co]);
            match reference {
                Reference::Pointwise => cpu::pointwise_conv2d::pointwise_conv2d_backward_weight(
                    &mut dw, &mut db, &dyd, &xd, n, h, wi, ci, co, st,
                ),
                Reference::Dense => {
                    cpu::dense::dense_backward_weight(&mut dw, &mut db, &dyd, &xd, n, ci, co)
                }
            }
            let (atol, rtol) = tolerance(s.pixels());
            Ok(vec![
                Compared::new("dw", ctx.read(&dwb)?, dw, atol, rtol),
                Compared::new("db", ctx.read(&dbb)?, db, atol, rtol),
            ])
        }
    }
}

/// Parity checks of the three passes at the three shape classes (large: stride 1 and 2, the
/// weight gradient split over K = 4·45·45 = 8100 or 4·23·23 pixels).
pub fn checks(ctx: &GpuContext) -> Vec<Check> {
    let sh = |n, h, w, cin, cout, stride| PointwiseShape {
        n,
        h,
        w,
        cin,
        cout,
        stride,
    };
    linear_checks(
        ctx,
        "pointwise_conv2d",
        Reference::Pointwise,
        &[
            (ShapeClass::Tiny, sh(1, 2, 3, 3, 4, 1)),
            (ShapeClass::Tiny, sh(1, 3, 3, 2, 3, 2)),
            (ShapeClass::Odd, sh(2, 7, 7, 5, 3, 2)),
            (ShapeClass::Odd, sh(3, 5, 7, 37, 13, 1)),
            (ShapeClass::Large, sh(4, 45, 45, 64, 96, 1)),
            (ShapeClass::Large, sh(4, 45, 45, 64, 96, 2)),
        ],
    )
}

/// The model's 8×90×90 128→256 convolution at stride 1, and its strided residual (stride 2),
/// all three passes with the adapter's variant (GFLOP/s; 2·pixels·CIN·COUT per pass).
pub fn bench_cases(ctx: &GpuContext) -> Vec<crate::bench::BenchCase> {
    use crate::bench::{BenchCase, Work};
    let k = PointwiseConv2d::new(ctx);
    let vn = k.variant().name();
    let mut v = Vec::new();
    for stride in [1, 2] {
        let s = PointwiseShape {
            n: 8,
            h: 90,
            w: 90,
            cin: 128,
            cout: 256,
            stride,
        };
        let (oh, ow) = s.out_hw();
        let (xl, yl) = (s.n * s.h * s.w * s.cin, s.n * oh * ow * s.cout);
        let flops = Work::Flops(2 * (s.pixels() * s.cin * s.cout) as u64);
        let id = |pass: &str| format!("8x90x90x128to256_s{stride}/{pass}/{vn}");
        let x = ctx.upload("x", &random_vec(1, xl, -1.0, 1.0));
        let w = ctx.upload("w", &random_vec(2, s.cin * s.cout, -0.1, 0.1));
        let b = ctx.upload("b", &random_vec(3, s.cout, -0.1, 0.1));
        let y = ctx.zeros("y", yl);
        let dx = ctx.zeros("dx", xl);
        let dw = ctx.zeros("dw", s.cin * s.cout);
        let db = ctx.zeros("db", s.cout);
        let scratch = ctx.zeros("scratch", k.backward_weight_scratch_len(&s));
        v.push(BenchCase {
            group: "pointwise_conv2d",
            id: id("forward"),
            work: flops,
            dispatches: vec![k.forward(ctx, &y, &x, &w, &b, &s)],
            buffers: vec![],
        });
        v.push(BenchCase {
            group: "pointwise_conv2d",
            id: id("backward_input"),
            work: flops,
            dispatches: k.backward_input(ctx, &dx, &y, &w, &s),
            buffers: vec![],
        });
        v.push(BenchCase {
            group: "pointwise_conv2d",
            id: id("backward_weight"),
            work: flops,
            dispatches: k.backward_weight(ctx, &dw, &db, Some(&scratch), &y, &x, &s),
            buffers: vec![x, w, b, y, dx, dw, db, scratch],
        });
    }
    v
}
