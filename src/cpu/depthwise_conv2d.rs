//! `depthwise_conv2d` reference: a k×k depthwise convolution, stride 1, depth multiplier 1,
//! no bias, TensorFlow `same`/`valid` padding, NHWC f32, weights in Keras order `[kh, kw, C, 1]`.

pub use crate::shapes::DepthwiseShape;

/// Calls `f(kh, kw, ih, iw)` for every tap of output pixel (oh, ow) inside the input.
fn taps(s: &DepthwiseShape, oh: usize, ow: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
    let (_, pt) = s.oh_pad();
    let (_, pl) = s.ow_pad();
    for kh in 0..s.k {
        for kw in 0..s.k {
            let ih = (oh + kh) as isize - pt as isize;
            let iw = (ow + kw) as isize - pl as isize;
            if ih >= 0 && iw >= 0 && (ih as usize) < s.h && (iw as usize) < s.w {
                f(kh, kw, ih as usize, iw as usize);
            }
        }
    }
}

/// y[n, oh, ow, c] = Σ_{kh, kw} x[n, oh + kh − pt, ow + kw − pl, c] · w[kh, kw, c].
pub fn depthwise_conv2d_forward(
    y: &mut [f64], // y: [N, OH, OW, C]
    x: &[f64],     // x: [N, H, W, C]
    w: &[f64],     // w: [k, k, C, 1]
    s: &DepthwiseShape,
) {
    let (oh_n, ow_n) = (s.oh(), s.ow());
    for n in 0..s.n {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                for c in 0..s.c {
                    let mut acc = 0.0;
                    taps(s, oh, ow, |kh, kw, ih, iw| {
                        acc +=
                            x[((n * s.h + ih) * s.w + iw) * s.c + c] * w[(kh * s.k + kw) * s.c + c];
                    });
                    y[((n * oh_n + oh) * ow_n + ow) * s.c + c] = acc;
                }
            }
        }
    }
}

/// dx = ∂(Σ y·dy)/∂x (writes dx).
pub fn depthwise_conv2d_backward_input(
    dx: &mut [f64], // dx: [N, H, W, C]
    dy: &[f64],     // dy: [N, OH, OW, C]
    w: &[f64],      // w: [k, k, C, 1]
    s: &DepthwiseShape,
) {
    dx.iter_mut().for_each(|v| *v = 0.0);
    let (oh_n, ow_n) = (s.oh(), s.ow());
    for n in 0..s.n {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                taps(s, oh, ow, |kh, kw, ih, iw| {
                    for c in 0..s.c {
                        dx[((n * s.h + ih) * s.w + iw) * s.c + c] += dy
                            [((n * oh_n + oh) * ow_n + ow) * s.c + c]
                            * w[(kh * s.k + kw) * s.c + c];
                    }
                });
            }
        }
    }
}

/// dw = ∂(Σ y·dy)/∂w, summed over N·OH·OW (writes dw).
pub fn depthwise_conv2d_backward_weight(
    dw: &mut [f64], // dw: [k, k, C, 1]
    dy: &[f64],     // dy: [N, OH, OW, C]
    x: &[f64],      // x: [N, H, W, C], saved from the forward pass
    s: &DepthwiseShape,
) {
    dw.iter_mut().for_each(|v| *v = 0.0);
    let (oh_n, ow_n) = (s.oh(), s.ow());
    for n in 0..s.n {
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                taps(s, oh, ow, |kh, kw, ih, iw| {
                    for c in 0..s.c {
                        dw[(kh * s.k + kw) * s.c + c] += x[((n * s.h + ih) * s.w + iw) * s.c + c]
                            * dy[((n * oh_n + oh) * ow_n + ow) * s.c + c];
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

    fn shapes() -> Vec<DepthwiseShape> {
        vec![
            DepthwiseShape {
                n: 2,
                h: 5,
                w: 4,
                c: 3,
                k: 3,
                padding: Padding::Same,
            },
            DepthwiseShape {
                n: 1,
                h: 6,
                w: 7,
                c: 2,
                k: 5,
                padding: Padding::Same,
            },
            DepthwiseShape {
                n: 1,
                h: 6,
                w: 5,
                c: 2,
                k: 3,
                padding: Padding::Valid,
            },
        ]
    }

    #[test]
    fn forward_matches_hand_computed_values() {
        // 1×3×3×2, channel 0 = 1..9, channel 1 = 10·(1..9); 3×3 kernel of ones for channel 0
        // and only the centre tap for channel 1. Same padding (1 each side).
        let s = DepthwiseShape {
            n: 1,
            h: 3,
            w: 3,
            c: 2,
            k: 3,
            padding: Padding::Same,
        };
        let mut x = vec![0.0; 18];
        for i in 0..9 {
            x[2 * i] = (i + 1) as f64;
            x[2 * i + 1] = 10.0 * (i + 1) as f64;
        }
        let mut w = vec![0.0; 18];
        for t in 0..9 {
            w[2 * t] = 1.0;
        }
        w[2 * 4 + 1] = 1.0;
        let mut y = vec![0.0; 18];
        depthwise_conv2d_forward(&mut y, &x, &w, &s);
        let ch0: Vec<f64> = (0..9).map(|i| y[2 * i]).collect();
        // Corner (0,0): 1+2+4+5 = 12; edge (0,1): 1+2+3+4+5+6 = 21; centre: 45.
        assert_eq!(
            ch0,
            vec![12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0]
        );
        let ch1: Vec<f64> = (0..9).map(|i| y[2 * i + 1]).collect();
        assert_eq!(ch1, (1..=9).map(|v| 10.0 * v as f64).collect::<Vec<_>>());
    }

    #[test]
    fn backward_input_matches_central_differences() {
        for (i, s) in shapes().into_iter().enumerate() {
            let seed = 10 * i as u64;
            let x = random_f64(seed, s.x_len(), -1.0, 1.0);
            let w = random_f64(seed + 1, s.w_len(), -1.0, 1.0);
            let r = random_f64(seed + 2, s.y_len(), -1.0, 1.0);
            let mut dx = vec![0.0; s.x_len()];
            depthwise_conv2d_backward_input(&mut dx, &r, &w, &s);
            let loss = |x: &[f64]| {
                let mut y = vec![0.0; s.y_len()];
                depthwise_conv2d_forward(&mut y, x, &w, &s);
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
            let r = random_f64(seed + 2, s.y_len(), -1.0, 1.0);
            let mut dw = vec![0.0; s.w_len()];
            depthwise_conv2d_backward_weight(&mut dw, &r, &x, &s);
            let loss = |w: &[f64]| {
                let mut y = vec![0.0; s.y_len()];
                depthwise_conv2d_forward(&mut y, &x, w, &s);
                dot(&y, &r)
            };
            let err = grad_check(&w, &dw, loss, 1e-6);
            assert!(err < 1e-7, "{s:?}: {err}");
        }
    }
}
