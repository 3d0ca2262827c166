//! The whole training step (forward, loss, backward, Adam: one submission) of xception_mini at
//! width 1.0, in images/s (criterion's elem/s). Shapes as the graph-executor issue asks:
//! 64×64 at batch 16 and 128×128 at batch 8.
//!
//! `cargo bench --bench train_step`

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use gpucnn::gpu::test_context;
use gpucnn::graph::executor::{BatchTargets, TrainStep};
use gpucnn::harness::random_vec;
use gpucnn::model::{XceptionConfig, xception_mini};

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    let Some(ctx) = test_context() else { return };
    eprintln!("adapter: {}", ctx.summary());
    let mut group = c.benchmark_group("train_step");
    for (size, batch) in [(64usize, 16usize), (128, 8)] {
        let model = xception_mini(&XceptionConfig {
            image_size: size,
            ..Default::default()
        })
        .unwrap();
        let step = TrainStep::new(&ctx, &model, batch, 1e-3).expect("compile the step");
        step.load_params(&ctx, &step.layout.initial_values(1));
        let x = random_vec(2, batch * size * size * 3, 0.0, 255.0);
        let t: Vec<f32> = (0..batch).map(|i| (i % 2) as f32).collect();
        step.write_batch(&ctx, &x, BatchTargets::Binary(&t));
        let m = step.memory;
        eprintln!(
            "{size}x{size} batch {batch}: {} dispatches; pooled activations {:.1} MiB in {} buffers (naive {:.1} MiB)",
            step.dispatch_count(&ctx),
            m.pooled_bytes as f64 / 1048576.0,
            m.pool_buffers,
            m.naive_bytes as f64 / 1048576.0
        );
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("w1.0_{size}x{size}_b{batch}"), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    step.run(&ctx).unwrap();
                }
                t.elapsed()
            })
        });
    }
    group.finish();
    c.final_summary();
}
