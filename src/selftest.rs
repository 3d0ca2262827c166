//! `gpucnn selftest`: every parity check of every kernel family (listed by
//! [`crate::kernels::registry::FAMILIES`]), then the whole-step checks of the graph.
//!
//! The harness itself (checks, comparison, random inputs) is [`crate::harness`], a leaf that
//! imports no kernel.

use crate::gpu::GpuContext;
use crate::harness::Check;

/// Every check of every kernel family in registry order, then the whole-step checks, in a
/// stable order (the rows of `gpucnn selftest`).
pub fn all_checks(ctx: &GpuContext) -> Vec<Check> {
    let mut v: Vec<Check> = crate::kernels::registry::FAMILIES
        .iter()
        .flat_map(|f| (f.checks)(ctx))
        .collect();
    v.extend(crate::step_parity::checks(ctx));
    v
}
