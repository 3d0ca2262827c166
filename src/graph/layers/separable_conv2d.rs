//! SeparableConv2D: a depthwise k×k convolution (no bias), then a pointwise 1×1 one with bias.

use super::batch_norm::plan_fold;
use super::{CpuBwd, CpuFwd, GpuBwd, GpuFwd, LayerOps, hwc, image, spatial};
use crate::cpu::{self, Padding, depthwise_conv2d::DepthwiseShape};
use crate::graph::executor::ExecError;
use crate::graph::names::{Param, Saved};
use crate::graph::{Init, ParamSpec, Shape, kernel_param, vector_param};
use crate::kernels::depthwise_conv2d::DepthwiseConv2d;
use crate::kernels::pointwise_conv2d::PointwiseShape;
use crate::kernels::{WeightGrads, gemm};

/// Depthwise k×k (multiplier 1, no bias), then pointwise 1×1 with one bias; stride 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeparableConv2D {
    pub filters: usize,
    pub kernel: usize,
    pub padding: Padding,
}

impl SeparableConv2D {
    /// The depthwise half's geometry for `n` samples of `input`.
    pub fn depthwise(&self, n: usize, input: Shape) -> DepthwiseShape {
        let (h, w, c) = hwc(input);
        DepthwiseShape {
            n,
            h,
            w,
            c,
            k: self.kernel,
            padding: self.padding,
        }
    }

    /// The pointwise half's geometry (on the depthwise output).
    pub fn pointwise(&self, ds: &DepthwiseShape) -> PointwiseShape {
        PointwiseShape {
            n: ds.n,
            h: ds.oh(),
            w: ds.ow(),
            cin: ds.c,
            cout: self.filters,
            stride: 1,
        }
    }
}

impl LayerOps for SeparableConv2D {
    fn type_name(&self) -> &'static str {
        "SeparableConv2D"
    }
    fn name_stem(&self) -> &'static str {
        "separable_conv2d"
    }

    fn infer(&self, ins: &[Shape]) -> Result<(Shape, Vec<ParamSpec>), String> {
        let (h, w, c) = image(ins[0])?;
        let (oh, ow) = spatial(h, w, self.kernel, 1, self.padding)?;
        let (k, f) = (self.kernel, self.filters);
        Ok((
            Shape::Hwc(oh, ow, f),
            vec![
                kernel_param(Param::DepthwiseKernel, vec![k, k, c, 1]),
                kernel_param(Param::PointwiseKernel, vec![1, 1, c, f]),
                vector_param(Param::Bias, f, true, Init::Zeros),
            ],
        ))
    }

    fn gpu_forward(&self, cx: &mut GpuFwd) -> Result<(), ExecError> {
        if self.kernel != 3 {
            return Err(ExecError::Unsupported(
                cx.layer.name.clone(),
                format!("depthwise kernel {} (3 is compiled)", self.kernel),
            ));
        }
        let (li, x, y) = (cx.li, cx.x[0], cx.y);
        let ds = self.depthwise(cx.n, cx.in_shape);
        let ps = self.pointwise(&ds);
        let m = cx
            .pl
            .tensor(format!("{}:depthwise", cx.layer.name), ds.y_len());
        cx.pl.keep(li, Saved::Depthwise, m);
        let uses = [vec![m], x.into_iter().collect()].concat();
        // With a folded ReLU, x is the ReLU's input and the kernel reads max(x, 0).
        let relu = cx.relu_input;
        let what = if relu {
            "depthwise_conv2d.forward_relu"
        } else {
            "depthwise_conv2d.forward"
        };
        let op = cx.pl.op(what, uses, move |e| {
            let k = &e.kernels.depthwise;
            let (x, w) = (e.input(x), e.param(li, Param::DepthwiseKernel));
            let y = e.tensor(m);
            vec![if relu {
                k.forward_relu(e.ctx, &y, x.as_ref(), &w, &ds)
            } else {
                k.forward(e.ctx, &y, x.as_ref(), &w, &ds)
            }]
        });
        cx.pl.macs(op, ds.macs());
        cx.pl.more_bytes(op, ds.k * ds.k * ds.c);
        // A folded batch norm: its fold op, then the pointwise half with the folded weights
        // (and the batch norm's fused ReLU as its epilogue).
        let fold =
            (cx.fold).map(|bn| plan_fold(cx.pl, li, bn, Param::PointwiseKernel, ps.cin, ps.cout));
        let relu = cx.relu;
        assert!(
            !relu || fold.is_some(),
            "a convolution applies a ReLU only for a folded batch norm"
        );
        let what = if relu {
            "pointwise_conv2d.forward_relu"
        } else {
            "pointwise_conv2d.forward"
        };
        let op = cx.pl.op(what, vec![y, m], move |e| {
            let (w, b) = match fold {
                Some(f) => (f.w(e), f.b(e)),
                None => (
                    e.param(li, Param::PointwiseKernel),
                    e.param(li, Param::Bias),
                ),
            };
            let (y, m, k) = (e.tensor(y), e.tensor(m), &e.kernels.pointwise);
            vec![if relu {
                k.forward_relu(e.ctx, &y, &m, &w, &b, &ps)
            } else {
                k.forward(e.ctx, &y, &m, &w, &b, &ps)
            }]
        });
        cx.pl.macs(op, ps.pixels() * ps.cin * ps.cout);
        cx.pl.more_bytes(op, ps.cin * ps.cout);
        Ok(())
    }

    fn gpu_backward(&self, cx: &mut GpuBwd) -> Result<(), ExecError> {
        let xt = cx.x_tensor("a convolution of the raw input layer")?;
        let (li, dy) = (cx.li, cx.dy);
        let ds = self.depthwise(cx.n, cx.in_shape);
        let ps = self.pointwise(&ds);
        let m = cx.pl.kept(li, Saved::Depthwise);
        let dm = cx
            .pl
            .tensor(format!("{}:depthwise:grad", cx.layer.name), ds.y_len());
        let v = cx.variants;
        let sl = gemm::weight_scratch_len(v.gemm, v.subgroup_width, ps.pixels(), ps.cin, ps.cout);
        cx.pl.need_scratch(sl);
        cx.pl
            .need_scratch(DepthwiseConv2d::backward_weight_scratch_len(&ds));
        let op = cx
            .pl
            .op("pointwise_conv2d.backward_weight", vec![dy, m], move |e| {
                e.kernels.pointwise.backward_weight(
                    e.ctx,
                    WeightGrads {
                        dw: &e.grad(li, Param::PointwiseKernel),
                        db: &e.grad(li, Param::Bias),
                        scratch: e.scratch(sl),
                    },
                    &e.tensor(dy),
                    &e.tensor(m),
                    &ps,
                )
            });
        cx.pl.macs(op, ps.pixels() * ps.cin * ps.cout);
        cx.pl.more_bytes(op, ps.cin * ps.cout);
        let tl = gemm::input_scratch_len(v.gemm, ps.cin, ps.cout);
        cx.pl.need_scratch(tl);
        let op = cx
            .pl
            .op("pointwise_conv2d.backward_input", vec![dm, dy], move |e| {
                e.kernels.pointwise.backward_input(
                    e.ctx,
                    &e.tensor(dm),
                    &e.tensor(dy),
                    &e.param(li, Param::PointwiseKernel),
                    e.scratch(tl),
                    &ps,
                )
            });
        cx.pl.macs(op, ps.pixels() * ps.cin * ps.cout);
        cx.pl.more_bytes(op, ps.cin * ps.cout);
        let relu = cx.relu_input;
        let what = if relu {
            "depthwise_conv2d.backward_weight_relu"
        } else {
            "depthwise_conv2d.backward_weight"
        };
        let op = cx.pl.op(what, vec![dm, xt], move |e| {
            let k = &e.kernels.depthwise;
            let (dw, s) = (e.grad(li, Param::DepthwiseKernel), &e.fixed.scratch);
            let (dm, x) = (e.tensor(dm), e.tensor(xt));
            if relu {
                k.backward_weight_relu(e.ctx, &dw, s, &dm, &x, &ds).into()
            } else {
                k.backward_weight(e.ctx, &dw, s, &dm, &x, &ds).into()
            }
        });
        cx.pl.macs(op, ds.macs());
        cx.pl.more_bytes(op, ds.k * ds.k * ds.c);
        if cx.wants_dx(0) {
            // With a folded ReLU this is the gradient of the ReLU's input, masked by x > 0.
            let (what, uses) = if relu {
                ("depthwise_conv2d.backward_input_relu", vec![dm, xt])
            } else {
                ("depthwise_conv2d.backward_input", vec![dm])
            };
            let op = cx.emit_dx(0, what, uses, move |e, d| {
                let k = &e.kernels.depthwise;
                let (dm, w) = (e.tensor(dm), e.param(li, Param::DepthwiseKernel));
                vec![if relu {
                    k.backward_input_relu(e.ctx, d, &dm, &w, &e.tensor(xt), &ds)
                } else {
                    k.backward_input(e.ctx, d, &dm, &w, &ds)
                }]
            });
            cx.pl.macs(op, ds.macs());
            cx.pl.more_bytes(op, ds.k * ds.k * ds.c);
        }
        Ok(())
    }

    fn cpu_forward(&self, cx: &mut CpuFwd) {
        let ds = self.depthwise(cx.n, cx.in_shape);
        let mut mid = vec![0.0; ds.y_len()];
        cpu::depthwise_conv2d::depthwise_conv2d_forward(
            &mut mid,
            cx.x[0],
            &cx.params[cx.p.range(Param::DepthwiseKernel)],
            &ds,
        );
        cpu::pointwise_conv2d::pointwise_conv2d_forward(
            cx.y,
            &mid,
            &cx.params[cx.p.range(Param::PointwiseKernel)],
            &cx.params[cx.p.range(Param::Bias)],
            &self.pointwise(&ds),
        );
        cx.saved.put(cx.li, Saved::Depthwise, mid);
    }

    fn cpu_backward(&self, cx: &mut CpuBwd) {
        let ds = self.depthwise(cx.n, cx.in_shape);
        let ps = self.pointwise(&ds);
        let mid = cx.saved.get(cx.li, Saved::Depthwise);
        let dwr = cx.p.range(Param::DepthwiseKernel);
        let pwr = cx.p.range(Param::PointwiseKernel);
        let br = cx.p.range(Param::Bias);
        let (mut dpw, mut db) = (vec![0.0; pwr.len()], vec![0.0; br.len()]);
        cpu::pointwise_conv2d::pointwise_conv2d_backward_weight(&mut dpw, &mut db, cx.dy, mid, &ps);
        let mut dmid = vec![0.0; mid.len()];
        cpu::pointwise_conv2d::pointwise_conv2d_backward_input(
            &mut dmid,
            cx.dy,
            &cx.params[pwr.clone()],
            &ps,
        );
        let mut ddw = vec![0.0; dwr.len()];
        cpu::depthwise_conv2d::depthwise_conv2d_backward_weight(&mut ddw, &dmid, cx.x[0], &ds);
        cpu::depthwise_conv2d::depthwise_conv2d_backward_input(
            &mut cx.dx[0],
            &dmid,
            &cx.params[dwr.clone()],
            &ds,
        );
        cx.grads[dwr].copy_from_slice(&ddw);
        cx.grads[pwr].copy_from_slice(&dpw);
        cx.grads[br].copy_from_slice(&db);
    }
}
