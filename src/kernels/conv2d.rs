//! `conv2d`: k×k convolution with stride, same/valid padding and bias, forward and both
//! backward passes as implicit GEMMs (shaders/conv2d.wgsl).
//!
//! One WGSL file, compiled twice with different lane layouts: "wide" (32 lanes along the GEMM
//! columns, every row load uniform across the workgroup) for passes with ≥ 17 columns and
//! "narrow" (64 lanes along the rows, the weight loads uniform) for few columns (the stem's
//! backward_input has Cin = 3 columns). The layout is a property of the shape, not of the
//! adapter: both are register-blocked 16×4 per invocation, with loads coalesced along C, and
//! suit real GPUs and lavapipe alike (LAVAPIPE-NOTES: loads, not arithmetic, cost there, and a
//! uniform load is one scalar load). backward_weight is split-K: partial sums go into a
//! caller-provided scratch buffer ([`Conv2d::backward_weight_scratch_len`]) and a second
//! dispatch reduces them into dw and db.

use std::sync::{Arc, OnceLock};

use bytemuck::{Pod, Zeroable};

use crate::cpu::Padding;
use crate::cpu::conv2d::{
    Conv2dShape, conv2d_backward_input, conv2d_backward_weight, conv2d_forward,
};
use crate::gpu::GpuContext;
use crate::kernels::{Dispatch, ShaderFamily, grid_1d, groups_for};
use crate::selftest::{Check, Compared, ShapeClass, random_vec, to_f64};

/// Mirrors `struct Params` in shaders/conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub cin: u32,
    pub oh: u32,
    pub ow: u32,
    pub cout: u32,
    pub k: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub col_tiles: u32,
    pub row_tiles: u32,
    pub splits: u32,
    pub k_chunk: u32,
    pub groups: u32,
}

/// Accumulator rows and columns per invocation (`TM`, `TN` in the WGSL).
const TM: usize = 16;
const TN: usize = 4;
/// Lane layouts: (workgroup size, lanes along columns).
const WIDE: (u32, u32) = (32, 32);
const NARROW: (u32, u32) = (64, 1);
/// Passes with at most this many GEMM columns use the narrow layout.
const NARROW_MAX_COLS: usize = 16;
/// backward_weight: fewest K steps per split, and the workgroup count splitting aims for.
const MIN_K_CHUNK: usize = 256;
const TARGET_GROUPS: usize = 256;

/// Pipelines of shaders/conv2d.wgsl, in both lane layouts.
pub struct Conv2d {
    wide: ShaderFamily,
    narrow: ShaderFamily,
}

/// How one GEMM pass is tiled.
struct Tiling {
    wide: bool,
    row_tiles: usize,
    col_tiles: usize,
}

fn tiling(rows: usize, cols: usize) -> Tiling {
    let wide = cols > NARROW_MAX_COLS;
    let (wg, lc) = if wide { WIDE } else { NARROW };
    let (lc, lr) = (lc as usize, (wg / lc) as usize);
    Tiling {
        wide,
        row_tiles: rows.div_ceil(lr * TM).max(1),
        col_tiles: cols.div_ceil(lc * TN).max(1),
    }
}

/// Splits of backward_weight's K = N·OH·OW: enough workgroups to fill a GPU, but at least
/// MIN_K_CHUNK steps per split. Returns (splits, k_chunk).
fn split_k(s: &Conv2dShape) -> (usize, usize) {
    let t = tiling(s.k * s.k * s.cin, s.cout);
    let kk = s.n * s.oh() * s.ow();
    let want = TARGET_GROUPS.div_ceil(t.row_tiles * t.col_tiles);
    let splits = want.min(kk.div_ceil(MIN_K_CHUNK)).max(1);
    let k_chunk = kk.div_ceil(splits).max(1);
    (kk.div_ceil(k_chunk).max(1), k_chunk)
}

fn params(s: &Conv2dShape) -> Params {
    let (oh, pad_top) = s.oh_pad();
    let (ow, pad_left) = s.ow_pad();
    Params {
        n: s.n as u32,
        h: s.h as u32,
        w: s.w as u32,
        cin: s.cin as u32,
        oh: oh as u32,
        ow: ow as u32,
        cout: s.cout as u32,
        k: s.k as u32,
        stride: s.stride as u32,
        pad_top: pad_top as u32,
        pad_left: pad_left as u32,
        col_tiles: 1,
        row_tiles: 1,
        splits: 1,
        k_chunk: 1,
        groups: 1,
    }
}

impl Conv2d {
    pub fn new(ctx: &GpuContext) -> Self {
        let family = |layout: (u32, u32)| {
            ShaderFamily::new(
                ctx,
                "conv2d",
                include_str!("../../shaders/conv2d.wgsl"),
                &[
                    "conv2d_forward",
                    "conv2d_backward_input",
                    "conv2d_backward_weight",
                    "conv2d_backward_weight_reduce",
                ],
                &[("WG", layout.0 as f64), ("LC", layout.1 as f64)],
            )
        };
        Self {
            wide: family(WIDE),
            narrow: family(NARROW),
        }
    }

    fn family(&self, wide: bool) -> &ShaderFamily {
        if wide { &self.wide } else { &self.narrow }
    }

    /// Floats of scratch [`Conv2d::backward_weight`] needs: splits × (k·k·Cin·Cout + Cout).
    pub fn backward_weight_scratch_len(s: &Conv2dShape) -> usize {
        split_k(s).0 * (s.w_len() + s.cout)
    }

    /// y = conv(x, w) + b (writes y). y: [N, OH, OW, Cout], x: [N, H, W, Cin],
    /// w: [k, k, Cin, Cout], b: [Cout]; NHWC f32.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &wgpu::Buffer,
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        b: &wgpu::Buffer,
        s: &Conv2dShape,
    ) -> Dispatch {
        let t = tiling(s.n * s.oh() * s.ow(), s.cout);
        let groups = t.row_tiles * t.col_tiles;
        let p = Params {
            row_tiles: t.row_tiles as u32,
            col_tiles: t.col_tiles as u32,
            groups: groups as u32,
            ..params(s)
        };
        self.family(t.wide).dispatch(
            ctx,
            "conv2d_forward",
            &[Some(y), None, Some(x), Some(w), Some(b)],
            Some(&p),
            grid_1d(groups as u32),
        )
    }

    /// dx = ∂(Σ y·dy)/∂x (writes dx). dx: [N, H, W, Cin], dy: [N, OH, OW, Cout],
    /// w: [k, k, Cin, Cout]; NHWC f32.
    pub fn backward_input(
        &self,
        ctx: &GpuContext,
        dx: &wgpu::Buffer,
        dy: &wgpu::Buffer,
        w: &wgpu::Buffer,
        s: &Conv2dShape,
    ) -> Dispatch {
        let t = tiling(s.n * s.h * s.w, s.cin);
        let groups = t.row_tiles * t.col_tiles;
        let p = Params {
            row_tiles: t.row_tiles as u32,
            col_tiles: t.col_tiles as u32,
            groups: groups as u32,
            ..params(s)
        };
        self.family(t.wide).dispatch(
            ctx,
            "conv2d_backward_input",
            &[Some(dx), None, Some(dy), Some(w)],
            Some(&p),
            grid_1d(groups as u32),
        )
    }

    /// dw = ∂(Σ y·dy)/∂w and db = Σ_{N,OH,OW} dy (writes both): a split-K pass into `scratch`
    /// (at least [`Conv2d::backward_weight_scratch_len`] floats) and its reduction, to be
    /// recorded in this order. dw: [k, k, Cin, Cout], db: [Cout], dy: [N, OH, OW, Cout],
    /// x: [N, H, W, Cin] saved from the forward pass; NHWC f32.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_weight(
        &self,
        ctx: &GpuContext,
        dw: &wgpu::Buffer,
        db: &wgpu::Buffer,
        scratch: &wgpu::Buffer,
        dy: &wgpu::Buffer,
        x: &wgpu::Buffer,
        s: &Conv2dShape,
    ) -> [Dispatch; 2] {
        let need = Self::backward_weight_scratch_len(s) as u64 * 4;
        assert!(
            scratch.size() >= need,
            "conv2d backward_weight: scratch has {} bytes, needs {need}",
            scratch.size()
        );
        let t = tiling(s.k * s.k * s.cin, s.cout);
        let (splits, k_chunk) = split_k(s);
        let groups = t.row_tiles * t.col_tiles * splits;
        let p = Params {
            row_tiles: t.row_tiles as u32,
            col_tiles: t.col_tiles as u32,
            splits: splits as u32,
            k_chunk: k_chunk as u32,
            groups: groups as u32,
            ..params(s)
        };
        let fam = self.family(t.wide);
        let partial = fam.dispatch(
            ctx,
            "conv2d_backward_weight",
            &[Some(scratch), None, Some(x), Some(dy)],
            Some(&p),
            grid_1d(groups as u32),
        );
        let wg = if t.wide { WIDE.0 } else { NARROW.0 };
        let reduce_groups = groups_for(s.w_len() + s.cout, wg);
        let reduce = fam.dispatch(
            ctx,
            "conv2d_backward_weight_reduce",
            &[Some(dw), Some(db), Some(scratch)],
            Some(&Params {
                groups: reduce_groups,
                ..p
            }),
            grid_1d(reduce_groups),
        );
        [partial, reduce]
    }
}

/// Which variant this adapter uses (one for all adapters; the lane layout follows the shape).
pub fn variant_report(_ctx: &GpuContext) -> String {
    format!(
        "conv2d: implicit GEMM, {TM}×{TN} register tile per invocation, lanes along columns \
         (> {NARROW_MAX_COLS} columns) or rows; backward_weight split-K + reduce"
    )
}

fn shape(
    n: usize,
    hw: usize,
    cin: usize,
    cout: usize,
    stride: usize,
    padding: Padding,
) -> Conv2dShape {
    Conv2dShape {
        n,
        h: hw,
        w: hw,
        cin,
        cout,
        k: 3,
        stride,
        padding,
    }
}

fn describe(s: &Conv2dShape) -> String {
    format!(
        "N{} H{} W{} C{}→{} k{} s{} {}",
        s.n,
        s.h,
        s.w,
        s.cin,
        s.cout,
        s.k,
        s.stride,
        match s.padding {
            Padding::Same => "same",
            Padding::Valid => "valid",
        }
    )
}

/// Tolerance for f32 sums of `terms` products of values in [−1, 1]: rounding error grows like
/// sqrt(terms) (sums themselves are ≈ sqrt(terms)/3). Measured worst errors sit 10–50× below
/// this, and a single missing or doubled tap (an error ≳ 0.1) is far above it.
fn tol(terms: usize) -> (f64, f64) {
    (1e-5 * (terms as f64).sqrt(), 1e-5)
}

/// Parity checks of every pass at the tiny, odd (stride 2, valid padding) and large shapes, and
/// the stem's even-size stride-2 case (pads 0 before, 1 after).
pub fn checks(_ctx: &GpuContext) -> Vec<Check> {
    let cases = [
        (ShapeClass::Tiny, shape(1, 4, 2, 3, 1, Padding::Same)),
        (ShapeClass::Tiny, shape(1, 10, 3, 8, 2, Padding::Same)),
        (ShapeClass::Odd, shape(2, 7, 5, 3, 2, Padding::Same)),
        (ShapeClass::Odd, shape(2, 7, 5, 3, 2, Padding::Valid)),
        (ShapeClass::Odd, shape(3, 9, 5, 19, 2, Padding::Same)),
        (ShapeClass::Large, shape(4, 45, 64, 96, 1, Padding::Same)),
    ];
    // Compiled once, on first use, and shared by every check.
    let kernels: Arc<OnceLock<Conv2d>> = Arc::new(OnceLock::new());
    let mut v = Vec::new();
    for (class, s) in cases {
        let k = kernels.clone();
        v.push(Check::new(
            "conv2d",
            "forward",
            "",
            class,
            describe(&s),
            move |ctx| {
                let k = k.get_or_init(|| Conv2d::new(ctx));
                let x = random_vec(1, s.x_len(), -1.0, 1.0);
                let w = random_vec(2, s.w_len(), -1.0, 1.0);
                let b = random_vec(3, s.cout, -1.0, 1.0);
                let (xb, wb, bb) = (ctx.upload("x", &x), ctx.upload("w", &w), ctx.upload("b", &b));
                let yb = ctx.zeros("y", s.y_len());
                crate::kernels::run_all(ctx, &[&k.forward(ctx, &yb, &xb, &wb, &bb, &s)])?;
                let mut want = vec![0.0; s.y_len()];
                conv2d_forward(&mut want, &to_f64(&x), &to_f64(&w), &to_f64(&b), &s);
                let (atol, rtol) = tol(s.k * s.k * s.cin);
                Ok(vec![Compared::new("y", ctx.read(&yb)?, want, atol, rtol)])
            },
        ));
        let k = kernels.clone();
        v.push(Check::new(
            "conv2d",
            "backward_input",
            "",
            class,
            describe(&s),
            move |ctx| {
                let k = k.get_or_init(|| Conv2d::new(ctx));
                let dy = random_vec(4, s.y_len(), -1.0, 1.0);
                let w = random_vec(5, s.w_len(), -1.0, 1.0);
                let (dyb, wb) = (ctx.upload("dy", &dy), ctx.upload("w", &w));
                // Filled with garbage first: the pass must write every element.
                let dxb = ctx.upload("dx", &vec![f32::NAN; s.x_len()]);
                crate::kernels::run_all(ctx, &[&k.backward_input(ctx, &dxb, &dyb, &wb, &s)])?;
                let mut want = vec![0.0; s.x_len()];
                conv2d_backward_input(&mut want, &to_f64(&dy), &to_f64(&w), &s);
                let (atol, rtol) = tol(s.k * s.k * s.cout);
                Ok(vec![Compared::new("dx", ctx.read(&dxb)?, want, atol, rtol)])
            },
        ));
        let k = kernels.clone();
        v.push(Check::new(
            "conv2d",
            "backward_weight",
            "",
            class,
            describe(&s),
            move |ctx| {
                let k = k.get_or_init(|| Conv2d::new(ctx));
                let dy = random_vec(6, s.y_len(), -1.0, 1.0);
                let x = random_vec(7, s.x_len(), -1.0, 1.0);
                let (dyb, xb) = (ctx.upload("dy", &dy), ctx.upload("x", &x));
                let dwb = ctx.upload("dw", &vec![f32::NAN; s.w_len()]);
                let dbb = ctx.upload("db", &vec![f32::NAN; s.cout]);
                let scratch = ctx.upload(
                    "scratch",
                    &vec![f32::NAN; Conv2d::backward_weight_scratch_len(&s)],
                );
                let [d0, d1] = k.backward_weight(ctx, &dwb, &dbb, &scratch, &dyb, &xb, &s);
                crate::kernels::run_all(ctx, &[&d0, &d1])?;
                let mut dw = vec![0.0; s.w_len()];
                let mut db = vec![0.0; s.cout];
                conv2d_backward_weight(&mut dw, &mut db, &to_f64(&dy), &to_f64(&x), &s);
                let (atol, rtol) = tol(s.n * s.oh() * s.ow());
                Ok(vec![
                    Compared::new("dw", ctx.read(&dwb)?, dw, atol, rtol),
                    Compared::new("db", ctx.read(&dbb)?, db, atol, rtol),
                ])
            },
        ));
    }
    v
}

/// The stem (8×180×180×3 → 128, k3 s2 same), all three passes. FLOPs = 2·MACs.
pub fn bench_cases(ctx: &GpuContext) -> Vec<crate::bench::BenchCase> {
    use crate::bench::{BenchCase, Work};
    let s = shape(8, 180, 3, 128, 2, Padding::Same);
    let k = Conv2d::new(ctx);
    let x = ctx.upload("x", &random_vec(1, s.x_len(), -1.0, 1.0));
    let w = ctx.upload("w", &random_vec(2, s.w_len(), -1.0, 1.0));
    let b = ctx.upload("b", &random_vec(3, s.cout, -1.0, 1.0));
    let dy = ctx.upload("dy", &random_vec(4, s.y_len(), -1.0, 1.0));
    let y = ctx.zeros("y", s.y_len());
    let dx = ctx.zeros("dx", s.x_len());
    let dw = ctx.zeros("dw", s.w_len());
    let db = ctx.zeros("db", s.cout);
    let scratch = ctx.zeros("scratch", Conv2d::backward_weight_scratch_len(&s));
    let flops = 2 * s.macs() as u64;
    let id = "8x180x180x3_128_k3s2";
    vec![
        BenchCase {
            group: "conv2d",
            id: format!("{id}/forward"),
            work: Work::Flops(flops),
            dispatches: vec![k.forward(ctx, &y, &x, &w, &b, &s)],
            buffers: vec![],
        },
        BenchCase {
            group: "conv2d",
            id: format!("{id}/backward_input"),
            work: Work::Flops(flops),
            dispatches: vec![k.backward_input(ctx, &dx, &dy, &w, &s)],
            buffers: vec![],
        },
        BenchCase {
            group: "conv2d",
            id: format!("{id}/backward_weight"),
            work: Work::Flops(flops),
            dispatches: k
                .backward_weight(ctx, &dw, &db, &scratch, &dy, &x, &s)
                .into(),
            buffers: vec![x, w, b, dy, y, dx, dw, db, scratch],
        },
    ]
}
