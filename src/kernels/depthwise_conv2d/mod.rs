//! `depthwise_conv2d`: K×K depthwise convolution, stride 1, no bias, forward and both backward
//! passes (shaders/depthwise_conv2d.wgsl).
//!
//! One channel per lane (loads coalesced along C), 16 output pixels of a row per invocation with
//! each loaded input reused across the K taps that read it; registers only, no workgroup memory,
//! which suits real GPUs and lavapipe alike (LAVAPIPE-NOTES: loads are the cost there, workgroup
//! memory is slow). backward_weight is a two-stage reduction over N·OH·OW: splits of output rows
//! into a caller-provided scratch buffer ([`DepthwiseConv2d::backward_weight_scratch_len`]), then
//! a reduction pass into dw.
//!
//! A ReLU in front of the convolution can be folded in (the `_relu` methods): the passes take
//! the ReLU's input x, forward and backward_weight read max(x, 0), and backward_input masks dx
//! by x > 0 as it writes, so the ReLU's output and its backward pass never exist.

use bytemuck::{Pod, Zeroable};

use crate::cpu::Padding;
use crate::cpu::depthwise_conv2d::{
    DepthwiseShape, depthwise_conv2d_backward_input, depthwise_conv2d_backward_weight,
    depthwise_conv2d_forward,
};
use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, ShaderFamily, grid_1d, groups_for};

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

/// Pipelines of shaders/depthwise_conv2d.wgsl for one kernel size.
pub struct DepthwiseConv2d {
    family: ShaderFamily,
    k: usize,
}

/// (splits, rows per split) of backward_weight's reduction over the N·OH output rows.
fn split_rows(s: &DepthwiseShape) -> (usize, usize) {
    let rows = s.n * s.oh();
    let c_tiles = s.c.div_ceil(WG as usize);
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
        c_tiles: s.c.div_ceil(WG as usize) as u32,
        w_tiles: 1,
        splits: 1,
        rows_per_split: 1,
        groups: 1,
        relu: 0,
        _pad: [0; 2],
    }
}

impl DepthwiseConv2d {
    /// The model's 3×3 kernels.
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_kernel_size(ctx, 3)
    }

    /// Pipelines specialised for k×k kernels (k ≤ [`MAX_K`]).
    pub fn with_kernel_size(ctx: &GpuContext, k: usize) -> Self {
        assert!(
            (1..=MAX_K).contains(&k),
            "depthwise_conv2d: kernel size {k} not in 1..={MAX_K}"
        );
        Self {
            family: ShaderFamily::new(
                ctx,
                "depthwise_conv2d",
                include_str!("../../../shaders/depthwise_conv2d.wgsl"),
                &[
                    "depthwise_conv2d_forward",
                    "depthwise_conv2d_backward_input",
                    "depthwise_conv2d_backward_input_relu",
                    "depthwise_conv2d_backward_weight",
                    "depthwise_conv2d_backward_weight_reduce",
                ],
                &[("WG", WG as f64), ("K", k as f64)],
            ),
            k,
        }
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
        self.family
            .dispatch(ctx, entry, slots, Some(&p), grid_1d(groups as u32))
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
        let partial = self.family.dispatch(
            ctx,
            "depthwise_conv2d_backward_weight",
            &[Some(scratch), Some(x), None, Some(dy)],
            Some(&p),
            grid_1d(groups as u32),
        );
        let reduce_groups = groups_for(s.w_len(), WG);
        let reduce = self.family.dispatch(
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

/// Which variant this adapter uses (one for all adapters).
pub fn variant_report(_ctx: &GpuContext) -> String {
    format!(
        "depthwise_conv2d: one channel per lane, {TW} pixels per invocation in registers; \
         backward_weight split over rows + reduce"
    )
}
