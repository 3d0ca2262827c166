//! Evaluating a trained classifier on a labelled data set (`gpucnn evaluate`).
//!
//! - [`evaluate`]: the model on every image of a folder of class subfolders, or of a
//!   multi-label CSV, paired with the true labels; the evaluate command's plots.
//! - [`metrics`]: accuracy, per-class and macro precision/recall/F1, ROC AUC (binary, or
//!   one-vs-rest macro), the confusion matrix, as an [`metrics::EvalReport`] that renders as a
//!   table or as JSON.
//! - [`worst`]: likely label errors, the images with the highest loss (`--worst K`).
//!
//! The pictures (`confusion.png`, `roc.png`) are drawn by [`crate::plot`].

pub mod evaluate;
pub mod metrics;
pub mod worst;
