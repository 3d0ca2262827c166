//! Elementwise references: the residual `add` and inverted `dropout`.
//!
//! Dropout's mask is a pure function of (seed, element index): a counter-based integer hash
//! computed in u32 arithmetic, the same in WGSL (shaders/elementwise.wgsl), so the GPU needs no
//! stored mask and this reference reproduces the GPU's mask bit for bit.

/// y = a + b. y, a, b: [len], any layout.
pub fn add_forward(y: &mut [f64], a: &[f64], b: &[f64]) {
    for ((yi, &ai), &bi) in y.iter_mut().zip(a).zip(b) {
        *yi = ai + bi;
    }
}

/// The gradient fan-out of y = a + b: da = dy and db = dy (writes both).
/// da, db, dy: [len].
pub fn add_backward(da: &mut [f64], db: &mut [f64], dy: &[f64]) {
    da.copy_from_slice(dy);
    db.copy_from_slice(dy);
}

/// Accumulating form of one branch of the fan-out: grad += dy. grad, dy: [len].
pub fn add_backward_accumulate(grad: &mut [f64], dy: &[f64]) {
    for (g, &d) in grad.iter_mut().zip(dy) {
        *g += d;
    }
}

/// PCG-RXS-M-XS 32-bit output permutation (Jarzynski & Olano, "Hash Functions for GPU
/// Rendering", 2020): a cheap, well-mixed u32 → u32 hash in wrapping u32 arithmetic.
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// Dropout's uniform draw for element `index` under `seed`: the top 24 bits of
/// pcg_hash(index + pcg_hash(seed)), scaled into [0, 1) (exact in f32 and f64).
pub fn dropout_uniform(seed: u32, index: u32) -> f64 {
    let h = pcg_hash(index.wrapping_add(pcg_hash(seed)));
    (h >> 8) as f64 / 16_777_216.0
}

/// Whether element `index` is kept: uniform ≥ rate (probability 1 − rate). `rate` is the f32
/// value the GPU sees, widened, so both sides decide identically.
pub fn dropout_keep(seed: u32, index: u32, rate: f32) -> bool {
    dropout_uniform(seed, index) >= rate as f64
}

/// Inverted dropout: y = x · keep / (1 − rate). y, x: [len]; rate in [0, 1).
pub fn dropout_forward(y: &mut [f64], x: &[f64], seed: u32, rate: f32) {
    let scale = 1.0 / (1.0 - rate as f64);
    for (i, (yi, &xi)) in y.iter_mut().zip(x).enumerate() {
        *yi = if dropout_keep(seed, i as u32, rate) {
            xi * scale
        } else {
            0.0
        };
    }
}

/// dx = dy · keep / (1 − rate), with the forward's mask (same seed). dx, dy: [len].
pub fn dropout_backward(dx: &mut [f64], dy: &[f64], seed: u32, rate: f32) {
    // The mask is recomputed from (seed, index): the same map as the forward.
    dropout_forward(dx, dy, seed, rate);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{dot, grad_check, random_f64};

    #[test]
    fn add_forward_hand_computed() {
        let mut y = vec![0.0; 3];
        add_forward(&mut y, &[1.0, -2.0, 0.5], &[3.0, 2.0, 0.25]);
        assert_eq!(y, [4.0, 0.0, 0.75]);
    }

    #[test]
    fn add_backward_matches_central_differences() {
        let a = random_f64(1, 35, -1.0, 1.0);
        let b = random_f64(2, 35, -1.0, 1.0);
        let r = random_f64(3, 35, -1.0, 1.0);
        let (mut da, mut db) = (vec![0.0; 35], vec![0.0; 35]);
        add_backward(&mut da, &mut db, &r);
        let fwd = |a: &[f64], b: &[f64]| {
            let mut y = vec![0.0; a.len()];
            add_forward(&mut y, a, b);
            dot(&y, &r)
        };
        assert!(grad_check(&a, &da, |a| fwd(a, &b), 1e-6) < 1e-8);
        assert!(grad_check(&b, &db, |b| fwd(&a, b), 1e-6) < 1e-8);

        let mut g = vec![0.5; 35];
        add_backward_accumulate(&mut g, &r);
        for (gi, ri) in g.iter().zip(&r) {
            assert_eq!(*gi, 0.5 + ri);
        }
    }

    #[test]
    fn pcg_hash_known_values() {
        // Computed independently (Python big integers, reduced mod 2^32) from the definition.
        assert_eq!(pcg_hash(0), 129_708_002);
        assert_eq!(pcg_hash(1), 2_831_084_092);
        assert_eq!(pcg_hash(12_345), 4_099_845_390);
    }

    #[test]
    fn dropout_keeps_one_minus_rate_and_scales() {
        let n = 200_000;
        let x = vec![1.0; n];
        let mut y = vec![0.0; n];
        for (seed, rate) in [(7u32, 0.5f32), (8, 0.25), (123_456, 0.9)] {
            dropout_forward(&mut y, &x, seed, rate);
            let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
            // Binomial std of the kept fraction is sqrt(p(1−p)/n) ≤ 0.0012; allow 5σ.
            assert!(
                (kept - (1.0 - rate as f64)).abs() < 0.006,
                "seed {seed} rate {rate}: kept {kept}"
            );
            let scale = 1.0 / (1.0 - rate as f64);
            assert!(y.iter().all(|&v| v == 0.0 || v == scale));
            // Inverted dropout preserves the mean.
            let mean = y.iter().sum::<f64>() / n as f64;
            assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
        }
        // A different seed gives a different mask; rate 0 keeps everything.
        let (mut y1, mut y2) = (vec![0.0; 64], vec![0.0; 64]);
        dropout_forward(&mut y1, &x[..64], 1, 0.5);
        dropout_forward(&mut y2, &x[..64], 2, 0.5);
        assert_ne!(y1, y2);
        dropout_forward(&mut y1, &x[..64], 1, 0.0);
        assert!(y1.iter().all(|&v| v == 1.0));
    }

    #[test]
    fn dropout_backward_matches_central_differences() {
        let x = random_f64(4, 50, -1.0, 1.0);
        let r = random_f64(5, 50, -1.0, 1.0);
        let (seed, rate) = (99, 0.3);
        let mut dx = vec![0.0; 50];
        dropout_backward(&mut dx, &r, seed, rate);
        let loss = |x: &[f64]| {
            let mut y = vec![0.0; x.len()];
            dropout_forward(&mut y, x, seed, rate);
            dot(&y, &r)
        };
        assert!(grad_check(&x, &dx, loss, 1e-6) < 1e-8);
        assert!(dx.contains(&0.0) && dx.iter().any(|&v| v != 0.0));
    }
}
