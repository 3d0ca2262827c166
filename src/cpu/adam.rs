//! Adam reference, in Keras' form (KERAS-SEMANTICS.md), over one flat parameter buffer:
//! lr_t = lr·sqrt(1 − β2^t)/(1 − β1^t); m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²;
//! θ −= lr_t·m/(sqrt(v) + ε), with t the 1-based step count; and Keras' AdamW, which first
//! decays every trainable value: θ −= θ·wd·lr ([`adam_decay`]). Keras' L2 kernel regularizer
//! (`kernel_regularizer=regularizers.l2(l2)`) adds l2·Σθ² over the regularized kernels to the
//! loss ([`l2_penalty`]) and so 2·l2·θ to their gradients ([`adam_l2_grad`]), before Adam.

/// Adam's constants. `Default` gives Keras' β1 0.9, β2 0.999, ε 1e-7 and no weight decay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamHyper {
    pub beta1: f64,
    pub beta2: f64,
    pub epsilon: f64,
    /// AdamW's decoupled weight decay (Keras' `AdamW(weight_decay=...)`; 0: plain Adam).
    pub weight_decay: f64,
    /// Keras' `regularizers.l2(l2)` on the masked elements (0: none).
    pub l2: f64,
}

impl Default for AdamHyper {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            weight_decay: 0.0,
            l2: 0.0,
        }
    }
}

/// The L2 penalty l2·Σ mask·θ² (mask 1 for a regularized kernel's elements, 0 elsewhere).
pub fn l2_penalty(theta: &[f64], mask: &[f64], l2: f64) -> f64 {
    l2 * theta.iter().zip(mask).map(|(t, m)| m * t * t).sum::<f64>()
}

/// The gradient with the L2 penalty's: g + 2·l2·mask·θ per element (g unchanged where the
/// mask is 0, and everywhere when l2 is 0). theta, mask: at least g's length.
pub fn adam_l2_grad(g: &[f64], theta: &[f64], mask: &[f64], h: &AdamHyper) -> Vec<f64> {
    g.iter()
        .zip(theta)
        .zip(mask)
        .map(|((&g, &t), &m)| g + 2.0 * h.l2 * m * t)
        .collect()
}

/// The bias-corrected step size of step `t` (1-based): lr·sqrt(1 − β2^t)/(1 − β1^t).
pub fn adam_lr_t(lr: f64, t: u32, h: &AdamHyper) -> f64 {
    let t = t as i32;
    lr * (1.0 - h.beta2.powi(t)).sqrt() / (1.0 - h.beta1.powi(t))
}

/// Starts a step: t += 1, then lr_t for the new t. Returns lr_t.
pub fn adam_begin_step(t: &mut u32, lr: f64, h: &AdamHyper) -> f64 {
    *t += 1;
    adam_lr_t(lr, *t, h)
}

/// AdamW's decoupled weight decay, as Keras' optimizer applies it before the update:
/// θ −= θ·wd·lr for every element, with the base learning rate `lr` (not lr_t).
pub fn adam_decay(theta: &mut [f64], lr: f64, h: &AdamHyper) {
    for t in theta {
        *t -= *t * h.weight_decay * lr;
    }
}

/// One Adam update of every element (θ, m, v in place).
/// theta, m, v, g: [len] (the flat parameter, first-moment, second-moment and gradient buffers).
pub fn adam_update(
    theta: &mut [f64],
    m: &mut [f64],
    v: &mut [f64],
    g: &[f64],
    lr_t: f64,
    h: &AdamHyper,
) {
    assert!(theta.len() == m.len() && m.len() == v.len() && v.len() == g.len());
    for i in 0..theta.len() {
        m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g[i];
        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g[i] * g[i];
        theta[i] -= lr_t * m[i] / (v[i].sqrt() + h.epsilon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_decay_shrinks_by_wd_times_lr() {
        let h = AdamHyper {
            weight_decay: 0.1,
            ..AdamHyper::default()
        };
        let mut theta = [2.0, -1.0, 0.0];
        adam_decay(&mut theta, 0.5, &h);
        assert_eq!(theta, [1.9, -0.95, 0.0]);
        let mut same = [2.0];
        adam_decay(&mut same, 0.5, &AdamHyper::default());
        assert_eq!(same, [2.0]);
    }

    /// The penalty's gradient is what adam_l2_grad adds: central differences of l2·Σ mask·θ².
    #[test]
    fn l2_gradient_is_the_penalty_derivative() {
        let h = AdamHyper {
            l2: 0.03,
            ..AdamHyper::default()
        };
        let theta = [0.5, -2.0, 1.5, 0.25];
        let mask = [1.0, 0.0, 1.0, 1.0];
        let g = adam_l2_grad(&[0.0; 4], &theta, &mask, &h);
        for i in 0..4 {
            let eps = 1e-6;
            let (mut p, mut m) = (theta, theta);
            p[i] += eps;
            m[i] -= eps;
            let num = (l2_penalty(&p, &mask, h.l2) - l2_penalty(&m, &mask, h.l2)) / (2.0 * eps);
            assert!((num - g[i]).abs() < 1e-9, "{i}: {num} vs {}", g[i]);
        }
        assert_eq!(g[1], 0.0);
        assert!((l2_penalty(&theta, &mask, 0.03) - 0.03 * (0.25 + 2.25 + 0.0625)).abs() < 1e-15);
        // l2 = 0 leaves the gradient as it is.
        let g0 = [0.1, -0.2, 0.3, 0.0];
        assert_eq!(adam_l2_grad(&g0, &theta, &mask, &AdamHyper::default()), g0);
    }

    #[test]
    fn first_step_moves_each_parameter_by_about_lr() {
        // At t = 1 from m = v = 0: m = 0.1·g, v = 0.001·g², lr_t = lr·sqrt(0.001)/0.1, so the
        // step is lr·g/(|g| + ε/sqrt(0.001)) ≈ lr·sign(g) for |g| ≫ ε.
        let h = AdamHyper::default();
        let lr = 1e-3;
        let mut t = 0;
        let lr_t = adam_begin_step(&mut t, lr, &h);
        assert_eq!(t, 1);
        assert!((lr_t - lr * 0.001f64.sqrt() / 0.1).abs() < 1e-15);
        let g = [0.5, -2.0, 1e-3];
        let (mut theta, mut m, mut v) = ([1.0, 1.0, 1.0], [0.0; 3], [0.0; 3]);
        adam_update(&mut theta, &mut m, &mut v, &g, lr_t, &h);
        for (i, &gi) in g.iter().enumerate() {
            assert!((m[i] - 0.1 * gi).abs() < 1e-15 && (v[i] - 1e-3 * gi * gi).abs() < 1e-15);
            let want = 1.0 - lr * gi / (gi.abs() + 1e-7 / 0.001f64.sqrt());
            assert!(
                (theta[i] - want).abs() < 1e-15,
                "{i}: {} vs {want}",
                theta[i]
            );
            assert!((theta[i] - (1.0 - lr * gi.signum())).abs() < 1e-2 * lr);
        }
    }

    #[test]
    fn bias_correction_fades() {
        let h = AdamHyper::default();
        // After many steps lr_t tends to lr; at t = 10 it is lr·sqrt(1 − 0.999^10)/(1 − 0.9^10).
        assert!((adam_lr_t(1.0, 100_000, &h) - 1.0).abs() < 1e-12);
        let want = (1.0 - 0.999f64.powi(10)).sqrt() / (1.0 - 0.9f64.powi(10));
        assert!((adam_lr_t(1.0, 10, &h) - want).abs() < 1e-15);
    }
}
