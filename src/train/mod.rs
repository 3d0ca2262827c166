//! The trainer's files: checkpoints and `model.json` ([`checkpoint`]), the per-epoch metrics CSV
//! ([`metrics`]), the training-curve PNG ([`plot`]), all written through [`atomic::write_atomic`]
//! so that a crash never leaves a half-written file behind.

pub mod atomic;
pub mod checkpoint;
pub mod fit;
pub mod metrics;
pub mod plot;
