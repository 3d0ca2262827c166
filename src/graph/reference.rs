//! A whole training step through the CPU reference: forward, loss, backward, Adam.
//!
//! This is the spec the GPU executor's step is compared against: it walks the model's layers
//! with the `cpu::` functions (f64), keeps every activation, accumulates gradients where a
//! tensor fans out (the residual), and updates the flat parameter buffer in the
//! [`ParamLayout`] order with Keras' Adam. It is deliberately plain and slow.

use super::{Activation, LayerKind, Model, ParamLayout, Shape};
use crate::cpu::{
    self, adam::AdamHyper, conv2d::Conv2dShape, depthwise_conv2d::DepthwiseShape, pool::Pool2d,
};

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
}

impl AdamState {
    pub fn new(layout: &ParamLayout) -> Self {
        Self {
            t: 0,
            m: vec![0.0; layout.trainable_len],
            v: vec![0.0; layout.trainable_len],
        }
    }
}

/// Per-layer data the backward pass needs.
#[derive(Default, Clone)]
struct Saved {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    argmax: Vec<u32>,
    /// Separable conv: the depthwise output (the pointwise input).
    mid: Vec<f64>,
}

fn hwc(s: Shape) -> (usize, usize, usize) {
    match s {
        Shape::Hwc(h, w, c) => (h, w, c),
        Shape::Flat(f) => (1, 1, f),
    }
}

/// Runs one training step of `model` on batch `x` ([N, H, W, C], values as the input layer
/// takes them) through the CPU reference. `dropout_seed` drives every Dropout layer's mask
/// (the same hash as the GPU kernel).
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    model: &Model,
    layout: &ParamLayout,
    params: &[f64],
    adam: &mut AdamState,
    lr: f64,
    x: &[f64],
    n: usize,
    targets: &Targets,
    dropout_seed: u32,
) -> StepResult {
    let mut r = forward_backward(model, layout, params, x, n, targets, dropout_seed);
    adam_step(layout, &mut r.params, &r.grads, adam, lr);
    r
}

/// Keras' Adam over the trainable prefix of the flat parameters (`params` and `grads` are
/// the whole flat layout; the batch-norm state after the trainable prefix is left alone).
pub fn adam_step(
    layout: &ParamLayout,
    params: &mut [f64],
    grads: &[f64],
    adam: &mut AdamState,
    lr: f64,
) {
    let h = AdamHyper::default();
    let lr_t = cpu::adam::adam_begin_step(&mut adam.t, lr, &h);
    let tl = layout.trainable_len;
    cpu::adam::adam_update(
        &mut params[..tl],
        &mut adam.m,
        &mut adam.v,
        &grads[..tl],
        lr_t,
        &h,
    );
}

/// A step over a batch split into micro-batches of `micro` samples (the last may be smaller),
/// as the GPU executor runs it when a whole-batch tensor would not fit one binding: gradients
/// and loss are the micro-batch means weighted by their share of the batch; batch norm uses
/// each micro-batch's statistics and updates its moving statistics once per micro-batch;
/// micro-batch i's dropout seed is `seed + i·0x9E3779B9`. `activations` are the last
/// micro-batch's.
#[allow(clippy::too_many_arguments)]
pub fn train_step_micro(
    model: &Model,
    layout: &ParamLayout,
    params: &[f64],
    adam: &mut AdamState,
    lr: f64,
    x: &[f64],
    n: usize,
    targets: &Targets,
    dropout_seed: u32,
    micro: usize,
) -> StepResult {
    let sample = x.len() / n;
    let mut cur = params.to_vec();
    let mut grads = vec![0.0; layout.total_len];
    let mut loss = 0.0;
    let mut acts = Vec::new();
    for (i, start) in (0..n).step_by(micro).enumerate() {
        let m = micro.min(n - start);
        let t = match targets {
            Targets::Binary(t) => {
                let per = t.len() / n;
                Targets::Binary(t[start * per..(start + m) * per].to_vec())
            }
            Targets::Classes(t) => Targets::Classes(t[start..start + m].to_vec()),
        };
        let seed = dropout_seed.wrapping_add((i as u32).wrapping_mul(0x9E37_79B9));
        let r = forward_backward(
            model,
            layout,
            &cur,
            &x[start * sample..(start + m) * sample],
            m,
            &t,
            seed,
        );
        let w = m as f64 / n as f64;
        for (g, v) in grads.iter_mut().zip(&r.grads) {
            *g += w * v;
        }
        loss += w * r.loss;
        cur = r.params; // carries the moving statistics forward
        acts = r.activations;
    }
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
    x: &[f64],
    n: usize,
    targets: &Targets,
    dropout_seed: u32,
) -> StepResult {
    run(model, layout, params, x, n, targets, dropout_seed, true)
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
    run(model, layout, params, x, n, targets, 0, false)
}

#[allow(clippy::too_many_arguments)]
fn run(
    model: &Model,
    layout: &ParamLayout,
    params: &[f64],
    x: &[f64],
    n: usize,
    targets: &Targets,
    dropout_seed: u32,
    train: bool,
) -> StepResult {
    let p = |li: usize, name: &str| {
        let s = layout
            .find(li, name)
            .unwrap_or_else(|| panic!("layer {li} has no {name}"));
        s.offset..s.offset + s.len
    };
    let mut params = params.to_vec();
    let layers = &model.layers;
    let mut acts: Vec<Vec<f64>> = Vec::with_capacity(layers.len());
    let mut saved: Vec<Saved> = vec![Saved::default(); layers.len()];

    // Forward.
    for (li, l) in layers.iter().enumerate() {
        let out_len = n * l.output.len();
        let mut y = vec![0.0; out_len];
        let input = l.inputs.first().map(|&i| &acts[i]);
        let in_shape = l.inputs.first().map(|&i| layers[i].output);
        match &l.kind {
            LayerKind::Input => {
                assert_eq!(x.len(), out_len, "input batch has the wrong size");
                y.copy_from_slice(x);
            }
            LayerKind::Rescaling { scale, offset } => {
                for (o, &v) in y.iter_mut().zip(input.unwrap()) {
                    *o = v * *scale as f64 + *offset as f64;
                }
            }
            LayerKind::Conv2D {
                filters,
                kernel,
                stride,
                padding,
            } => {
                let (h, w, c) = hwc(in_shape.unwrap());
                let s = Conv2dShape {
                    n,
                    h,
                    w,
                    cin: c,
                    cout: *filters,
                    k: *kernel,
                    stride: *stride,
                    padding: *padding,
                };
                cpu::conv2d::conv2d_forward(
                    &mut y,
                    input.unwrap(),
                    &params[p(li, "kernel")],
                    &params[p(li, "bias")],
                    &s,
                );
            }
            LayerKind::SeparableConv2D {
                filters,
                kernel,
                padding,
            } => {
                let (h, w, c) = hwc(in_shape.unwrap());
                let ds = DepthwiseShape {
                    n,
                    h,
                    w,
                    c,
                    k: *kernel,
                    padding: *padding,
                };
                let mut mid = vec![0.0; ds.y_len()];
                cpu::depthwise_conv2d::depthwise_conv2d_forward(
                    &mut mid,
                    input.unwrap(),
                    &params[p(li, "depthwise_kernel")],
                    &ds,
                );
                let (oh, ow) = (ds.oh(), ds.ow());
                cpu::pointwise_conv2d::pointwise_conv2d_forward(
                    &mut y,
                    &mid,
                    &params[p(li, "pointwise_kernel")],
                    &params[p(li, "bias")],
                    n,
                    oh,
                    ow,
                    c,
                    *filters,
                    1,
                );
                saved[li].mid = mid;
            }
            LayerKind::BatchNormalization { epsilon, .. } if !train => {
                let c = l.output.channels();
                cpu::batch_norm::batch_norm_forward_inference(
                    &mut y,
                    input.unwrap(),
                    &params[p(li, "gamma")],
                    &params[p(li, "beta")],
                    &params[p(li, "moving_mean")],
                    &params[p(li, "moving_variance")],
                    out_len / c,
                    c,
                    *epsilon as f64,
                );
            }
            LayerKind::BatchNormalization { momentum, epsilon } => {
                let c = l.output.channels();
                let rows = out_len / c;
                let (mut mean, mut inv_std) = (vec![0.0; c], vec![0.0; c]);
                let gamma = params[p(li, "gamma")].to_vec();
                let beta = params[p(li, "beta")].to_vec();
                let mm = p(li, "moving_mean");
                let mv = p(li, "moving_variance");
                let mut moving_mean = params[mm.clone()].to_vec();
                let mut moving_var = params[mv.clone()].to_vec();
                cpu::batch_norm::batch_norm_forward_train(
                    &mut y,
                    &mut mean,
                    &mut inv_std,
                    &mut moving_mean,
                    &mut moving_var,
                    input.unwrap(),
                    &gamma,
                    &beta,
                    rows,
                    c,
                    *momentum as f64,
                    *epsilon as f64,
                );
                params[mm].copy_from_slice(&moving_mean);
                params[mv].copy_from_slice(&moving_var);
                saved[li].mean = mean;
                saved[li].inv_std = inv_std;
            }
            LayerKind::Relu => cpu::relu::relu_forward(&mut y, input.unwrap()),
            LayerKind::MaxPooling2D {
                pool,
                stride,
                padding,
            } => {
                let (h, w, c) = hwc(in_shape.unwrap());
                let g = Pool2d::square(n, h, w, c, *pool, *stride, *padding);
                let mut argmax = vec![0u32; out_len];
                cpu::pool::max_pool2d_forward(&mut y, &mut argmax, input.unwrap(), &g);
                saved[li].argmax = argmax;
            }
            LayerKind::GlobalAveragePooling2D => {
                let (h, w, c) = hwc(in_shape.unwrap());
                cpu::pool::global_avg_pool2d_forward(&mut y, input.unwrap(), n, h, w, c);
            }
            LayerKind::Add => {
                cpu::elementwise::add_forward(&mut y, &acts[l.inputs[0]], &acts[l.inputs[1]]);
            }
            LayerKind::Dropout { .. } if !train => y.copy_from_slice(input.unwrap()),
            LayerKind::Dropout { rate } => {
                cpu::elementwise::dropout_forward(&mut y, input.unwrap(), dropout_seed, *rate);
            }
            LayerKind::Dense { units, .. } => {
                let f = in_shape.unwrap().len();
                cpu::dense::dense_forward(
                    &mut y,
                    input.unwrap(),
                    &params[p(li, "kernel")],
                    &params[p(li, "bias")],
                    n,
                    f,
                    *units,
                );
            }
        }
        acts.push(y);
    }

    // Loss on the last layer's logits (the activation is fused into the loss).
    let last = layers.len() - 1;
    let logits = &acts[last];
    let units = layers[last].output.len();
    let activation = match layers[last].kind {
        LayerKind::Dense { activation, .. } => activation,
        _ => Activation::None,
    };
    let mut loss = [0.0];
    let mut dlogits = vec![0.0; logits.len()];
    match (activation, targets) {
        (Activation::Sigmoid, Targets::Binary(t)) => {
            cpu::loss::sigmoid_bce_forward(&mut loss, logits, t, n, units);
            cpu::loss::sigmoid_bce_backward(&mut dlogits, logits, t, n, units);
        }
        (Activation::Softmax, Targets::Classes(t)) => {
            cpu::loss::softmax_ce_forward(&mut loss, logits, t, n, units);
            cpu::loss::softmax_ce_backward(&mut dlogits, logits, t, n, units);
        }
        (a, t) => panic!("targets {t:?} do not fit a model whose output activation is {a:?}"),
    }

    if !train {
        return StepResult {
            loss: loss[0],
            grads: vec![0.0; layout.total_len],
            params,
            activations: acts,
        };
    }

    // Backward: grads of each layer's output, accumulated over its consumers.
    let mut grads = vec![0.0; layout.total_len];
    let mut dacts: Vec<Option<Vec<f64>>> = vec![None; layers.len()];
    dacts[last] = Some(dlogits);
    let send = |dacts: &mut Vec<Option<Vec<f64>>>, to: usize, g: Vec<f64>| match &mut dacts[to] {
        Some(acc) => cpu::elementwise::add_backward_accumulate(acc, &g),
        slot @ None => *slot = Some(g),
    };
    for li in (1..layers.len()).rev() {
        let l = &layers[li];
        let Some(dy) = dacts[li].take() else { continue };
        let src = l.inputs[0];
        let x_in = &acts[src];
        let in_shape = layers[src].output;
        let mut dx = vec![0.0; x_in.len()];
        match &l.kind {
            LayerKind::Input => unreachable!(),
            LayerKind::Rescaling { scale, .. } => {
                for (d, g) in dx.iter_mut().zip(&dy) {
                    *d = g * *scale as f64;
                }
            }
            LayerKind::Conv2D {
                filters,
                kernel,
                stride,
                padding,
            } => {
                let (h, w, c) = hwc(in_shape);
                let s = Conv2dShape {
                    n,
                    h,
                    w,
                    cin: c,
                    cout: *filters,
                    k: *kernel,
                    stride: *stride,
                    padding: *padding,
                };
                let (wr, br) = (p(li, "kernel"), p(li, "bias"));
                let (mut dw, mut db) = (vec![0.0; wr.len()], vec![0.0; br.len()]);
                cpu::conv2d::conv2d_backward_weight(&mut dw, &mut db, &dy, x_in, &s);
                cpu::conv2d::conv2d_backward_input(&mut dx, &dy, &params[wr.clone()], &s);
                grads[wr].copy_from_slice(&dw);
                grads[br].copy_from_slice(&db);
            }
            LayerKind::SeparableConv2D {
                filters,
                kernel,
                padding,
            } => {
                let (h, w, c) = hwc(in_shape);
                let ds = DepthwiseShape {
                    n,
                    h,
                    w,
                    c,
                    k: *kernel,
                    padding: *padding,
                };
                let (oh, ow) = (ds.oh(), ds.ow());
                let mid = &saved[li].mid;
                let (dwr, pwr, br) = (
                    p(li, "depthwise_kernel"),
                    p(li, "pointwise_kernel"),
                    p(li, "bias"),
                );
                let (mut dpw, mut db) = (vec![0.0; pwr.len()], vec![0.0; br.len()]);
                cpu::pointwise_conv2d::pointwise_conv2d_backward_weight(
                    &mut dpw, &mut db, &dy, mid, n, oh, ow, c, *filters, 1,
                );
                let mut dmid = vec![0.0; mid.len()];
                cpu::pointwise_conv2d::pointwise_conv2d_backward_input(
                    &mut dmid,
                    &dy,
                    &params[pwr.clone()],
                    n,
                    oh,
                    ow,
                    c,
                    *filters,
                    1,
                );
                let mut ddw = vec![0.0; dwr.len()];
                cpu::depthwise_conv2d::depthwise_conv2d_backward_weight(&mut ddw, &dmid, x_in, &ds);
                cpu::depthwise_conv2d::depthwise_conv2d_backward_input(
                    &mut dx,
                    &dmid,
                    &params[dwr.clone()],
                    &ds,
                );
                grads[dwr].copy_from_slice(&ddw);
                grads[pwr].copy_from_slice(&dpw);
                grads[br].copy_from_slice(&db);
            }
            LayerKind::BatchNormalization { .. } => {
                let c = l.output.channels();
                let rows = dy.len() / c;
                let (gr, br) = (p(li, "gamma"), p(li, "beta"));
                let (mut dg, mut dbeta) = (vec![0.0; c], vec![0.0; c]);
                cpu::batch_norm::batch_norm_backward(
                    &mut dx,
                    &mut dg,
                    &mut dbeta,
                    &dy,
                    x_in,
                    &params[gr.clone()],
                    &saved[li].mean,
                    &saved[li].inv_std,
                    rows,
                    c,
                );
                grads[gr].copy_from_slice(&dg);
                grads[br].copy_from_slice(&dbeta);
            }
            LayerKind::Relu => cpu::relu::relu_backward(&mut dx, &dy, &acts[li]),
            LayerKind::MaxPooling2D {
                pool,
                stride,
                padding,
            } => {
                let (h, w, c) = hwc(in_shape);
                let g = Pool2d::square(n, h, w, c, *pool, *stride, *padding);
                cpu::pool::max_pool2d_backward(&mut dx, &dy, &saved[li].argmax, &g);
            }
            LayerKind::GlobalAveragePooling2D => {
                let (h, w, c) = hwc(in_shape);
                cpu::pool::global_avg_pool2d_backward(&mut dx, &dy, n, h, w, c);
            }
            LayerKind::Add => {
                let mut db = vec![0.0; dy.len()];
                cpu::elementwise::add_backward(&mut dx, &mut db, &dy);
                send(&mut dacts, l.inputs[1], db);
            }
            LayerKind::Dropout { rate } => {
                cpu::elementwise::dropout_backward(&mut dx, &dy, dropout_seed, *rate)
            }
            LayerKind::Dense { units, .. } => {
                let f = in_shape.len();
                let (wr, br) = (p(li, "kernel"), p(li, "bias"));
                let (mut dw, mut db) = (vec![0.0; wr.len()], vec![0.0; br.len()]);
                cpu::dense::dense_backward_weight(&mut dw, &mut db, &dy, x_in, n, f, *units);
                cpu::dense::dense_backward_input(&mut dx, &dy, &params[wr.clone()], n, f, *units);
                grads[wr].copy_from_slice(&dw);
                grads[br].copy_from_slice(&db);
            }
        }
        send(&mut dacts, src, dx);
    }

    StepResult {
        loss: loss[0],
        grads,
        params,
        activations: acts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{XceptionConfig, xception_mini};

    fn tiny() -> (Model, ParamLayout) {
        let m = xception_mini(&XceptionConfig {
            image_size: 12,
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
        let (m, layout) = tiny();
        let params: Vec<f64> = layout.initial_values(5).iter().map(|&v| v as f64).collect();
        let n = 3;
        let x = cpu::random_f64(9, n * 12 * 12 * 3, 0.0, 255.0);
        let t = Targets::Binary(vec![1.0, 0.0, 1.0]);
        let step = |p: &[f64]| {
            train_step(
                &m,
                &layout,
                p,
                &mut AdamState::new(&layout),
                1e-3,
                &x,
                n,
                &t,
                7,
            )
        };
        let base = step(&params);
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
                let ana = base.grads[idx];
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
        let first = train_step(&m, &layout, &params, &mut adam, 1e-2, &x, n, &t, 1);
        params = first.params;
        let mut last = first.loss;
        for _ in 0..10 {
            let r = train_step(&m, &layout, &params, &mut adam, 1e-2, &x, n, &t, 1);
            params = r.params;
            last = r.loss;
        }
        assert!(last < 0.5 * first.loss, "loss {} → {last}", first.loss);
        assert_eq!(adam.t, 11);
    }
}
