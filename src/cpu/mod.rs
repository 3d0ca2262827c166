//! The CPU reference: the same ops and passes as the WGSL kernels, as plain loops in f64.
//!
//! This is the spec. It is never optimised: every function is the obvious loop nest, with
//! a shape comment on each argument, the same name as its kernel (`conv2d_forward`, …) and
//! the same argument order (outputs, inputs, saved tensors, then sizes). Every backward is
//! checked against f64 central differences of its forward (see [`grad_check`]).

pub mod adam;
pub mod augment;
pub mod augment_color;
pub mod batch_norm;
pub mod conv2d;
pub mod dense;
pub mod depthwise_conv2d;
pub mod elementwise;
pub mod gemm;
pub mod loss;
pub mod pointwise_conv2d;
pub mod pool;
pub mod relu;
pub mod rescale;

pub use crate::shapes::{Padding, out_size};

/// Checks an analytic gradient against f64 central differences.
///
/// `loss(x)` must be a scalar function of `x`; `grad` its claimed gradient at `x`. Returns the
/// worst relative error `|num − ana| / max(1, |num|, |ana|)`.
pub fn grad_check(x: &[f64], grad: &[f64], loss: impl Fn(&[f64]) -> f64, eps: f64) -> f64 {
    assert_eq!(x.len(), grad.len());
    let mut xp = x.to_vec();
    let mut worst = 0.0f64;
    for i in 0..x.len() {
        xp[i] = x[i] + eps;
        let lp = loss(&xp);
        xp[i] = x[i] - eps;
        let lm = loss(&xp);
        xp[i] = x[i];
        let num = (lp - lm) / (2.0 * eps);
        let err = (num - grad[i]).abs() / 1f64.max(num.abs()).max(grad[i].abs());
        worst = worst.max(err);
    }
    worst
}

/// `Σ y·r`: the scalar used to turn a tensor-valued forward into a loss for [`grad_check`]
/// (its gradient with respect to `y` is `r`).
pub fn dot(y: &[f64], r: &[f64]) -> f64 {
    y.iter().zip(r).map(|(a, b)| a * b).sum()
}

/// Seeded values in [lo, hi) as f64, for gradient checks.
pub fn random_f64(seed: u64, len: usize, lo: f64, hi: f64) -> Vec<f64> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // 180→90 with k=3, s=2 pads 0 before and 1 after.
        assert_eq!(out_size(180, 3, 2, Padding::Same), (90, 0));
        // max-pool 3/2: 90→45 (0,1), 45→23 (1,1), 23→12 (1,1).
        assert_eq!(out_size(90, 3, 2, Padding::Same), (45, 0));
        assert_eq!(out_size(45, 3, 2, Padding::Same), (23, 1));
        assert_eq!(out_size(23, 3, 2, Padding::Same), (12, 1));
        assert_eq!(out_size(7, 3, 1, Padding::Same), (7, 1));
        assert_eq!(out_size(7, 3, 2, Padding::Valid), (3, 0));
        assert_eq!(out_size(7, 1, 2, Padding::Valid), (4, 0));
    }

    #[test]
    fn grad_check_detects_a_wrong_gradient() {
        let x = [0.3, -1.2, 2.0];
        let good = [2.0 * 0.3, 2.0 * -1.2, 2.0 * 2.0];
        let loss = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>();
        assert!(grad_check(&x, &good, loss, 1e-5) < 1e-8);
        let bad = [0.6, -2.4, 3.0];
        assert!(grad_check(&x, &bad, loss, 1e-5) > 0.1);
    }
}
