//! Pooling reference: `max_pool2d` (window k×k, stride s, TensorFlow's same/valid padding) and
//! `global_avg_pool2d`, NHWC.
//!
//! Max-pool conventions shared with shaders/pool.wgsl:
//! - padded cells never win (they behave as −∞, not 0);
//! - ties go to the first maximum in window order (row-major over kh, then kw);
//! - the forward pass saves, per output element, the **window-local** index `i·kw + j` of the
//!   winning cell (`i` the window row, `j` the window column), as u32. A window that holds no
//!   input cell at all (impossible with same/valid padding, possible with hand-made pads) writes
//!   y = 0 and the index [`NO_ARGMAX`], and routes no gradient.

/// Saved index of a window without any input cell.
pub const NO_ARGMAX: u32 = u32::MAX;

pub use crate::shapes::Pool2d;

/// y = max over each window; argmax = window-local index `i·kw + j` of the winner.
/// y, argmax: [N, OH, OW, C]; x: [N, H, W, C].
pub fn max_pool2d_forward(y: &mut [f64], argmax: &mut [u32], x: &[f64], g: &Pool2d) {
    let (oh, pt) = g.rows();
    let (ow, pl) = g.cols();
    assert_eq!(x.len(), g.in_len());
    assert_eq!(y.len(), g.out_len());
    assert_eq!(argmax.len(), g.out_len());
    for n in 0..g.n {
        for r in 0..oh {
            for q in 0..ow {
                for c in 0..g.c {
                    let mut best: Option<(f64, u32)> = None;
                    for i in 0..g.kh {
                        for j in 0..g.kw {
                            let ih = (r * g.sh + i) as isize - pt as isize;
                            let iw = (q * g.sw + j) as isize - pl as isize;
                            if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                continue;
                            }
                            let v = x[((n * g.h + ih as usize) * g.w + iw as usize) * g.c + c];
                            // Strict '>': the first maximum in window order wins a tie.
                            if best.is_none_or(|(b, _)| v > b) {
                                best = Some((v, (i * g.kw + j) as u32));
                            }
                        }
                    }
                    let o = ((n * oh + r) * ow + q) * g.c + c;
                    let (v, a) = best.unwrap_or((0.0, NO_ARGMAX));
                    y[o] = v;
                    argmax[o] = a;
                }
            }
        }
    }
}

/// dx = Σ dy over the windows whose saved argmax is that input cell (writes all of dx).
/// dx: [N, H, W, C]; dy, argmax: [N, OH, OW, C] (argmax saved by the forward pass).
pub fn max_pool2d_backward(dx: &mut [f64], dy: &[f64], argmax: &[u32], g: &Pool2d) {
    let (oh, pt) = g.rows();
    let (ow, pl) = g.cols();
    assert_eq!(dx.len(), g.in_len());
    assert_eq!(dy.len(), g.out_len());
    assert_eq!(argmax.len(), g.out_len());
    dx.fill(0.0);
    for n in 0..g.n {
        for r in 0..oh {
            for q in 0..ow {
                for c in 0..g.c {
                    let o = ((n * oh + r) * ow + q) * g.c + c;
                    if argmax[o] == NO_ARGMAX {
                        continue;
                    }
                    let (i, j) = (argmax[o] as usize / g.kw, argmax[o] as usize % g.kw);
                    let ih = r * g.sh + i - pt;
                    let iw = q * g.sw + j - pl;
                    dx[((n * g.h + ih) * g.w + iw) * g.c + c] += dy[o];
                }
            }
        }
    }
}

/// y[n, c] = mean of x[n, :, :, c]. y: [N, C]; x: [N, H, W, C].
pub fn global_avg_pool2d_forward(y: &mut [f64], x: &[f64], n: usize, h: usize, w: usize, c: usize) {
    assert_eq!(x.len(), n * h * w * c);
    assert_eq!(y.len(), n * c);
    for b in 0..n {
        for ch in 0..c {
            let mut s = 0.0;
            for p in 0..h * w {
                s += x[(b * h * w + p) * c + ch];
            }
            y[b * c + ch] = s / (h * w) as f64;
        }
    }
}

/// dx[n, h, w, c] = dy[n, c] / (H·W) (writes all of dx). dx: [N, H, W, C]; dy: [N, C].
pub fn global_avg_pool2d_backward(
    dx: &mut [f64],
    dy: &[f64],
    n: usize,
    h: usize,
    w: usize,
    c: usize,
) {
    assert_eq!(dx.len(), n * h * w * c);
    assert_eq!(dy.len(), n * c);
    for b in 0..n {
        for p in 0..h * w {
            for ch in 0..c {
                dx[(b * h * w + p) * c + ch] = dy[b * c + ch] / (h * w) as f64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Padding;
    use crate::cpu::{dot, grad_check, random_f64};

    fn max_pool_loss(x: &[f64], r: &[f64], g: &Pool2d) -> f64 {
        let mut y = vec![0.0; g.out_len()];
        let mut a = vec![0; g.out_len()];
        max_pool2d_forward(&mut y, &mut a, x, g);
        dot(&y, r)
    }

    fn check_max_pool_grad(g: Pool2d, seed: u64) {
        // Continuous random inputs: no ties, and a 1e-6 step never changes a winner.
        let x = random_f64(seed, g.in_len(), -1.0, 1.0);
        let r = random_f64(seed + 1, g.out_len(), -1.0, 1.0);
        let mut y = vec![0.0; g.out_len()];
        let mut a = vec![0; g.out_len()];
        max_pool2d_forward(&mut y, &mut a, &x, &g);
        let mut dx = vec![0.0; g.in_len()];
        max_pool2d_backward(&mut dx, &r, &a, &g);
        let err = grad_check(&x, &dx, |x| max_pool_loss(x, &r, &g), 1e-6);
        assert!(err < 1e-7, "{g:?}: worst error {err:e}");
    }

    #[test]
    fn max_pool2d_backward_matches_central_differences() {
        // The model's 3/2/same with pads (1,1), (0,1); overlapping stride 1; gaps with s > k.
        check_max_pool_grad(Pool2d::square(2, 7, 7, 3, 3, 2, Padding::Same), 1);
        check_max_pool_grad(Pool2d::square(1, 6, 5, 2, 3, 2, Padding::Same), 3);
        check_max_pool_grad(Pool2d::square(1, 5, 5, 2, 3, 1, Padding::Same), 5);
        check_max_pool_grad(Pool2d::square(1, 9, 9, 2, 2, 3, Padding::Valid), 7);
    }

    #[test]
    fn max_pool2d_forward_by_hand() {
        // 5×5 → 3×3 with k3 s2 same: pads (1, 1); every window sees padding except none.
        // All inputs negative: a padded cell read as 0 would win, a correct pool never lets it.
        let x: Vec<f64> = (0..25).map(|v| -(v as f64) - 1.0).collect();
        let g = Pool2d::square(1, 5, 5, 1, 3, 2, Padding::Same);
        assert_eq!((g.rows(), g.cols()), ((3, 1), (3, 1)));
        let mut y = vec![0.0; 9];
        let mut a = vec![0; 9];
        max_pool2d_forward(&mut y, &mut a, &x, &g);
        // Window (r, q) covers rows 2r−1..2r+1, cols 2q−1..2q+1; the max is its top-left valid
        // cell (values decrease along rows and columns).
        assert_eq!(
            y,
            vec![-1.0, -2.0, -4.0, -6.0, -7.0, -9.0, -16.0, -17.0, -19.0]
        );
        // Window-local index of that cell: (1,1) = 4 at the top-left corner, (1,0) = 3 on the
        // top edge, (0,1) = 1 on the left edge, (0,0) = 0 inside.
        assert_eq!(a, vec![4, 3, 3, 1, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn max_pool2d_ties_go_to_the_first_cell_in_window_order() {
        let x = vec![2.0; 16];
        let g = Pool2d::square(1, 4, 4, 1, 3, 2, Padding::Same);
        let mut y = vec![0.0; 4];
        let mut a = vec![9; 4];
        max_pool2d_forward(&mut y, &mut a, &x, &g);
        assert_eq!(y, vec![2.0; 4]);
        assert_eq!(a, vec![0; 4]);
        // The whole gradient of each window goes to its first cell.
        let mut dx = vec![0.0; 16];
        max_pool2d_backward(&mut dx, &[1.0, 10.0, 100.0, 1000.0], &a, &g);
        let mut want = vec![0.0; 16];
        want[0] = 1.0;
        want[2] = 10.0;
        want[8] = 100.0;
        want[10] = 1000.0;
        assert_eq!(dx, want);
    }

    #[test]
    fn global_avg_pool2d_backward_matches_central_differences() {
        let (n, h, w, c) = (2, 3, 5, 3);
        let x = random_f64(11, n * h * w * c, -1.0, 1.0);
        let r = random_f64(12, n * c, -1.0, 1.0);
        let mut dx = vec![0.0; x.len()];
        global_avg_pool2d_backward(&mut dx, &r, n, h, w, c);
        let loss = |x: &[f64]| {
            let mut y = vec![0.0; n * c];
            global_avg_pool2d_forward(&mut y, x, n, h, w, c);
            dot(&y, &r)
        };
        assert!(grad_check(&x, &dx, loss, 1e-6) < 1e-8);
    }

    #[test]
    fn global_avg_pool2d_forward_by_hand() {
        // N1 H2 W2 C2: channel 0 holds 1, 2, 3, 4; channel 1 holds 10, 0, 0, −2.
        let x = [1.0, 10.0, 2.0, 0.0, 3.0, 0.0, 4.0, -2.0];
        let mut y = [0.0; 2];
        global_avg_pool2d_forward(&mut y, &x, 1, 2, 2, 2);
        assert_eq!(y, [2.5, 2.0]);
    }
}
