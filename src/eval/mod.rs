//! Evaluating a trained classifier on a labelled data set (`gpucnn evaluate`).
//!
//! - [`metrics`]: accuracy, per-class and macro precision/recall/F1, ROC AUC (binary, or
//!   one-vs-rest macro), the confusion matrix, as an [`metrics::EvalReport`] that renders as a
//!   table or as JSON.
//! - [`plots`]: `confusion.png` (a heat map of the confusion matrix) and `roc.png` (the ROC
//!   curve of a binary model).

pub mod metrics;
pub mod plots;
