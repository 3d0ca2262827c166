//! One whole training step on the GPU against the CPU reference step (`train_step` row of
//! `gpucnn selftest`, and tests/train_step.rs).

use crate::gpu::{GpuContext, GpuError};
use crate::graph::executor::{BatchTargets, StepOptions, TrainStep};
use crate::graph::reference::{self, AdamState, Targets};
use crate::graph::{Model, ParamLayout};
use crate::harness::{Check, Compared, ShapeClass, random_vec, to_f64};
use crate::model::{XceptionConfig, xception_mini};

/// The model the parity check uses: xception_mini at width 1/16 on 32×32 inputs.
pub fn small_model(classes: usize) -> Model {
    xception_mini(&XceptionConfig {
        image_size: crate::model::ImageSize::square(32),
        width: 1.0 / 16.0,
        classes,
        ..Default::default()
    })
    .expect("a valid model")
}

/// A model whose dropout's input fans out (conv → relu r → dropout d → add(d, r) → pooling →
/// dense): the dropout's input gradient is the second contribution to r's, so an
/// add-accumulate op follows the dropout backward op. The seed of every step must reach the
/// dropout's own dispatches.
pub fn fan_out_before_dropout() -> Model {
    use crate::graph::layers::{
        Add, Conv2D, Dense, Dropout, GlobalAveragePooling2D, Relu, Rescaling,
    };
    use crate::graph::{Activation, LayerKind};
    let add = |m: &mut Model, kind, inputs: &[usize]| m.add_layer(kind, inputs).expect("valid");
    let mut m = Model::new();
    let x = m.input(6, 6, 3);
    let scale = Rescaling {
        scale: 1.0 / 255.0,
        offset: 0.0,
    };
    let x = add(&mut m, LayerKind::Rescaling(scale), &[x]);
    let conv = Conv2D {
        filters: 4,
        kernel: 3,
        stride: 1,
        padding: crate::cpu::Padding::Same,
    };
    let c = add(&mut m, LayerKind::Conv2D(conv), &[x]);
    let r = add(&mut m, LayerKind::Relu(Relu), &[c]);
    let d = add(&mut m, LayerKind::Dropout(Dropout { rate: 0.5 }), &[r]);
    let a = add(&mut m, LayerKind::Add(Add), &[d, r]);
    let gap = LayerKind::GlobalAveragePooling2D(GlobalAveragePooling2D);
    let g = add(&mut m, gap, &[a]);
    let dense = Dense {
        units: 1,
        activation: Activation::Sigmoid,
    };
    add(&mut m, LayerKind::Dense(dense), &[g]);
    m
}

/// GPU and CPU results of one step from the same parameters and batch.
pub struct StepComparison {
    pub loss: (f32, f64),
    /// The epoch loss the GPU's metrics accumulator gives after the step (loss sum / count):
    /// what metrics.csv reports, L2 penalty and label smoothing included.
    pub metrics_loss: f32,
    pub grads: (Vec<f32>, Vec<f64>),
    /// The reference's gradient as Adam takes it: `grads.1` plus the L2 penalty's 2·l2·w on
    /// the kernels (equal to `grads.1` without L2). Where it is near zero, the step's sign may
    /// legitimately differ.
    pub update_grads: Vec<f64>,
    pub params: (Vec<f32>, Vec<f64>),
    /// The CPU reference's Adam applied to the starting parameters with the GPU's own
    /// gradients (batch-norm state from the reference step): what the GPU's parameters must be
    /// if its Adam is right, whatever tiny differences its gradients have.
    pub params_from_gpu_grads: Vec<f64>,
    pub layout: ParamLayout,
    pub lr: f64,
    /// Floats the GPU step read through texture mirrors that alias their buffers
    /// ([`TrainStep::mirror_traffic`]): nonzero where the comparison covers zero-copy mirrors.
    pub mirror_aliased_floats: u64,
}

/// Runs one step of `model` at batch `n` on the GPU and through the CPU reference, the batch
/// split into micro-batches of `micro` samples when given.
pub fn compare_step(
    ctx: &GpuContext,
    model: &Model,
    n: usize,
    micro: Option<usize>,
    seed: u64,
) -> Result<StepComparison, GpuError> {
    compare_step_with(
        ctx,
        model,
        n,
        &StepOptions {
            lr: 1e-3,
            micro,
            ..Default::default()
        },
        seed,
    )
}

/// As [`compare_step`] with any [`StepOptions`]; with augmentation, the CPU side augments the
/// batch with `cpu::augment` (same seed) before its step.
pub fn compare_step_with(
    ctx: &GpuContext,
    model: &Model,
    n: usize,
    opts: &StepOptions,
    seed: u64,
) -> Result<StepComparison, GpuError> {
    compare_weighted_step(ctx, model, n, opts, seed, None)
}

/// As [`compare_step_with`], the loss class-weighted by `class_weights` when given (Keras'
/// `class_weight`: see [`TrainStep::set_class_weights`] for their length).
pub fn compare_weighted_step(
    ctx: &GpuContext,
    model: &Model,
    n: usize,
    opts: &StepOptions,
    seed: u64,
    class_weights: Option<&[f32]>,
) -> Result<StepComparison, GpuError> {
    let lr = opts.lr as f64;
    let micro = opts.micro;
    let step = TrainStep::with_options(ctx, model, n, opts)
        .map_err(|e| GpuError::Validation(e.to_string()))?;
    if let Some(w) = class_weights {
        step.set_class_weights(ctx, w);
    }
    let w64 = class_weights.map(to_f64);
    let layout = step.layout.clone();
    let init = layout.initial_values(seed);
    let input = model.layers[0].output.len() * n;
    let x = random_vec(seed ^ 1, input, 0.0, 255.0);
    let classes = model.output_shape().expect("model").len();
    let softmax = classes > 1;
    let labels: Vec<u32> = (0..n as u32).map(|i| i % classes.max(2) as u32).collect();
    let binary: Vec<f32> = labels.iter().map(|&l| (l % 2) as f32).collect();
    step.load_params(ctx, &init);
    step.write_batch(
        ctx,
        &x,
        if softmax {
            BatchTargets::Classes(&labels)
        } else {
            BatchTargets::Binary(&binary)
        },
    );
    let dropout_seed = 7;
    step.set_dropout_seed(ctx, dropout_seed);
    step.run(ctx)?;
    let gpu_loss = step.read_loss(ctx)?;
    let m = step.read_metrics(ctx)?;
    let metrics_loss = m[0] / m[2];
    let gpu_grads = step.read_grads(ctx)?;
    let gpu_params = step.read_params(ctx)?;
    let mirror_aliased_floats = step.mirror_traffic(ctx).1;

    let targets = if softmax {
        Targets::Classes(labels)
    } else {
        Targets::Binary(binary.iter().map(|&v| v as f64).collect())
    };
    let p0 = to_f64(&init);
    let x0 = reference_input(model, &x, n, opts, dropout_seed);
    // One micro-batch of all n samples is exactly the plain step (weight 1).
    let batch = reference::Batch {
        x: &x0,
        n,
        targets: &targets,
        dropout_seed,
        class_weights: w64.as_deref(),
        label_smoothing: opts.label_smoothing as f64,
    };
    let new_adam = || AdamState {
        weight_decay: opts.weight_decay as f64,
        l2: opts.l2 as f64,
        ..AdamState::new(&layout)
    };
    let mut adam = new_adam();
    let micro = micro.unwrap_or(n);
    let r = reference::train_step_micro(model, &layout, &p0, &mut adam, lr, &batch, micro);
    let mut mask = to_f64(&layout.l2_mask());
    mask.resize(layout.total_len, 0.0);
    let update_grads = (r.grads.iter().zip(&p0).zip(&mask))
        .map(|((g, t), m)| g + 2.0 * opts.l2 as f64 * m * t)
        .collect();
    let mut params_from_gpu_grads = r.params.clone();
    let tl = layout.trainable_len;
    params_from_gpu_grads[..tl].copy_from_slice(&p0[..tl]);
    reference::adam_step(
        &layout,
        &mut params_from_gpu_grads,
        &to_f64(&gpu_grads),
        &mut new_adam(),
        lr,
    );
    Ok(StepComparison {
        loss: (gpu_loss, r.loss),
        metrics_loss,
        grads: (gpu_grads, r.grads),
        update_grads,
        params: (gpu_params, r.params),
        params_from_gpu_grads,
        layout,
        lr,
        mirror_aliased_floats,
    })
}

/// The batch as the reference step takes it: the GPU's input in f64, augmented first with
/// `cpu::augment` then `cpu::augment_color` (the same seed) when the step augments.
fn reference_input(model: &Model, x: &[f32], n: usize, opts: &StepOptions, seed: u32) -> Vec<f64> {
    let mut x0 = to_f64(x);
    if let Some(cfg) = &opts.augment {
        let (h, w, c) = crate::graph::layers::hwc(model.layers[0].output);
        let raw = x0.clone();
        let s = crate::shapes::NhwcShape { n, h, w, c };
        crate::cpu::augment::augment_forward(&mut x0, &raw, &s, cfg, seed);
        if crate::cpu::augment_color::color_on(cfg) {
            crate::cpu::augment_color::augment_color_forward(&mut x0, &s, cfg, seed);
        }
    }
    x0
}

impl StepComparison {
    /// The comparisons with their tolerances.
    ///
    /// - loss: atol 1e-5, rtol 1e-4.
    /// - gradients, per parameter tensor: atol 1e-3·max|g| of that tensor + 1e-5·max|g| of the
    ///   whole model, rtol 1e-2. A step runs ~100 f32 kernels in sequence (sums of up to
    ///   thousands of terms, batch-norm divisions). The model-wide floor matters for the biases
    ///   of layers followed by batch norm: their exact gradient is 0 (BN removes the mean), the
    ///   f64 reference gives ~1e-16 and f32 gives rounding noise ~1e-7 of the same sums.
    /// - parameters after Adam: Adam's first step moves every weight by ≈ lr·sign(g), so an
    ///   entry whose gradient is within the gradient tolerance of zero may legitimately move the
    ///   other way: those entries get atol 2·lr, all others atol 1e-6 + rtol 1e-5 (and 2e-3·lr
    ///   for the update's own f32 rounding).
    /// - Adam of the GPU's gradients: so that those near-zero entries are checked too, the GPU's
    ///   parameters are also compared, every entry, with the reference Adam applied to the GPU's
    ///   own gradients: atol 2e-7 + 1e-5·lr, rtol 1e-6 (f32 rounding of θ and of one update).
    pub fn compared(&self) -> Vec<Compared> {
        let max_abs = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let floor = 1e-5 * max_abs(&self.grads.1) + 1e-9;
        let mut grad_atol = vec![floor; self.layout.total_len];
        for s in &self.layout.slots {
            let scale = max_abs(&self.grads.1[s.offset..s.offset + s.len]);
            grad_atol[s.offset..s.offset + s.len].fill(1e-3 * scale + floor);
        }
        // Compare element-wise with per-element tolerance by normalising the error.
        let norm = |gpu: &[f32],
                    cpu: &[f64],
                    atol: &dyn Fn(usize) -> f64,
                    rtol: f64|
         -> (Vec<f32>, Vec<f64>) {
            // Express each element as its error relative to its own tolerance: ok ⇔ ≤ 1.
            let mut g = Vec::with_capacity(gpu.len());
            let mut c = Vec::with_capacity(gpu.len());
            for (i, (&a, &b)) in gpu.iter().zip(cpu).enumerate() {
                let tol = atol(i) + rtol * b.abs();
                g.push(((a as f64 - b) / tol) as f32);
                c.push(0.0);
            }
            (g, c)
        };
        let (gg, gc) = norm(&self.grads.0, &self.grads.1, &|i| grad_atol[i], 1e-2);
        let trainable = self.layout.trainable_len;
        // Against the reference step: exact where the gradient is clearly away from zero (the
        // first step moves a weight by ≈ lr·sign(g)); elsewhere the sign may legitimately flip.
        let lr = self.lr;
        let grads = &self.update_grads;
        let (pg, pc) = norm(
            &self.params.0,
            &self.params.1,
            &|i| {
                if i >= trainable {
                    1e-6 // batch-norm moving statistics: no Adam, a plain momentum update
                } else if grads[i].abs() <= grad_atol[i] * 2.0 {
                    2.0 * lr + 1e-6
                } else {
                    1e-6 + 2e-3 * lr
                }
            },
            1e-5,
        );
        // Against the reference Adam fed the GPU's own gradients: every entry, tiny gradients
        // included, must match to f32 rounding (|θ| ≤ 1: ulp 6e-8; the update lr_t·m/(√v+ε) in
        // f32: relative 1e-6 of a step ≤ lr).
        let (ag, ac) = norm(
            &self.params.0[..trainable],
            &self.params_from_gpu_grads[..trainable],
            &|_| 2e-7 + 1e-5 * lr,
            1e-6,
        );
        vec![
            Compared::new("loss", vec![self.loss.0], vec![self.loss.1], 1e-5, 1e-4),
            Compared::new(
                "epoch loss of the metrics",
                vec![self.metrics_loss],
                vec![self.loss.1],
                1e-5,
                1e-4,
            ),
            Compared::new("gradients (error / tolerance)", gg, gc, 1.0, 0.0),
            Compared::new(
                "parameters after Adam (error / tolerance)",
                pg,
                pc,
                1.0,
                0.0,
            ),
            Compared::new(
                "Adam of the GPU's gradients (error / tolerance)",
                ag,
                ac,
                1.0,
                0.0,
            ),
        ]
    }
}

/// Non-uniform class weights for a model of `classes` outputs' loss (2 for a binary sigmoid
/// model: `[negative, positive]`): 0.5, 1.25, 2, 2.75, … cycling below 4.
pub fn test_class_weights(classes: usize) -> Vec<f32> {
    (0..classes.max(2))
        .map(|c| 0.5 + 0.75 * (c % 5) as f32)
        .collect()
}

/// The `train_step` selftest rows: binary (sigmoid) and 10-class (softmax) models.
pub fn checks(_ctx: &GpuContext) -> Vec<Check> {
    let mut v = Vec::new();
    for (classes, variant, n, micro, weighted) in [
        (2usize, "sigmoid", 4usize, None, false),
        (10, "softmax", 4, None, false),
        (2, "sigmoid micro", 5, Some(2usize), false),
        (10, "softmax", 4, None, true),
    ] {
        let split = micro
            .map(|m| format!(" in micro-batches of {m}"))
            .unwrap_or_default();
        v.push(Check::new(
            "train_step",
            "step",
            variant,
            ShapeClass::Large,
            format!(
                "xception_mini w1/16 32x32 N{n} K{classes}{split}{}",
                if weighted { " class-weighted" } else { "" }
            ),
            move |ctx| {
                let opts = StepOptions {
                    lr: 1e-3,
                    micro,
                    ..Default::default()
                };
                let w = weighted.then(|| test_class_weights(classes));
                let model = small_model(classes);
                Ok(compare_weighted_step(ctx, &model, n, &opts, 42, w.as_deref())?.compared())
            },
        ));
    }
    v
}
