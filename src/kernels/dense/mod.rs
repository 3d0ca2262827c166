//! `dense`: fully connected layer y = x·W + b, on the shared GEMM core of
//! [`crate::kernels::gemm`] (shaders/gemm*.wgsl): the same linear-layer passes as
//! pointwise_conv2d, with the batch as rows and no pixel gather.
//!
//! Weights in Keras layout `[IN, OUT]` row-major, bias `[OUT]`; backward_weight reads the
//! forward input x (the only saved tensor).

use std::sync::Arc;

use crate::gpu::GpuContext;
use crate::kernels::gemm::{Gemm, LinearShape, Variant};
use crate::kernels::variants::VariantError;
use crate::kernels::{Bind, Dispatch, WeightGrads, Weights};

pub use crate::shapes::DenseShape;

pub mod bench;
pub mod checks;

impl DenseShape {
    /// The GEMM core's view: the batch as rows, no pixel gather.
    fn linear(&self) -> LinearShape {
        LinearShape {
            rows: self.n,
            cin: self.inp,
            cout: self.out,
            map: None,
        }
    }
}

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

    /// Shares an already compiled core, with an explicit variant; an error names what the
    /// device lacks when it cannot run `variant` ([`Gemm::supports`]).
    pub fn with_gemm(gemm: Arc<Gemm>, variant: Variant) -> Result<Self, VariantError> {
        gemm.supports(variant)?;
        Ok(Self { gemm, variant })
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// y = x·W + b (writes y). y: [N, OUT], x: [N, IN], w: [IN, OUT], b: [OUT].
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        w: &dyn Bind,
        b: &dyn Bind,
        s: &DenseShape,
    ) -> Dispatch {
        self.gemm
            .linear_forward(ctx, self.variant, y, x, Weights { w, b }, &s.linear())
    }

    /// dx = dy·Wᵀ (writes dx). dx: [N, IN], dy: [N, OUT], w: [IN, OUT].
    pub fn backward_input(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        w: &dyn Bind,
        s: &DenseShape,
    ) -> Vec<Dispatch> {
        self.gemm
            .linear_backward_input(ctx, self.variant, dx, dy, w, None, &s.linear())
    }

    /// f32 elements of scratch [`Self::backward_weight`] needs (0: none).
    pub fn backward_weight_scratch_len(&self, s: &DenseShape) -> usize {
        self.gemm
            .weight_scratch_len(self.variant, s.n, s.inp, s.out)
    }

    /// dW = xᵀ·dy, db = Σ_batch dy (writes both). dw: [IN, OUT], db: [OUT], dy: [N, OUT],
    /// x: [N, IN] (the forward input); `grads.scratch` holds
    /// [`Self::backward_weight_scratch_len`] f32 (None when 0).
    pub fn backward_weight(
        &self,
        ctx: &GpuContext,
        grads: WeightGrads,
        dy: &dyn Bind,
        x: &dyn Bind,
        s: &DenseShape,
    ) -> Vec<Dispatch> {
        self.gemm
            .linear_backward_weight(ctx, self.variant, grads, x, dy, &s.linear())
    }
}
