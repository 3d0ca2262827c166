//! GlobalAveragePooling2D: [H, W, C] → [C].

use super::{CpuBwd, CpuFwd, GpuBwd, GpuFwd, LayerOps, hwc, image};
use crate::cpu;
use crate::graph::executor::ExecError;
use crate::graph::{ParamSpec, Shape};

/// The mean over H and W of each channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlobalAveragePooling2D;

impl LayerOps for GlobalAveragePooling2D {
    fn type_name(&self) -> &'static str {
        "GlobalAveragePooling2D"
    }
    fn name_stem(&self) -> &'static str {
        "global_average_pooling2d"
    }

    fn infer(&self, ins: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String> {
        let (_, _, c) = image(ins[0])?;
        Ok((Shape::Flat(c), vec![]))
    }

    fn gpu_forward(&self, cx: &mut GpuFwd) -> Result<(), ExecError> {
        let (h, w, c) = hwc(cx.in_shape);
        let n = cx.n;
        cx.unary("pool.global_avg_pool2d_forward", move |e, y, x| {
            e.kernels
                .pooling
                .global_avg_pool2d_forward(e.ctx, y, x, [n, h, w, c])
        });
        Ok(())
    }

    fn gpu_backward(&self, cx: &mut GpuBwd) -> Result<(), ExecError> {
        if cx.wants_dx(0) {
            let (h, w, c) = hwc(cx.in_shape);
            let (n, dy) = (cx.n, cx.dy);
            cx.emit_dx(
                0,
                "pool.global_avg_pool2d_backward",
                vec![dy],
                move |e, d| {
                    vec![e.kernels.pooling.global_avg_pool2d_backward(
                        e.ctx,
                        d,
                        &e.tensor(dy),
                        [n, h, w, c],
                    )]
                },
            );
        }
        Ok(())
    }

    fn cpu_forward(&self, cx: &mut CpuFwd) {
        let (h, w, c) = hwc(cx.in_shape);
        cpu::pool::global_avg_pool2d_forward(cx.y, cx.x[0], cx.n, h, w, c);
    }

    fn cpu_backward(&self, cx: &mut CpuBwd) {
        let (h, w, c) = hwc(cx.in_shape);
        cpu::pool::global_avg_pool2d_backward(&mut cx.dx[0], cx.dy, cx.n, h, w, c);
    }
}
