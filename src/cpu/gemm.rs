//! `gemm` reference: the plain matrix product the GEMM kernel variants are checked against
//! (the core behind `dense` and `pointwise_conv2d`).

/// C = A·B. c: [M, N], a: [M, K], b: [K, N], all row-major.
pub fn gemm_forward(c: &mut [f64], a: &[f64], b: &[f64], m: usize, n: usize, k: usize) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            for p in 0..k {
                s += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_forward_by_hand() {
        // [1 2 3; 4 5 6] · [1 0; 0 1; 1 1] = [4 5; 10 11]
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut c = [0.0; 4];
        gemm_forward(&mut c, &a, &b, 2, 2, 3);
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
    }
}
