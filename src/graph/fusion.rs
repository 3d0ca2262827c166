//! Fusions the plan makes (the model and its checkpoints keep every Keras layer): which layers
//! run inside another's op. [`super::schedule`] asks [`Fusions::of`] and plans accordingly;
//! `GPUCNN_FUSION=off` plans none, so what they save can be measured with one binary.

use super::executor::ExecError;
use super::schedule::Mode;
use super::{LayerKind, Model};

/// Per layer: the layers that read its output.
fn consumers(model: &Model) -> Vec<Vec<usize>> {
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); model.layers.len()];
    for (li, l) in model.layers.iter().enumerate() {
        for &i in &l.inputs {
            consumers[i].push(li);
        }
    }
    consumers
}

/// Per layer: the ReLU fused into it, where the layer is a batch norm whose only consumer is
/// a ReLU. The pair is planned as one op per pass (forward and backward), so the batch norm's
/// output, the ReLU's pass over it and, backward, the gradient between the two are never
/// stored: a decision of the plan, the model (and its checkpoints) keep both layers.
pub fn fused_relus(model: &Model) -> Vec<Option<usize>> {
    let consumers = consumers(model);
    (model.layers.iter().zip(&consumers))
        .map(|(l, c)| match (&l.kind, c.as_slice()) {
            (LayerKind::BatchNormalization(_), &[r])
                if matches!(model.layers[r].kind, LayerKind::Relu(_)) =>
            {
                Some(r)
            }
            _ => None,
        })
        .collect()
}

/// Per layer: whether it is a ReLU folded into the loads of the separable convolution that is
/// its only consumer (the ReLU at each block's start, whose input also feeds the residual
/// branch un-ReLU'd): the convolution reads max(x, 0) and masks its input gradient by x > 0,
/// so the ReLU's pass and its output are never planned. A ReLU already fused into its batch
/// norm ([`fused_relus`]) is left there.
pub fn folded_relus(model: &Model) -> Vec<bool> {
    let fused = fused_relus(model);
    let consumers = consumers(model);
    (model.layers.iter().enumerate())
        .map(|(li, l)| {
            matches!(l.kind, LayerKind::Relu(_))
                && !fused.contains(&Some(li))
                && !matches!(model.layers[l.inputs[0]].kind, LayerKind::Input)
                && matches!(consumers[li].as_slice(),
                    &[s] if matches!(model.layers[s].kind, LayerKind::SeparableConv2D(_)))
        })
        .collect()
}

/// Per layer: the Add folded into it, where the layer is a max pooling whose only consumer is
/// an Add of it and another tensor (each block's pool and residual branch): the pool writes
/// max + residual straight into the Add's output, so the pool's output and the Add's pass are
/// never planned. The Add's backward is unchanged (it passes dy on to both inputs).
pub fn pooled_adds(model: &Model) -> Vec<Option<usize>> {
    let consumers = consumers(model);
    (model.layers.iter().enumerate())
        .map(|(li, l)| match (&l.kind, consumers[li].as_slice()) {
            (LayerKind::MaxPooling2D(_), &[a])
                if matches!(model.layers[a].kind, LayerKind::Add(_))
                    && model.layers[a].inputs.iter().filter(|&&i| i == li).count() == 1 =>
            {
                Some(a)
            }
            _ => None,
        })
        .collect()
}

/// Per layer: the batch norm folded into it in inference programs, where the layer is a
/// convolution (Conv2D, or the pointwise half of a SeparableConv2D) whose only consumer is a
/// batch norm (the stem's, and every separable convolution of the Keras example). With the moving
/// statistics the batch norm is an affine map per output channel, so the convolution computes
/// it with a folded kernel and bias (`cpu::batch_norm::batch_norm_fold`, recomputed at the
/// start of every folded convolution since training changes them) and, where the batch norm's
/// ReLU is fused ([`fused_relus`]), a ReLU epilogue: the batch norm's pass, its ReLU's and the
/// convolution's own output are never planned. Training normalises with batch statistics,
/// which only exist after the convolution, so training programs fold nothing.
pub fn folded_batch_norms(model: &Model) -> Vec<Option<usize>> {
    let consumers = consumers(model);
    (model.layers.iter().zip(&consumers))
        .map(|(l, c)| match (&l.kind, c.as_slice()) {
            (LayerKind::Conv2D(_) | LayerKind::SeparableConv2D(_), &[b])
                if matches!(model.layers[b].kind, LayerKind::BatchNormalization(_)) =>
            {
                Some(b)
            }
            _ => None,
        })
        .collect()
}

/// The fusions a schedule plans: per layer, the ReLU fused into it ([`fused_relus`]), whether
/// it is a ReLU folded into its consumer's loads ([`folded_relus`]), the Add folded into it
/// ([`pooled_adds`]), and, in inference programs, the batch norm folded into it
/// ([`folded_batch_norms`]).
pub(super) struct Fusions {
    pub(super) fused: Vec<Option<usize>>,
    pub(super) folded: Vec<bool>,
    pub(super) pooled: Vec<Option<usize>>,
    pub(super) folded_bns: Vec<Option<usize>>,
}

impl Fusions {
    /// The model's fusions for a program of `mode`, or none when `GPUCNN_FUSION=off` (the
    /// unfused plan, to measure what the fusions save on this adapter; both compute the same
    /// step).
    pub(super) fn of(model: &Model, mode: Mode) -> Result<Self, ExecError> {
        let n = model.layers.len();
        match std::env::var("GPUCNN_FUSION").as_deref() {
            Ok("off") => Ok(Self {
                fused: vec![None; n],
                folded: vec![false; n],
                pooled: vec![None; n],
                folded_bns: vec![None; n],
            }),
            Ok("on") | Err(_) => Ok(Self {
                fused: fused_relus(model),
                folded: folded_relus(model),
                pooled: pooled_adds(model),
                folded_bns: match mode {
                    Mode::Eval => folded_batch_norms(model),
                    Mode::Train => vec![None; n],
                },
            }),
            Ok(other) => Err(ExecError::Fusion(other.into())),
        }
    }
}
