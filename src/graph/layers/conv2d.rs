//! Conv2D: k×k convolutions (conv2d kernels) and 1×1 ones (the GEMM-based pointwise kernels).

use super::batch_norm::{FoldedWeights, plan_fold};
use super::{CpuBwd, CpuFwd, GpuBwd, GpuFwd, LayerOps, hwc, image, spatial};
use crate::cpu::{self, Padding, conv2d::Conv2dShape};
use crate::graph::bind::Env;
use crate::graph::executor::ExecError;
use crate::graph::names::Param;
use crate::graph::{ParamSpec, Shape, kernel_param, vector_param};
use crate::kernels::BufferRange;
use crate::kernels::pointwise_conv2d::PointwiseShape;
use crate::kernels::{WeightGrads, conv2d, gemm};

/// A convolution with bias, NHWC, kernel [k, k, Cin, Cout].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conv2D {
    pub filters: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: Padding,
}

impl Conv2D {
    /// The k×k geometry for `n` samples of `input`.
    pub fn shape(&self, n: usize, input: Shape) -> Conv2dShape {
        let (h, w, c) = hwc(input);
        Conv2dShape {
            n,
            h,
            w,
            cin: c,
            cout: self.filters,
            k: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }

    /// The 1×1 geometry (kernel 1 runs on the GEMM; padding does not matter at 1×1).
    pub fn pointwise(&self, n: usize, input: Shape) -> PointwiseShape {
        let (h, w, c) = hwc(input);
        PointwiseShape {
            n,
            h,
            w,
            cin: c,
            cout: self.filters,
            stride: self.stride,
        }
    }

    fn gpu_forward_pointwise(&self, cx: &mut GpuFwd) {
        let (s, li) = (self.pointwise(cx.n, cx.in_shape), cx.li);
        let (fold, relu) = fold(cx, s.cin, s.cout);
        let what = if relu {
            "pointwise_conv2d.forward_relu"
        } else {
            "pointwise_conv2d.forward"
        };
        let op = cx.unary(what, move |e, y, x| {
            let (w, b) = weights(e, li, fold);
            let k = &e.kernels.pointwise;
            if relu {
                k.forward_relu(e.ctx, y, x, &w, &b, &s)
            } else {
                k.forward(e.ctx, y, x, &w, &b, &s)
            }
        });
        cx.pl.macs(op, s.pixels() * s.cin * s.cout);
        cx.pl.more_bytes(op, s.cin * s.cout);
    }

    fn gpu_backward_pointwise(&self, cx: &mut GpuBwd, xt: usize) {
        let (s, li, dy) = (self.pointwise(cx.n, cx.in_shape), cx.li, cx.dy);
        let v = cx.variants;
        let sl = gemm::weight_scratch_len(v.gemm, v.subgroup_width, s.pixels(), s.cin, s.cout);
        cx.pl.need_scratch(sl);
        let op = cx
            .pl
            .op("pointwise_conv2d.backward_weight", vec![dy, xt], move |e| {
                e.kernels.pointwise.backward_weight(
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
        cx.pl.macs(op, s.pixels() * s.cin * s.cout);
        cx.pl.more_bytes(op, s.cin * s.cout);
        if cx.wants_dx(0) {
            let tl = gemm::input_scratch_len(cx.variants.gemm, s.cin, s.cout);
            cx.pl.need_scratch(tl);
            let op = cx.emit_dx(
                0,
                "pointwise_conv2d.backward_input",
                vec![dy],
                move |e, d| {
                    e.kernels.pointwise.backward_input(
                        e.ctx,
                        d,
                        &e.tensor(dy),
                        &e.param(li, Param::Kernel),
                        e.scratch(tl),
                        &s,
                    )
                },
            );
            cx.pl.macs(op, s.pixels() * s.cin * s.cout);
            cx.pl.more_bytes(op, s.cin * s.cout);
        }
    }
}

/// With a batch norm folded into the convolution of `cx` (kernel [`rows`, `cout`], named
/// [`Param::Kernel`]), plans the fold op and says where the folded weights are; and whether the
/// forward has the ReLU epilogue (the folded batch norm's fused ReLU).
fn fold(cx: &mut GpuFwd, rows: usize, cout: usize) -> (Option<FoldedWeights>, bool) {
    let fold = (cx.fold).map(|bn| plan_fold(cx.pl, cx.li, bn, Param::Kernel, rows, cout));
    assert!(
        !cx.relu || fold.is_some(),
        "a convolution applies a ReLU only for a folded batch norm"
    );
    (fold, cx.relu)
}

/// The kernel and bias the forward of layer `li` reads: folded ones, or the layer's own.
fn weights<'e>(
    e: &'e Env,
    li: usize,
    fold: Option<FoldedWeights>,
) -> (BufferRange<'e>, BufferRange<'e>) {
    match fold {
        Some(f) => (f.w(e), f.b(e)),
        None => (e.param(li, Param::Kernel), e.param(li, Param::Bias)),
    }
}

impl LayerOps for Conv2D {
    fn type_name(&self) -> &'static str {
        "Conv2D"
    }
    fn name_stem(&self) -> &'static str {
        "conv2d"
    }

    fn infer(&self, ins: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String> {
        let (h, w, c) = image(ins[0])?;
        let (oh, ow) = spatial(h, w, self.kernel, self.stride, self.padding)?;
        let (k, f) = (self.kernel, self.filters);
        Ok((
            Shape::Hwc(oh, ow, f),
            vec![
                kernel_param(Param::Kernel, vec![k, k, c, f]),
                vector_param(Param::Bias, f, true, crate::graph::Init::Zeros),
            ],
        ))
    }

    fn gpu_forward(&self, cx: &mut GpuFwd) -> Result<(), ExecError> {
        if self.kernel == 1 {
            self.gpu_forward_pointwise(cx);
            return Ok(());
        }
        let (s, li) = (self.shape(cx.n, cx.in_shape), cx.li);
        let (fold, relu) = fold(cx, s.k * s.k * s.cin, s.cout);
        let what = if relu {
            "conv2d.forward_relu"
        } else {
            "conv2d.forward"
        };
        let op = cx.unary(what, move |e, y, x| {
            let (w, b) = weights(e, li, fold);
            if relu {
                e.kernels.conv.forward_relu(e.ctx, y, x, &w, &b, &s)
            } else {
                e.kernels.conv.forward(e.ctx, y, x, &w, &b, &s)
            }
        });
        cx.pl.macs(op, s.macs());
        cx.pl.more_bytes(op, s.k * s.k * s.cin * s.cout);
        Ok(())
    }

    fn gpu_backward(&self, cx: &mut GpuBwd) -> Result<(), ExecError> {
        let xt = cx.x_tensor("a convolution of the raw input layer")?;
        if self.kernel == 1 {
            self.gpu_backward_pointwise(cx, xt);
            return Ok(());
        }
        let (s, li, dy) = (self.shape(cx.n, cx.in_shape), cx.li, cx.dy);
        cx.pl
            .need_scratch(conv2d::backward_weight_scratch_len(cx.variants.conv2d, &s));
        let op = cx.pl.op("conv2d.backward_weight", vec![dy, xt], move |e| {
            e.kernels
                .conv
                .backward_weight(
                    e.ctx,
                    WeightGrads {
                        dw: &e.grad(li, Param::Kernel),
                        db: &e.grad(li, Param::Bias),
                        scratch: Some(&e.fixed.scratch),
                    },
                    &e.tensor(dy),
                    &e.tensor(xt),
                    &s,
                )
                .into()
        });
        cx.pl.macs(op, s.macs());
        cx.pl.more_bytes(op, s.k * s.k * s.cin * s.cout);
        if cx.wants_dx(0) {
            let op = cx.emit_dx(0, "conv2d.backward_input", vec![dy], move |e, d| {
                vec![e.kernels.conv.backward_input(
                    e.ctx,
                    d,
                    &e.tensor(dy),
                    &e.param(li, Param::Kernel),
                    &s,
                )]
            });
            cx.pl.macs(op, s.macs());
            cx.pl.more_bytes(op, s.k * s.k * s.cin * s.cout);
        }
        Ok(())
    }

    fn cpu_forward(&self, cx: &mut CpuFwd) {
        let s = self.shape(cx.n, cx.in_shape);
        cpu::conv2d::conv2d_forward(
            cx.y,
            cx.x[0],
            &cx.params[cx.p.range(Param::Kernel)],
            &cx.params[cx.p.range(Param::Bias)],
            &s,
        );
    }

    fn cpu_backward(&self, cx: &mut CpuBwd) {
        let s = self.shape(cx.n, cx.in_shape);
        let (wr, br) = (cx.p.range(Param::Kernel), cx.p.range(Param::Bias));
        let (mut dw, mut db) = (vec![0.0; wr.len()], vec![0.0; br.len()]);
        cpu::conv2d::conv2d_backward_weight(&mut dw, &mut db, cx.dy, cx.x[0], &s);
        cpu::conv2d::conv2d_backward_input(&mut cx.dx[0], cx.dy, &cx.params[wr.clone()], &s);
        cx.grads[wr].copy_from_slice(&dw);
        cx.grads[br].copy_from_slice(&db);
    }
}
