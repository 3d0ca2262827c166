//! `conv2d` reference: a k×k convolution with stride, TensorFlow `same`/`valid` padding and a
//! bias, NHWC f32 activations, weights in Keras order `[kh, kw, Cin, Cout]`.

pub use crate::shapes::Conv2dShape;

/// Calls `f(kh, kw, ih, iw)` for every kernel tap of output pixel (oh, ow) that lands inside
/// the input; taps in the padding contribute zero and are skipped.
fn taps(s: &Conv2dShape, oh: usize, ow: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
    let (_, pt) = s.oh_pad();
    let (_, pl) = s.ow_pad();
    for kh in 0..s.k {
        for kw in 0..s.k {
            let ih = (oh * s.stride + kh) as isize - pt as isize;
            let iw = (ow * s.stride + kw) as isize - pl as isize;
            if ih >= 0 && iw >= 0 && (ih as usize) < s.h && (iw as usize) < s.w {
                f(kh, kw, ih as usize, iw as usize);
            }
        }
    }
}

/// y = conv(x, w) + b.
pub fn conv2d_forward(
    y: &mut [f64], // y: [N, OH, OW, Cout]
    x: &[f64],     // x: [N, H, W, Cin]
    w: &[f64],     // w: [k, k, Cin, Cout]
    b: &[f64],     // b: [Cout]
    s: &Conv2dShape,
) {
    let (oh_n, ow_n) = (s.oh(), s.ow());
    for n in 0..s.n {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let yo = ((n * oh_n + oh) * ow_n + ow) * s.cout;
                for co in 0..s.cout {
                    let mut acc = b[co];
                    taps(s, oh, ow, |kh, kw, ih, iw| {
                        for ci in 0..s.cin {
                            acc += x[((n * s.h + ih) * s.w + iw) * s.cin + ci]
                                * w[((kh * s.k + kw) * s.cin + ci) * s.cout + co];
                        }
                    });
                    y[yo + co] = acc;
                }
            }
        }
    }
}

/// dx = ∂(Σ y·dy)/∂x (writes dx).
pub fn conv2d_backward_input(
    dx: &mut [f64], // dx: [N, H, W, Cin]
    dy: &[f64],     // dy: [N, OH, OW, Cout]
    w: &[f64],      // w: [k, k, Cin, Cout]
    s: &Conv2dShape,
) {
    dx.iter_mut().for_each(|v| *v = 0.0);
    let (oh_n, ow_n) = (s.oh(), s.ow());
    for n in 0..s.n {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let yo = ((n * oh_n + oh) * ow_n + ow) * s.cout;
                taps(s, oh, ow, |kh, kw, ih, iw| {
                    for ci in 0..s.cin {
                        let mut acc = 0.0;
                        for co in 0..s.cout {
                            acc += dy[yo + co] * w[((kh * s.k + kw) * s.cin + ci) * s.cout + co];
                        }
                        dx[((n * s.h + ih) * s.w + iw) * s.cin + ci] += acc;
                    }
                });
            }
        }
    }
}

/// dw = ∂(Σ y·dy)/∂w, db = ∂(Σ y·dy)/∂b = Σ over N·OH·OW of dy (writes both).
pub fn conv2d_backward_weight(
    dw: &mut [f64], // dw: [k, k, Cin, Cout]
    db: &mut [f64], // db: [Cout]
    dy: &[f64],     // dy: [N, OH, OW, Cout]
    x: &[f64],      // x: [N, H, W, Cin], saved from the forward pass
    s: &Conv2dShape,
) {
    dw.iter_mut().for_each(|v| *v = 0.0);
    db.iter_mut().for_each(|v| *v = 0.0);
    let (oh_n, ow_n) = (s.oh(), s.ow());
    for n in 0..s.n {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let yo = ((n * oh_n + oh) * ow_n + ow) * s.cout;
                for co in 0..s.cout {
                    db[co] += dy[yo + co];
                }
                taps(s, oh, ow, |kh, kw, ih, iw| {
                    for ci in 0..s.cin {
                        let xv = x[((n * s.h + ih) * s.w + iw) * s.cin + ci];
                        for co in 0..s.cout {
                            dw[((kh * s.k + kw) * s.cin + ci) * s.cout + co] += xv * dy[yo + co];
                        }
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Padding;
    use crate::cpu::{dot, grad_check, random_f64};

    fn shapes() -> Vec<Conv2dShape> {
        let mk = |n, h, w, cin, cout, k, stride, padding| Conv2dShape {
            n,
            h,
            w,
            cin,
            cout,
            k,
            stride,
            padding,
        };
        vec![
            mk(2, 5, 4, 3, 2, 3, 2, Padding::Same), // stride 2, pads (1,1) rows, (0,1) cols
            mk(1, 6, 6, 2, 3, 3, 2, Padding::Same), // even size: pads 0 before, 1 after
            mk(1, 5, 6, 2, 2, 3, 1, Padding::Same), // stride 1
            mk(1, 7, 5, 2, 3, 3, 2, Padding::Valid), // valid
        ]
    }

    #[test]
    fn forward_matches_hand_computed_values() {
        // 1×3×3×1 input 1..9, 2×2 kernel? No: 3×3 kernel of ones, stride 2, same padding:
        // out 2×2, pad_total = (2−1)·2 + 3 − 3 = 2, pad before 1. Output (0,0) sums the
        // top-left 2×2 block (1+2+4+5 = 12), (0,1): 2+3+5+6 = 16, (1,0): 4+5+7+8 = 24,
        // (1,1): 5+6+8+9 = 28; plus bias 0.5.
        let s = Conv2dShape {
            n: 1,
            h: 3,
            w: 3,
            cin: 1,
            cout: 1,
            k: 3,
            stride: 2,
            padding: Padding::Same,
        };
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        let mut y = vec![0.0; 4];
        conv2d_forward(&mut y, &x, &[1.0; 9], &[0.5], &s);
        assert_eq!(y, vec![12.5, 16.5, 24.5, 28.5]);

        // 180→90-like: 4×4 input, k3 s2 same pads 0 before, 1 after: output (0,0) covers
        // rows/cols 0..3, output (1,1) rows/cols 2..4 with the 5th in the padding.
        let s = Conv2dShape { h: 4, w: 4, ..s };
        let x: Vec<f64> = (0..16).map(f64::from).collect();
        let mut y = vec![0.0; 4];
        conv2d_forward(&mut y, &x, &[1.0; 9], &[0.0], &s);
        // (0,0): rows 0..2, cols 0..2 → 0+1+2+4+5+6+8+9+10 = 45; (1,1): rows 2,3 cols 2,3 →
        // 10+11+14+15 = 50.
        assert_eq!(y[0], 45.0);
        assert_eq!(y[3], 50.0);
    }

    #[test]
    fn backward_input_matches_central_differences() {
        for (i, s) in shapes().into_iter().enumerate() {
            let seed = 10 * i as u64;
            let x = random_f64(seed, s.x_len(), -1.0, 1.0);
            let w = random_f64(seed + 1, s.w_len(), -1.0, 1.0);
            let b = random_f64(seed + 2, s.cout, -1.0, 1.0);
            let r = random_f64(seed + 3, s.y_len(), -1.0, 1.0);
            let mut dx = vec![0.0; s.x_len()];
            conv2d_backward_input(&mut dx, &r, &w, &s);
            let loss = |x: &[f64]| {
                let mut y = vec![0.0; s.y_len()];
                conv2d_forward(&mut y, x, &w, &b, &s);
                dot(&y, &r)
            };
            let err = grad_check(&x, &dx, loss, 1e-6);
            assert!(err < 1e-7, "{s:?}: {err}");
        }
    }

    #[test]
    fn backward_weight_matches_central_differences() {
        for (i, s) in shapes().into_iter().enumerate() {
            let seed = 100 + 10 * i as u64;
            let x = random_f64(seed, s.x_len(), -1.0, 1.0);
            let w = random_f64(seed + 1, s.w_len(), -1.0, 1.0);
            let b = random_f64(seed + 2, s.cout, -1.0, 1.0);
            let r = random_f64(seed + 3, s.y_len(), -1.0, 1.0);
            let mut dw = vec![0.0; s.w_len()];
            let mut db = vec![0.0; s.cout];
            conv2d_backward_weight(&mut dw, &mut db, &r, &x, &s);
            let loss_w = |w: &[f64]| {
                let mut y = vec![0.0; s.y_len()];
                conv2d_forward(&mut y, &x, w, &b, &s);
                dot(&y, &r)
            };
            let err = grad_check(&w, &dw, loss_w, 1e-6);
            assert!(err < 1e-7, "{s:?} dw: {err}");
            let loss_b = |b: &[f64]| {
                let mut y = vec![0.0; s.y_len()];
                conv2d_forward(&mut y, &x, &w, b, &s);
                dot(&y, &r)
            };
            let err = grad_check(&b, &db, loss_b, 1e-6);
            assert!(err < 1e-7, "{s:?} db: {err}");
        }
    }
}
