//! Parity checks of `dense`: the GPU passes against the `cpu::` reference at every shape
//! class (and variant), for `gpucnn selftest` and `tests/parity.rs`.

use super::*;
use crate::harness::{Check, ShapeClass};
use crate::kernels::pointwise_conv2d::PointwiseShape;
use crate::kernels::pointwise_conv2d::checks::{Reference, linear_checks};

/// Parity checks of the three passes at the three shape classes (large: the model's
/// 1024 → out with a batch long enough for split-K in the weight gradient).
pub fn all(ctx: &GpuContext) -> Vec<Check> {
    let sh = |batch, inp, out| PointwiseShape {
        n: batch,
        h: 1,
        w: 1,
        cin: inp,
        cout: out,
        stride: 1,
    };
    linear_checks(
        ctx,
        "dense",
        Reference::Dense,
        &[
            (ShapeClass::Tiny, sh(2, 3, 4)),
            (ShapeClass::Odd, sh(7, 37, 5)),
            (ShapeClass::Large, sh(640, 1024, 33)),
        ],
    )
}
