//! The graph executor's whole training step against the CPU reference step, and training on
//! one fixed batch driving the loss down.

use gpucnn::gpu::test_context;
use gpucnn::graph::executor::{BatchTargets, TrainStep};
use gpucnn::graph::parity::{compare_step, small_model};
use gpucnn::selftest::{compare, random_vec};

fn check_step(classes: usize) {
    let Some(ctx) = test_context() else { return };
    let model = small_model(classes);
    let r = compare_step(&ctx, &model, 4, 42).unwrap();
    let mut failures = Vec::new();
    for c in r.compared() {
        let s = compare(&c);
        if !s.ok {
            failures.push(s.report);
        }
    }
    if !failures.is_empty() {
        // Name the parameter tensors at fault.
        for s in &r.layout.slots {
            let (g, c) = (
                &r.grads.0[s.offset..s.offset + s.len],
                &r.grads.1[s.offset..s.offset + s.len],
            );
            let err = g
                .iter()
                .zip(c)
                .fold(0.0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
            let scale = c.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            eprintln!(
                "{:<45} grad max err {err:.3e} (max |g| {scale:.3e})",
                s.name
            );
        }
        panic!(
            "train step differs from the CPU reference:\n{}",
            failures.join("\n")
        );
    }
}

#[test]
fn train_step_matches_cpu_reference_binary() {
    check_step(2);
}

#[test]
fn train_step_matches_cpu_reference_multiclass() {
    check_step(10);
}

#[test]
fn ten_steps_on_one_batch_drive_the_loss_down() {
    let Some(ctx) = test_context() else { return };
    let model = small_model(2);
    let n = 8;
    let step = TrainStep::new(&ctx, &model, n, 1e-3).unwrap();
    step.load_params(&ctx, &step.layout.initial_values(3));
    let x = random_vec(4, n * 32 * 32 * 3, 0.0, 255.0);
    let t: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
    step.write_batch(&ctx, &x, BatchTargets::Binary(&t));
    let mut losses = Vec::new();
    for s in 0..10 {
        step.set_dropout_seed(&ctx, s);
        step.run(&ctx).unwrap();
        losses.push(step.read_loss(&ctx).unwrap());
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[9] < 0.5 * losses[0], "loss did not fall: {losses:?}");
    let [loss_sum, correct, seen] = step.read_metrics(&ctx).unwrap();
    assert_eq!(seen, (10 * n) as f32);
    assert!(correct <= seen && loss_sum > 0.0);
}
