//! Loss reference: `sigmoid_bce` (binary / multi-label cross-entropy from logits) and
//! `softmax_ce` (sparse categorical cross-entropy from logits).
//!
//! Both forwards give the mean loss (Keras' default reduction): sigmoid_bce over all N·L
//! elements (= the mean over labels, then over the batch), softmax_ce over the N samples.
//! The `*_metrics` functions accumulate `[loss_sum, correct, seen]` across batches, so that
//! `loss_sum / seen` and `correct / seen` are the epoch's loss and accuracy:
//! sigmoid_bce counts elements (N·L per batch), softmax_ce counts samples (N per batch).
//!
//! The `*_smoothed` forms take class weights as Keras' `fit(class_weight=...)` applies them:
//! each term's loss times its class's weight (sigmoid_bce: `w[0]` for target 0, `w[1]` for
//! target 1; softmax_ce: `w[label]`), the reduction still "sum_over_batch_size"
//! (Σ w·l / count, not / Σ w); the gradient follows, the correct count is not weighted.
//! `None` is the unweighted loss.
//!
//! They also take Keras' `label_smoothing` S in [0, 1]: sigmoid_bce's target becomes
//! y' = y·(1 − S) + S/2 (`BinaryCrossentropy`), softmax_ce's one-hot row
//! y' = (1 − S)·onehot + S/K (`CategoricalCrossentropy`; Keras' sparse form has no smoothing,
//! so this is the one-hot loss on the same labels). The loss and its gradient use y'; the class
//! weight (chosen by the given label) and the correct count do not change. The plain forms
//! are these with no weights and S = 0.

/// Stable `log(1 + exp(z))` for any z: max(z, 0) + log1p(exp(−|z|)).
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// Binary cross-entropy of one logit z against a target y ∈ {0, 1}:
/// −y·log σ(z) − (1 − y)·log(1 − σ(z)) = max(z, 0) − z·y + log1p(exp(−|z|)).
fn bce(z: f64, y: f64) -> f64 {
    softplus(z) - z * y
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The weight of a sigmoid_bce element with target y: `w[y > 0.5]`, 1 unweighted.
fn bce_weight(w: Option<&[f64]>, y: f64) -> f64 {
    w.map_or(1.0, |w| w[usize::from(y > 0.5)])
}

/// loss[0] = mean over the N·L elements of the BCE from logits.
/// loss: [1]; z (logits), y (targets in {0, 1}): [N, L].
pub fn sigmoid_bce_forward(loss: &mut [f64], z: &[f64], y: &[f64], n: usize, l: usize) {
    sigmoid_bce_forward_smoothed(loss, z, y, n, l, None, 0.0);
}

/// The smoothed target y·(1 − S) + S/2 (Keras' BinaryCrossentropy).
fn bce_smoothed(y: f64, s: f64) -> f64 {
    y * (1.0 - s) + 0.5 * s
}

/// loss[0] = Σ w[y]·BCE(z, y') / (N·L), y' = y·(1 − S) + S/2 (see the module doc).
pub fn sigmoid_bce_forward_smoothed(
    loss: &mut [f64],
    z: &[f64],
    y: &[f64],
    n: usize,
    l: usize,
    w: Option<&[f64]>,
    smoothing: f64,
) {
    assert_eq!(z.len(), n * l);
    assert_eq!(y.len(), n * l);
    let s: f64 = z
        .iter()
        .zip(y)
        .map(|(&z, &y)| bce_weight(w, y) * bce(z, bce_smoothed(y, smoothing)))
        .sum();
    loss[0] = s / (n * l) as f64;
}

/// dz = (σ(z) − y) / (N·L) (writes dz). dz, z, y: [N, L].
pub fn sigmoid_bce_backward(dz: &mut [f64], z: &[f64], y: &[f64], n: usize, l: usize) {
    sigmoid_bce_backward_smoothed(dz, z, y, n, l, None, 0.0);
}

/// dz = (σ(z) − y')·w[y] / (N·L) (writes dz): the gradient of the smoothed forward.
pub fn sigmoid_bce_backward_smoothed(
    dz: &mut [f64],
    z: &[f64],
    y: &[f64],
    n: usize,
    l: usize,
    w: Option<&[f64]>,
    smoothing: f64,
) {
    assert_eq!(dz.len(), n * l);
    for i in 0..n * l {
        let ys = bce_smoothed(y[i], smoothing);
        dz[i] = (sigmoid(z[i]) - ys) * bce_weight(w, y[i]) / (n * l) as f64;
    }
}

/// metrics += [Σ BCE, #(z > 0 ⇔ y > 0.5), N·L]. metrics: [3]; z, y: [N, L].
pub fn sigmoid_bce_metrics(metrics: &mut [f64], z: &[f64], y: &[f64], n: usize, l: usize) {
    sigmoid_bce_metrics_smoothed(metrics, z, y, n, l, None, 0.0);
}

/// metrics += [Σ w[y]·BCE(z, y'), #(z > 0 ⇔ y > 0.5), N·L] (the count of the given labels).
pub fn sigmoid_bce_metrics_smoothed(
    metrics: &mut [f64],
    z: &[f64],
    y: &[f64],
    n: usize,
    l: usize,
    w: Option<&[f64]>,
    smoothing: f64,
) {
    for i in 0..n * l {
        metrics[0] += bce_weight(w, y[i]) * bce(z[i], bce_smoothed(y[i], smoothing));
        metrics[1] += f64::from(u8::from((z[i] > 0.0) == (y[i] > 0.5)));
    }
    metrics[2] += (n * l) as f64;
}

/// log Σ_k exp(z_k) of one row, computed after subtracting the row's max.
fn log_sum_exp(row: &[f64]) -> f64 {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + row.iter().map(|&v| (v - m).exp()).sum::<f64>().ln()
}

/// First index of the row's maximum (what Keras' argmax returns on ties).
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// The weight of a softmax_ce sample of class t: `w[t]`, 1 unweighted.
fn ce_weight(w: Option<&[f64]>, t: u32) -> f64 {
    w.map_or(1.0, |w| w[t as usize])
}

/// loss[0] = mean over samples of −log softmax(z)[label].
/// loss: [1]; z (logits): [N, K]; labels: [N] u32, each < K.
pub fn softmax_ce_forward(loss: &mut [f64], z: &[f64], labels: &[u32], n: usize, k: usize) {
    softmax_ce_forward_smoothed(loss, z, labels, n, k, None, 0.0);
}

/// −Σ_j y'_j·log softmax(row)_j with y' = (1 − S)·onehot(t) + S/K.
fn ce_smoothed(row: &[f64], t: u32, smoothing: f64) -> f64 {
    let lse = log_sum_exp(row);
    let k = row.len() as f64;
    row.iter()
        .enumerate()
        .map(|(j, &v)| {
            let onehot = if j == t as usize { 1.0 } else { 0.0 };
            (onehot * (1.0 - smoothing) + smoothing / k) * (lse - v)
        })
        .sum()
}

/// loss[0] = Σ w[label]·CE(y', softmax(z)) / N, y' = (1 − S)·onehot + S/K (see the module doc).
pub fn softmax_ce_forward_smoothed(
    loss: &mut [f64],
    z: &[f64],
    labels: &[u32],
    n: usize,
    k: usize,
    w: Option<&[f64]>,
    smoothing: f64,
) {
    assert_eq!(z.len(), n * k);
    let mut s = 0.0;
    for (row, &t) in z.chunks(k).zip(labels) {
        s += ce_weight(w, t) * ce_smoothed(row, t, smoothing);
    }
    loss[0] = s / n as f64;
}

/// dz = (softmax(z) − onehot(label)) / N (writes dz). dz, z: [N, K]; labels: [N].
pub fn softmax_ce_backward(dz: &mut [f64], z: &[f64], labels: &[u32], n: usize, k: usize) {
    softmax_ce_backward_smoothed(dz, z, labels, n, k, None, 0.0);
}

/// dz = (softmax(z) − y')·w[label] / N (writes dz): the gradient of the smoothed forward.
pub fn softmax_ce_backward_smoothed(
    dz: &mut [f64],
    z: &[f64],
    labels: &[u32],
    n: usize,
    k: usize,
    w: Option<&[f64]>,
    smoothing: f64,
) {
    assert_eq!(dz.len(), n * k);
    for s in 0..n {
        let row = &z[s * k..(s + 1) * k];
        let lse = log_sum_exp(row);
        let ws = ce_weight(w, labels[s]);
        for j in 0..k {
            let onehot = if j == labels[s] as usize { 1.0 } else { 0.0 };
            let y = onehot * (1.0 - smoothing) + smoothing / k as f64;
            dz[s * k + j] = ((row[j] - lse).exp() - y) * ws / n as f64;
        }
    }
}

/// metrics += [Σ CE, #(argmax(z) == label), N]. metrics: [3]; z: [N, K]; labels: [N].
pub fn softmax_ce_metrics(metrics: &mut [f64], z: &[f64], labels: &[u32], n: usize, k: usize) {
    softmax_ce_metrics_smoothed(metrics, z, labels, n, k, None, 0.0);
}

/// metrics += [Σ w[label]·CE(y', softmax(z)), #(argmax(z) == label), N].
pub fn softmax_ce_metrics_smoothed(
    metrics: &mut [f64],
    z: &[f64],
    labels: &[u32],
    n: usize,
    k: usize,
    w: Option<&[f64]>,
    smoothing: f64,
) {
    for (row, &t) in z.chunks(k).zip(labels).take(n) {
        metrics[0] += ce_weight(w, t) * ce_smoothed(row, t, smoothing);
        metrics[1] += f64::from(u8::from(argmax(row) == t as usize));
    }
    metrics[2] += n as f64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{grad_check, random_f64};

    #[test]
    fn sigmoid_bce_backward_matches_central_differences() {
        let (n, l) = (5, 3);
        let z = random_f64(1, n * l, -6.0, 6.0);
        let y: Vec<f64> = random_f64(2, n * l, 0.0, 1.0)
            .iter()
            .map(|v| v.round())
            .collect();
        let mut dz = vec![0.0; n * l];
        sigmoid_bce_backward(&mut dz, &z, &y, n, l);
        let loss = |z: &[f64]| {
            let mut s = [0.0];
            sigmoid_bce_forward(&mut s, z, &y, n, l);
            s[0]
        };
        assert!(grad_check(&z, &dz, loss, 1e-6) < 1e-8);
    }

    #[test]
    fn softmax_ce_backward_matches_central_differences() {
        let (n, k) = (4, 5);
        let z = random_f64(3, n * k, -4.0, 4.0);
        let labels = [0, 4, 2, 2];
        let mut dz = vec![0.0; n * k];
        softmax_ce_backward(&mut dz, &z, &labels, n, k);
        let loss = |z: &[f64]| {
            let mut s = [0.0];
            softmax_ce_forward(&mut s, z, &labels, n, k);
            s[0]
        };
        assert!(grad_check(&z, &dz, loss, 1e-6) < 1e-8);
    }

    /// The largest central-difference error of sigmoid_bce's backward against its forward, with
    /// class weights `w` and smoothing `smoothing`.
    fn bce_grad_error(z: &[f64], y: &[f64], n: usize, l: usize, w: &[f64], smoothing: f64) -> f64 {
        let mut dz = vec![0.0; n * l];
        sigmoid_bce_backward_smoothed(&mut dz, z, y, n, l, Some(w), smoothing);
        let loss = |z: &[f64]| {
            let mut s = [0.0];
            sigmoid_bce_forward_smoothed(&mut s, z, y, n, l, Some(w), smoothing);
            s[0]
        };
        grad_check(z, &dz, loss, 1e-6)
    }

    /// softmax_ce's counterpart of [`bce_grad_error`].
    fn ce_grad_error(
        z: &[f64],
        labels: &[u32],
        n: usize,
        k: usize,
        w: &[f64],
        smoothing: f64,
    ) -> f64 {
        let mut dz = vec![0.0; n * k];
        softmax_ce_backward_smoothed(&mut dz, z, labels, n, k, Some(w), smoothing);
        let loss = |z: &[f64]| {
            let mut s = [0.0];
            softmax_ce_forward_smoothed(&mut s, z, labels, n, k, Some(w), smoothing);
            s[0]
        };
        grad_check(z, &dz, loss, 1e-6)
    }

    #[test]
    fn weighted_sigmoid_bce_backward_matches_central_differences() {
        let (n, l) = (6, 1);
        let z = random_f64(4, n * l, -6.0, 6.0);
        let y = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0];
        assert!(bce_grad_error(&z, &y, n, l, &[0.75, 1.5], 0.0) < 1e-8);
    }

    #[test]
    fn weighted_softmax_ce_backward_matches_central_differences() {
        let (n, k) = (4, 3);
        let z = random_f64(5, n * k, -4.0, 4.0);
        assert!(ce_grad_error(&z, &[0, 2, 1, 2], n, k, &[0.5, 2.0, 3.25], 0.0) < 1e-8);
    }

    #[test]
    fn smoothed_sigmoid_bce_backward_matches_central_differences() {
        let (n, l) = (5, 3);
        let z = random_f64(6, n * l, -6.0, 6.0);
        let y: Vec<f64> = random_f64(7, n * l, 0.0, 1.0)
            .iter()
            .map(|v| v.round())
            .collect();
        assert!(bce_grad_error(&z, &y, n, l, &[0.75, 1.5], 0.2) < 1e-8);
    }

    #[test]
    fn smoothed_softmax_ce_backward_matches_central_differences() {
        let (n, k) = (4, 5);
        let z = random_f64(8, n * k, -4.0, 4.0);
        let w = [0.5, 2.0, 3.25, 1.0, 0.8];
        assert!(ce_grad_error(&z, &[0, 4, 2, 2], n, k, &w, 0.15) < 1e-8);
    }

    /// Keras' numbers: BinaryCrossentropy(label_smoothing=0.2) trains towards 0.1 / 0.9, and
    /// CategoricalCrossentropy(label_smoothing=S) towards 1 − S + S/K and S/K: the gradient
    /// vanishes exactly where the prediction equals the smoothed target. S = 1 is the uniform
    /// target, S = 0 the plain loss.
    #[test]
    fn smoothing_by_hand() {
        // σ(z) = 0.9 and target 1 with S = 0.2: y' = 0.9, so dz = 0.
        let z = (0.9f64 / 0.1).ln();
        let mut dz = [0.0];
        sigmoid_bce_backward_smoothed(&mut dz, &[z], &[1.0], 1, 1, None, 0.2);
        assert!(dz[0].abs() < 1e-15, "{}", dz[0]);
        sigmoid_bce_backward_smoothed(&mut dz, &[-z], &[0.0], 1, 1, None, 0.2);
        assert!(dz[0].abs() < 1e-15, "{}", dz[0]);
        // K = 4, S = 0.4: y' = [0.7, 0.1, 0.1, 0.1] for label 0; logits log y' give p = y'.
        let row: Vec<f64> = [0.7f64, 0.1, 0.1, 0.1].iter().map(|p| p.ln()).collect();
        let mut dz = [0.0; 4];
        softmax_ce_backward_smoothed(&mut dz, &row, &[0], 1, 4, None, 0.4);
        assert!(dz.iter().all(|d| d.abs() < 1e-15), "{dz:?}");
        // S = 1 on equal logits: every target is 1/K, the loss log K, the gradient 0.
        let mut s = [0.0];
        softmax_ce_forward_smoothed(&mut s, &[0.0; 4], &[2], 1, 4, None, 1.0);
        assert!((s[0] - 4f64.ln()).abs() < 1e-15);
        // S = 0 is the plain loss, bit for bit.
        let z = random_f64(9, 12, -5.0, 5.0);
        let (mut a, mut b) = ([0.0], [0.0]);
        softmax_ce_forward(&mut a, &z, &[1, 0, 2], 3, 4);
        softmax_ce_forward_smoothed(&mut b, &z, &[1, 0, 2], 3, 4, None, 0.0);
        assert!((a[0] - b[0]).abs() < 1e-15);
        // Accuracy counts the given labels, whatever S.
        let mut m = [0.0; 3];
        softmax_ce_metrics_smoothed(&mut m, &[0.0, 1.0, 0.0], &[1], 1, 3, None, 0.5);
        assert_eq!((m[1], m[2]), (1.0, 1.0));
    }

    /// Keras' reduction: Σ w·l / N (not / Σ w), and the accuracy count is not weighted.
    #[test]
    fn weighted_losses_by_hand() {
        let mut s = [0.0];
        // z = 0: every BCE is log 2; weights 1 (target 0) and 3 (target 1): (1 + 3)·log 2 / 2.
        sigmoid_bce_forward_smoothed(
            &mut s,
            &[0.0, 0.0],
            &[0.0, 1.0],
            2,
            1,
            Some(&[1.0, 3.0]),
            0.0,
        );
        assert!((s[0] - 2.0 * 2f64.ln()).abs() < 1e-15);
        // Equal logits over 4 classes: CE = log 4 per sample; labels 0 and 3 weigh 0.5 and 2.5.
        let w = [0.5, 1.0, 1.0, 2.5];
        softmax_ce_forward_smoothed(&mut s, &[0.0; 8], &[0, 3], 2, 4, Some(&w), 0.0);
        assert!((s[0] - 1.5 * 4f64.ln()).abs() < 1e-12);
        let mut m = [0.0; 3];
        softmax_ce_metrics_smoothed(&mut m, &[0.0; 8], &[0, 3], 2, 4, Some(&w), 0.0);
        assert!((m[0] - 3.0 * 4f64.ln()).abs() < 1e-12);
        // Both samples predict class 0 (the first maximum): one correct, unweighted.
        assert_eq!((m[1], m[2]), (1.0, 2.0));
    }

    #[test]
    fn losses_by_hand() {
        let mut s = [0.0];
        // z = 0: σ = 1/2, BCE = log 2 for either target.
        sigmoid_bce_forward(&mut s, &[0.0, 0.0], &[1.0, 0.0], 2, 1);
        assert!((s[0] - 2f64.ln()).abs() < 1e-15);
        // Saturated logits stay finite: z = 100, y = 0 costs 100; z = −100, y = 0 costs ~0.
        sigmoid_bce_forward(&mut s, &[100.0, -100.0], &[0.0, 0.0], 1, 2);
        assert!((s[0] - 50.0).abs() < 1e-12);
        // Equal logits over K classes: CE = log K, and huge logits do not overflow.
        softmax_ce_forward(&mut s, &[1e3, 1e3, 1e3, 1e3], &[2], 1, 4);
        assert!((s[0] - 4f64.ln()).abs() < 1e-12);
        let mut m = [0.0; 3];
        softmax_ce_metrics(&mut m, &[1.0, 3.0, 3.0, 0.0, 5.0, -1.0], &[1, 0], 2, 3);
        // Sample 0: the first of two tied maxima is index 1 (correct); sample 1 predicts 1.
        assert_eq!((m[1], m[2]), (1.0, 2.0));
        let mut m = [0.0; 3];
        sigmoid_bce_metrics(&mut m, &[0.5, -0.5, 0.0], &[1.0, 1.0, 0.0], 1, 3);
        assert_eq!((m[1], m[2]), (2.0, 3.0));
    }
}
