//! Classification metrics from true labels and predicted class probabilities.
//!
//! Conventions follow scikit-learn's (`precision_recall_fscore_support` with
//! `zero_division=0`, `roc_auc_score`):
//!
//! - the predicted class is the argmax of a sample's probabilities, ties going to the lowest
//!   class index (a NaN probability never wins);
//! - the precision of a class that is never predicted is 0, the recall of a class without
//!   samples is 0, and F1 is 0 when precision + recall is 0;
//! - macro averages are unweighted means over all classes, including classes without samples;
//! - ROC AUC is the area under the ROC curve whose thresholds are every distinct score, so tied
//!   scores move the curve diagonally; equivalently the Mann–Whitney statistic, the chance that
//!   a random positive scores above a random negative, ties counting ½. It is undefined
//!   (`None`) for a class without positives or without negatives;
//! - a binary model's AUC is that of class 1's score; with more classes it is the macro mean
//!   of the one-vs-rest AUCs of every class, undefined if any class's is;
//! - a NaN score (a diverged model) ranks below every number and ties with other NaNs.

use serde_json::{Value, json};

/// Everything `gpucnn evaluate` reports about a model on a labelled data set.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// The class names, index = class.
    pub class_names: Vec<String>,
    /// Fraction of samples whose predicted class is the true class (0 without samples).
    pub accuracy: f64,
    /// Per-class precision: TP / (TP + FP), 0 for a class never predicted.
    pub precision: Vec<f64>,
    /// Per-class recall: TP / (TP + FN), 0 for a class without samples.
    pub recall: Vec<f64>,
    /// Per-class F1: the harmonic mean of precision and recall, 0 when both are 0.
    pub f1: Vec<f64>,
    /// Unweighted mean of `precision` over all classes.
    pub macro_precision: f64,
    /// Unweighted mean of `recall` over all classes.
    pub macro_recall: f64,
    /// Unweighted mean of `f1` over all classes.
    pub macro_f1: f64,
    /// ROC AUC: class 1's for two classes, the one-vs-rest macro mean for more; `None` where
    /// undefined (see the module documentation).
    pub auc: Option<f64>,
    /// One-vs-rest ROC AUC of each class's score; `None` for a class without positives or
    /// without negatives.
    pub auc_per_class: Vec<Option<f64>>,
    /// `confusion_matrix[t][p]`: the number of samples of true class `t` predicted as `p`.
    pub confusion_matrix: Vec<Vec<usize>>,
    /// The number of samples of each true class.
    pub support: Vec<usize>,
}

impl crate::plot::confusion::Confusion for EvalReport {
    fn class_names(&self) -> &[String] {
        &self.class_names
    }
    fn counts(&self) -> &[Vec<usize>] {
        &self.confusion_matrix
    }
}

/// The predicted class of one probability row: the argmax, ties to the lowest index, NaN never
/// winning (an all-NaN row predicts class 0).
pub fn argmax(probs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > probs[best] || (probs[best].is_nan() && !p.is_nan()) {
            best = i;
        }
    }
    best
}

/// Computes every metric of `labels` (true class per sample) against `probs` (one row of
/// class probabilities per sample, in the order of `class_names`).
///
/// # Panics
/// If `labels` and `probs` differ in length, a row of `probs` does not have one entry per
/// class, or a label is not a class index: these are caller bugs, not data conditions.
pub fn evaluate(class_names: &[String], labels: &[usize], probs: &[Vec<f32>]) -> EvalReport {
    let k = class_names.len();
    assert_eq!(
        labels.len(),
        probs.len(),
        "evaluate: {} labels but {} probability rows",
        labels.len(),
        probs.len()
    );
    let mut cm = vec![vec![0usize; k]; k];
    for (i, (&t, row)) in labels.iter().zip(probs).enumerate() {
        assert!(
            t < k,
            "evaluate: sample {i} has label {t}, but there are {k} classes"
        );
        assert_eq!(
            row.len(),
            k,
            "evaluate: sample {i} has {} probabilities for {k} classes",
            row.len()
        );
        cm[t][argmax(row)] += 1;
    }
    let n = labels.len();
    let correct: usize = (0..k).map(|c| cm[c][c]).sum();
    let accuracy = ratio(correct, n);
    let support: Vec<usize> = cm.iter().map(|r| r.iter().sum()).collect();
    let predicted: Vec<usize> = (0..k).map(|c| cm.iter().map(|r| r[c]).sum()).collect();
    let precision: Vec<f64> = (0..k).map(|c| ratio(cm[c][c], predicted[c])).collect();
    let recall: Vec<f64> = (0..k).map(|c| ratio(cm[c][c], support[c])).collect();
    let f1: Vec<f64> = precision
        .iter()
        .zip(&recall)
        .map(|(&p, &r)| {
            if p + r > 0.0 {
                2.0 * p * r / (p + r)
            } else {
                0.0
            }
        })
        .collect();

    let auc_per_class: Vec<Option<f64>> = (0..k)
        .map(|c| {
            let pos: Vec<bool> = labels.iter().map(|&t| t == c).collect();
            let scores: Vec<f32> = probs.iter().map(|r| r[c]).collect();
            roc_auc(&pos, &scores)
        })
        .collect();
    let auc = match k {
        0 => None,
        1 => auc_per_class[0],
        2 => auc_per_class[1],
        _ => auc_per_class
            .iter()
            .copied()
            .sum::<Option<f64>>()
            .map(|s| s / k as f64),
    };

    EvalReport {
        class_names: class_names.to_vec(),
        accuracy,
        macro_precision: mean(&precision),
        macro_recall: mean(&recall),
        macro_f1: mean(&f1),
        precision,
        recall,
        f1,
        auc,
        auc_per_class,
        confusion_matrix: cm,
        support,
    }
}

/// ROC AUC of `scores` for the positives `labels_binary` (the Mann–Whitney statistic, ties
/// counting ½); `None` without positives or without negatives.
///
/// # Panics
/// If the two slices differ in length.
pub fn roc_auc(labels_binary: &[bool], scores: &[f32]) -> Option<f64> {
    assert_eq!(
        labels_binary.len(),
        scores.len(),
        "roc_auc: labels and scores differ in length"
    );
    let p = labels_binary.iter().filter(|&&b| b).count();
    let n = labels_binary.len() - p;
    if p == 0 || n == 0 {
        return None;
    }
    // Sum of the positives' mid-ranks (1-based, tied scores sharing their average rank).
    let order = sorted_indices(scores);
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && same(scores[order[j + 1]], scores[order[i]]) {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid * order[i..=j].iter().filter(|&&s| labels_binary[s]).count() as f64;
        i = j + 1;
    }
    let (p, n) = (p as f64, n as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The ROC curve of `scores` for the positives `labels_binary`: `(false positive rate, true
/// positive rate)` points from `(0, 0)` to `(1, 1)`, one after each distinct score taken as
/// the threshold (highest first; a sample is positive when its score is ≥ the threshold), so
/// tied scores give one diagonal step. Its trapezoid area is [`roc_auc`]. A rate whose
/// denominator is zero (no negatives, or no positives) is reported as 0 throughout.
///
/// # Panics
/// If the two slices differ in length.
pub fn roc_curve(labels_binary: &[bool], scores: &[f32]) -> Vec<(f64, f64)> {
    assert_eq!(
        labels_binary.len(),
        scores.len(),
        "roc_curve: labels and scores differ in length"
    );
    let p = labels_binary.iter().filter(|&&b| b).count();
    let n = labels_binary.len() - p;
    let mut order = sorted_indices(scores);
    order.reverse();
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && same(scores[order[j + 1]], scores[order[i]]) {
            j += 1;
        }
        for &s in &order[i..=j] {
            if labels_binary[s] {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        points.push((ratio(fp, n), ratio(tp, p)));
        i = j + 1;
    }
    points
}

/// Indices of `scores` in ascending order, NaN below every number (as in [`argmax`], a NaN
/// score never ranks a sample up).
fn sorted_indices(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            // -0 and 0 end up adjacent, so `same` still sees them as one tied run.
            (false, false) => x.total_cmp(&y),
        }
    });
    order
}

/// Whether two scores tie (NaNs tie with each other; 0 and -0 tie).
fn same(a: f32, b: f32) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

impl EvalReport {
    /// The number of evaluated samples.
    pub fn samples(&self) -> usize {
        self.support.iter().sum()
    }

    /// The report as one JSON object: `accuracy`, `precision`, `recall`, `f1` (each
    /// `{"per_class": [...], "macro": x}`), `auc` (a number or null), `confusion_matrix` (rows =
    /// true class), `class_names`, plus `auc_per_class`, `support` and `samples`.
    pub fn to_json(&self) -> Value {
        let avg = |per: &[f64], m: f64| json!({ "per_class": per, "macro": m });
        json!({
            "accuracy": self.accuracy,
            "precision": avg(&self.precision, self.macro_precision),
            "recall": avg(&self.recall, self.macro_recall),
            "f1": avg(&self.f1, self.macro_f1),
            "auc": self.auc,
            "auc_per_class": self.auc_per_class,
            "confusion_matrix": self.confusion_matrix,
            "class_names": self.class_names,
            "support": self.support,
            "samples": self.samples(),
        })
    }

    /// A human-readable report: accuracy, a per-class table with the macro averages, and the
    /// confusion matrix (rows = true class, columns = predicted).
    pub fn render(&self) -> String {
        let k = self.class_names.len();
        let correct: usize = (0..k).map(|c| self.confusion_matrix[c][c]).sum();
        let mut out = format!(
            "accuracy  {:.4}  ({correct}/{} samples)\n",
            self.accuracy,
            self.samples()
        );
        out += &format!(
            "ROC AUC   {}{}\n\n",
            fmt_opt(self.auc),
            match k {
                2 => format!(" (class {:?})", self.class_names[1]),
                0 | 1 => String::new(),
                _ => " (one-vs-rest, macro)".into(),
            }
        );
        let name_w = self
            .class_names
            .iter()
            .map(|s| s.chars().count())
            .chain(["class".len(), "macro avg".len()])
            .max()
            .unwrap_or(5);
        out += &format!(
            "{:<name_w$}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}\n",
            "class", "precision", "recall", "f1", "auc", "support"
        );
        for c in 0..k {
            out += &format!(
                "{:<name_w$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>9}  {:>9}\n",
                self.class_names[c],
                self.precision[c],
                self.recall[c],
                self.f1[c],
                fmt_opt(self.auc_per_class[c]),
                self.support[c]
            );
        }
        out += &format!(
            "{:<name_w$}  {:>9.4}  {:>9.4}  {:>9.4}  {:>9}  {:>9}\n\n",
            "macro avg",
            self.macro_precision,
            self.macro_recall,
            self.macro_f1,
            fmt_opt(self.auc),
            self.samples()
        );
        out += "confusion matrix (rows: true class, columns: predicted class)\n";
        let cell_w = self
            .confusion_matrix
            .iter()
            .flatten()
            .map(|v| v.to_string().len())
            .chain((0..k).map(|c| c.to_string().len()))
            .max()
            .unwrap_or(1)
            .max(3);
        let labels: Vec<String> = (0..k)
            .map(|t| format!("[{t}] {}", self.class_names[t]))
            .collect();
        let lab_w = labels.iter().map(|s| s.chars().count()).max().unwrap_or(0);
        out += &format!("{:<lab_w$}", "");
        for c in 0..k {
            out += &format!("  {:>cell_w$}", format!("[{c}]"));
        }
        out += "\n";
        for (t, row) in self.confusion_matrix.iter().enumerate() {
            out += &format!("{:<lab_w$}", labels[t]);
            for v in row {
                out += &format!("  {v:>cell_w$}");
            }
            out += "\n";
        }
        out
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |a| format!("{a:.4}"))
}
