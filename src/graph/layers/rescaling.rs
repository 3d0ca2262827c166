//! Rescaling: y = x·scale + offset (the Keras example's 1/255).

use super::{CpuBwd, CpuFwd, GpuBwd, GpuFwd, LayerOps};
use crate::graph::executor::ExecError;
use crate::graph::{ParamSpec, Shape};

/// y = x·scale + offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescaling {
    pub scale: f32,
    pub offset: f32,
}

impl LayerOps for Rescaling {
    fn type_name(&self) -> &'static str {
        "Rescaling"
    }
    fn name_stem(&self) -> &'static str {
        "rescaling"
    }
    fn infer(&self, ins: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String> {
        Ok((ins[0], vec![]))
    }

    fn gpu_forward(&self, cx: &mut GpuFwd) -> Result<(), ExecError> {
        let (len, Self { scale, offset }) = (cx.out_len(), *self);
        cx.unary("rescale.forward", move |e, y, x| {
            e.kernels.rescale.forward(e.ctx, y, x, len, scale, offset)
        });
        Ok(())
    }

    fn gpu_backward(&self, cx: &mut GpuBwd) -> Result<(), ExecError> {
        if cx.wants_dx(0) {
            let (len, dy, scale) = (cx.out_len(), cx.dy, self.scale);
            cx.emit_dx(0, "rescale.backward", vec![dy], move |e, d| {
                vec![
                    e.kernels
                        .rescale
                        .backward(e.ctx, d, &e.tensor(dy), len, scale),
                ]
            });
        }
        Ok(())
    }

    fn cpu_forward(&self, cx: &mut CpuFwd) {
        for (o, &v) in cx.y.iter_mut().zip(cx.x[0]) {
            *o = v * self.scale as f64 + self.offset as f64;
        }
    }

    fn cpu_backward(&self, cx: &mut CpuBwd) {
        for (d, g) in cx.dx[0].iter_mut().zip(cx.dy) {
            *d = g * self.scale as f64;
        }
    }
}
