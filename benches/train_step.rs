//! The whole training step (forward, loss, backward, Adam: one submission) of xception_mini at
//! width 1.0, in images/s (criterion's elem/s). Shapes as the graph-executor issue asks:
//! 64×64 at batch 16 and 128×128 at batch 8.
//!
//! `cargo bench --bench train_step`
//!
//! After criterion's report, one line per case: images/s and the GFLOP/s achieved (2 FLOPs per
//! multiply-add of every convolution and dense pass, forward and backward:
//! `TrainStep::flops_per_step`), over every timed iteration; with
//! `GPUCNN_SGEMM_PEAK_GFLOPS=<the machine's sgemm GFLOP/s>` (e.g. from
//! `../shared/peers/sgemm.py`) also the share of that peak.
//!
//! `GPUCNN_STEP_CASES=180x128` (SIZExBATCH, comma-separated) times other shapes instead, e.g.
//! the Keras example's own 180×180 at batch 128 on a real GPU (scripts/gpu-report.sh).
//!
//! With `GPUCNN_KERAS_STEP="<python> <path>/keras_step.py"` (the peer script of
//! `../shared/peers/`, in a venv with `tensorflow-cpu`; never a dependency of the project), each
//! case is then also timed in Keras on the CPU, same model, size and batch, right after gpucnn's
//! own timing, and a `keras/<case>` line gives its images/s and the ratio: both measured on the
//! same machine in one run, which is the only comparison that means anything (machines differ
//! from day to day).

use std::cell::Cell;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use gpucnn::gpu::test_context;
use gpucnn::graph::executor::{BatchTargets, TrainStep};
use gpucnn::harness::random_vec;
use gpucnn::model::{XceptionConfig, xception_mini};

fn main() {
    gpucnn::bench::end_quietly_on_closed_pipe();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    let Some(ctx) = test_context() else { return };
    eprintln!("adapter: {}", ctx.summary());
    let mut group = c.benchmark_group("train_step");
    let mut lines = Vec::new();
    for (size, batch) in cases() {
        let model = xception_mini(&XceptionConfig {
            image_size: gpucnn::model::ImageSize::square(size),
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
        // One step outside the timings: pipelines a driver compiles on first use (seconds each
        // on a CPU adapter) must not count in the rate line below, which sums every timed
        // iteration, criterion's warm-up included.
        step.run(&ctx).unwrap();
        group.throughput(Throughput::Elements(batch as u64));
        let timed = Cell::new((0u64, Duration::ZERO));
        let id = format!("w1.0_{size}x{size}_b{batch}");
        group.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    step.run(&ctx).unwrap();
                }
                let elapsed = t.elapsed();
                let (n, total) = timed.get();
                timed.set((n + iters, total + elapsed));
                elapsed
            })
        });
        let (n, total) = timed.get();
        // A case that criterion's filter skipped was never timed: no line for it.
        if n > 0 {
            let work = (step.flops_per_step(), step.bytes_per_step());
            lines.push(rate_line(&id, batch, work, n, total));
            let ours = batch as f64 * n as f64 / total.as_secs_f64();
            if let Some(line) = keras_line(&id, size, batch, ours) {
                lines.push(line);
            }
        }
    }
    group.finish();
    c.final_summary();
    for line in lines {
        println!("{line}");
    }
}

/// `train_step/<id>: I img/s, G GFLOP/s achieved (F GFLOP and M MB moved a step[, P% of the
/// sgemm peak])`.
fn rate_line(
    id: &str,
    batch: usize,
    (flops, bytes): (u64, u64),
    steps: u64,
    total: Duration,
) -> String {
    let secs = total.as_secs_f64() / steps.max(1) as f64;
    let gflops = flops as f64 / secs / 1e9;
    let peak = std::env::var("GPUCNN_SGEMM_PEAK_GFLOPS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|p| *p > 0.0)
        .map(|p| format!(", {:.1}% of the {p} GFLOP/s sgemm peak", 100.0 * gflops / p))
        .unwrap_or_default();
    format!(
        "train_step/{id}: {:.2} img/s, {gflops:.1} GFLOP/s achieved ({:.2} GFLOP and {:.0} MB \
         moved a step, {steps} timed steps){peak}",
        batch as f64 / secs,
        flops as f64 / 1e9,
        bytes as f64 / 1e6
    )
}

/// The cases to time: `GPUCNN_STEP_CASES` (`SIZExBATCH,...`) or the two shapes.
fn cases() -> Vec<(usize, usize)> {
    let Ok(spec) = std::env::var("GPUCNN_STEP_CASES") else {
        return vec![(64, 16), (128, 8)];
    };
    spec.split(',')
        .map(|c| {
            c.trim()
                .split_once('x')
                .and_then(|(s, b)| Some((s.parse().ok()?, b.parse().ok()?)))
                .filter(|&(s, b): &(usize, usize)| s >= 8 && b >= 1)
                .unwrap_or_else(|| {
                    panic!("GPUCNN_STEP_CASES: '{c}' is not SIZExBATCH (e.g. 180x128)")
                })
        })
        .collect()
}

/// The environment variable naming the Keras peer command (see the module doc).
const KERAS_VAR: &str = "GPUCNN_KERAS_STEP";

/// Runs `$GPUCNN_KERAS_STEP --size S --batch B --steps N` when set and returns
/// `keras/<id>: K img/s; gpucnn/keras = R`, or a line saying why it could not be measured.
fn keras_line(id: &str, size: usize, batch: usize, ours: f64) -> Option<String> {
    let cmd = std::env::var(KERAS_VAR)
        .ok()
        .filter(|c| !c.trim().is_empty())?;
    // Enough steps for ~10 s of Keras at the rates seen on 2 cores (~90 img/s at 64², b16).
    let steps = (1500 / batch / (size * size / 4096).max(1)).clamp(5, 60);
    eprintln!("{KERAS_VAR}: timing {steps} Keras steps at {size}x{size}, batch {batch} ...");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{cmd} --size {size} --batch {batch} --steps {steps}"
        ))
        .stderr(std::process::Stdio::null())
        .output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => return Some(format!("keras/{id}: `{cmd}` failed ({})", o.status)),
        Err(e) => return Some(format!("keras/{id}: cannot run `{cmd}`: {e}")),
    };
    let rate = text
        .lines()
        .find_map(|l| l.split("keras images/s=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    Some(match rate {
        Some(k) => format!(
            "keras/{id}: {k:.2} img/s (Keras on the CPU, {steps} steps, same machine, same run); \
             gpucnn/keras = {:.3}",
            ours / k
        ),
        None => format!("keras/{id}: no `keras images/s=` line in the output of `{cmd}`"),
    })
}
