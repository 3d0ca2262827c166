//! `dense`: fully connected layer y = x·W + b, on the shared GEMM core of
//! [`crate::kernels::gemm`] (shaders/gemm*.wgsl): the same linear-layer passes as
//! pointwise_conv2d, with the batch as rows and no pixel gather.
//!
//! Weights in Keras layout `[IN, OUT]` row-major, bias `[OUT]`; backward_weight reads the
//! forward input x (the only saved tensor).

use std::sync::Arc;

use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::Dispatch;
use crate::kernels::gemm::{Gemm, Variant};
use crate::kernels::pointwise_conv2d::PointwiseShape;

pub mod bench;
pub mod checks;

/// Dense passes on a (possibly shared) compiled [`Gemm`].
pub struct Dense {
    gemm: Arc<Gemm>,
    variant: Variant,
}

impl Dense {
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

    /// y = x·W + b (writes y). y: [N, OUT], x: [N, IN], w: [IN, OUT], b: [OUT].
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        w: &dyn Bind,
        b: &dyn Bind,
        batch: usize,
        inp: usize,
        out: usize,
    ) -> Dispatch {
        self.gemm
            .linear_forward(ctx, self.variant, y, x, w, b, batch, inp, out, None)
    }

    /// dx = dy·Wᵀ (writes dx). dx: [N, IN], dy: [N, OUT], w: [IN, OUT].
    #[allow(clippy::too_many_arguments)]
    pub fn backward_input(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        w: &dyn Bind,
        batch: usize,
        inp: usize,
        out: usize,
    ) -> Vec<Dispatch> {
        self.gemm
            .linear_backward_input(ctx, self.variant, dx, dy, w, batch, inp, out, None)
    }

    /// f32 elements of scratch [`Self::backward_weight`] needs (0: none).
    pub fn backward_weight_scratch_len(&self, batch: usize, inp: usize, out: usize) -> usize {
        self.gemm.weight_scratch_len(self.variant, batch, inp, out)
    }

    /// dW = xᵀ·dy, db = Σ_batch dy (writes both). dw: [IN, OUT], db: [OUT], dy: [N, OUT],
    /// x: [N, IN] (the forward input); `scratch` holds [`Self::backward_weight_scratch_len`] f32 (None when 0).
    #[allow(clippy::too_many_arguments)]
    pub fn backward_weight(
        &self,
        ctx: &GpuContext,
        dw: &dyn Bind,
        db: &dyn Bind,
        scratch: Option<&dyn Bind>,
        dy: &dyn Bind,
        x: &dyn Bind,
        batch: usize,
        inp: usize,
        out: usize,
    ) -> Vec<Dispatch> {
        self.gemm.linear_backward_weight(
            ctx,
            self.variant,
            dw,
            db,
            scratch,
            x,
            dy,
            batch,
            inp,
            out,
            None,
        )
    }
}
