//! The linear-layer passes (forward, backward_input, backward_weight) built on the GEMM core,
//! shared by `dense` and `pointwise_conv2d`.

use super::*;

/// The three passes of a "linear" layer y = x·W + b over `rows` rows (dense: the batch;
/// pointwise_conv2d: the output pixels, read from the input through `map` when strided),
/// shared by `dense` and `pointwise_conv2d`. W: [CIN, COUT] row-major, b: [COUT].
impl Gemm {
    /// y[r, :] = x[G(r), :]·W + b. y: [rows, COUT], x: [.., CIN] (pixel G(r) = map(r) or r).
    #[allow(clippy::too_many_arguments)]
    pub fn linear_forward(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        y: &dyn Bind,
        x: &dyn Bind,
        w: &dyn Bind,
        b: &dyn Bind,
        rows: usize,
        cin: usize,
        cout: usize,
        map: Option<PixelMap>,
    ) -> Dispatch {
        let spec = GemmSpec {
            a_gather: if map.is_some() {
                Gather::Rows
            } else {
                Gather::None
            },
            map,
            bias_off: Some(0),
            ..GemmSpec::row_major(rows, cout, cin)
        };
        self.gemm(ctx, variant, &spec, y, x, w, Some(b))
    }

    /// dx[G(r), :] = dy[r, :]·Wᵀ. dx: [.., CIN], dy: [rows, COUT]. Writes the whole dx: with a
    /// strided `map`, a first dispatch zeroes the pixels the stride skips.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_backward_input(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        dx: &dyn Bind,
        dy: &dyn Bind,
        w: &dyn Bind,
        rows: usize,
        cin: usize,
        cout: usize,
        map: Option<PixelMap>,
    ) -> Vec<Dispatch> {
        let mut v = Vec::new();
        if let Some(m) = map.filter(|m| m.stride > 1) {
            let images = rows / (m.oh * m.ow);
            v.push(self.zero_skipped(ctx, dx, images, m.in_h, m.in_w, cin, m.stride));
        }
        // B(k = co, n = ci) = W[ci, co]: W read transposed through its strides.
        let spec = GemmSpec {
            b_ks: 1,
            b_ns: cout,
            c_scatter: map.is_some(),
            map,
            ..GemmSpec::row_major(rows, cin, cout)
        };
        v.push(self.gemm(ctx, variant, &spec, dx, dy, w, None));
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
    /// db: [COUT], x: [.., CIN], dy: [rows, COUT]; `scratch` holds at least
    /// [`Gemm::weight_scratch_len`] elements (may be None when that is 0). Split-K: each split
    /// writes partials of dW and db into the scratch, then two reductions write dW and db.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_backward_weight(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        dw: &dyn Bind,
        db: &dyn Bind,
        scratch: Option<&dyn Bind>,
        x: &dyn Bind,
        dy: &dyn Bind,
        rows: usize,
        cin: usize,
        cout: usize,
        map: Option<PixelMap>,
    ) -> Vec<Dispatch> {
        let split = self.weight_split(variant, rows, cin, cout);
        // A(m = ci, k = r) = x[G(r), ci]: x read transposed, gathered along K.
        let spec = GemmSpec {
            a_ms: 1,
            a_ks: cin,
            a_gather: if map.is_some() {
                Gather::K
            } else {
                Gather::None
            },
            map,
            split,
            ..GemmSpec::row_major(cin, cout, rows)
        };
        if split.splits == 1 {
            return vec![
                self.gemm(ctx, variant, &spec, dw, x, dy, None),
                self.colsum(ctx, db, dy, rows, cout, split, 0),
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
            self.gemm(ctx, variant, &spec, scratch, x, dy, None),
            self.colsum(ctx, scratch, dy, rows, cout, split, db_off),
            self.reduce(ctx, dw, scratch, cin * cout, s, 0, 0),
            self.reduce(ctx, db, scratch, cout, s, 0, db_off),
        ]
    }
}
