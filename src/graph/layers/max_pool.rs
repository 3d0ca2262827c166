//! MaxPooling2D: the training forward saves each output's argmax, the backward scatters
//! through it; inference saves none.

use super::{CpuBwd, CpuFwd, GpuBwd, GpuFwd, LayerOps, hwc, image, spatial};
use crate::cpu::{self, Padding, pool::Pool2d};
use crate::graph::executor::ExecError;
use crate::graph::names::Saved;
use crate::graph::{ParamSpec, Shape};
use crate::kernels::pool::max_pool2d_argmax_len;

/// Square max pooling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxPooling2D {
    pub pool: usize,
    pub stride: usize,
    pub padding: Padding,
}

impl MaxPooling2D {
    /// The geometry for `n` samples of `input`.
    pub fn shape(&self, n: usize, input: Shape) -> Pool2d {
        let (h, w, c) = hwc(input);
        Pool2d::square(n, h, w, c, self.pool, self.stride, self.padding)
    }
}

impl LayerOps for MaxPooling2D {
    fn type_name(&self) -> &'static str {
        "MaxPooling2D"
    }
    fn name_stem(&self) -> &'static str {
        "max_pooling2d"
    }

    fn infer(&self, ins: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String> {
        let (h, w, c) = image(ins[0])?;
        let (oh, ow) = spatial(h, w, self.pool, self.stride, self.padding)?;
        Ok((Shape::Hwc(oh, ow, c), vec![]))
    }

    fn gpu_forward(&self, cx: &mut GpuFwd) -> Result<(), ExecError> {
        let (g, li) = (self.shape(cx.n, cx.in_shape), cx.li);
        if !cx.train {
            // Inference: no backward pass, so no argmax to save.
            if let Some(r) = cx.residual {
                let (y, x) = (cx.y, cx.x[0]);
                let uses = [cx.y_and_x(), vec![r]].concat();
                cx.pl
                    .op("pool.max_pool2d_forward_add_inference", uses, move |e| {
                        let (y, x, r) = (e.tensor(y), e.input(x), e.tensor(r));
                        let k = &e.kernels.pooling;
                        vec![k.max_pool2d_forward_add_inference(e.ctx, &y, x.as_ref(), &r, &g)]
                    });
                return Ok(());
            }
            cx.unary("pool.max_pool2d_forward_inference", move |e, y, x| {
                (e.kernels.pooling).max_pool2d_forward_inference(e.ctx, y, x, &g)
            });
            return Ok(());
        }
        cx.pl.save(li, Saved::Argmax, max_pool2d_argmax_len(&g));
        if let Some(r) = cx.residual {
            let (y, x) = (cx.y, cx.x[0]);
            let uses = [cx.y_and_x(), vec![r]].concat();
            cx.pl.op("pool.max_pool2d_forward_add", uses, move |e| {
                let argmax = e.saved(li, Saved::Argmax);
                let (y, x, r) = (e.tensor(y), e.input(x), e.tensor(r));
                let k = &e.kernels.pooling;
                vec![k.max_pool2d_forward_add(e.ctx, &y, argmax, x.as_ref(), &r, &g)]
            });
            return Ok(());
        }
        cx.unary("pool.max_pool2d_forward", move |e, y, x| {
            e.kernels
                .pooling
                .max_pool2d_forward(e.ctx, y, e.saved(li, Saved::Argmax), x, &g)
        });
        Ok(())
    }

    fn gpu_backward(&self, cx: &mut GpuBwd) -> Result<(), ExecError> {
        if cx.wants_dx(0) {
            let (g, li, dy) = (self.shape(cx.n, cx.in_shape), cx.li, cx.dy);
            cx.emit_dx(0, "pool.max_pool2d_backward", vec![dy], move |e, d| {
                vec![e.kernels.pooling.max_pool2d_backward(
                    e.ctx,
                    d,
                    &e.tensor(dy),
                    e.saved(li, Saved::Argmax),
                    &g,
                )]
            });
        }
        Ok(())
    }

    fn cpu_forward(&self, cx: &mut CpuFwd) {
        let g = self.shape(cx.n, cx.in_shape);
        let mut argmax = vec![0u32; cx.y.len()];
        cpu::pool::max_pool2d_forward(cx.y, &mut argmax, cx.x[0], &g);
        cx.saved.put_u32(cx.li, Saved::Argmax, argmax);
    }

    fn cpu_backward(&self, cx: &mut CpuBwd) {
        let g = self.shape(cx.n, cx.in_shape);
        let argmax = cx.saved.get_u32(cx.li, Saved::Argmax);
        cpu::pool::max_pool2d_backward(&mut cx.dx[0], cx.dy, argmax, &g);
    }
}
