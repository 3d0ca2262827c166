//! The bench harness: benchmark cases contributed by each kernel family (`bench::cases`,
//! listed by `kernels::registry::FAMILIES`), timed by `benches/kernels.rs`.
//!
//! A case owns its buffers and pre-built [`Dispatch`]es; the bench records them into one
//! command encoder, submits and waits, so what is timed is the GPU work (plus one submit),
//! never pipeline or bind-group creation.
//!
//! A leaf: it imports only [`crate::gpu`], never a kernel family.

use crate::gpu::GpuContext;
use crate::gpu::shader::{Dispatch, run_all};

/// What one run of a case does, for criterion's throughput: FLOPs (compute-bound kernels,
/// reported as GFLOP/s) or bytes moved (memory-bound kernels, reported as GB/s).
#[derive(Debug, Clone, Copy)]
pub enum Work {
    Flops(u64),
    Bytes(u64),
}

/// One benchmark: criterion group `group` (the op), id `id` (shape, pass and variant, e.g.
/// `8x90x90x128_k3s2/forward/tiled`).
pub struct BenchCase {
    pub group: &'static str,
    pub id: String,
    pub work: Work,
    pub dispatches: Vec<Dispatch>,
    /// Buffers the dispatches bind, kept alive for the case's lifetime.
    pub buffers: Vec<wgpu::Buffer>,
}

impl BenchCase {
    /// Records all dispatches in one pass, submits, and waits for the GPU.
    pub fn run_once(&self, ctx: &GpuContext) {
        let refs: Vec<&Dispatch> = self.dispatches.iter().collect();
        run_all(ctx, &refs).expect("bench dispatch failed");
    }
}
