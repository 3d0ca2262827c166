//! Batch normalisation reference (Keras semantics, channels last).
//!
//! x is viewed as [M, C] with M = N·H·W rows. Training normalises with the batch mean and the
//! BIASED batch variance and updates the moving statistics with that same biased variance
//! (KERAS-SEMANTICS.md); inference normalises with the moving statistics.

pub use crate::shapes::BnShape;

/// What the training forward writes: y [M, C], the saved mean and inv_std [C], and the moving
/// statistics [C], updated in place.
pub struct TrainOut<'a> {
    pub y: &'a mut [f64],
    pub mean: &'a mut [f64],
    pub inv_std: &'a mut [f64],
    pub moving_mean: &'a mut [f64],
    pub moving_var: &'a mut [f64],
}

/// What the backward writes: dx [M, C], dgamma and dbeta [C].
pub struct Grads<'a> {
    pub dx: &'a mut [f64],
    pub dgamma: &'a mut [f64],
    pub dbeta: &'a mut [f64],
}

/// Training forward. Writes y, mean and inv_std = 1/sqrt(var + epsilon) (saved for backward) and
/// updates moving_mean/var ← momentum·moving + (1 − momentum)·batch. x: [M, C]; gamma, beta:
/// [C]; M, C, momentum and epsilon from `shape`.
pub fn batch_norm_forward_train(
    out: TrainOut,
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    shape: &BnShape,
) {
    assert!(
        !shape.relu,
        "the CPU reference is unfused: compose cpu::relu"
    );
    let TrainOut {
        y,
        mean,
        inv_std,
        moving_mean,
        moving_var,
    } = out;
    let (rows, channels) = (shape.rows, shape.channels);
    let (momentum, epsilon) = (shape.momentum as f64, shape.epsilon as f64);
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
/// y, x: [M, C]; gamma, beta, moving_mean, moving_var: [C]; M, C and epsilon from `shape`.
pub fn batch_norm_forward_inference(
    y: &mut [f64],
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    moving_mean: &[f64],
    moving_var: &[f64],
    shape: &BnShape,
) {
    assert!(
        !shape.relu,
        "the CPU reference is unfused: compose cpu::relu"
    );
    let (rows, channels) = (shape.rows, shape.channels);
    let epsilon = shape.epsilon as f64;
    for r in 0..rows {
        for c in 0..channels {
            let i = r * channels + c;
            y[i] = gamma[c] * (x[i] - moving_mean[c]) / (moving_var[c] + epsilon).sqrt() + beta[c];
        }
    }
}

/// An inference batch norm's per-channel state: gamma, beta, moving_mean, moving_var, [C] each.
#[derive(Clone, Copy)]
pub struct Moving<'a> {
    pub gamma: &'a [f64],
    pub beta: &'a [f64],
    pub moving_mean: &'a [f64],
    pub moving_var: &'a [f64],
}

/// What [`batch_norm_fold`] writes: the folded kernel w [K, C] and bias b [C].
pub struct Folded<'a> {
    pub w: &'a mut [f64],
    pub b: &'a mut [f64],
}

/// Folds an inference batch norm into the convolution before it, so that one convolution
/// computes both: W'[k, c] = W[k, c]·s[c], b'[c] = (b[c] − moving_mean[c])·s[c] + β[c], with
/// s[c] = γ[c]/sqrt(moving_var[c] + ε). Then conv(x, W') + b' =
/// [`batch_norm_forward_inference`](conv(x, W) + b) in exact arithmetic (the batch norm is
/// affine per output channel). Writes `out`. w: [K, C], the kernel [k, k, Cin, Cout] viewed with
/// K = k·k·Cin rows of C = Cout channels; b: [C] (zeros for a convolution without bias);
/// `bn`: [C] each; K (`rows`), C and ε from `shape`.
pub fn batch_norm_fold(out: Folded, w: &[f64], b: &[f64], bn: Moving, shape: &BnShape) {
    assert!(
        !shape.relu,
        "the CPU reference is unfused: compose cpu::relu"
    );
    let (rows, channels) = (shape.rows, shape.channels);
    let epsilon = shape.epsilon as f64;
    for c in 0..channels {
        let s = bn.gamma[c] / (bn.moving_var[c] + epsilon).sqrt();
        for r in 0..rows {
            out.w[r * channels + c] = w[r * channels + c] * s;
        }
        out.b[c] = (b[c] - bn.moving_mean[c]) * s + bn.beta[c];
    }
}

/// Training backward from dy, the forward's input x and its saved mean and inv_std:
/// dβ = Σdy, dγ = Σdy·x̂, dx = γ·inv_std/M · (M·dy − Σdy − x̂·Σdy·x̂), x̂ = (x − mean)·inv_std.
/// Writes `grads`. dy, x: [M, C] (x the forward's input); gamma, mean, inv_std: [C] (mean and
/// inv_std saved by forward_train); M and C from `shape`.
pub fn batch_norm_backward(
    grads: Grads,
    dy: &[f64],
    x: &[f64],
    gamma: &[f64],
    mean: &[f64],
    inv_std: &[f64],
    shape: &BnShape,
) {
    assert!(
        !shape.relu,
        "the CPU reference is unfused: compose cpu::relu"
    );
    let Grads { dx, dgamma, dbeta } = grads;
    let (rows, channels) = (shape.rows, shape.channels);
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
        let (mut mean, mut inv_std) = (vec![0.0; C], vec![0.0; C]);
        let (mut moving_mean, mut moving_var) = (vec![0.0; C], vec![1.0; C]);
        let out = TrainOut {
            y: &mut y,
            mean: &mut mean,
            inv_std: &mut inv_std,
            moving_mean: &mut moving_mean,
            moving_var: &mut moving_var,
        };
        batch_norm_forward_train(out, x, gamma, beta, &BnShape::keras(M, C));
        y
    }

    #[test]
    fn forward_train_hand_computed() {
        // One channel, x = [1, 2, 3, 6]: mean 3, biased var (4 + 1 + 0 + 9)/4 = 3.5.
        let x = [1.0, 2.0, 3.0, 6.0];
        let (mut y, mut mean, mut inv_std) = (vec![0.0; 4], vec![0.0], vec![0.0]);
        let (mut moving_mean, mut moving_var) = (vec![0.5], vec![2.0]);
        let shape = BnShape::keras(4, 1);
        let out = TrainOut {
            y: &mut y,
            mean: &mut mean,
            inv_std: &mut inv_std,
            moving_mean: &mut moving_mean,
            moving_var: &mut moving_var,
        };
        batch_norm_forward_train(out, &x, &[2.0], &[0.25], &shape);
        // The hyperparameters are f32 (as on the GPU): 0.99 and 1e-3 rounded.
        let (mo, eps) = (shape.momentum as f64, shape.epsilon as f64);
        let s = 1.0 / (3.5 + eps).sqrt();
        assert_eq!(mean[0], 3.0);
        approx::assert_abs_diff_eq!(inv_std[0], s, epsilon = 1e-15);
        for (yi, xi) in y.iter().zip(x) {
            approx::assert_abs_diff_eq!(*yi, 2.0 * (xi - 3.0) * s + 0.25, epsilon = 1e-14);
        }
        approx::assert_abs_diff_eq!(moving_mean[0], mo * 0.5 + (1.0 - mo) * 3.0, epsilon = 1e-15);
        approx::assert_abs_diff_eq!(moving_var[0], mo * 2.0 + (1.0 - mo) * 3.5, epsilon = 1e-15);
    }

    #[test]
    fn forward_inference_hand_computed() {
        let mut y = vec![0.0; 2];
        let shape = BnShape {
            epsilon: 0.25,
            ..BnShape::keras(2, 1)
        };
        batch_norm_forward_inference(&mut y, &[1.0, 4.0], &[3.0], &[1.0], &[2.0], &[0.75], &shape);
        // moving_var + ε = 1: y = 3·(x − 2) + 1.
        assert!((y[0] - -2.0).abs() < 1e-14);
        assert!((y[1] - 7.0).abs() < 1e-14);
    }

    /// A 3×3 stride-2 convolution with the folded kernel and bias gives what the convolution
    /// followed by the inference batch norm gives (f64: to rounding).
    #[test]
    fn a_folded_convolution_equals_the_convolution_then_the_batch_norm() {
        use crate::cpu::conv2d::{Conv2dShape, conv2d_forward};
        let s = Conv2dShape {
            n: 2,
            h: 7,
            w: 7,
            cin: 3,
            cout: 5,
            k: 3,
            stride: 2,
            padding: crate::cpu::Padding::Same,
        };
        let x = random_f64(11, s.x_len(), -1.0, 1.0);
        let w = random_f64(12, s.w_len(), -1.0, 1.0);
        let b = random_f64(13, s.cout, -1.0, 1.0);
        let gamma = random_f64(14, s.cout, 0.5, 1.5);
        let beta = random_f64(15, s.cout, -0.5, 0.5);
        let mm = random_f64(16, s.cout, -1.0, 1.0);
        let mv = random_f64(17, s.cout, 0.05, 2.0);
        let bn = Moving {
            gamma: &gamma,
            beta: &beta,
            moving_mean: &mm,
            moving_var: &mv,
        };
        let mut conv = vec![0.0; s.y_len()];
        conv2d_forward(&mut conv, &x, &w, &b, &s);
        let mut want = vec![0.0; s.y_len()];
        let rows = s.y_len() / s.cout;
        let bn_shape = BnShape::keras(rows, s.cout);
        batch_norm_forward_inference(&mut want, &conv, &gamma, &beta, &mm, &mv, &bn_shape);
        let (mut wf, mut bf) = (vec![0.0; s.w_len()], vec![0.0; s.cout]);
        let out = Folded {
            w: &mut wf,
            b: &mut bf,
        };
        batch_norm_fold(out, &w, &b, bn, &BnShape::keras(s.w_len() / s.cout, s.cout));
        let mut got = vec![0.0; s.y_len()];
        conv2d_forward(&mut got, &x, &wf, &bf, &s);
        for (g, w) in got.iter().zip(&want) {
            approx::assert_abs_diff_eq!(g, w, epsilon = 1e-12);
        }
        // The folded bias alone: a zero input gives b' everywhere.
        let mut zero = vec![0.0; s.y_len()];
        conv2d_forward(&mut zero, &vec![0.0; s.x_len()], &wf, &bf, &s);
        assert_eq!(&zero[..s.cout], &bf[..]);
    }

    #[test]
    fn backward_matches_central_differences() {
        let x = random_f64(1, M * C, -2.0, 2.0);
        let gamma = random_f64(2, C, 0.5, 1.5);
        let beta = random_f64(3, C, -0.5, 0.5);
        let r = random_f64(4, M * C, -1.0, 1.0);
        let shape = BnShape::keras(M, C);

        let mut y = vec![0.0; M * C];
        let (mut mean, mut inv_std) = (vec![0.0; C], vec![0.0; C]);
        let (mut moving_mean, mut moving_var) = (vec![0.0; C], vec![1.0; C]);
        let out = TrainOut {
            y: &mut y,
            mean: &mut mean,
            inv_std: &mut inv_std,
            moving_mean: &mut moving_mean,
            moving_var: &mut moving_var,
        };
        batch_norm_forward_train(out, &x, &gamma, &beta, &shape);
        let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; M * C], vec![0.0; C], vec![0.0; C]);
        let grads = Grads {
            dx: &mut dx,
            dgamma: &mut dgamma,
            dbeta: &mut dbeta,
        };
        batch_norm_backward(grads, &r, &x, &gamma, &mean, &inv_std, &shape);

        let err_x = grad_check(&x, &dx, |x| dot(&forward(x, &gamma, &beta), &r), 1e-6);
        let err_g = grad_check(&gamma, &dgamma, |g| dot(&forward(&x, g, &beta), &r), 1e-6);
        let err_b = grad_check(&beta, &dbeta, |b| dot(&forward(&x, &gamma, b), &r), 1e-6);
        assert!(err_x < 1e-7, "dx: {err_x}");
        assert!(err_g < 1e-7, "dgamma: {err_g}");
        assert!(err_b < 1e-7, "dbeta: {err_b}");
    }
}
