//! A whole training step through the CPU reference: forward, loss, backward, Adam.
//!
//! This is the spec the GPU executor's step is compared against: it walks the model's layers
//! with the `cpu::` functions (f64), keeps every activation, accumulates gradients where a
//! tensor fans out (the residual), and updates the flat parameter buffer in the
//! [`ParamLayout`] order with Keras' Adam. It is deliberately plain and slow.

use super::layers::{self, CpuBwd, CpuFwd, CpuParams, CpuSaved};
use super::{Activation, LayerKind, Model, ParamLayout};
use crate::cpu::{self, adam::AdamHyper};

/// The targets of one batch.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Sigmoid outputs: targets in {0, 1}, [N, L] (L = 1 for a binary model).
    Binary(Vec<f64>),
    /// Softmax outputs: class indices, [N].
    Classes(Vec<u32>),
}

/// What a reference step produces.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// Mean loss of the batch (before the update).
    pub loss: f64,
    /// Gradient of every parameter, flat in layout order (zeros for non-trainable slots).
    pub grads: Vec<f64>,
    /// Parameters after the step: trainable ones updated by Adam, BN moving statistics by
    /// their momentum rule.
    pub params: Vec<f64>,
    /// Every layer's output, for debugging and finer-grained comparisons.
    pub activations: Vec<Vec<f64>>,
}

/// Adam's state across reference steps.
#[derive(Debug, Clone)]
pub struct AdamState {
    pub t: u32,
    pub m: Vec<f64>,
    pub v: Vec<f64>,
    /// AdamW's decoupled weight decay (0: plain Adam; see [`cpu::adam::adam_decay`]).
    pub weight_decay: f64,
    /// Keras' L2 kernel regularizer (0: none): [`adam_step`] adds its gradient 2·l2·w to the
    /// kernels' ([`cpu::adam::adam_l2_grad`], as the GPU's Adam does) and the steps add its
    /// penalty ([`l2_penalty`]) to the loss they report.
    pub l2: f64,
}

impl AdamState {
    pub fn new(layout: &ParamLayout) -> Self {
        Self {
            t: 0,
            m: vec![0.0; layout.trainable_len],
            v: vec![0.0; layout.trainable_len],
            weight_decay: 0.0,
            l2: 0.0,
        }
    }
}

/// Keras' L2 penalty l2·Σw² over every kernel of the flat parameters (the
/// [`ParamLayout::l2_mask`] elements): what the loss gains with `kernel_regularizer=l2(l2)`.
pub fn l2_penalty(layout: &ParamLayout, params: &[f64], l2: f64) -> f64 {
    if l2 == 0.0 {
        return 0.0;
    }
    let mask = crate::harness::to_f64(&layout.l2_mask());
    cpu::adam::l2_penalty(&params[..mask.len()], &mask, l2)
}

/// One batch as the reference takes it.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// The images, [N, H, W, C], values as the input layer takes them.
    pub x: &'a [f64],
    pub n: usize,
    pub targets: &'a Targets,
    /// Drives every Dropout layer's mask (the same hash as the GPU kernel).
    pub dropout_seed: u32,
    /// Keras' `class_weight` on the loss (`cpu::loss`'s `*_smoothed`: `[negative, positive]`
    /// for a sigmoid model, one per class for a softmax one); `None`: unweighted.
    pub class_weights: Option<&'a [f64]>,
    /// Keras' `label_smoothing` of the loss (`cpu::loss`'s `*_smoothed`; 0: none).
    pub label_smoothing: f64,
}

/// Runs one training step of `model` on `batch` through the CPU reference.
pub fn train_step(
    model: &Model,
    layout: &ParamLayout,
    params: &[f64],
    adam: &mut AdamState,
    lr: f64,
    batch: &Batch,
) -> StepResult {
    let mut r = forward_backward(model, layout, params, batch);
    r.loss += l2_penalty(layout, params, adam.l2);
    adam_step(layout, &mut r.params, &r.grads, adam, lr);
    r
}

/// Keras' Adam (AdamW with `adam.weight_decay`) over the trainable prefix of the flat parameters (`params` and `grads` are
/// the whole flat layout; the batch-norm state after the trainable prefix is left alone).
pub fn adam_step(
    layout: &ParamLayout,
    params: &mut [f64],
    grads: &[f64],
    adam: &mut AdamState,
    lr: f64,
) {
    let h = AdamHyper {
        weight_decay: adam.weight_decay,
        l2: adam.l2,
        ..AdamHyper::default()
    };
    let lr_t = cpu::adam::adam_begin_step(&mut adam.t, lr, &h);
    let tl = layout.trainable_len;
    // The L2 penalty's gradient joins the loss's, from the parameters before the step.
    let mut mask = crate::harness::to_f64(&layout.l2_mask());
    mask.resize(tl, 0.0);
    let g = cpu::adam::adam_l2_grad(&grads[..tl], &params[..tl], &mask, &h);
    cpu::adam::adam_decay(&mut params[..tl], lr, &h);
    cpu::adam::adam_update(&mut params[..tl], &mut adam.m, &mut adam.v, &g, lr_t, &h);
}

/// A step over a batch split into micro-batches of `micro` samples (the last may be smaller),
/// as the GPU executor runs it when a whole-batch tensor would not fit one binding: gradients
/// and loss are the micro-batch means weighted by their share of the batch; batch norm uses
/// each micro-batch's statistics and updates its moving statistics once per micro-batch;
/// micro-batch i's dropout seed is `seed + i·0x9E3779B9`. `activations` are the last
/// micro-batch's.
pub fn train_step_micro(
    model: &Model,
    layout: &ParamLayout,
    params: &[f64],
    adam: &mut AdamState,
    lr: f64,
    batch: &Batch,
    micro: usize,
) -> StepResult {
    let n = batch.n;
    let sample = batch.x.len() / n;
    let mut cur = params.to_vec();
    let mut grads = vec![0.0; layout.total_len];
    let mut loss = 0.0;
    let mut acts = Vec::new();
    for (i, start) in (0..n).step_by(micro).enumerate() {
        let m = micro.min(n - start);
        let t = match batch.targets {
            Targets::Binary(t) => {
                let per = t.len() / n;
                Targets::Binary(t[start * per..(start + m) * per].to_vec())
            }
            Targets::Classes(t) => Targets::Classes(t[start..start + m].to_vec()),
        };
        let part = Batch {
            x: &batch.x[start * sample..(start + m) * sample],
            n: m,
            targets: &t,
            dropout_seed: batch
                .dropout_seed
                .wrapping_add((i as u32).wrapping_mul(0x9E37_79B9)),
            class_weights: batch.class_weights,
            label_smoothing: batch.label_smoothing,
        };
        let r = forward_backward(model, layout, &cur, &part);
        let w = m as f64 / n as f64;
        for (g, v) in grads.iter_mut().zip(&r.grads) {
            *g += w * v;
        }
        loss += w * r.loss;
        cur = r.params; // carries the moving statistics forward
        acts = r.activations;
    }
    // The penalty of the parameters the step started from (the micro-batches do not move them).
    loss += l2_penalty(layout, params, adam.l2);
    adam_step(layout, &mut cur, &grads, adam, lr);
    StepResult {
        loss,
        grads,
        params: cur,
        activations: acts,
    }
}

/// Forward, loss and backward of one batch (no optimizer): the loss, every parameter's
/// gradient, and the parameters with the batch-norm moving statistics updated.
pub fn forward_backward(
    model: &Model,
    layout: &ParamLayout,
    params: &[f64],
    batch: &Batch,
) -> StepResult {
    run(model, layout, params, batch, true)
}

/// Inference on one batch: batch norm with the moving statistics, dropout as the identity;
/// the mean loss and the logits (`activations.last()`); no gradients (all zero).
pub fn evaluate(
    model: &Model,
    layout: &ParamLayout,
    params: &[f64],
    x: &[f64],
    n: usize,
    targets: &Targets,
) -> StepResult {
    // Evaluation is never class-weighted (Keras weighs training only).
    let batch = Batch {
        x,
        n,
        targets,
        dropout_seed: 0,
        class_weights: None,
        label_smoothing: 0.0,
    };
    run(model, layout, params, &batch, false)
}

/// One batch through the reference: forward (training or inference), loss and, in
/// training, backward. The walks ask each layer's [`layers::LayerOps`] for its CPU passes.
fn run(
    model: &Model,
    layout: &ParamLayout,
    params: &[f64],
    batch: &Batch,
    train: bool,
) -> StepResult {
    let mut params = params.to_vec();
    let mut saved = CpuSaved::default();
    let acts = forward(model, layout, &mut params, &mut saved, batch, train);
    let logits = acts.last().expect("a model has layers");
    let (loss, dlogits) = loss(model, logits, batch);
    let grads = if train {
        backward(model, layout, &params, &saved, &acts, dlogits, batch)
    } else {
        vec![0.0; layout.total_len]
    };
    StepResult {
        loss,
        grads,
        params,
        activations: acts,
    }
}

/// Every layer's output, in layer order (the input layer's is the batch).
fn forward(
    model: &Model,
    layout: &ParamLayout,
    params: &mut [f64],
    saved: &mut CpuSaved,
    batch: &Batch,
    train: bool,
) -> Vec<Vec<f64>> {
    let (x, n) = (batch.x, batch.n);
    let layers = &model.layers;
    let mut acts: Vec<Vec<f64>> = Vec::with_capacity(layers.len());
    for (li, l) in layers.iter().enumerate() {
        let mut y = vec![0.0; n * l.output.len()];
        let (xs, in_shape) = match l.kind {
            LayerKind::Input => {
                assert_eq!(x.len(), y.len(), "input batch has the wrong size");
                (vec![x], l.output)
            }
            _ => (
                l.inputs.iter().map(|&i| acts[i].as_slice()).collect(),
                layers[l.inputs[0]].output,
            ),
        };
        let mut cx = CpuFwd {
            li,
            n,
            train,
            dropout_seed: batch.dropout_seed,
            x: xs,
            in_shape,
            out_shape: l.output,
            y: &mut y,
            params,
            p: CpuParams { layout, li },
            saved,
        };
        layers::ops(&l.kind).cpu_forward(&mut cx);
        acts.push(y);
    }
    acts
}

/// The mean loss on the logits and its gradient (the activation is fused into the loss),
/// class-weighted when `w` is given.
fn loss(model: &Model, logits: &[f64], batch: &Batch) -> (f64, Vec<f64>) {
    let (n, targets, w, s) = (
        batch.n,
        batch.targets,
        batch.class_weights,
        batch.label_smoothing,
    );
    let last = model.layers.last().expect("a model has layers");
    let units = last.output.len();
    let activation = match &last.kind {
        LayerKind::Dense(d) => d.activation,
        _ => Activation::None,
    };
    let mut loss = [0.0];
    let mut dlogits = vec![0.0; logits.len()];
    match (activation, targets) {
        (Activation::Sigmoid, Targets::Binary(t)) => {
            cpu::loss::sigmoid_bce_forward_smoothed(&mut loss, logits, t, n, units, w, s);
            cpu::loss::sigmoid_bce_backward_smoothed(&mut dlogits, logits, t, n, units, w, s);
        }
        (Activation::Softmax, Targets::Classes(t)) => {
            cpu::loss::softmax_ce_forward_smoothed(&mut loss, logits, t, n, units, w, s);
            cpu::loss::softmax_ce_backward_smoothed(&mut dlogits, logits, t, n, units, w, s);
        }
        (a, t) => panic!("targets {t:?} do not fit a model whose output activation is {a:?}"),
    }
    (loss[0], dlogits)
}

/// Every parameter's gradient: each layer's output gradient, accumulated over its consumers,
/// goes back through the layer in reverse order.
fn backward(
    model: &Model,
    layout: &ParamLayout,
    params: &[f64],
    saved: &CpuSaved,
    acts: &[Vec<f64>],
    dlogits: Vec<f64>,
    batch: &Batch,
) -> Vec<f64> {
    let layers = &model.layers;
    let mut grads = vec![0.0; layout.total_len];
    let mut dacts: Vec<Option<Vec<f64>>> = vec![None; layers.len()];
    dacts[layers.len() - 1] = Some(dlogits);
    for li in (1..layers.len()).rev() {
        let l = &layers[li];
        let Some(dy) = dacts[li].take() else { continue };
        let mut cx = CpuBwd {
            li,
            n: batch.n,
            dropout_seed: batch.dropout_seed,
            x: l.inputs.iter().map(|&i| acts[i].as_slice()).collect(),
            in_shape: layers[l.inputs[0]].output,
            out_shape: l.output,
            y: &acts[li],
            dy: &dy,
            params,
            grads: &mut grads,
            p: CpuParams { layout, li },
            saved,
            dx: l.inputs.iter().map(|&i| vec![0.0; acts[i].len()]).collect(),
        };
        layers::ops(&l.kind).cpu_backward(&mut cx);
        for (&to, g) in l.inputs.iter().zip(cx.dx) {
            match &mut dacts[to] {
                Some(acc) => cpu::elementwise::add_backward_accumulate(acc, &g),
                slot @ None => *slot = Some(g),
            }
        }
    }
    grads
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{XceptionConfig, xception_mini};

    fn tiny() -> (Model, ParamLayout) {
        let m = xception_mini(&XceptionConfig {
            image_size: crate::model::ImageSize::square(12),
            width: 1.0 / 32.0,
            dropout: 0.0,
            ..Default::default()
        })
        .unwrap();
        let l = ParamLayout::new(&m);
        (m, l)
    }

    /// The whole-model backward equals central differences of the whole-model loss, for a
    /// sample of parameters of every kind (conv, depthwise, pointwise, BN γ/β, dense).
    #[test]
    fn whole_model_gradients_match_central_differences() {
        whole_model_gradient_check(None);
    }

    /// The same with class weights (Keras' class_weight): the gradient of the weighted loss.
    #[test]
    fn class_weighted_whole_model_gradients_match_central_differences() {
        whole_model_gradient_check(Some(&[0.4, 2.5]));
    }

    /// Keras' label_smoothing and L2 kernel regularizer: the gradient of the smoothed loss plus
    /// l2·Σw² over the kernels is the step's data gradient plus 2·l2·w on the kernels (what
    /// the step's Adam adds), and nothing on biases, γ and β.
    #[test]
    fn smoothed_l2_regularized_whole_model_gradients_match_central_differences() {
        whole_model_gradient_check_with(Some(&[0.7, 1.6]), 0.2, 0.05);
    }

    /// The L2 mask covers exactly the kernels (conv, depthwise, pointwise, dense) of the
    /// weights region: not batch-norm γ (also there), nor the alignment padding.
    #[test]
    fn l2_mask_covers_the_kernels_only() {
        let (_, layout) = tiny();
        let mask = layout.l2_mask();
        let mut kernels = 0;
        for s in layout
            .slots
            .iter()
            .filter(|s| s.region == crate::graph::params::Region::Weights)
        {
            let want = match s.param {
                crate::graph::Param::Gamma => 0.0,
                _ => 1.0,
            };
            assert!(
                mask[s.offset..s.offset + s.len].iter().all(|&m| m == want),
                "{}",
                s.name
            );
            kernels += usize::from(want == 1.0) * s.len;
        }
        assert_eq!(mask.iter().sum::<f32>() as usize, kernels);
        assert!(
            layout
                .slots
                .iter()
                .any(|s| s.param == crate::graph::Param::Gamma)
        );
    }

    fn whole_model_gradient_check(class_weights: Option<&[f64]>) {
        whole_model_gradient_check_with(class_weights, 0.0, 0.0);
    }

    fn whole_model_gradient_check_with(class_weights: Option<&[f64]>, smoothing: f64, l2: f64) {
        let (m, layout) = tiny();
        let params: Vec<f64> = layout.initial_values(5).iter().map(|&v| v as f64).collect();
        let n = 3;
        let x = cpu::random_f64(9, n * 12 * 12 * 3, 0.0, 255.0);
        let t = Targets::Binary(vec![1.0, 0.0, 1.0]);
        let batch = Batch {
            x: &x,
            n,
            targets: &t,
            dropout_seed: 7,
            class_weights,
            label_smoothing: smoothing,
        };
        let adam = || AdamState {
            l2,
            ..AdamState::new(&layout)
        };
        let step = |p: &[f64]| train_step(&m, &layout, p, &mut adam(), 1e-3, &batch);
        let base = step(&params);
        let mask = layout.l2_mask();
        let mut checked = 0;
        for s in layout.slots.iter().filter(|s| s.trainable) {
            for &i in &[0, s.len / 2, s.len - 1] {
                let idx = s.offset + i;
                let eps = 1e-5;
                let mut pp = params.clone();
                pp[idx] += eps;
                let lp = step(&pp).loss;
                pp[idx] -= 2.0 * eps;
                let lm = step(&pp).loss;
                let num = (lp - lm) / (2.0 * eps);
                let kernel = mask.get(idx).copied().unwrap_or(0.0) as f64;
                let ana = base.grads[idx] + 2.0 * l2 * kernel * params[idx];
                let err = (num - ana).abs() / 1e-6f64.max(num.abs()).max(ana.abs());
                assert!(
                    err < 1e-4 || (num - ana).abs() < 1e-9,
                    "{}[{i}]: numeric {num:e} analytic {ana:e}",
                    s.name
                );
                checked += 1;
            }
        }
        assert!(checked > 30);
    }

    #[test]
    fn steps_on_one_batch_reduce_the_loss() {
        let (m, layout) = tiny();
        let mut params: Vec<f64> = layout.initial_values(5).iter().map(|&v| v as f64).collect();
        let n = 4;
        let x = cpu::random_f64(3, n * 12 * 12 * 3, 0.0, 255.0);
        let t = Targets::Binary(vec![1.0, 0.0, 0.0, 1.0]);
        let mut adam = AdamState::new(&layout);
        let batch = Batch {
            x: &x,
            n,
            targets: &t,
            dropout_seed: 1,
            class_weights: None,
            label_smoothing: 0.0,
        };
        let first = train_step(&m, &layout, &params, &mut adam, 1e-2, &batch);
        params = first.params;
        let mut last = first.loss;
        for _ in 0..10 {
            let r = train_step(&m, &layout, &params, &mut adam, 1e-2, &batch);
            params = r.params;
            last = r.loss;
        }
        assert!(last < 0.5 * first.loss, "loss {} → {last}", first.loss);
        assert_eq!(adam.t, 11);
    }
}
