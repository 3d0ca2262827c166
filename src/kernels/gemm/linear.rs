//! The linear-layer passes (forward, backward_input, backward_weight) built on the GEMM core,
//! shared by `dense` and `pointwise_conv2d`.

use super::*;

/// The three passes of a "linear" layer y = x·W + b of a [`LinearShape`], shared by `dense`
/// and `pointwise_conv2d`. W: [CIN, COUT] row-major, b: [COUT].
impl Gemm {
    /// y[r, :] = x[G(r), :]·W + b. y: [rows, COUT], x: [.., CIN] (pixel G(r) = map(r) or r).
    pub fn linear_forward(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        y: &dyn Bind,
        x: &dyn Bind,
        weights: Weights,
        s: &LinearShape,
    ) -> Dispatch {
        self.linear_forward_epilogue(ctx, variant, [y, x], weights, s, false)
    }

    /// y[r, :] = max(x[G(r), :]·W + b, 0): [`Self::linear_forward`] with a ReLU epilogue (a
    /// convolution whose batch norm and ReLU are folded into it).
    pub fn linear_forward_relu(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        y: &dyn Bind,
        x: &dyn Bind,
        weights: Weights,
        s: &LinearShape,
    ) -> Dispatch {
        self.linear_forward_epilogue(ctx, variant, [y, x], weights, s, true)
    }

    fn linear_forward_epilogue(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        [y, x]: [&dyn Bind; 2],
        weights: Weights,
        s: &LinearShape,
        relu: bool,
    ) -> Dispatch {
        let spec = GemmSpec {
            a_gather: if s.map.is_some() {
                Gather::Rows
            } else {
                Gather::None
            },
            map: s.map,
            bias_off: Some(0),
            relu,
            ..GemmSpec::row_major(s.rows, s.cout, s.cin)
        };
        let bufs = GemmBuffers {
            c: y,
            a: x,
            b: weights.w,
            bias: Some(weights.b),
        };
        self.gemm(ctx, variant, &spec, bufs)
    }
    /// dx[G(r), :] = dy[r, :]·Wᵀ. dx: [.., CIN], dy: [rows, COUT]. Writes the whole dx: with a
    /// strided `map`, a first dispatch zeroes the pixels the stride skips. With a `scratch`
    /// of at least [`input_scratch_len`] f32 where that is not 0, a dispatch first writes Wᵀ
    /// there and the GEMM reads its rows as vec4s; else W is read transposed, as scalars.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_backward_input(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        dx: &dyn Bind,
        dy: &dyn Bind,
        w: &dyn Bind,
        scratch: Option<&dyn Bind>,
        s: &LinearShape,
    ) -> Vec<Dispatch> {
        let mut v = Vec::new();
        if let Some(m) = s.map.filter(|m| m.stride > 1) {
            let images = s.rows / (m.oh * m.ow);
            v.push(self.zero_skipped(ctx, dx, images, &m, s.cin));
        }
        let need = input_scratch_len(variant, s.cin, s.cout);
        let wt;
        let (b, b_ks, b_ns): (&dyn Bind, _, _) = if let Some(t) = scratch.filter(|_| need > 0) {
            assert!(
                t.size() >= (need * 4) as u64,
                "linear_backward_input: scratch holds {} bytes, needs {}",
                t.size(),
                need * 4
            );
            // Wᵀ alone (not the whole shared scratch): the GEMM's mirror copies it as B.
            wt = crate::kernels::BufferRange::prefix(t, (need * 4) as u64);
            let t = &wt;
            v.push(self.transpose(ctx, t, w, s.cin, s.cout));
            // B(k = co, n = ci) = Wᵀ[co, ci], row-major.
            (t, s.cin, 1)
        } else {
            // B(k = co, n = ci) = W[ci, co]: W read transposed through its strides.
            (w, 1, s.cout)
        };
        let spec = GemmSpec {
            b_ks,
            b_ns,
            c_scatter: s.map.is_some(),
            map: s.map,
            // dy where linear_backward_weight's GEMM mirrored it (as its B), so that recorded
            // after it (as every layer's backward is) this GEMM reuses that copy.
            a_in_mirror_1: true,
            ..GemmSpec::row_major(s.rows, s.cin, s.cout)
        };
        let bufs = GemmBuffers {
            c: dx,
            a: dy,
            b,
            bias: None,
        };
        v.push(self.gemm(ctx, variant, &spec, bufs));
        v
    }

    /// Split-K plan of the weight gradient over `rows` rows.
    pub fn weight_split(&self, variant: Variant, rows: usize, cin: usize, cout: usize) -> SplitK {
        weight_split(variant, self.sg_wg, rows, cin, cout)
    }

    /// Scratch (f32 elements) [`Gemm::linear_backward_weight`] needs: 0 without split-K, else
    /// splits·(CIN·COUT + COUT) for the partials of dW and db.
    pub fn weight_scratch_len(
        &self,
        variant: Variant,
        rows: usize,
        cin: usize,
        cout: usize,
    ) -> usize {
        weight_scratch_len(variant, self.sg_wg, rows, cin, cout)
    }

    /// dW = Σ_r x[G(r), :]ᵀ·dy[r, :], db = Σ_r dy[r, :] (writes both). dw: [CIN, COUT],
    /// db: [COUT], x: [.., CIN], dy: [rows, COUT]; `grads.scratch` holds at least
    /// [`Gemm::weight_scratch_len`] elements (may be None when that is 0). Split-K: each split
    /// writes partials of dW and db into the scratch, then two reductions write dW and db.
    pub fn linear_backward_weight(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        grads: WeightGrads,
        x: &dyn Bind,
        dy: &dyn Bind,
        s: &LinearShape,
    ) -> Vec<Dispatch> {
        let (rows, cin, cout) = (s.rows, s.cin, s.cout);
        let WeightGrads { dw, db, scratch } = grads;
        let split = self.weight_split(variant, rows, cin, cout);
        // A(m = ci, k = r) = x[G(r), ci]: x read transposed, gathered along K.
        let spec = GemmSpec {
            a_ms: 1,
            a_ks: cin,
            a_gather: if s.map.is_some() {
                Gather::K
            } else {
                Gather::None
            },
            map: s.map,
            split,
            ..GemmSpec::row_major(cin, cout, rows)
        };
        let (a, b, bias) = (x, dy, None);
        if split.splits == 1 {
            return vec![
                self.gemm(ctx, variant, &spec, GemmBuffers { c: dw, a, b, bias }),
                self.colsum(ctx, variant, BufAt::start(db), dy, rows, cout, split),
            ];
        }
        let need = self.weight_scratch_len(variant, rows, cin, cout);
        let scratch = scratch.expect("linear_backward_weight: split-K needs a scratch buffer");
        assert!(
            scratch.size() >= (need * 4) as u64,
            "linear_backward_weight: scratch holds {} bytes, needs {}",
            scratch.size(),
            need * 4
        );
        let s = split.splits;
        let db_off = s as usize * cin * cout;
        vec![
            self.gemm(
                ctx,
                variant,
                &spec,
                GemmBuffers {
                    c: scratch,
                    a,
                    b,
                    bias,
                },
            ),
            // The GEMM writes only its partials: dy's mirror (its B) still holds dy.
            self.colsum(
                ctx,
                variant,
                BufAt::at(scratch, db_off),
                dy,
                rows,
                cout,
                split,
            ),
            self.reduce(ctx, BufAt::start(dw), BufAt::start(scratch), cin * cout, s),
            self.reduce(ctx, BufAt::start(db), BufAt::at(scratch, db_off), cout, s),
        ]
    }
}
