//! ReLU (Keras' `Activation("relu")`).

use super::{CpuBwd, CpuFwd, GpuBwd, GpuFwd, LayerOps};
use crate::cpu;
use crate::graph::executor::ExecError;
use crate::graph::{ParamSpec, Shape};

/// y = max(x, 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Relu;

impl LayerOps for Relu {
    fn type_name(&self) -> &'static str {
        "Activation"
    }
    fn name_stem(&self) -> &'static str {
        "activation"
    }
    fn infer(&self, ins: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String> {
        Ok((ins[0], vec![]))
    }

    fn gpu_forward(&self, cx: &mut GpuFwd) -> Result<(), ExecError> {
        let len = cx.out_len();
        cx.unary("relu.forward", move |e, y, x| {
            e.kernels.relu.forward(e.ctx, y, x, len)
        });
        Ok(())
    }

    fn gpu_backward(&self, cx: &mut GpuBwd) -> Result<(), ExecError> {
        if cx.wants_dx(0) {
            // The mask comes from the output: y > 0 exactly where x > 0.
            let (len, dy, y) = (cx.out_len(), cx.dy, cx.y);
            cx.emit_dx(0, "relu.backward", vec![dy, y], move |e, d| {
                vec![
                    e.kernels
                        .relu
                        .backward(e.ctx, d, &e.tensor(dy), &e.tensor(y), len),
                ]
            });
        }
        Ok(())
    }

    fn cpu_forward(&self, cx: &mut CpuFwd) {
        cpu::relu::relu_forward(cx.y, cx.x[0]);
    }

    fn cpu_backward(&self, cx: &mut CpuBwd) {
        cpu::relu::relu_backward(&mut cx.dx[0], cx.dy, cx.y);
    }
}
