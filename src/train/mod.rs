//! The trainer's files: checkpoints and `model.json` ([`checkpoint`]), the per-epoch metrics
//! CSV ([`metrics`]), the training-curve PNG ([`crate::plot::curves`]), all written through
//! [`crate::atomic::write_atomic`] so that a crash never leaves a half-written file behind, and
//! the run folder itself: its lock, its fingerprint and what an interrupted run left
//! ([`run_folder`]); what the user sees while a run works, its status lines and estimates
//! ([`progress`]), and the CLI's display of a run as an observer of its events ([`terminal`]).

pub mod api;
pub mod callbacks;
pub mod checkpoint;
pub mod class_weight;
pub mod epoch;
pub mod fit;
pub mod interrupt;
pub mod metrics;
pub mod progress;
pub mod regularization;
pub mod run_folder;
pub mod setup;
pub mod tensorboard;
pub mod terminal;
