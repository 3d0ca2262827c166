//! BatchNormalization: batch statistics and moving-statistics updates in training, the moving
//! statistics in inference (Keras' defaults: momentum 0.99, epsilon 1e-3).

use super::{CpuBwd, CpuFwd, GpuBwd, GpuFwd, LayerOps};
use crate::cpu;
use crate::graph::bind::{Env, range};
use crate::graph::executor::ExecError;
use crate::graph::names::{Param, Saved};
use crate::graph::params::ALIGN;
use crate::graph::planner::Planner;
use crate::graph::{Init, ParamSpec, Shape, vector_param};
use crate::kernels::batch_norm::{
    BackwardBuffers, BatchNorm, BnShape, FoldBuffers, InferenceBuffers, TrainBuffers,
};
use crate::kernels::{Bind, BufferRange};

/// Normalises each channel; γ, β trainable, moving mean and variance not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormalization {
    pub momentum: f32,
    pub epsilon: f32,
}

impl BatchNormalization {
    /// The geometry of `len` values of `shape`'s channels.
    pub fn shape(&self, len: usize, shape: Shape) -> BnShape {
        let c = shape.channels();
        BnShape {
            momentum: self.momentum,
            epsilon: self.epsilon,
            ..BnShape::keras(len / c, c)
        }
    }
}

/// Where [`plan_fold`] puts a folded kernel [K, C] and bias [C]: the shared scratch (free
/// between ops; no forward op of a convolution uses it), W' from element 0 and b' from the
/// next multiple of [`ALIGN`] (a binding must start 256-byte aligned).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FoldedWeights {
    w_len: usize,
    channels: usize,
}

impl FoldedWeights {
    fn b_at(&self) -> usize {
        self.w_len.next_multiple_of(ALIGN)
    }

    /// Floats of scratch the folded kernel and bias take.
    pub fn scratch_len(&self) -> usize {
        self.b_at() + self.channels
    }

    /// The folded kernel W' [K, C].
    pub fn w<'e>(&self, e: &'e Env) -> BufferRange<'e> {
        range(&e.fixed.scratch, 0, self.w_len)
    }

    /// The folded bias b' [C].
    pub fn b<'e>(&self, e: &'e Env) -> BufferRange<'e> {
        range(&e.fixed.scratch, self.b_at(), self.channels)
    }
}

/// Plans the op that folds the inference batch norm `bn` (layer index and layer) into the
/// kernel `kernel` [`rows`, `channels`] and the bias of the convolution `conv`, whose forward op
/// must come next and read them from where the returned [`FoldedWeights`] say (see
/// `fusion::folded_batch_norms`). It runs in every inference program: training changes the
/// parameters and the moving statistics, which this op only reads.
pub(crate) fn plan_fold(
    pl: &mut Planner,
    conv: usize,
    (bn, layer): (usize, BatchNormalization),
    kernel: Param,
    rows: usize,
    channels: usize,
) -> FoldedWeights {
    let f = FoldedWeights {
        w_len: rows * channels,
        channels,
    };
    let shape = layer.shape(rows * channels, Shape::Flat(channels));
    pl.need_scratch(f.scratch_len());
    let op = pl.op("batch_norm.fold", vec![], move |e| {
        let (w_out, b_out) = (f.w(e), f.b(e));
        let bufs = FoldBuffers {
            w_out: &w_out,
            b_out: &b_out,
            w: &e.param(conv, kernel),
            b: &e.param(conv, Param::Bias),
            gamma: &e.param(bn, Param::Gamma),
            beta: &e.param(bn, Param::Beta),
            moving_mean: &e.param(bn, Param::MovingMean),
            moving_var: &e.param(bn, Param::MovingVariance),
        };
        vec![e.kernels.bn.fold(e.ctx, &bufs, &shape)]
    });
    // W read, W' written (the per-channel vectors are left out, as everywhere).
    pl.more_bytes(op, 2 * rows * channels);
    f
}

impl LayerOps for BatchNormalization {
    fn type_name(&self) -> &'static str {
        "BatchNormalization"
    }
    fn name_stem(&self) -> &'static str {
        "batch_normalization"
    }

    fn infer(&self, ins: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String> {
        let c = ins[0].channels();
        Ok((
            ins[0],
            vec![
                vector_param(Param::Gamma, c, true, Init::Ones),
                vector_param(Param::Beta, c, true, Init::Zeros),
                vector_param(Param::MovingMean, c, false, Init::Zeros),
                vector_param(Param::MovingVariance, c, false, Init::Ones),
            ],
        ))
    }

    fn gpu_forward(&self, cx: &mut GpuFwd) -> Result<(), ExecError> {
        let li = cx.li;
        let shape = BnShape {
            relu: cx.relu,
            ..self.shape(cx.out_len(), cx.layer.output)
        };
        let c = shape.channels;
        cx.pl.need_scratch(BatchNorm::scratch_len(&shape));
        cx.pl.save(li, Saved::Mean, c);
        cx.pl.save(li, Saved::InvStd, c);
        if !cx.train {
            let what = if cx.relu {
                "batch_norm.forward_inference_relu"
            } else {
                "batch_norm.forward_inference"
            };
            cx.unary(what, move |e, y, x| {
                let bufs = InferenceBuffers {
                    y,
                    x,
                    gamma: &e.param(li, Param::Gamma),
                    beta: &e.param(li, Param::Beta),
                    moving_mean: &e.param(li, Param::MovingMean),
                    moving_var: &e.param(li, Param::MovingVariance),
                };
                e.kernels.bn.forward_inference(e.ctx, &bufs, &shape)
            });
            return Ok(());
        }
        let (y, x) = (cx.y, cx.x[0]);
        let uses = cx.y_and_x();
        let what = if cx.relu {
            "batch_norm.forward_train_relu"
        } else {
            "batch_norm.forward_train"
        };
        cx.pl.op(what, uses, move |e| {
            let x = e.input(x);
            let bufs = TrainBuffers {
                y: &e.tensor(y),
                mean: e.saved(li, Saved::Mean),
                inv_std: e.saved(li, Saved::InvStd),
                moving_mean: &e.param(li, Param::MovingMean),
                moving_var: &e.param(li, Param::MovingVariance),
                x: x.as_ref(),
                gamma: &e.param(li, Param::Gamma),
                beta: &e.param(li, Param::Beta),
                scratch: &e.fixed.scratch,
            };
            e.kernels.bn.forward_train(e.ctx, &bufs, &shape)
        });
        Ok(())
    }

    fn gpu_backward(&self, cx: &mut GpuBwd) -> Result<(), ExecError> {
        let xt = cx.x_tensor("batch norm of the raw input layer")?;
        let (li, dy) = (cx.li, cx.dy);
        let shape = BnShape {
            relu: cx.relu,
            ..self.shape(cx.out_len(), cx.layer.output)
        };
        // With the fused ReLU, dy is the ReLU's output gradient, masked inside the kernel.
        let what = if cx.relu {
            "batch_norm.backward_relu"
        } else {
            "batch_norm.backward"
        };
        let build = move |e: &crate::graph::bind::Env, d: &dyn Bind| {
            let bufs = BackwardBuffers {
                dx: d,
                dgamma: &e.grad(li, Param::Gamma),
                dbeta: &e.grad(li, Param::Beta),
                dy: &e.tensor(dy),
                x: &e.tensor(xt),
                gamma: &e.param(li, Param::Gamma),
                beta: &e.param(li, Param::Beta),
                mean: e.saved(li, Saved::Mean),
                inv_std: e.saved(li, Saved::InvStd),
                scratch: &e.fixed.scratch,
            };
            e.kernels.bn.backward(e.ctx, &bufs, &shape)
        };
        if cx.wants_dx(0) {
            cx.emit_dx(0, what, vec![dy, xt], build);
        } else {
            // The backward always computes dx: give it a throwaway tensor.
            let in_len = cx.n * cx.in_shape.len();
            let d = cx.pl.tensor(format!("{}:dx-unused", cx.layer.name), in_len);
            cx.pl
                .op(what, vec![d, dy, xt], move |e| build(e, &e.tensor(d)));
        }
        Ok(())
    }

    fn cpu_forward(&self, cx: &mut CpuFwd) {
        let shape = self.shape(cx.y.len(), cx.out_shape);
        let c = shape.channels;
        let (gr, br) = (cx.p.range(Param::Gamma), cx.p.range(Param::Beta));
        let (mm, mv) = (
            cx.p.range(Param::MovingMean),
            cx.p.range(Param::MovingVariance),
        );
        if !cx.train {
            cpu::batch_norm::batch_norm_forward_inference(
                cx.y,
                cx.x[0],
                &cx.params[gr],
                &cx.params[br],
                &cx.params[mm],
                &cx.params[mv],
                &shape,
            );
            return;
        }
        let (mut mean, mut inv_std) = (vec![0.0; c], vec![0.0; c]);
        let gamma = cx.params[gr].to_vec();
        let beta = cx.params[br].to_vec();
        let mut moving_mean = cx.params[mm.clone()].to_vec();
        let mut moving_var = cx.params[mv.clone()].to_vec();
        let out = cpu::batch_norm::TrainOut {
            y: cx.y,
            mean: &mut mean,
            inv_std: &mut inv_std,
            moving_mean: &mut moving_mean,
            moving_var: &mut moving_var,
        };
        cpu::batch_norm::batch_norm_forward_train(out, cx.x[0], &gamma, &beta, &shape);
        cx.params[mm].copy_from_slice(&moving_mean);
        cx.params[mv].copy_from_slice(&moving_var);
        cx.saved.put(cx.li, Saved::Mean, mean);
        cx.saved.put(cx.li, Saved::InvStd, inv_std);
    }

    fn cpu_backward(&self, cx: &mut CpuBwd) {
        let shape = self.shape(cx.dy.len(), cx.out_shape);
        let c = shape.channels;
        let (gr, br) = (cx.p.range(Param::Gamma), cx.p.range(Param::Beta));
        let (mut dg, mut dbeta) = (vec![0.0; c], vec![0.0; c]);
        let grads = cpu::batch_norm::Grads {
            dx: &mut cx.dx[0],
            dgamma: &mut dg,
            dbeta: &mut dbeta,
        };
        cpu::batch_norm::batch_norm_backward(
            grads,
            cx.dy,
            cx.x[0],
            &cx.params[gr.clone()],
            cx.saved.get(cx.li, Saved::Mean),
            cx.saved.get(cx.li, Saved::InvStd),
            &shape,
        );
        cx.grads[gr].copy_from_slice(&dg);
        cx.grads[br].copy_from_slice(&dbeta);
    }
}
