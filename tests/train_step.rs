//! The graph executor's whole training step against the CPU reference step, and training on
//! one fixed batch driving the loss down.

use gpucnn::gpu::test_context;
use gpucnn::graph::executor::StepOptions;
use gpucnn::graph::executor::{BatchTargets, TrainStep};
use gpucnn::harness::{compare, random_vec};
use gpucnn::step_parity::{compare_weighted_step, small_model, test_class_weights};

fn check_step(classes: usize, n: usize, micro: Option<usize>) {
    check_weighted_step(classes, n, micro, false);
}

/// One step against the reference; `weighted`: with non-uniform class weights (Keras'
/// class_weight) on the loss.
fn check_weighted_step(classes: usize, n: usize, micro: Option<usize>, weighted: bool) {
    check_model_step(&small_model(classes), classes, n, micro, weighted);
}

/// One step of `model` against the reference; returns the comparison (None without adapter).
fn check_model_step(
    model: &gpucnn::graph::Model,
    classes: usize,
    n: usize,
    micro: Option<usize>,
    weighted: bool,
) -> Option<gpucnn::step_parity::StepComparison> {
    let ctx = test_context()?;
    let opts = StepOptions {
        lr: 1e-3,
        micro,
        ..Default::default()
    };
    let w = weighted.then(|| test_class_weights(classes));
    let r = compare_weighted_step(&ctx, model, n, &opts, 42, w.as_deref()).unwrap();
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
    Some(r)
}

/// On lavapipe, texture mirrors of large buffers are views of the buffers' own memory
/// (gpu::alias), never copied: a step whose operands are that large (64×64 at width 1/4)
/// matches the reference, and it did read through such views. With `GPUCNN_ZERO_COPY=0` (or
/// on another adapter) the same step runs with copies.
#[test]
fn zero_copy_mirror_step_matches_cpu_reference() {
    let model = gpucnn::model::xception_mini(&gpucnn::model::XceptionConfig {
        image_size: gpucnn::model::ImageSize::square(64),
        width: 0.25,
        classes: 2,
        ..Default::default()
    })
    .unwrap();
    let Some(r) = check_model_step(&model, 2, 4, None, false) else {
        return;
    };
    let ctx = test_context().unwrap();
    let off = std::env::var("GPUCNN_ZERO_COPY").is_ok_and(|v| v == "0");
    if gpucnn::gpu::is_lavapipe(&ctx.info) && !off {
        assert!(ctx.zero_copy_mirrors(), "lavapipe, yet mirrors are copied");
    }
    if ctx.zero_copy_mirrors() {
        assert!(
            r.mirror_aliased_floats > 0,
            "zero-copy mirrors are on, yet the step read none"
        );
    } else {
        assert_eq!(r.mirror_aliased_floats, 0);
    }
}

#[test]
fn train_step_matches_cpu_reference_binary() {
    check_step(2, 4, None);
}

#[test]
fn train_step_matches_cpu_reference_multiclass() {
    check_step(10, 4, None);
}

/// A batch of 5 as micro-batches of 2, 2 and 1 (the smaller last one has its own program):
/// gradients summed with weights 2/5, 2/5, 1/5, then one Adam update.
#[test]
fn micro_batched_step_matches_cpu_reference() {
    check_step(2, 5, Some(2));
}

/// Class weights (Keras' class_weight) on the softmax loss (whole batch) and the sigmoid loss
/// (as micro-batches of 2, 2 and 1): the weighted loss, its gradients and the Adam update match the reference.
#[test]
fn class_weighted_steps_match_cpu_reference() {
    check_weighted_step(10, 4, None, true);
    check_weighted_step(2, 5, Some(2), true);
}

#[test]
fn micro_batches_are_chosen_when_the_batch_does_not_fit_a_binding() {
    let Some(ctx) = test_context() else { return };
    let limit = ctx.limits.max_storage_buffer_binding_size as usize;
    // Width 0.5 at 180×180: the stem's output is 90·90·64 floats = 2 MiB per sample.
    let model = gpucnn::model::xception_mini(&gpucnn::model::XceptionConfig {
        image_size: gpucnn::model::ImageSize::square(180),
        width: 0.5,
        ..Default::default()
    })
    .unwrap();
    let per_sample = 90 * 90 * 64 * 4;
    let fits = limit / per_sample;
    let micro = TrainStep::plan_micro_batch(&ctx, &model, fits + 8).unwrap();
    assert!(
        micro <= fits && micro > 0,
        "micro {micro}, {fits} samples fit a binding"
    );
    assert_eq!(
        TrainStep::plan_micro_batch(&ctx, &model, 2).unwrap(),
        2,
        "a small batch is not split"
    );
}

/// Training with GPU augmentation (flip + rotation) equals the CPU reference run on the batch
/// augmented by `cpu::augment` with the same seed.
#[test]
fn augmented_step_matches_cpu_reference() {
    use gpucnn::cpu::augment::AugmentConfig;
    use gpucnn::graph::executor::StepOptions;
    use gpucnn::step_parity::compare_step_with;
    let Some(ctx) = test_context() else { return };
    let opts = StepOptions {
        lr: 1e-3,
        micro: None,
        augment: Some(AugmentConfig::KERAS),
        ..Default::default()
    };
    let r = compare_step_with(&ctx, &small_model(2), 4, &opts, 42).unwrap();
    for c in r.compared() {
        let s = compare(&c);
        assert!(s.ok, "{}", s.report);
    }
}

/// Training with contrast and brightness on top of flip + rotation equals the CPU reference run
/// on the batch augmented by `cpu::augment` then `cpu::augment_color` with the same seed: the
/// colour op runs in the step, after the geometric one, on the same per-step seed.
#[test]
fn colour_augmented_step_matches_cpu_reference() {
    use gpucnn::cpu::augment::AugmentConfig;
    use gpucnn::graph::executor::StepOptions;
    use gpucnn::step_parity::compare_step_with;
    let Some(ctx) = test_context() else { return };
    let opts = StepOptions {
        lr: 1e-3,
        micro: None,
        augment: Some(AugmentConfig {
            contrast: 0.5,
            brightness: 0.3,
            ..AugmentConfig::KERAS
        }),
        ..Default::default()
    };
    let r = compare_step_with(&ctx, &small_model(2), 4, &opts, 44).unwrap();
    for c in r.compared() {
        let s = compare(&c);
        assert!(s.ok, "{}", s.report);
    }
}

/// AdamW: a step with weight decay equals the CPU reference's (θ −= θ·wd·lr, then Adam), at a
/// decay large enough to show (wd·lr = 0.5%: far beyond the comparison's tolerance).
#[test]
fn weight_decay_step_matches_cpu_reference() {
    use gpucnn::graph::executor::StepOptions;
    use gpucnn::step_parity::compare_step_with;
    let Some(ctx) = test_context() else { return };
    let opts = StepOptions {
        lr: 1e-2,
        weight_decay: 0.5,
        ..Default::default()
    };
    let r = compare_step_with(&ctx, &small_model(2), 4, &opts, 43).unwrap();
    for c in r.compared() {
        let s = compare(&c);
        assert!(s.ok, "{}", s.report);
    }
}

/// Keras' kernel_regularizer=l2: a step with L2 equals the CPU reference's (the penalty
/// l2·Σw² over the kernels in the loss and in the metrics' epoch loss, 2·l2·w in the kernels'
/// gradients before Adam), at a factor whose gradient outweighs the loss's, with AdamW's decay
/// too, and split into micro-batches (the penalty is counted once per batch, not per
/// micro-batch).
#[test]
fn l2_step_matches_cpu_reference() {
    use gpucnn::step_parity::compare_step_with;
    let Some(ctx) = test_context() else { return };
    for (classes, micro, weight_decay) in [(2, None, 0.0), (10, Some(3), 0.1)] {
        // lr 1e-3: where the L2 term nearly cancels the loss's gradient, Adam's first step
        // (≈ lr·g/(|g| + 3e-6)) amplifies the f32 rounding of g + 2·l2·w by lr/3e-6; at 1e-2
        // that alone reaches the comparison's tolerance. The sign of each step still shows a
        // missing or misplaced L2 term (an error of 2·lr against a tolerance of 1e-6).
        let opts = StepOptions {
            lr: 1e-3,
            micro,
            weight_decay,
            l2: 0.05,
            ..Default::default()
        };
        let r = compare_step_with(&ctx, &small_model(classes), 5, &opts, 44).unwrap();
        // The penalty is a visible share of the loss (else the comparison proves little).
        let plain = compare_step_with(
            &ctx,
            &small_model(classes),
            5,
            &StepOptions { l2: 0.0, ..opts },
            44,
        )
        .unwrap();
        assert!(
            r.loss.1 > plain.loss.1 + 0.01,
            "{} vs {}",
            r.loss.1,
            plain.loss.1
        );
        for c in r.compared() {
            let s = compare(&c);
            assert!(s.ok, "classes {classes}: {}", s.report);
        }
    }
}

/// Keras' label_smoothing: a step with smoothed targets equals the CPU reference's, for the
/// sigmoid (y·(1 − S) + S/2) and the softmax (one-hot·(1 − S) + S/K) loss, class-weighted too.
#[test]
fn label_smoothing_step_matches_cpu_reference() {
    use gpucnn::step_parity::compare_weighted_step;
    let Some(ctx) = test_context() else { return };
    for (classes, weighted) in [(2, false), (10, true)] {
        let opts = StepOptions {
            lr: 1e-3,
            label_smoothing: 0.2,
            ..Default::default()
        };
        let w = weighted.then(|| test_class_weights(classes));
        let model = small_model(classes);
        let r = compare_weighted_step(&ctx, &model, 4, &opts, 45, w.as_deref()).unwrap();
        for c in r.compared() {
            let s = compare(&c);
            assert!(s.ok, "classes {classes}: {}", s.report);
        }
    }
}

/// `--color-mode grayscale --image-size 12,20`: one input channel and a non-square input (the
/// stem's 3×3×1 kernel, stride-2 "same" padding on unequal sides, the rotation about a
/// non-square centre) train exactly as the CPU reference does, augmentation included.
#[test]
fn grayscale_non_square_step_matches_cpu_reference() {
    use gpucnn::cpu::augment::AugmentConfig;
    use gpucnn::graph::executor::StepOptions;
    use gpucnn::model::ImageSize;
    use gpucnn::model::{XceptionConfig, xception_mini};
    use gpucnn::step_parity::compare_step_with;
    let Some(ctx) = test_context() else { return };
    let model = xception_mini(&XceptionConfig {
        image_size: ImageSize {
            height: 12,
            width: 20,
        },
        channels: 1,
        width: 1.0 / 16.0,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(model.layers[0].output.len(), 12 * 20);
    let opts = StepOptions {
        lr: 1e-3,
        augment: Some(AugmentConfig::KERAS),
        ..Default::default()
    };
    let r = compare_step_with(&ctx, &model, 4, &opts, 42).unwrap();
    for c in r.compared() {
        let s = compare(&c);
        assert!(s.ok, "{}", s.report);
    }
}

/// Evaluation (moving statistics, no dropout) of a partial batch after a training step equals
/// the CPU reference's inference on the parameters the GPU holds.
#[test]
fn evaluation_matches_cpu_reference() {
    use gpucnn::graph::reference::{Targets, evaluate};
    use gpucnn::harness::to_f64;
    let Some(ctx) = test_context() else { return };
    let model = small_model(10);
    let step = TrainStep::new(&ctx, &model, 8, 1e-3).unwrap();
    step.load_params(&ctx, &step.layout.initial_values(5));
    let sample = 32 * 32 * 3;
    let x = random_vec(6, 8 * sample, 0.0, 255.0);
    let labels: Vec<u32> = (0..8).map(|i| i % 10).collect();
    step.write_batch(&ctx, &x, BatchTargets::Classes(&labels));
    step.run(&ctx).unwrap(); // moves the BN statistics away from 0 / 1
    let x2 = random_vec(7, 6 * sample, 0.0, 255.0);
    let labels2: Vec<u32> = vec![3, 1, 4, 1, 5, 9];
    assert_eq!(
        step.write_batch(&ctx, &x2, BatchTargets::Classes(&labels2)),
        6
    );
    step.reset_metrics(&ctx);
    step.run_eval(&ctx, 6).unwrap();
    let [loss_sum, _correct, seen] = step.read_metrics(&ctx).unwrap();
    assert_eq!(seen, 6.0);
    let params = to_f64(&step.read_params(&ctx).unwrap());
    let want = evaluate(
        &model,
        &step.layout,
        &params,
        &to_f64(&x2),
        6,
        &Targets::Classes(labels2),
    );
    let got = loss_sum as f64 / 6.0;
    // Within 1e-5 absolute or 1e-4 relative (the loss is a mean of f32 terms).
    approx::assert_relative_eq!(got, want.loss, epsilon = 1e-5, max_relative = 1e-4);
    // Evaluation changes nothing.
    assert_eq!(to_f64(&step.read_params(&ctx).unwrap()), params);
}

/// Evaluation with --l2 and --label-smoothing (the val_loss column): the metrics' loss is the
/// smoothed cross-entropy of the reference's inference plus l2·Σw² over the kernels, as
/// Keras' test_step computes val_loss with compute_loss (the compiled loss object, smoothing
/// included, plus the model's regularization losses). Sigmoid and softmax models, in
/// micro-batches for the softmax one (the penalty counted once per sample, not per micro-batch).
#[test]
fn regularized_evaluation_matches_cpu_reference() {
    use gpucnn::cpu::loss;
    use gpucnn::graph::reference::{Targets, evaluate, l2_penalty};
    use gpucnn::harness::to_f64;
    let Some(ctx) = test_context() else { return };
    let (l2, smoothing) = (0.01, 0.2);
    for (classes, micro) in [(2, None), (10, Some(4))] {
        let model = small_model(classes);
        let opts = StepOptions {
            micro,
            l2,
            label_smoothing: smoothing,
            ..Default::default()
        };
        let step = TrainStep::with_options(&ctx, &model, 6, &opts).unwrap();
        // The classifier's bias set far from 0 (logits 2, or 0, 0.6, 1.2, …): smoothing changes
        // the loss a lot there (at z ≈ 0 every target costs about log 2).
        let mut params = step.layout.initial_values(5);
        let bias = (step.layout.slots.iter())
            .rfind(|s| s.name.ends_with("/bias"))
            .unwrap();
        for (j, v) in params[bias.offset..bias.offset + bias.len]
            .iter_mut()
            .enumerate()
        {
            *v = if classes == 2 { 2.0 } else { 0.6 * j as f32 };
        }
        step.load_params(&ctx, &params);
        let x = random_vec(8, 6 * 32 * 32 * 3, 0.0, 255.0);
        // Mostly positives: smoothing's effect on the loss does not cancel between classes.
        let labels: Vec<u32> = match classes {
            2 => vec![1, 1, 0, 1, 1, 1],
            _ => (0..6).map(|i| (i * 7 % classes) as u32).collect(),
        };
        let binary: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
        let targets = if classes == 2 {
            step.write_batch(&ctx, &x, BatchTargets::Binary(&binary));
            Targets::Binary(to_f64(&binary))
        } else {
            step.write_batch(&ctx, &x, BatchTargets::Classes(&labels));
            Targets::Classes(labels.clone())
        };
        step.reset_metrics(&ctx);
        step.run_eval(&ctx, 6).unwrap();
        let [loss_sum, _correct, seen] = step.read_metrics(&ctx).unwrap();
        assert_eq!(seen, 6.0);
        let p64 = to_f64(&params);
        let r = evaluate(&model, &step.layout, &p64, &to_f64(&x), 6, &targets);
        let logits = r.activations.last().unwrap();
        let mut ce = [0.0];
        let s = smoothing as f64;
        match &targets {
            Targets::Binary(y) => {
                loss::sigmoid_bce_forward_smoothed(&mut ce, logits, y, 6, 1, None, s)
            }
            Targets::Classes(t) => {
                loss::softmax_ce_forward_smoothed(&mut ce, logits, t, 6, classes, None, s)
            }
        }
        let penalty = l2_penalty(&step.layout, &p64, l2 as f64);
        // Both parts are far from what the comparison tolerates (1e-5 + 1e-4 relative).
        let unsmoothed = r.loss;
        assert!(
            penalty > 0.01 && (ce[0] - unsmoothed).abs() > 1e-2,
            "penalty {penalty}, smoothed {} vs unsmoothed {unsmoothed}",
            ce[0]
        );
        let got = loss_sum as f64 / 6.0;
        approx::assert_relative_eq!(got, ce[0] + penalty, epsilon = 1e-5, max_relative = 1e-4);
    }
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

/// A dropout whose input fans out (its input gradient is added to another contribution):
/// the per-step seed must reach the dropout's own dispatches, forward and backward, not the
/// add that follows (the reference uses the same seed).
#[test]
fn dropout_after_a_fan_out_matches_cpu_reference() {
    let Some(ctx) = test_context() else { return };
    let m = gpucnn::step_parity::fan_out_before_dropout();
    let r = gpucnn::step_parity::compare_step(&ctx, &m, 4, None, 42).unwrap();
    for c in r.compared() {
        let s = compare(&c);
        assert!(s.ok, "{}", s.report);
    }
}

/// A batch uploaded as bytes (widened to f32 on the GPU) trains, evaluates and predicts bit for
/// bit as the same batch uploaded as f32: micro-batches of 2, 2 and 1 of 17×17×3 images (867-byte
/// records, padded to 868 and copied out of the whole batch's buffer), with the GPU
/// augmentation reading the widened input.
#[test]
fn bytes_upload_trains_exactly_as_f32() {
    use gpucnn::cpu::augment::AugmentConfig;
    use gpucnn::graph::executor::StepOptions;
    use gpucnn::model::{XceptionConfig, xception_mini};
    let Some(ctx) = test_context() else { return };
    let model = xception_mini(&XceptionConfig {
        image_size: gpucnn::model::ImageSize::square(17),
        width: 1.0 / 16.0,
        classes: 2,
        ..Default::default()
    })
    .unwrap();
    let sample = 17 * 17 * 3;
    let x8: Vec<u8> = (0..5 * sample).map(|i| (i * 131 % 256) as u8).collect();
    let x32: Vec<f32> = x8.iter().map(|&v| v as f32).collect();
    let t = [0.0, 1.0, 1.0, 0.0, 1.0];
    let opts = StepOptions {
        lr: 1e-3,
        micro: Some(2),
        augment: Some(AugmentConfig::KERAS),
        ..Default::default()
    };
    let run = |bytes: bool| {
        let step = TrainStep::with_options(&ctx, &model, 5, &opts).unwrap();
        assert_eq!(step.upload_bytes(5), (5 * 867 * 4, 5 * 868));
        step.load_params(&ctx, &step.layout.initial_values(3));
        let upload = || {
            let targets = BatchTargets::Binary(&t);
            if bytes {
                step.write_batch_u8(&ctx, &x8, targets)
            } else {
                step.write_batch(&ctx, &x32, targets)
            }
        };
        for s in 0..2 {
            upload();
            step.set_dropout_seed(&ctx, 11 + s);
            step.run(&ctx).unwrap();
        }
        step.reset_metrics(&ctx);
        upload();
        step.run_eval(&ctx, 5).unwrap();
        let metrics = step.read_metrics(&ctx).unwrap();
        let logits = if bytes {
            step.predict_logits_u8(&ctx, &x8[..3 * sample]).unwrap()
        } else {
            step.predict_logits(&ctx, &x32[..3 * sample]).unwrap()
        };
        (step.read_params(&ctx).unwrap(), metrics, logits)
    };
    let (p32, m32, l32) = run(false);
    let (p8, m8, l8) = run(true);
    assert!(
        p32.iter().all(|v| v.is_finite()) && m32[2] == 5.0,
        "{m32:?}"
    );
    assert_eq!(m8, m32, "evaluation metrics");
    assert_eq!(l8, l32, "predicted logits");
    assert!(p8 == p32, "parameters after two steps differ");
}

/// Inference folds every batch norm into the convolution before it (the kernel and bias
/// folded on the GPU before each such convolution, the batch norm's ReLU in the convolution's
/// epilogue) and gives the logits of the CPU reference, which runs the convolution, the batch
/// norm and the ReLU one after another; the parameters and moving statistics are left as they
/// were. γ, β, the moving statistics and the convolutions' biases are set far from their
/// initial 1, 0, 0, 1 and 0, so that every fold scales and shifts.
#[test]
fn folded_inference_matches_the_cpu_reference_logits() {
    use gpucnn::graph::Param;
    use gpucnn::graph::reference::{Targets, evaluate};
    use gpucnn::harness::{Compared, to_f64};
    let Some(ctx) = test_context() else { return };
    let model = small_model(10);
    let step = TrainStep::for_inference(&ctx, &model, 5).unwrap();
    let layout = step.layout.clone();
    let mut p = layout.initial_values(9);
    for (i, s) in layout.slots.iter().enumerate() {
        let (lo, hi) = match s.param {
            Param::Gamma => (0.5, 1.5),
            Param::Beta | Param::MovingMean => (-0.5, 0.5),
            Param::MovingVariance => (0.2, 2.0),
            Param::Bias => (-0.2, 0.2),
            _ => continue,
        };
        let v = random_vec(100 + i as u64, s.len, lo, hi);
        p[s.offset..s.offset + s.len].copy_from_slice(&v);
    }
    step.load_params(&ctx, &p);
    let n = 5;
    let x = random_vec(8, n * 32 * 32 * 3, 0.0, 255.0);
    let logits = step.predict_logits(&ctx, &x).unwrap();
    let targets = Targets::Classes(vec![0; n]);
    let r = evaluate(&model, &layout, &to_f64(&p), &to_f64(&x), n, &targets);
    let want = r.activations.last().unwrap().clone();
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    // The f32 roundings of eleven convolutions in a row: measured worst 1.3e-7 of the largest
    // logit folded, 1.0e-7 unfolded (GPUCNN_FUSION=off): the fold changes the order of the
    // f32 operations (the scale enters the kernel before the sum instead of after it), not
    // what is computed. A fold that drops the convolution's bias moves the logits by 0.17.
    let c = Compared::new("logits", logits, want, 1e-6 * scale, 1e-5);
    let s = compare(&c);
    assert!(s.ok, "{}", s.report);
    assert_eq!(
        step.read_params(&ctx).unwrap(),
        p,
        "inference changed a parameter"
    );
}

/// The texture mirrors a step's dispatches make (where its variants read through them) are
/// what its memory report states, which `gpucnn summary` prints: one texture per shared
/// mirror, reserved at the largest operand's size before any dispatch is built, never grown
/// (growth would leave the smaller textures bound beside the larger). On a device of its
/// own: the shared test device's mirrors also hold other tests' operands.
#[test]
fn texture_mirrors_are_made_once_at_the_reported_size() {
    if test_context().is_none() {
        return; // no adapter (outside CI; in CI test_context panics)
    }
    let ctx = gpucnn::gpu::GpuContext::new(&gpucnn::gpu::AdapterOptions::default()).unwrap();
    // Operands of many sizes, the largest several rows of a mirror (8192 texels): growing
    // through them would make several textures, reserving the largest makes one.
    let model = gpucnn::model::xception_mini(&gpucnn::model::XceptionConfig {
        image_size: gpucnn::model::ImageSize::square(64),
        width: 0.25,
        classes: 10,
        ..Default::default()
    })
    .unwrap();
    let step = TrainStep::new(&ctx, &model, 8, 1e-3).unwrap();
    // One step and one evaluation: every program that runs has been built.
    let x = random_vec(8, 8 * 64 * 64 * 3, 0.0, 255.0);
    let labels: Vec<u32> = (0..8).map(|i| i % 10).collect();
    step.write_batch(&ctx, &x, BatchTargets::Classes(&labels));
    step.run(&ctx).unwrap();
    step.run_eval(&ctx, 8).unwrap();
    let made = gpucnn::gpu::mirror::shared_bytes(&ctx);
    let bound = step.memory.mirror_bytes;
    eprintln!("mirrors: {made} bytes made, {bound} reported");
    if bound == 0 {
        assert_eq!(made, 0, "mirrors made where the variants read none");
        return;
    }
    assert!(
        made > 0,
        "the variants read through mirrors, yet none was made"
    );
    assert_eq!(
        made, bound,
        "{made} bytes of mirrors made, {bound} reported (an operand outgrew the reservation, \
         or the reservation was not made)"
    );
}
