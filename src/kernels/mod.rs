//! Rust side of the WGSL kernels: one module per shader family, owning its pipelines.
//!
//! The shader machinery ([`ShaderFamily`], [`Dispatch`], [`Bind`]) lives in [`crate::gpu::shader`]
//! and is re-exported here, where the families use it.
//!
//! Each family is a directory, `kernels/<family>/`:
//! - `mod.rs`: what the executor calls: the `Params` mirror of the WGSL struct, the pipelines,
//!   the functions that build a [`Dispatch`] per pass, and the variant choice where the family
//!   has variants. It imports no parity or bench code.
//! - `checks.rs`: the family's parity checks (`checks::all`), GPU against the `cpu::` reference.
//! - `bench.rs`: the family's benchmark cases (`bench::cases`) at the model's real shapes.
//!
//! One directory per family rather than one file with three inline modules: the dispatch code is
//! what one reads and changes most, and it is 150–550 lines on its own; the checks, often longer
//! than the code they prove, would push most families past 600 lines. The checks and bench cases
//! sit beside the code they exercise (a child module sees the family's private helpers, so
//! nothing is made public for the tests' sake), and [`registry::FAMILIES`] lists them all for
//! `gpucnn selftest`, `tests/parity.rs` and `benches/kernels.rs`.
//!
//! The parity harness ([`crate::harness`]) and the bench harness ([`crate::bench`]) are leaves:
//! they import no kernel, so the families can import them without a cycle
//! (`tests/module_deps.rs` keeps it that way).

use crate::gpu::GpuContext;
pub use crate::gpu::shader::{
    Bind, BufferRange, Dispatch, MAX_GROUPS_PER_DIM, MirrorState, ShaderFamily, grid_1d,
    groups_for, record_all, record_all_continued, record_all_timed, run_all, validate_wgsl,
};

pub mod adam;
pub mod augment;
pub mod augment_color;
pub mod batch_norm;
pub mod conv2d;
pub mod dense;
pub mod depthwise_conv2d;
pub mod elementwise;
pub mod gemm;
pub mod loss;
pub mod pointwise_conv2d;
pub mod pool;
pub mod registry;
pub mod relu;
pub mod rescale;
pub mod tune;
pub mod variants;

/// A layer's kernel W and bias b, as a linear forward pass reads them (the counterpart of
/// [`WeightGrads`]).
#[derive(Clone, Copy)]
pub struct Weights<'a> {
    pub w: &'a dyn Bind,
    pub b: &'a dyn Bind,
}

/// The buffers a weight-gradient pass writes (conv2d, dense, pointwise_conv2d): dW, db and the
/// scratch of its split-K partials (None only where the family's `backward_weight_scratch_len`
/// is 0).
#[derive(Clone, Copy)]
pub struct WeightGrads<'a> {
    pub dw: &'a dyn Bind,
    pub db: &'a dyn Bind,
    pub scratch: Option<&'a dyn Bind>,
}

/// Which variant of each hot kernel a training step on this adapter uses, and why, as printed
/// with the adapter ([`variants::report`]).
pub fn variant_report(ctx: &GpuContext) -> String {
    variants::report(ctx)
}
