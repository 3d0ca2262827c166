//! `dense` (fully connected layer) reference. The plain matrix product is `cpu::gemm`.

/// y = x·W + b.
/// y: [N, OUT], x: [N, IN], w: [IN, OUT] (Keras kernel), b: [OUT].
pub fn dense_forward(
    y: &mut [f64],
    x: &[f64],
    w: &[f64],
    b: &[f64],
    batch: usize,
    inp: usize,
    out: usize,
) {
    for i in 0..batch {
        for o in 0..out {
            let mut s = b[o];
            for p in 0..inp {
                s += x[i * inp + p] * w[p * out + o];
            }
            y[i * out + o] = s;
        }
    }
}

/// dx = dy·Wᵀ (writes dx).
/// dx: [N, IN], dy: [N, OUT], w: [IN, OUT].
pub fn dense_backward_input(
    dx: &mut [f64],
    dy: &[f64],
    w: &[f64],
    batch: usize,
    inp: usize,
    out: usize,
) {
    for i in 0..batch {
        for p in 0..inp {
            let mut s = 0.0;
            for o in 0..out {
                s += dy[i * out + o] * w[p * out + o];
            }
            dx[i * inp + p] = s;
        }
    }
}

/// dW = xᵀ·dy and db = Σ_rows dy (writes both).
/// dw: [IN, OUT], db: [OUT], dy: [N, OUT], x: [N, IN] (saved forward input).
pub fn dense_backward_weight(
    dw: &mut [f64],
    db: &mut [f64],
    dy: &[f64],
    x: &[f64],
    batch: usize,
    inp: usize,
    out: usize,
) {
    for p in 0..inp {
        for o in 0..out {
            let mut s = 0.0;
            for i in 0..batch {
                s += x[i * inp + p] * dy[i * out + o];
            }
            dw[p * out + o] = s;
        }
    }
    for o in 0..out {
        let mut s = 0.0;
        for i in 0..batch {
            s += dy[i * out + o];
        }
        db[o] = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{dot, grad_check, random_f64};

    #[test]
    fn dense_forward_by_hand() {
        // x = [1, 2], W = [[1, -1, 0], [2, 0, 1]], b = [0.5, 0, -1] → y = [5.5, -1, 1]
        let mut y = [0.0; 3];
        dense_forward(
            &mut y,
            &[1.0, 2.0],
            &[1.0, -1.0, 0.0, 2.0, 0.0, 1.0],
            &[0.5, 0.0, -1.0],
            1,
            2,
            3,
        );
        assert_eq!(y, [5.5, -1.0, 1.0]);
    }

    #[test]
    fn dense_backwards_match_central_differences() {
        let (n, i, o) = (3, 5, 4);
        let x = random_f64(1, n * i, -1.0, 1.0);
        let w = random_f64(2, i * o, -1.0, 1.0);
        let b = random_f64(3, o, -1.0, 1.0);
        let r = random_f64(4, n * o, -1.0, 1.0);
        let loss = |x: &[f64], w: &[f64], b: &[f64]| {
            let mut y = vec![0.0; n * o];
            dense_forward(&mut y, x, w, b, n, i, o);
            dot(&y, &r)
        };
        let mut dx = vec![0.0; n * i];
        dense_backward_input(&mut dx, &r, &w, n, i, o);
        assert!(grad_check(&x, &dx, |x| loss(x, &w, &b), 1e-6) < 1e-8);
        let (mut dw, mut db) = (vec![0.0; i * o], vec![0.0; o]);
        dense_backward_weight(&mut dw, &mut db, &r, &x, n, i, o);
        assert!(grad_check(&w, &dw, |w| loss(&x, w, &b), 1e-6) < 1e-8);
        assert!(grad_check(&b, &db, |b| loss(&x, &w, b), 1e-6) < 1e-8);
    }
}
