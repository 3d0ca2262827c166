//! Add: the residual connection, y = a + b.

use super::{CpuBwd, CpuFwd, GpuBwd, GpuFwd, LayerOps};
use crate::cpu;
use crate::graph::executor::ExecError;
use crate::graph::{ParamSpec, Shape};

/// y = a + b (equal shapes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Add;

impl LayerOps for Add {
    fn type_name(&self) -> &'static str {
        "Add"
    }
    fn name_stem(&self) -> &'static str {
        "add"
    }
    fn arity(&self) -> usize {
        2
    }
    fn infer(&self, ins: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String> {
        if ins[0] != ins[1] {
            return Err(format!(
                "inputs must have equal shapes, got {} and {}",
                ins[0], ins[1]
            ));
        }
        Ok((ins[0], vec![]))
    }

    fn gpu_forward(&self, cx: &mut GpuFwd) -> Result<(), ExecError> {
        let (len, y) = (cx.out_len(), cx.y);
        let (a, b) = (cx.x[0].unwrap(), cx.x[1].unwrap());
        cx.pl.op("elementwise.add", vec![y, a, b], move |e| {
            vec![
                e.kernels
                    .ew
                    .add_forward(e.ctx, &e.tensor(y), &e.tensor(a), &e.tensor(b), len),
            ]
        });
        Ok(())
    }

    fn gpu_backward(&self, cx: &mut GpuBwd) -> Result<(), ExecError> {
        // Both inputs get dy itself: shared where nothing else flows in, else copied in.
        let (len, dy) = (cx.out_len(), cx.dy);
        for i in 0..2 {
            let src = cx.inputs[i];
            if !cx.needs_grad[src] || cx.share_dy(i) {
                continue;
            }
            cx.emit_dx(i, "rescale.copy", vec![dy], move |e, d| {
                vec![
                    e.kernels
                        .rescale
                        .forward(e.ctx, d, &e.tensor(dy), len, 1.0, 0.0),
                ]
            });
        }
        Ok(())
    }

    fn cpu_forward(&self, cx: &mut CpuFwd) {
        cpu::elementwise::add_forward(cx.y, cx.x[0], cx.x[1]);
    }

    fn cpu_backward(&self, cx: &mut CpuBwd) {
        let [da, db] = &mut cx.dx[..] else {
            unreachable!("add has two inputs")
        };
        cpu::elementwise::add_backward(da, db, cx.dy);
    }
}
