//! Batch normalisation reference (Keras semantics, channels last).
//!
//! x is viewed as [M, C] with M = N·H·W rows. Training normalises with the batch mean and the
//! BIASED batch variance and updates the moving statistics with that same biased variance
//! (KERAS-SEMANTICS.md); inference normalises with the moving statistics.

/// Keras' default momentum of the moving statistics.
pub const MOMENTUM: f64 = 0.99;
/// Keras' default epsilon added to the variance.
pub const EPSILON: f64 = 1e-3;

/// Training forward. Writes y, mean and inv_std = 1/sqrt(var + epsilon) (saved for backward) and
/// updates moving_mean/var ← momentum·moving + (1 − momentum)·batch.
#[allow(clippy::too_many_arguments)] // the convention's flat order: outputs, inputs, sizes
pub fn batch_norm_forward_train(
    y: &mut [f64],           // y: [M, C]
    mean: &mut [f64],        // mean: [C] (saved)
    inv_std: &mut [f64],     // inv_std: [C] (saved)
    moving_mean: &mut [f64], // moving_mean: [C] (updated in place)
    moving_var: &mut [f64],  // moving_var: [C] (updated in place)
    x: &[f64],               // x: [M, C]
    gamma: &[f64],           // gamma: [C]
    beta: &[f64],            // beta: [C]
    rows: usize,             // M = N·H·W
    channels: usize,         // C
    momentum: f64,
    epsilon: f64,
) {
    for c in 0..channels {
        let mut sum = 0.0;
        for r in 0..rows {
            sum += x[r * channels + c];
        }
        let mu = sum / rows as f64;
        let mut sq = 0.0;
        for r in 0..rows {
            let d = x[r * channels + c] - mu;
            sq += d * d;
        }
        let var = sq / rows as f64;
        let istd = 1.0 / (var + epsilon).sqrt();
        for r in 0..rows {
            let i = r * channels + c;
            y[i] = gamma[c] * (x[i] - mu) * istd + beta[c];
        }
        mean[c] = mu;
        inv_std[c] = istd;
        moving_mean[c] = momentum * moving_mean[c] + (1.0 - momentum) * mu;
        moving_var[c] = momentum * moving_var[c] + (1.0 - momentum) * var;
    }
}

/// Inference forward: y = γ·(x − moving_mean)/sqrt(moving_var + epsilon) + β.
#[allow(clippy::too_many_arguments)] // the convention's flat order: outputs, inputs, sizes
pub fn batch_norm_forward_inference(
    y: &mut [f64],       // y: [M, C]
    x: &[f64],           // x: [M, C]
    gamma: &[f64],       // gamma: [C]
    beta: &[f64],        // beta: [C]
    moving_mean: &[f64], // moving_mean: [C]
    moving_var: &[f64],  // moving_var: [C]
    rows: usize,         // M = N·H·W
    channels: usize,     // C
    epsilon: f64,
) {
    for r in 0..rows {
        for c in 0..channels {
            let i = r * channels + c;
            y[i] = gamma[c] * (x[i] - moving_mean[c]) / (moving_var[c] + epsilon).sqrt() + beta[c];
        }
    }
}

/// Training backward from dy, the forward's input x and its saved mean and inv_std:
/// dβ = Σdy, dγ = Σdy·x̂, dx = γ·inv_std/M · (M·dy − Σdy − x̂·Σdy·x̂), x̂ = (x − mean)·inv_std.
/// Writes dx, dgamma and dbeta.
#[allow(clippy::too_many_arguments)] // the convention's flat order: outputs, inputs, saved, sizes
pub fn batch_norm_backward(
    dx: &mut [f64],     // dx: [M, C]
    dgamma: &mut [f64], // dgamma: [C]
    dbeta: &mut [f64],  // dbeta: [C]
    dy: &[f64],         // dy: [M, C]
    x: &[f64],          // x: [M, C] (the forward's input)
    gamma: &[f64],      // gamma: [C]
    mean: &[f64],       // mean: [C] (saved by forward_train)
    inv_std: &[f64],    // inv_std: [C] (saved by forward_train)
    rows: usize,        // M = N·H·W
    channels: usize,    // C
) {
    let m = rows as f64;
    for c in 0..channels {
        let xhat = |r: usize| (x[r * channels + c] - mean[c]) * inv_std[c];
        let mut sum_dy = 0.0;
        let mut sum_dy_xhat = 0.0;
        for r in 0..rows {
            sum_dy += dy[r * channels + c];
            sum_dy_xhat += dy[r * channels + c] * xhat(r);
        }
        for r in 0..rows {
            let i = r * channels + c;
            dx[i] = gamma[c] * inv_std[c] / m * (m * dy[i] - sum_dy - xhat(r) * sum_dy_xhat);
        }
        dgamma[c] = sum_dy_xhat;
        dbeta[c] = sum_dy;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{dot, grad_check, random_f64};

    // N2 H3 W1 C3: odd sizes, M = 6.
    const M: usize = 6;
    const C: usize = 3;

    /// y of the training forward, moving statistics discarded.
    fn forward(x: &[f64], gamma: &[f64], beta: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; M * C];
        let (mut mean, mut istd) = (vec![0.0; C], vec![0.0; C]);
        let (mut mm, mut mv) = (vec![0.0; C], vec![1.0; C]);
        batch_norm_forward_train(
            &mut y, &mut mean, &mut istd, &mut mm, &mut mv, x, gamma, beta, M, C, MOMENTUM, EPSILON,
        );
        y
    }

    #[test]
    fn forward_train_hand_computed() {
        // One channel, x = [1, 2, 3, 6]: mean 3, biased var (4 + 1 + 0 + 9)/4 = 3.5.
        let x = [1.0, 2.0, 3.0, 6.0];
        let (mut y, mut mean, mut istd) = (vec![0.0; 4], vec![0.0], vec![0.0]);
        let (mut mm, mut mv) = (vec![0.5], vec![2.0]);
        batch_norm_forward_train(
            &mut y,
            &mut mean,
            &mut istd,
            &mut mm,
            &mut mv,
            &x,
            &[2.0],
            &[0.25],
            4,
            1,
            0.99,
            1e-3,
        );
        let s = 1.0 / 3.501f64.sqrt();
        assert_eq!(mean[0], 3.0);
        approx::assert_abs_diff_eq!(istd[0], s, epsilon = 1e-15);
        for (yi, xi) in y.iter().zip(x) {
            approx::assert_abs_diff_eq!(*yi, 2.0 * (xi - 3.0) * s + 0.25, epsilon = 1e-14);
        }
        approx::assert_abs_diff_eq!(mm[0], 0.99 * 0.5 + 0.01 * 3.0, epsilon = 1e-15);
        approx::assert_abs_diff_eq!(mv[0], 0.99 * 2.0 + 0.01 * 3.5, epsilon = 1e-15);
    }

    #[test]
    fn forward_inference_hand_computed() {
        let mut y = vec![0.0; 2];
        batch_norm_forward_inference(
            &mut y,
            &[1.0, 4.0],
            &[3.0],
            &[1.0],
            &[2.0],
            &[0.999],
            2,
            1,
            1e-3,
        );
        // moving_var + ε = 1: y = 3·(x − 2) + 1.
        assert!((y[0] - -2.0).abs() < 1e-14);
        assert!((y[1] - 7.0).abs() < 1e-14);
    }

    #[test]
    fn backward_matches_central_differences() {
        let x = random_f64(1, M * C, -2.0, 2.0);
        let gamma = random_f64(2, C, 0.5, 1.5);
        let beta = random_f64(3, C, -0.5, 0.5);
        let r = random_f64(4, M * C, -1.0, 1.0);

        let mut y = vec![0.0; M * C];
        let (mut mean, mut istd) = (vec![0.0; C], vec![0.0; C]);
        let (mut mm, mut mv) = (vec![0.0; C], vec![1.0; C]);
        batch_norm_forward_train(
            &mut y, &mut mean, &mut istd, &mut mm, &mut mv, &x, &gamma, &beta, M, C, MOMENTUM,
            EPSILON,
        );
        let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; M * C], vec![0.0; C], vec![0.0; C]);
        batch_norm_backward(
            &mut dx,
            &mut dgamma,
            &mut dbeta,
            &r,
            &x,
            &gamma,
            &mean,
            &istd,
            M,
            C,
        );

        let err_x = grad_check(&x, &dx, |x| dot(&forward(x, &gamma, &beta), &r), 1e-6);
        let err_g = grad_check(&gamma, &dgamma, |g| dot(&forward(&x, g, &beta), &r), 1e-6);
        let err_b = grad_check(&beta, &dbeta, |b| dot(&forward(&x, &gamma, b), &r), 1e-6);
        assert!(err_x < 1e-7, "dx: {err_x}");
        assert!(err_g < 1e-7, "dgamma: {err_g}");
        assert!(err_b < 1e-7, "dbeta: {err_b}");
    }
}
