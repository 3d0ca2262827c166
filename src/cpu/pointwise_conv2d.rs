//! `pointwise_conv2d` reference: 1×1 convolution, stride 1 or 2, "same" padding, with bias.
//!
//! With a 1×1 kernel "same" padding never pads: out = ceil(n/s) and output pixel (oh, ow) reads
//! input pixel (oh·s, ow·s). Weights in Keras order `[1, 1, CIN, COUT]` = `[CIN, COUT]`.

pub use crate::shapes::PointwiseShape;

/// y[n, oh, ow, :] = x[n, oh·s, ow·s, :]·W + b.
/// y: [N, OH, OW, COUT], x: [N, H, W, CIN], w: [CIN, COUT], b: [COUT].
pub fn pointwise_conv2d_forward(
    y: &mut [f64],
    x: &[f64],
    w: &[f64],
    b: &[f64],
    s: &PointwiseShape,
) {
    let PointwiseShape {
        n,
        h,
        w: wd,
        cin,
        cout,
        stride,
    } = *s;
    let (oh, ow) = s.out_hw();
    for i in 0..n {
        for r in 0..oh {
            for c in 0..ow {
                let xp = ((i * h + r * stride) * wd + c * stride) * cin;
                let yp = ((i * oh + r) * ow + c) * cout;
                for o in 0..cout {
                    let mut s = b[o];
                    for p in 0..cin {
                        s += x[xp + p] * w[p * cout + o];
                    }
                    y[yp + o] = s;
                }
            }
        }
    }
}

/// dx[n, oh·s, ow·s, :] = dy[n, oh, ow, :]·Wᵀ, zero at the pixels the stride skips (writes dx).
/// dx: [N, H, W, CIN], dy: [N, OH, OW, COUT], w: [CIN, COUT].
pub fn pointwise_conv2d_backward_input(dx: &mut [f64], dy: &[f64], w: &[f64], s: &PointwiseShape) {
    let PointwiseShape {
        n,
        h,
        w: wd,
        cin,
        cout,
        stride,
    } = *s;
    let (oh, ow) = s.out_hw();
    dx.iter_mut().for_each(|v| *v = 0.0);
    for i in 0..n {
        for r in 0..oh {
            for c in 0..ow {
                let xp = ((i * h + r * stride) * wd + c * stride) * cin;
                let yp = ((i * oh + r) * ow + c) * cout;
                for p in 0..cin {
                    let mut s = 0.0;
                    for o in 0..cout {
                        s += dy[yp + o] * w[p * cout + o];
                    }
                    dx[xp + p] = s;
                }
            }
        }
    }
}

/// dW[p, o] = Σ_pixels x[n, oh·s, ow·s, p]·dy[n, oh, ow, o]; db[o] = Σ_pixels dy[.., o]
/// (writes both).
/// dw: [CIN, COUT], db: [COUT], dy: [N, OH, OW, COUT], x: [N, H, W, CIN] (saved forward input).
pub fn pointwise_conv2d_backward_weight(
    dw: &mut [f64],
    db: &mut [f64],
    dy: &[f64],
    x: &[f64],
    s: &PointwiseShape,
) {
    let PointwiseShape {
        n,
        h,
        w: wd,
        cin,
        cout,
        stride,
    } = *s;
    let (oh, ow) = s.out_hw();
    dw.iter_mut().for_each(|v| *v = 0.0);
    db.iter_mut().for_each(|v| *v = 0.0);
    for i in 0..n {
        for r in 0..oh {
            for c in 0..ow {
                let xp = ((i * h + r * stride) * wd + c * stride) * cin;
                let yp = ((i * oh + r) * ow + c) * cout;
                for o in 0..cout {
                    for p in 0..cin {
                        dw[p * cout + o] += x[xp + p] * dy[yp + o];
                    }
                    db[o] += dy[yp + o];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{dot, grad_check, random_f64};

    #[test]
    fn forward_by_hand_stride_2() {
        // N1 H3 W3 CIN1 COUT2, stride 2: picks pixels (0,0) (0,2) (2,0) (2,2) = x 1, 3, 7, 9.
        let x: Vec<f64> = (1..=9).map(|v| v as f64).collect();
        let mut y = vec![0.0; 8];
        let s = PointwiseShape {
            n: 1,
            h: 3,
            w: 3,
            cin: 1,
            cout: 2,
            stride: 2,
        };
        pointwise_conv2d_forward(&mut y, &x, &[2.0, -1.0], &[0.5, 0.0], &s);
        assert_eq!(y, [2.5, -1.0, 6.5, -3.0, 14.5, -7.0, 18.5, -9.0]);
    }

    #[test]
    fn backwards_match_central_differences() {
        for stride in [1, 2] {
            let (n, h, w, ci, co) = (2, 5, 3, 3, 4);
            let s = PointwiseShape {
                n,
                h,
                w,
                cin: ci,
                cout: co,
                stride,
            };
            let (oh, ow) = s.out_hw();
            let x = random_f64(1, n * h * w * ci, -1.0, 1.0);
            let wt = random_f64(2, ci * co, -1.0, 1.0);
            let b = random_f64(3, co, -1.0, 1.0);
            let r = random_f64(4, n * oh * ow * co, -1.0, 1.0);
            let loss = |x: &[f64], wt: &[f64], b: &[f64]| {
                let mut y = vec![0.0; n * oh * ow * co];
                pointwise_conv2d_forward(&mut y, x, wt, b, &s);
                dot(&y, &r)
            };
            let mut dx = vec![1.0; x.len()];
            pointwise_conv2d_backward_input(&mut dx, &r, &wt, &s);
            assert!(grad_check(&x, &dx, |x| loss(x, &wt, &b), 1e-6) < 1e-8);
            let (mut dw, mut db) = (vec![1.0; wt.len()], vec![1.0; co]);
            pointwise_conv2d_backward_weight(&mut dw, &mut db, &r, &x, &s);
            assert!(grad_check(&wt, &dw, |wt| loss(&x, wt, &b), 1e-6) < 1e-8);
            assert!(grad_check(&b, &db, |b| loss(&x, &wt, b), 1e-6) < 1e-8);
        }
    }
}
