//! `dense` kernels: to be written (see issue 2). Until then it contributes no checks, and
//! tests/parity.rs fails for it.

use crate::gpu::GpuContext;
use crate::selftest::Check;

/// Parity checks of this family (none yet).
pub fn checks(_ctx: &GpuContext) -> Vec<Check> {
    Vec::new()
}

/// Benchmark cases of this family (none yet).
pub fn bench_cases(_ctx: &GpuContext) -> Vec<crate::bench::BenchCase> {
    Vec::new()
}
