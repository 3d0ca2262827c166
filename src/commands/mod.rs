//! The `gpucnn` subcommands, one module each: what a command does between its parsed flags and
//! its exit status. `src/main.rs` only parses the command line and calls the one `run` of the
//! subcommand given.
//!
//! Each module holds its subcommand's flags as a `clap::Args` struct beside its `run(args,
//! adapter)`: a flag's help text and the code that gives it its meaning change together, in
//! one file. The subcommands' own descriptions (their `--help` paragraphs), the exit-status
//! note and the global `--adapter`/`--backend` flags stay in `main.rs`, the one place that
//! describes the command line as a whole.
//!
//! Standard output goes through [`output`] (safe against a closed pipe); messages for the
//! user (progress, warnings, `Wrote …`) go to stderr.

use std::process::ExitCode;

use anyhow::Context;

use crate::gpu::{AdapterOptions, GpuContext};

pub mod demo;
pub mod evaluate;
pub mod exit;
pub mod info;
pub mod inspect;
pub mod output;
pub mod predict;
pub mod preview;
pub mod profile;
pub mod scan;
pub mod selftest;
pub mod summary;
pub mod train;

/// Opens the adapter chosen by the global `--adapter`/`--backend` flags.
pub fn open_gpu(opts: &AdapterOptions) -> anyhow::Result<GpuContext> {
    GpuContext::new(opts).context("opening the GPU")
}

/// Exit status 0 when `failed` is 0, else 1 (predict: unreadable images; selftest: failed
/// checks).
fn success_unless(failed: usize) -> ExitCode {
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
