//! `gpucnn selftest`: every parity check of every kernel family (listed by
//! [`crate::kernels::registry::FAMILIES`]), then the whole-step checks of the graph.
//!
//! The harness itself (checks, comparison, random inputs) is [`crate::harness`]; it is
//! re-exported here so that `crate::selftest::{Check, compare, ...}` keeps working.

use crate::gpu::GpuContext;
pub use crate::harness::{
    Check, CheckResult, Compared, ShapeClass, Stats, compare, random_vec, run_check, to_f64,
};

/// Every check of every kernel family in registry order, then the whole-step checks, in a
/// stable order (the rows of `gpucnn selftest`).
pub fn all_checks(ctx: &GpuContext) -> Vec<Check> {
    let mut v: Vec<Check> = crate::kernels::registry::FAMILIES
        .iter()
        .flat_map(|f| (f.checks)(ctx))
        .collect();
    v.extend(crate::graph::parity::checks(ctx));
    v
}
