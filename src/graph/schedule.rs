//! The schedule of one program: a walk over the model that asks each layer for its ops —
//! forward, loss, backward in reverse order (gradients add up where a tensor fans out). It
//! needs the kernel variants (for scratch sizes) but no GPU.

use super::bind::range;
use super::executor::ExecError;
use super::fusion::Fusions;
use super::layers::{self, GpuBwd, GpuFwd};
use super::memory::binding_slices;
use super::params::Region;
use super::planner::{Planner, TensorId};
use super::{Activation, LayerKind, Model};
use crate::cpu::augment::AugmentConfig;
use crate::kernels::loss::LossInput;
use crate::kernels::variants::Variants;
use crate::shapes::NhwcShape;

/// What a program does: a training step (forward with batch statistics and dropout, loss,
/// backward) or an evaluation (forward with the moving statistics, no dropout, loss and
/// metrics only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Train,
    Eval,
}

/// The output activation and width of the model's last (Dense) layer.
pub fn classifier(model: &Model) -> Result<(Activation, usize), ExecError> {
    match model.layers.last().map(|l| &l.kind) {
        Some(LayerKind::Dense(d))
            if matches!(d.activation, Activation::Sigmoid | Activation::Softmax) =>
        {
            Ok((d.activation, d.units))
        }
        _ => Err(ExecError::NoClassifier),
    }
}

/// What one micro-batch of `n` samples runs: forward, loss, backward (no optimizer).
pub struct Schedule {
    pub n: usize,
    /// The model's output tensor (logits).
    pub logits: TensorId,
    pub pl: Planner,
}

/// Plans a program of `n` samples of `model` in `mode`, with the kernel `variants`;
/// `augment`: the input batch is augmented on the GPU first (training only).
pub fn schedule(
    model: &Model,
    variants: &Variants,
    n: usize,
    mode: Mode,
    augment: Option<AugmentConfig>,
) -> Result<Schedule, ExecError> {
    let (activation, outputs) = classifier(model)?;
    let mut pl = Planner::default();
    let mut act = augment_input(&mut pl, model, n, mode, augment);
    let fusions = Fusions::of(model, mode)?;
    forward(&mut pl, model, variants, n, mode, &fusions, &mut act)?;
    let logits = act[model.layers.len() - 1].expect("the last layer has an output");
    let dlogits = loss(&mut pl, logits, n, activation, outputs, mode);
    if mode == Mode::Train {
        backward(&mut pl, model, variants, n, &fusions, &act, dlogits)?;
    }
    Ok(Schedule { n, logits, pl })
}

/// act[li]: the tensor holding layer li's output (None for the raw input layer). With
/// augmentation the input layer's output is the augmented batch. That tensor exists in
/// every mode, so that tensor ids, and so the pool plan, are the same for training and
/// evaluation programs. With a crop the training input (`fixed.input`) holds images of the
/// crop's `from` size and the augmented batch the model's (the crop's) size.
fn augment_input(
    pl: &mut Planner,
    model: &Model,
    n: usize,
    mode: Mode,
    augment: Option<AugmentConfig>,
) -> Vec<Option<TensorId>> {
    let mut act = vec![None; model.layers.len()];
    if let Some(cfg) = augment {
        let (h, w, c) = layers::hwc(model.layers[0].output);
        let aug = pl.tensor("augmented input".into(), n * h * w * c);
        if mode == Mode::Train {
            act[0] = Some(aug);
            let (src_h, src_w) = match cfg.crop {
                Some(crop) => {
                    assert_eq!(
                        (crop.height, crop.width),
                        (h, w),
                        "the crop's size is the model's input size"
                    );
                    crop.from
                }
                None => (h, w),
            };
            let src = NhwcShape {
                n,
                h: src_h,
                w: src_w,
                c,
            };
            let op = pl.op("augment.forward", vec![aug], move |e| {
                vec![e.kernels.augment.forward(
                    e.ctx,
                    &e.tensor(aug),
                    &e.fixed.input,
                    &e.fixed.aug_seed,
                    &src,
                    &cfg,
                )]
            });
            pl.more_bytes(op, n * src_h * src_w * c);
            if crate::cpu::augment_color::color_on(&cfg) {
                augment_color(pl, aug, &NhwcShape { n, h, w, c }, cfg);
            }
        }
    }
    act
}

/// Contrast and brightness, in place on the geometric op's output `aug`; the per-channel means
/// go to the shared scratch (free here: no other op runs between this one's two passes).
fn augment_color(pl: &mut Planner, aug: TensorId, s: &NhwcShape, cfg: AugmentConfig) {
    use crate::kernels::augment_color::AugmentColor;
    let s = *s;
    let means = AugmentColor::means_len(&s);
    pl.need_scratch(means);
    let op = pl.op("augment_color.forward", vec![aug], move |e| {
        e.kernels.augment_color.forward(
            e.ctx,
            &e.tensor(aug),
            &super::bind::range(&e.fixed.scratch, 0, means),
            &e.fixed.aug_seed,
            &s,
            &cfg,
        )
    });
    // The means pass reads the batch once more (the op's one use counts the apply pass's read
    // and write as one tensor): with contrast, two more reads in all; without, one more.
    let passes = if cfg.contrast > 0.0 { 2 } else { 1 };
    pl.more_bytes(op, passes * s.n * s.h * s.w * s.c);
}

fn forward(
    pl: &mut Planner,
    model: &Model,
    variants: &Variants,
    n: usize,
    mode: Mode,
    fusions: &Fusions,
    act: &mut [Option<TensorId>],
) -> Result<(), ExecError> {
    let Fusions {
        fused,
        folded,
        pooled,
        folded_bns,
    } = fusions;
    for (li, l) in model.layers.iter().enumerate().skip(1) {
        if let Some(conv) = folded_bns.iter().position(|&b| b == Some(li)) {
            // A batch norm folded into its convolution, whose op already wrote its output
            // (or its fused ReLU's) into the tensor the training program gives the
            // convolution's output. The tensor training gives this batch norm's output keeps
            // its id, empty.
            let out = fused[li].unwrap_or(li);
            let name = format!(
                "{}:out (folded into {})",
                model.layers[out].name, model.layers[conv].name
            );
            pl.placeholder(name);
            continue;
        }
        if act[li].is_some() {
            // A ReLU whose batch norm's op already wrote its output.
            continue;
        }
        if folded[li] {
            // Its consumer reads the ReLU's input and applies it while loading.
            act[li] = act[l.inputs[0]];
            continue;
        }
        if pooled[li].is_some() {
            // Planned at its Add, once the residual exists.
            continue;
        }
        // The layer whose op runs here (an Add folded into a pool runs the pool's, adding the
        // other input), and the layer whose output it writes (a fused ReLU's, or this one's).
        let (at, residual) = match l.inputs.iter().position(|&i| pooled[i] == Some(li)) {
            Some(k) => (l.inputs[k], act[l.inputs[1 - k]]),
            None => (li, None),
        };
        // A batch norm folded into this convolution: the op writes the batch norm's output,
        // or with its ReLU fused, the ReLU's.
        let bn = folded_bns[at];
        let out = match bn {
            Some(b) => fused[b].unwrap_or(b),
            None => fused[at].unwrap_or(li),
        };
        let name = &model.layers[out].name;
        let y = pl.tensor(format!("{name}:out"), n * l.output.len());
        for t in [li, out, at].into_iter().chain(bn) {
            act[t] = Some(y);
        }
        pl.layer = Some(at);
        let la = &model.layers[at];
        let mut cx = GpuFwd {
            pl,
            li: at,
            layer: la,
            n,
            train: mode == Mode::Train,
            variants,
            x: la.inputs.iter().map(|&i| act[i]).collect(),
            in_shape: model.layers[la.inputs[0]].output,
            y,
            relu: fused[bn.unwrap_or(at)].is_some(),
            relu_input: folded[la.inputs[0]],
            residual,
            fold: bn.map(|b| match model.layers[b].kind {
                LayerKind::BatchNormalization(k) => (b, k),
                _ => unreachable!("folded_batch_norms names batch norms only"),
            }),
        };
        layers::ops(&la.kind).gpu_forward(&mut cx)?;
    }
    pl.layer = None;
    Ok(())
}

/// Loss forward (mean loss), metrics, and (training) the gradient of the logits.
///
/// Training programs weight the loss by the class weights in `fixed.class_weights` (all 1.0
/// unless [`super::executor::TrainStep::set_class_weights`] wrote others: ×1.0 is exact, so an
/// unweighted run computes what it did before the weights existed); evaluation programs never
/// weight it, as Keras applies `class_weight` to training only.
fn loss(
    pl: &mut Planner,
    logits: TensorId,
    n: usize,
    activation: Activation,
    outputs: usize,
    mode: Mode,
) -> TensorId {
    let dlogits = pl.tensor("loss:dlogits".into(), n * outputs);
    let train = mode == Mode::Train;
    pl.op("loss", vec![logits, dlogits], move |e| {
        let (loss, metrics, t) = (&e.fixed.loss, &e.fixed.metrics, &e.fixed.targets);
        let (z, dz, k) = (e.tensor(logits), e.tensor(dlogits), &e.kernels.loss);
        let input = LossInput {
            z: &z,
            targets: t,
            n,
            classes: outputs,
            weights: train.then_some(&e.fixed.class_weights as &dyn crate::kernels::Bind),
            smoothing: e.kernels.label_smoothing,
        };
        let mut v = match activation {
            Activation::Softmax => vec![
                k.softmax_ce_forward(e.ctx, loss, &input),
                k.softmax_ce_metrics(e.ctx, metrics, &input),
            ],
            _ => vec![
                k.sigmoid_bce_forward(e.ctx, loss, &input),
                k.sigmoid_bce_metrics(e.ctx, metrics, &input),
            ],
        };
        // Keras' L2 kernel regularizer: its penalty joins the loss and the metrics, in
        // training and in evaluation (Keras' compute_loss adds the model's losses to both).
        if let Some(mask) = &e.fixed.l2_mask {
            let count = if activation == Activation::Softmax {
                n
            } else {
                n * outputs
            };
            let (start, len) = e.layout.regions[Region::Weights as usize];
            debug_assert_eq!(start, 0, "the weights region comes first");
            let limit = e.ctx.limits.max_storage_buffer_binding_size;
            for (at, len) in binding_slices(len, limit) {
                v.push(e.kernels.adam.l2_penalty(
                    e.ctx,
                    (&range(&e.params[0], at, len), &range(mask, at, len)),
                    (metrics, loss),
                    len,
                    count,
                ));
            }
        }
        if train {
            v.push(match activation {
                Activation::Softmax => k.softmax_ce_backward(e.ctx, &dz, &input),
                _ => k.sigmoid_bce_backward(e.ctx, &dz, &input),
            });
        }
        v
    });
    dlogits
}

fn backward(
    pl: &mut Planner,
    model: &Model,
    variants: &Variants,
    n: usize,
    fusions: &Fusions,
    act: &[Option<TensorId>],
    dlogits: TensorId,
) -> Result<(), ExecError> {
    let layers = &model.layers;
    // Which layer outputs need a gradient: those with a trainable layer upstream.
    let mut needs_grad = vec![false; layers.len()];
    let mut consumers = vec![0usize; layers.len()];
    for (li, l) in layers.iter().enumerate() {
        needs_grad[li] = !l.params.is_empty() || l.inputs.iter().any(|&i| needs_grad[i]);
        for &i in &l.inputs {
            consumers[i] += 1;
        }
    }
    let Fusions { fused, folded, .. } = fusions;
    let mut grad: Vec<Option<TensorId>> = vec![None; layers.len()];
    grad[layers.len() - 1] = Some(dlogits);
    for li in (1..layers.len()).rev() {
        let Some(dy) = grad[li] else { continue };
        let l = &layers[li];
        if let Some(bn) = fused.iter().position(|&r| r == Some(li)) {
            // A fused ReLU: its batch norm's backward takes the ReLU's gradient as it is.
            grad[bn] = Some(dy);
            continue;
        }
        pl.layer = Some(li);
        let mut cx = GpuBwd {
            pl,
            li,
            layer: l,
            n,
            variants,
            x: l.inputs.iter().map(|&i| act[i]).collect(),
            in_shape: layers[l.inputs[0]].output,
            y: act[li].expect("every layer but the input has an output tensor"),
            dy,
            relu: fused[li].is_some(),
            relu_input: folded[l.inputs[0]],
            inputs: (l.inputs.iter())
                .map(|&i| if folded[i] { layers[i].inputs[0] } else { i })
                .collect(),
            grad: &mut grad,
            layers,
            needs_grad: &needs_grad,
            consumers: &consumers,
        };
        layers::ops(&l.kind).gpu_backward(&mut cx)?;
    }
    pl.layer = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::fusion::{folded_batch_norms, folded_relus, fused_relus, pooled_adds};
    use crate::model::{XceptionConfig, xception_mini};

    #[test]
    fn dropout_seeds_go_to_the_dropout_ops_even_after_a_fan_out() {
        let m = crate::step_parity::fan_out_before_dropout();
        let s = schedule(&m, &Variants::portable(), 2, Mode::Train, None).unwrap();
        let labels = s.pl.labels();
        let tagged: Vec<&str> = s.pl.dropout.iter().map(|d| labels[d.op.0].1).collect();
        assert_eq!(
            tagged,
            [
                "elementwise.dropout_forward",
                "elementwise.dropout_backward"
            ]
        );
        // The case that used to go wrong: an accumulate right after the dropout backward.
        let back = s.pl.dropout[1].op.0;
        assert_eq!(labels[back + 1].1, "elementwise.add_accumulate");
        // Evaluation has no dropout pass to seed.
        let e = schedule(&m, &Variants::portable(), 2, Mode::Eval, None).unwrap();
        assert!(e.pl.dropout.is_empty());
    }

    /// Every layer of the Keras example's network gets its forward ops, every parameter its
    /// gradient op, and evaluation plans the training program's tensors minus the backward
    /// (where a batch norm is folded into its convolution, the convolution's tensor holds the
    /// batch norm's output and the batch norm's is an empty placeholder).
    #[test]
    fn xception_mini_plans_every_layer_forward_and_backward() {
        let m = xception_mini(&XceptionConfig::default()).unwrap();
        let v = Variants::portable();
        let train = schedule(&m, &v, 4, Mode::Train, None).unwrap();
        let labels = train.pl.labels();
        let (fused, folded, pooled) = (fused_relus(&m), folded_relus(&m), pooled_adds(&m));
        for (li, l) in m.layers.iter().enumerate().skip(1) {
            if fused.contains(&Some(li)) || folded[li] || pooled.contains(&Some(li)) {
                continue; // planned with the layer it is fused or folded into
            }
            let ops: Vec<&str> = labels
                .iter()
                .filter(|(at, _)| *at == Some(li))
                .map(|(_, w)| *w)
                .collect();
            assert!(
                ops.iter()
                    .any(|w| w.contains("forward") || w.starts_with("elementwise.add")),
                "{}: {ops:?}",
                l.name
            );
            if !l.params.is_empty() {
                assert!(
                    ops.iter()
                        .any(|w| w.ends_with("backward_weight")
                            || w.starts_with("batch_norm.backward")),
                    "{} has no gradient op: {ops:?}",
                    l.name
                );
            }
        }
        // The rescaling layer reads the raw input: nothing upstream needs a gradient.
        assert!(
            !labels.iter().any(|(at, _)| *at == Some(1)
                && labels.iter().filter(|(a, _)| *a == Some(1)).count() > 1)
        );
        let eval = schedule(&m, &v, 4, Mode::Eval, None).unwrap();
        assert!(
            eval.pl
                .labels()
                .iter()
                .all(|(_, w)| !w.contains("backward"))
        );
        assert!(eval.pl.tensors.len() <= train.pl.tensors.len());
        let folded = folded_batch_norms(&m);
        let convs: Vec<String> = (folded.iter().enumerate())
            .filter(|(_, b)| b.is_some())
            .map(|(c, _)| format!("{}:out", m.layers[c].name))
            .collect();
        assert_eq!(convs.len(), 8, "every batch norm follows a convolution");
        let mut placeholders = 0;
        for (e, t) in eval.pl.tensors.iter().zip(&train.pl.tensors) {
            if e.bytes == 0 {
                placeholders += 1;
            } else if convs.contains(&t.name) {
                assert_eq!(e.bytes, t.bytes, "{} in {}", e.name, t.name);
            } else {
                assert_eq!((&e.name, e.bytes), (&t.name, t.bytes));
            }
        }
        assert_eq!(placeholders, convs.len());
        // Each batch norm saves its statistics for its backward.
        let bn = m
            .layers
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::BatchNormalization(_)))
            .count();
        assert_eq!(
            train
                .pl
                .saved
                .iter()
                .filter(|((_, w), _)| *w == crate::graph::Saved::Mean)
                .count(),
            bn
        );
    }

    /// Where a batch norm's only consumer is a ReLU (the stem's, the middle of each block, the
    /// exit's), the pair is one op per pass in training (in evaluation both are folded into the
    /// convolution before them: see the next test): no ReLU op and no tensor for the batch
    /// norm's output. A batch norm that feeds a pooling layer, and the ReLU at each block's
    /// start (it reads an Add), are left alone.
    #[test]
    fn a_batch_norm_and_the_relu_after_it_are_one_op() {
        let m = xception_mini(&XceptionConfig::default()).unwrap();
        let fused = fused_relus(&m);
        let pairs: Vec<(usize, usize)> = (fused.iter().enumerate())
            .filter_map(|(bn, r)| r.map(|r| (bn, r)))
            .collect();
        assert_eq!(pairs.len(), 5, "{pairs:?}");
        let v = Variants::portable();
        let train = schedule(&m, &v, 2, Mode::Train, None).unwrap();
        let labels = train.pl.labels();
        let names: Vec<&str> = train.pl.tensors.iter().map(|t| t.name.as_str()).collect();
        for &(bn, r) in &pairs {
            let at = |li| -> Vec<&str> {
                (labels.iter().filter(|(l, _)| *l == Some(li)))
                    .map(|(_, w)| *w)
                    .collect()
            };
            assert!(at(r).is_empty(), "{}: {:?}", m.layers[r].name, at(r));
            let want = ["batch_norm.forward_train_relu", "batch_norm.backward_relu"];
            assert_eq!(at(bn), want, "{}", m.layers[bn].name);
            assert!(!names.contains(&format!("{}:out", m.layers[bn].name).as_str()));
            assert!(names.contains(&format!("{}:out", m.layers[r].name).as_str()));
        }
    }

    /// In evaluation every batch norm of the Keras example's network follows a convolution
    /// (the stem's Conv2D, the pointwise half of each separable one) and is folded into it:
    /// the plan has no batch-norm pass, only the fold before each of those convolutions, whose
    /// forward writes the batch norm's output (with the ReLU epilogue where the batch norm's
    /// ReLU is fused, none where it feeds a pool); no tensor is planned for the convolution's
    /// own output, and the training plan is as before. With `GPUCNN_FUSION=off` nothing is
    /// folded (checked in tests/cli.rs and tests/train_cli.rs, whose processes set it).
    #[test]
    fn in_evaluation_each_batch_norm_is_folded_into_the_convolution_before_it() {
        let m = xception_mini(&XceptionConfig::default()).unwrap();
        let (folded, fused) = (folded_batch_norms(&m), fused_relus(&m));
        let pairs: Vec<(usize, usize)> = (folded.iter().enumerate())
            .filter_map(|(c, b)| b.map(|b| (c, b)))
            .collect();
        let bns = (m.layers.iter())
            .filter(|l| matches!(l.kind, LayerKind::BatchNormalization(_)))
            .count();
        assert_eq!((pairs.len(), bns), (8, 8), "{pairs:?}");
        let v = Variants::portable();
        let eval = schedule(&m, &v, 2, Mode::Eval, None).unwrap();
        let labels = eval.pl.labels();
        assert!(
            labels
                .iter()
                .all(|(_, w)| !w.starts_with("batch_norm.forward")),
            "{labels:?}"
        );
        let used: Vec<&str> = (eval.pl.ops.iter())
            .flat_map(|o| o.uses.iter().map(|&t| eval.pl.tensors[t].name.as_str()))
            .collect();
        let mut relus = 0;
        for &(c, bn) in &pairs {
            let conv = &m.layers[c];
            let at: Vec<&str> = (labels.iter().filter(|(l, _)| *l == Some(c)))
                .map(|(_, w)| *w)
                .collect();
            let relu = fused[bn].is_some();
            relus += relu as usize;
            let forward = match (&conv.kind, relu) {
                (LayerKind::Conv2D(_), true) => "conv2d.forward_relu",
                (LayerKind::SeparableConv2D(_), true) => "pointwise_conv2d.forward_relu",
                (LayerKind::SeparableConv2D(_), false) => "pointwise_conv2d.forward",
                other => panic!("{}: {other:?}", conv.name),
            };
            // The fold comes right before the convolution's (pointwise) forward.
            let i = at.iter().position(|w| *w == "batch_norm.fold");
            assert_eq!(i.map(|i| at[i + 1]), Some(forward), "{}: {at:?}", conv.name);
            assert!(!used.contains(&format!("{}:out", conv.name).as_str()));
            let out = &m.layers[fused[bn].unwrap_or(bn)].name;
            let op = (eval.pl.ops.iter())
                .find(|o| o.layer == Some(c) && o.what == forward)
                .unwrap();
            assert_eq!(eval.pl.tensors[op.uses[0]].name, format!("{out}:out"));
            // Nothing is planned at the batch norm or its ReLU.
            for li in [Some(bn), fused[bn]].into_iter().flatten() {
                assert!(labels.iter().all(|(l, _)| *l != Some(li)), "{li}");
            }
        }
        assert_eq!(relus, 5);
        // Training folds nothing.
        let train = schedule(&m, &v, 2, Mode::Train, None).unwrap();
        assert!((train.pl.labels().iter()).all(|(_, w)| !matches!(
            *w,
            "batch_norm.fold" | "conv2d.forward_relu" | "pointwise_conv2d.forward_relu"
        )));
        // One read and one write of an activation fewer per batch norm, for a read of the
        // kernel and a write of the folded one: at 180×180 and batch 2, 17 MB of folds
        // against 131 MB of batch-norm passes (the kernels do not grow with the batch).
        let unfolded: u64 = (pairs.iter())
            .map(|&(_, bn)| 2 * 4 * (2 * m.layers[bn].output.len()) as u64)
            .sum();
        let folds: u64 = (eval.pl.ops.iter())
            .filter(|o| o.what == "batch_norm.fold")
            .map(|o| o.bytes)
            .sum();
        assert!(folds * 5 < unfolded, "{folds} vs {unfolded}");
    }

    /// The colour op is planned only when contrast or brightness is on: right after the
    /// geometric op, on its tensor, in training only, its means in the scratch. With neither on
    /// the plan is op for op the one without the colour fields.
    #[test]
    fn the_colour_op_is_planned_only_when_contrast_or_brightness_is_on() {
        let m = crate::step_parity::small_model(3);
        let v = Variants::portable();
        let labels = |augment, mode| {
            let s = schedule(&m, &v, 4, mode, augment).unwrap();
            let l: Vec<&'static str> = s.pl.labels().into_iter().map(|(_, w)| w).collect();
            (l, s.pl.scratch_len, s.pl.tensors.len())
        };
        let (keras, keras_scratch, keras_tensors) = labels(Some(AugmentConfig::KERAS), Mode::Train);
        assert!(!keras.contains(&"augment_color.forward"), "{keras:?}");
        for (contrast, brightness) in [(0.2, 0.0), (0.0, 0.2), (0.5, 1.0)] {
            let cfg = AugmentConfig {
                contrast,
                brightness,
                ..AugmentConfig::KERAS
            };
            let (l, scratch, tensors) = labels(Some(cfg), Mode::Train);
            assert_eq!(l[0], "augment.forward");
            assert_eq!(l[1], "augment_color.forward");
            // In place: one op more, no tensor more.
            assert_eq!(&l[2..], &keras[1..]);
            assert_eq!(tensors, keras_tensors);
            assert!(scratch >= keras_scratch.max(4 * 3), "{scratch}");
            let s = schedule(&m, &v, 4, Mode::Train, Some(cfg)).unwrap();
            assert_eq!(s.pl.ops[1].uses, s.pl.ops[0].uses);
            // Evaluation augments nothing.
            let (eval, _, _) = labels(Some(cfg), Mode::Eval);
            assert!(!eval.iter().any(|w| w.starts_with("augment")), "{eval:?}");
        }
    }

    /// Every program a step runs fits the pool planned for its training program: evaluation
    /// programs (folded) and smaller batches alike, at the Keras example's network and the
    /// tests' small one, with and without augmentation.
    #[test]
    fn every_program_runs_in_the_training_programs_pool() {
        use crate::graph::memory::{check_fits_pool, pool_plan};
        for m in [
            xception_mini(&XceptionConfig::default()).unwrap(),
            crate::step_parity::small_model(10),
        ] {
            let v = Variants::portable();
            let (h, w, _) = layers::hwc(m.layers[0].output);
            // A crop (the input larger than the model's), with every other transform.
            let crop = AugmentConfig {
                zoom: Some(0.2),
                translate: Some(0.1),
                crop: Some(crate::cpu::augment::Crop {
                    height: h,
                    width: w,
                    from: (h + 5, w + 3),
                }),
                ..AugmentConfig::KERAS
            };
            let colour = AugmentConfig {
                contrast: 0.2,
                brightness: 0.2,
                ..AugmentConfig::KERAS
            };
            for augment in [None, Some(AugmentConfig::KERAS), Some(crop), Some(colour)] {
                let main = schedule(&m, &v, 4, Mode::Train, augment).unwrap();
                let plan = pool_plan(&main.pl);
                for n in 1..=4 {
                    for mode in [Mode::Train, Mode::Eval] {
                        let s = schedule(&m, &v, n, mode, augment).unwrap();
                        check_fits_pool(&s.pl, &plan)
                            .unwrap_or_else(|e| panic!("{mode:?} n {n}: {e}"));
                    }
                }
            }
        }
    }

    /// The ReLU at each block's start (its input, an Add or the stem's output, also feeds the
    /// residual convolution) is folded into the separable convolution after it: no ReLU op and
    /// no tensor of its output; the convolution's depthwise passes take the ReLU's input, and
    /// its input gradient goes to that input's gradient.
    #[test]
    fn the_relu_before_a_separable_convolution_is_folded_into_its_loads() {
        let m = xception_mini(&XceptionConfig::default()).unwrap();
        let folded = folded_relus(&m);
        let relus: Vec<usize> = (0..m.layers.len()).filter(|&li| folded[li]).collect();
        assert_eq!(relus.len(), 3, "{relus:?}");
        let v = Variants::portable();
        let train = schedule(&m, &v, 2, Mode::Train, None).unwrap();
        let labels = train.pl.labels();
        // With the batch-norm fusions, no ReLU pass is left in the step.
        assert!(
            labels.iter().all(|(_, w)| !w.starts_with("relu.")),
            "{labels:?}"
        );
        let names: Vec<&str> = train.pl.tensors.iter().map(|t| t.name.as_str()).collect();
        for &r in &relus {
            let sep = r + 1;
            assert!(matches!(m.layers[sep].kind, LayerKind::SeparableConv2D(_)));
            assert_eq!(m.layers[sep].inputs, [r]);
            let at: Vec<&str> = (labels.iter().filter(|(l, _)| *l == Some(sep)))
                .map(|(_, w)| *w)
                .filter(|w| w.starts_with("depthwise"))
                .collect();
            assert_eq!(
                at,
                [
                    "depthwise_conv2d.forward_relu",
                    "depthwise_conv2d.backward_weight_relu",
                    "depthwise_conv2d.backward_input_relu"
                ]
            );
            let r_name = &m.layers[r].name;
            assert!(!names.iter().any(|n| n.starts_with(&format!("{r_name}:"))));
            // The gradient lands on the ReLU's input, beside the residual branch's.
            let src = &m.layers[m.layers[r].inputs[0]].name;
            assert!(names.contains(&format!("{src}:grad").as_str()));
        }
        let eval = schedule(&m, &v, 2, Mode::Eval, None).unwrap();
        assert!(
            eval.pl
                .labels()
                .iter()
                .all(|(_, w)| !w.starts_with("relu."))
        );
    }

    /// Each block's residual Add is folded into the max pooling before it: one
    /// `pool.max_pool2d_forward_add` op writes the Add's output from the pool's input and the
    /// residual branch, so neither the Add's pass nor the pool's output is planned; the Add's
    /// backward still passes the gradient to both branches.
    #[test]
    fn the_residual_add_is_folded_into_the_pool_before_it() {
        let m = xception_mini(&XceptionConfig::default()).unwrap();
        let pooled = pooled_adds(&m);
        let pairs: Vec<(usize, usize)> = (pooled.iter().enumerate())
            .filter_map(|(p, a)| a.map(|a| (p, a)))
            .collect();
        assert_eq!(pairs.len(), 3, "{pairs:?}");
        let v = Variants::portable();
        for (mode, what) in [
            (Mode::Train, "pool.max_pool2d_forward_add"),
            (Mode::Eval, "pool.max_pool2d_forward_add_inference"),
        ] {
            let s = schedule(&m, &v, 2, mode, None).unwrap();
            let names: Vec<&str> = s.pl.tensors.iter().map(|t| t.name.as_str()).collect();
            assert!(s.pl.ops.iter().all(|o| o.what != "elementwise.add"));
            for &(p, a) in &pairs {
                let op = (s.pl.ops.iter())
                    .find(|o| o.layer == Some(p) && o.what == what)
                    .expect("the pool's fused op");
                let out = format!("{}:out", m.layers[a].name);
                let residual = format!("{}:out", m.layers[m.layers[a].inputs[1]].name);
                let used: Vec<&str> = op.uses.iter().map(|&t| names[t]).collect();
                assert!(used.contains(&out.as_str()) && used.contains(&residual.as_str()));
                assert!(!names.contains(&format!("{}:out", m.layers[p].name).as_str()));
            }
        }
    }

    /// Inference saves no argmax (no backward pass reads one) and runs the argmax-free pool;
    /// training saves one per pool.
    #[test]
    fn only_training_saves_the_pools_argmax() {
        let m = xception_mini(&XceptionConfig::default()).unwrap();
        let pools = (m.layers.iter())
            .filter(|l| matches!(l.kind, LayerKind::MaxPooling2D(_)))
            .count();
        let v = Variants::portable();
        let argmaxes = |mode| {
            let s = schedule(&m, &v, 2, mode, None).unwrap();
            let saved = (s.pl.saved.iter())
                .filter(|((_, w), _)| *w == crate::graph::Saved::Argmax)
                .count();
            let argmax_free = (s.pl.ops.iter())
                .filter(|o| {
                    o.what.starts_with("pool.max_pool2d_forward") && o.what.ends_with("_inference")
                })
                .count();
            (saved, argmax_free)
        };
        assert_eq!(argmaxes(Mode::Train), (pools, 0));
        assert_eq!(argmaxes(Mode::Eval), (0, pools));
    }

    /// Every op counts the bytes of each tensor it touches once: its pooled tensors, the raw
    /// input the rescaling layer reads, the weights of a convolution, and the gradient an
    /// accumulate reads and writes back; the step's bytes are the ops' sum.
    #[test]
    fn every_op_counts_the_bytes_it_moves() {
        let m = xception_mini(&XceptionConfig::default()).unwrap();
        let n = 2;
        let s = schedule(&m, &Variants::portable(), n, Mode::Train, None).unwrap();
        let op = |what: &str| s.pl.ops.iter().find(|o| o.what == what).unwrap();
        let len = |li: usize| 4 * (n * m.layers[li].output.len()) as u64;
        let rescale = op("rescale.forward");
        assert_eq!(rescale.bytes, 2 * len(1));
        let stem = op("conv2d.forward");
        assert_eq!(stem.layer, Some(2));
        assert_eq!(stem.bytes, len(1) + len(2) + 4 * 3 * 3 * 3 * 128);
        let pool_add = op("pool.max_pool2d_forward_add");
        let p = pool_add.layer.unwrap();
        assert_eq!(pool_add.bytes, len(m.layers[p].inputs[0]) + 2 * len(p));
        let accumulates: Vec<_> = (s.pl.ops.iter())
            .filter(|o| o.what == "elementwise.add_accumulate")
            .collect();
        assert!(!accumulates.is_empty());
        for o in accumulates {
            assert_eq!(o.bytes, 3 * s.pl.tensors[o.uses[0]].bytes);
        }
        assert_eq!(s.pl.bytes(), s.pl.ops.iter().map(|o| o.bytes).sum::<u64>());
    }

    /// The planned ops count 2 FLOPs per multiply-add of every convolution and dense pass:
    /// forward once, backward twice (weights and input), but no input gradient for the stem
    /// (its input is the raw batch).
    #[test]
    fn the_step_counts_the_flops_of_every_convolution_and_dense_pass() {
        let m = xception_mini(&XceptionConfig::default()).unwrap();
        let n = 2;
        let mut forward = 0u64;
        let mut stem = None;
        for l in &m.layers[1..] {
            let (h, w, c) = crate::graph::layers::hwc(m.layers[l.inputs[0]].output);
            let (oh, ow, f) = crate::graph::layers::hwc(l.output);
            let macs = match &l.kind {
                LayerKind::Conv2D(k) => n * oh * ow * f * k.kernel * k.kernel * c,
                LayerKind::SeparableConv2D(k) => n * oh * ow * c * (k.kernel * k.kernel + f),
                LayerKind::Dense(d) => n * h * w * c * d.units,
                _ => 0,
            } as u64;
            if stem.is_none() && macs > 0 {
                stem = Some(macs);
            }
            forward += 2 * macs;
        }
        let v = Variants::portable();
        let eval = schedule(&m, &v, n, Mode::Eval, None).unwrap();
        assert_eq!(eval.pl.flops(), forward);
        let train = schedule(&m, &v, n, Mode::Train, None).unwrap();
        assert_eq!(train.pl.flops(), 3 * forward - 2 * stem.unwrap());
        // 2.44 G multiply-adds a 180×180 image forward (the Keras example's network, counted
        // by hand from its layer table): 4.89 GFLOP.
        let per_image = forward as f64 / n as f64 / 1e9;
        assert!((4.85..4.93).contains(&per_image), "{per_image}");
    }
}
