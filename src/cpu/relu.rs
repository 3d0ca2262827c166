//! ReLU reference.

/// y = max(x, 0). y, x: [len], any layout.
pub fn relu_forward(y: &mut [f64], x: &[f64]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = xi.max(0.0);
    }
}

/// dx = dy · [y > 0]. dx, dy, y: [len]; y is the saved forward output.
pub fn relu_backward(dx: &mut [f64], dy: &[f64], y: &[f64]) {
    for ((d, &g), &yi) in dx.iter_mut().zip(dy).zip(y) {
        *d = if yi > 0.0 { g } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{dot, grad_check, random_f64};

    #[test]
    fn relu_backward_matches_central_differences() {
        // Keep inputs away from the kink at 0, where the derivative is undefined.
        let x: Vec<f64> = random_f64(1, 40, -1.0, 1.0)
            .into_iter()
            .map(|v| {
                if v.abs() < 0.05 {
                    v + 0.1f64.copysign(v)
                } else {
                    v
                }
            })
            .collect();
        let r = random_f64(2, 40, -1.0, 1.0);
        let mut y = vec![0.0; 40];
        relu_forward(&mut y, &x);
        let mut dx = vec![0.0; 40];
        relu_backward(&mut dx, &r, &y);
        let loss = |x: &[f64]| {
            let mut y = vec![0.0; x.len()];
            relu_forward(&mut y, x);
            dot(&y, &r)
        };
        assert!(grad_check(&x, &dx, loss, 1e-6) < 1e-7);
    }
}
