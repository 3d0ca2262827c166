//! Dropout: a seeded mask in training, the identity in inference.

use super::{CpuBwd, CpuFwd, GpuBwd, GpuFwd, LayerOps};
use crate::cpu;
use crate::graph::executor::ExecError;
use crate::graph::{ParamSpec, Shape};

/// Drops each element with probability `rate` and scales the rest by 1/(1 − rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    pub rate: f32,
}

impl LayerOps for Dropout {
    fn type_name(&self) -> &'static str {
        "Dropout"
    }
    fn name_stem(&self) -> &'static str {
        "dropout"
    }
    fn infer(&self, ins: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(format!("rate {} must be in [0, 1)", self.rate));
        }
        Ok((ins[0], vec![]))
    }

    fn gpu_forward(&self, cx: &mut GpuFwd) -> Result<(), ExecError> {
        let (len, rate) = (cx.out_len(), self.rate);
        if !cx.train {
            cx.unary("rescale.copy", move |e, y, x| {
                e.kernels.rescale.forward(e.ctx, y, x, len, 1.0, 0.0)
            });
            return Ok(());
        }
        // Seed 0 here: the step writes each step's seed into these ops' parameters.
        let id = cx.unary("elementwise.dropout_forward", move |e, y, x| {
            e.kernels.ew.dropout_forward(e.ctx, y, x, len, 0, rate)
        });
        cx.pl.dropout(id, rate, len);
        Ok(())
    }

    fn gpu_backward(&self, cx: &mut GpuBwd) -> Result<(), ExecError> {
        if cx.wants_dx(0) {
            let (len, dy, rate) = (cx.out_len(), cx.dy, self.rate);
            let id = cx.emit_dx(0, "elementwise.dropout_backward", vec![dy], move |e, d| {
                vec![
                    e.kernels
                        .ew
                        .dropout_backward(e.ctx, d, &e.tensor(dy), len, 0, rate),
                ]
            });
            cx.pl.dropout(id, rate, len);
        }
        Ok(())
    }

    fn cpu_forward(&self, cx: &mut CpuFwd) {
        if cx.train {
            cpu::elementwise::dropout_forward(cx.y, cx.x[0], cx.dropout_seed, self.rate);
        } else {
            cx.y.copy_from_slice(cx.x[0]);
        }
    }

    fn cpu_backward(&self, cx: &mut CpuBwd) {
        cpu::elementwise::dropout_backward(&mut cx.dx[0], cx.dy, cx.dropout_seed, self.rate);
    }
}
