//! Rescaling reference (Keras' `Rescaling(scale, offset)`).

/// y = x·scale + offset. y, x: [len], any layout.
pub fn rescale_forward(y: &mut [f64], x: &[f64], scale: f64, offset: f64) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = xi * scale + offset;
    }
}

/// dx = dy·scale. dx, dy: [len].
pub fn rescale_backward(dx: &mut [f64], dy: &[f64], scale: f64) {
    for (d, &g) in dx.iter_mut().zip(dy) {
        *d = g * scale;
    }
}

/// out += x·scale. out, x: [len].
pub fn rescale_accumulate(out: &mut [f64], x: &[f64], scale: f64) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o += v * scale;
    }
}

/// y = x·scale + offset with x as bytes. y: [n, sample_len]; x: n records of `sample_len` bytes,
/// each starting at a multiple of `stride` bytes (the GPU's packed layout; `stride` ≥
/// `sample_len`, the padding ignored).
pub fn rescale_u8_forward(
    y: &mut [f64],
    x: &[u8],
    sample_len: usize,
    stride: usize,
    scale: f64,
    offset: f64,
) {
    for (i, yi) in y.iter_mut().enumerate() {
        let (s, k) = (i / sample_len, i % sample_len);
        *yi = x[s * stride + k] as f64 * scale + offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{dot, grad_check, random_f64};

    #[test]
    fn rescale_by_hand_and_by_central_differences() {
        let mut y = [0.0; 3];
        rescale_forward(&mut y, &[0.0, 127.5, 255.0], 1.0 / 255.0, 0.0);
        assert_eq!(y, [0.0, 0.5, 1.0]);
        let x = random_f64(1, 20, 0.0, 255.0);
        let r = random_f64(2, 20, -1.0, 1.0);
        let mut dx = vec![0.0; 20];
        rescale_backward(&mut dx, &r, 0.25);
        let loss = |x: &[f64]| {
            let mut y = vec![0.0; x.len()];
            rescale_forward(&mut y, x, 0.25, -1.0);
            dot(&y, &r)
        };
        assert!(grad_check(&x, &dx, loss, 1e-4) < 1e-8);
    }

    #[test]
    fn u8_records_skip_their_padding() {
        // Two records of 3 bytes at stride 4: the 4th byte of each (99) is padding.
        let x = [0u8, 51, 255, 99, 102, 153, 204, 99];
        let mut y = [0.0; 6];
        rescale_u8_forward(&mut y, &x, 3, 4, 2.0, 1.0);
        assert_eq!(y, [1.0, 103.0, 511.0, 205.0, 307.0, 409.0]);
    }
}
