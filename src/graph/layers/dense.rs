//! Dense: y = x·W + b on flat features (the classifier; its activation is fused into the loss).

use super::{CpuBwd, CpuFwd, GpuBwd, GpuFwd, LayerOps};
use crate::cpu;
use crate::graph::executor::ExecError;
use crate::graph::names::Param;
use crate::graph::{Activation, Init, ParamSpec, Shape, kernel_param, vector_param};
use crate::kernels::dense::DenseShape;
use crate::kernels::{WeightGrads, gemm};

/// A fully connected layer; `activation` is applied by the loss (logits are its output).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dense {
    pub units: usize,
    pub activation: Activation,
}

impl Dense {
    /// The layer's geometry for a batch of `n` inputs of `input` (flat: F features).
    pub fn shape(&self, n: usize, input: Shape) -> DenseShape {
        DenseShape {
            n,
            inp: input.len(),
            out: self.units,
        }
    }
}

impl LayerOps for Dense {
    fn type_name(&self) -> &'static str {
        "Dense"
    }
    fn name_stem(&self) -> &'static str {
        "dense"
    }

    fn infer(&self, ins: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String> {
        let f = match ins[0] {
            Shape::Flat(f) => f,
            x @ Shape::Hwc(..) => {
                return Err(format!(
                    "needs a flat input (F), got {x}; add GlobalAveragePooling2D first"
                ));
            }
        };
        Ok((
            Shape::Flat(self.units),
            vec![
                kernel_param(Param::Kernel, vec![f, self.units]),
                vector_param(Param::Bias, self.units, true, Init::Zeros),
            ],
        ))
    }

    fn gpu_forward(&self, cx: &mut GpuFwd) -> Result<(), ExecError> {
        let (s, li) = (self.shape(cx.n, cx.in_shape), cx.li);
        let op = cx.unary("dense.forward", move |e, y, x| {
            e.kernels.dense.forward(
                e.ctx,
                y,
                x,
                &e.param(li, Param::Kernel),
                &e.param(li, Param::Bias),
                &s,
            )
        });
        cx.pl.macs(op, s.n * s.inp * s.out);
        cx.pl.more_bytes(op, s.inp * s.out);
        Ok(())
    }

    fn gpu_backward(&self, cx: &mut GpuBwd) -> Result<(), ExecError> {
        let xt = cx.x_tensor("a dense layer on the raw input")?;
        let (s, li, dy) = (self.shape(cx.n, cx.in_shape), cx.li, cx.dy);
        let v = cx.variants;
        let sl = gemm::weight_scratch_len(v.gemm, v.subgroup_width, s.n, s.inp, s.out);
        cx.pl.need_scratch(sl);
        let op = cx.pl.op("dense.backward_weight", vec![dy, xt], move |e| {
            e.kernels.dense.backward_weight(
                e.ctx,
                WeightGrads {
                    dw: &e.grad(li, Param::Kernel),
                    db: &e.grad(li, Param::Bias),
                    scratch: e.scratch(sl),
                },
                &e.tensor(dy),
                &e.tensor(xt),
                &s,
            )
        });
        cx.pl.macs(op, s.n * s.inp * s.out);
        cx.pl.more_bytes(op, s.inp * s.out);
        if cx.wants_dx(0) {
            let op = cx.emit_dx(0, "dense.backward_input", vec![dy], move |e, d| {
                e.kernels.dense.backward_input(
                    e.ctx,
                    d,
                    &e.tensor(dy),
                    &e.param(li, Param::Kernel),
                    &s,
                )
            });
            cx.pl.macs(op, s.n * s.inp * s.out);
            cx.pl.more_bytes(op, s.inp * s.out);
        }
        Ok(())
    }

    fn cpu_forward(&self, cx: &mut CpuFwd) {
        let f = cx.in_shape.len();
        cpu::dense::dense_forward(
            cx.y,
            cx.x[0],
            &cx.params[cx.p.range(Param::Kernel)],
            &cx.params[cx.p.range(Param::Bias)],
            cx.n,
            f,
            self.units,
        );
    }

    fn cpu_backward(&self, cx: &mut CpuBwd) {
        let (n, f, u) = (cx.n, cx.in_shape.len(), self.units);
        let (wr, br) = (cx.p.range(Param::Kernel), cx.p.range(Param::Bias));
        let (mut dw, mut db) = (vec![0.0; wr.len()], vec![0.0; br.len()]);
        cpu::dense::dense_backward_weight(&mut dw, &mut db, cx.dy, cx.x[0], n, f, u);
        cpu::dense::dense_backward_input(&mut cx.dx[0], cx.dy, &cx.params[wr.clone()], n, f, u);
        cx.grads[wr].copy_from_slice(&dw);
        cx.grads[br].copy_from_slice(&db);
    }
}
