//! Every kernel, forward and backward, at the real model's shapes (batch 8, 180×180), plus
//! GEMM variants side by side. Throughput is GFLOP/s (compute-bound) or GB/s (memory-bound).
//! What is timed is submit + GPU execution + wait, never pipeline or bind-group creation.
//!
//! The cases come from `kernels::registry::FAMILIES`, family by family (each family's buffers
//! are freed before the next one's are made). Filter like any criterion bench:
//! `cargo bench --bench kernels -- gemm`.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use gpucnn::bench::{BenchCase, Work};
use gpucnn::gpu::{GpuContext, test_context};
use gpucnn::kernels::registry::FAMILIES;

fn main() {
    gpucnn::bench::end_quietly_on_closed_pipe();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let Some(ctx) = test_context() else { return };
    eprintln!("adapter: {}", ctx.summary());
    eprintln!("kernel variants: {}", gpucnn::kernels::variant_report(&ctx));
    for family in FAMILIES {
        bench_family(&mut c, &ctx, &(family.bench_cases)(&ctx));
    }
    c.final_summary();
}

/// One criterion group per op of the family (`pool` has max_pool2d and global_avg_pool2d), in
/// the order the family lists its cases.
fn bench_family(c: &mut Criterion, ctx: &GpuContext, cases: &[BenchCase]) {
    let mut groups: Vec<&'static str> = cases.iter().map(|c| c.group).collect();
    groups.dedup();
    for g in groups {
        let mut group = c.benchmark_group(g);
        for case in cases.iter().filter(|c| c.group == g) {
            group.throughput(match case.work {
                Work::Flops(f) => Throughput::Elements(f),
                Work::Bytes(b) => Throughput::Bytes(b),
            });
            group.bench_function(case.id.as_str(), |b| {
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        case.run_once(ctx);
                    }
                    t.elapsed()
                })
            });
        }
        group.finish();
    }
}
