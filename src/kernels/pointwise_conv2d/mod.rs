//! `pointwise_conv2d`: 1×1 convolution, stride 1 or 2, "same" padding, with bias, as GEMMs on
//! the shared core of [`crate::kernels::gemm`] (shaders/gemm*.wgsl):
//!
//! - forward: y[N·OH·OW, COUT] = x rows gathered at (oh·s, ow·s) [.., CIN] × W[CIN, COUT] + b;
//!   forward_relu: the same, then max(·, 0) (the GEMM's ReLU epilogue, for a convolution whose
//!   inference batch norm and ReLU are folded into it);
//! - backward_input: dx rows at the strided pixels = dy × Wᵀ, zeros elsewhere (writes all dx);
//! - backward_weight: dW = xᵀ·dy reduced over N·OH·OW with split-K (partials in a caller's
//!   scratch buffer, then a reduction pass), db = column sums of dy, split the same way.
//!
//! Weights in Keras layout `[1, 1, CIN, COUT]` (= [CIN, COUT] row-major), bias `[COUT]`.
//! No saved tensors beyond the forward input x (backward_weight reads it).

use std::sync::Arc;

use crate::cpu;
use crate::gpu::GpuContext;
use crate::kernels::gemm::{Gemm, LinearShape, PixelMap, Variant, selected_variant};
use crate::kernels::variants::VariantError;
use crate::kernels::{Bind, Dispatch, WeightGrads, Weights};

pub mod bench;
pub mod checks;

pub use crate::shapes::PointwiseShape;

impl PointwiseShape {
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

    /// The GEMM core's view: the output pixels as rows, gathered through [`Self::map`].
    fn linear(&self) -> LinearShape {
        LinearShape {
            rows: self.pixels(),
            cin: self.cin,
            cout: self.cout,
            map: self.map(),
        }
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

    /// Shares an already compiled core, with an explicit variant; an error names what the
    /// device lacks when it cannot run `variant` ([`Gemm::supports`]).
    pub fn with_gemm(gemm: Arc<Gemm>, variant: Variant) -> Result<Self, VariantError> {
        gemm.supports(variant)?;
        Ok(Self { gemm, variant })
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// y = conv1x1(x, W) + b (writes y). y: [N, OH, OW, COUT], x: [N, H, W, CIN],
    /// w: [1, 1, CIN, COUT], b: [COUT].
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        w: &dyn Bind,
        b: &dyn Bind,
        s: &PointwiseShape,
    ) -> Dispatch {
        self.gemm
            .linear_forward(ctx, self.variant, y, x, Weights { w, b }, &s.linear())
    }

    /// y = max(conv1x1(x, W) + b, 0) (writes y): [`Self::forward`] with a ReLU epilogue, for a
    /// convolution whose batch norm and ReLU are folded into it. Shapes as [`Self::forward`].
    pub fn forward_relu(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        w: &dyn Bind,
        b: &dyn Bind,
        s: &PointwiseShape,
    ) -> Dispatch {
        self.gemm
            .linear_forward_relu(ctx, self.variant, y, x, Weights { w, b }, &s.linear())
    }

    /// dx = dy·Wᵀ at the strided pixels, zero elsewhere (writes all of dx).
    /// dx: [N, H, W, CIN], dy: [N, OH, OW, COUT], w: [1, 1, CIN, COUT]; `scratch` holds
    /// [`Self::backward_input_scratch_len`] f32 (None when that is 0), for Wᵀ.
    pub fn backward_input(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        w: &dyn Bind,
        scratch: Option<&dyn Bind>,
        s: &PointwiseShape,
    ) -> Vec<Dispatch> {
        self.gemm
            .linear_backward_input(ctx, self.variant, dx, dy, w, scratch, &s.linear())
    }

    /// f32 elements of scratch [`Self::backward_input`] uses (0: none).
    pub fn backward_input_scratch_len(&self, s: &PointwiseShape) -> usize {
        crate::kernels::gemm::input_scratch_len(self.variant, s.cin, s.cout)
    }

    /// f32 elements of scratch [`Self::backward_weight`] needs (0: none).
    pub fn backward_weight_scratch_len(&self, s: &PointwiseShape) -> usize {
        self.gemm
            .weight_scratch_len(self.variant, s.pixels(), s.cin, s.cout)
    }

    /// dW = Σ_pixels xᵀ·dy, db = Σ_pixels dy (writes both). dw: [1, 1, CIN, COUT], db: [COUT],
    /// dy: [N, OH, OW, COUT], x: [N, H, W, CIN] (the forward input); `grads.scratch` holds
    /// [`Self::backward_weight_scratch_len`] f32 (None when that is 0).
    pub fn backward_weight(
        &self,
        ctx: &GpuContext,
        grads: WeightGrads,
        dy: &dyn Bind,
        x: &dyn Bind,
        s: &PointwiseShape,
    ) -> Vec<Dispatch> {
        self.gemm
            .linear_backward_weight(ctx, self.variant, grads, x, dy, &s.linear())
    }
}
