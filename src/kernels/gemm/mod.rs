//! `gemm`: the matrix-product core behind `dense` and `pointwise_conv2d` (shaders/gemm.wgsl,
//! shaders/gemm_subgroup.wgsl), in three variants side by side:
//!
//! - `naive`: one output per invocation, for comparison only;
//! - `tiled`: the portable variant for real GPUs: 64×64 tiles staged in workgroup memory,
//!   4×4 outputs per invocation, vec4 loads of B where aligned;
//! - `subgroup`: for adapters with subgroups of ≥ 8 lanes, shaped for CPU adapters (lavapipe):
//!   32 rows × 2 vec4 columns of named accumulators per invocation, A loaded once per subgroup
//!   and handed round with `subgroupShuffle` (LAVAPIPE-NOTES.md).
//!
//! Every variant takes the same [`GemmSpec`]: offsets and strides per operand (so transposes
//! are free), the strided-pixel row gather/scatter of a 1×1 convolution, an optional bias, and
//! split-K (each split writes a partial, [`Gemm::reduce`] sums them).

use std::sync::OnceLock;

use bytemuck::{Pod, Zeroable};

use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, MAX_GROUPS_PER_DIM, ShaderFamily, grid_1d, groups_for};

pub mod bench;
pub mod checks;
#[cfg(test)]
mod generate;

/// Mirrors `struct Params` in shaders/gemm.wgsl and shaders/gemm_subgroup.wgsl (see their
/// headers for what each field means per entry point).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
pub struct Params {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub splits: u32,
    pub k_chunk: u32,
    pub a_off: u32,
    pub a_ms: u32,
    pub a_ks: u32,
    pub a_gather: u32,
    pub b_off: u32,
    pub b_ks: u32,
    pub b_ns: u32,
    pub c_off: u32,
    pub c_ms: u32,
    pub c_split: u32,
    pub c_gather: u32,
    pub bias_off: u32,
    pub has_bias: u32,
    pub g_ohw: u32,
    pub g_ow: u32,
    pub g_in_w: u32,
    pub g_in_hw: u32,
    pub g_stride: u32,
    pub _pad: u32,
}

/// A GEMM kernel variant (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Naive,
    Tiled,
    Subgroup,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Naive, Variant::Tiled, Variant::Subgroup];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Naive => "naive",
            Variant::Tiled => "tiled",
            Variant::Subgroup => "subgroup",
        }
    }

    /// Output rows and columns one workgroup computes.
    fn tile(self, sg_wg: u32) -> (u32, u32) {
        match self {
            Variant::Naive => (NAIVE_XY, NAIVE_XY),
            Variant::Tiled => (64, 64),
            Variant::Subgroup => (32, 8 * sg_wg),
        }
    }
}

/// The row gather (A) or scatter (C) of a strided 1×1 convolution: output pixel
/// p = (img, oh, ow) of an `[.., oh, ow]` grid maps to input pixel (img, oh·stride, ow·stride)
/// of an `[.., in_h, in_w]` image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelMap {
    pub oh: usize,
    pub ow: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub stride: usize,
}

/// Which index of A goes through the [`PixelMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gather {
    None,
    /// A(m, k) reads pixel(m): the rows of the 1×1 convolution's input.
    Rows,
    /// A(m, k) reads pixel(k): the input transposed, as in the weight gradient.
    K,
}

/// One C[M, N] = A[M, K]·B[K, N] (+ bias) as element offsets and strides into flat f32
/// buffers (see the addressing section of shaders/gemm.wgsl).
#[derive(Clone, Copy, Debug)]
pub struct GemmSpec {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A(m, k) at `a_off + G(m)·a_ms + G(k)·a_ks`.
    pub a_off: usize,
    pub a_ms: usize,
    pub a_ks: usize,
    pub a_gather: Gather,
    /// B(k, n) at `b_off + k·b_ks + n·b_ns`.
    pub b_off: usize,
    pub b_ks: usize,
    pub b_ns: usize,
    /// C(m, n) of split s at `c_off + s·m·n + G(m)·c_ms + n` (G = pixel map when `c_scatter`).
    pub c_off: usize,
    pub c_ms: usize,
    pub c_scatter: bool,
    pub map: Option<PixelMap>,
    /// Element offset of the bias in the bias buffer, when a bias is added.
    pub bias_off: Option<usize>,
    /// Split-K plan; `splits > 1` writes `splits` partials of `m·n` each from `c_off`.
    pub split: SplitK,
}

impl GemmSpec {
    /// Plain row-major C = A·B: a [M, K], b [K, N], c [M, N], one split, no bias.
    pub fn row_major(m: usize, n: usize, k: usize) -> Self {
        Self {
            m,
            n,
            k,
            a_off: 0,
            a_ms: k,
            a_ks: 1,
            a_gather: Gather::None,
            b_off: 0,
            b_ks: n,
            b_ns: 1,
            c_off: 0,
            c_ms: n,
            c_scatter: false,
            map: None,
            bias_off: None,
            split: SplitK::one(k),
        }
    }

    /// A_MODE of gemm_subgroup.wgsl: 1 when every vec4 of A along k (4 consecutive k from a
    /// multiple of 4) is 16-byte aligned and inside its row; 2 when A is stored transposed
    /// (a_ms = 1, rows not gathered) and every vec4 along m is; else 0 (scalar loads).
    pub fn a_mode(&self) -> u32 {
        if self.a_ks == 1
            && self.a_gather != Gather::K
            && self.a_off.is_multiple_of(4)
            && self.a_ms.is_multiple_of(4)
            && self.k.is_multiple_of(4)
        {
            1
        } else if self.a_ms == 1
            && self.a_gather != Gather::Rows
            && self.a_off.is_multiple_of(4)
            && self.a_ks.is_multiple_of(4)
            && self.m.is_multiple_of(4)
        {
            2
        } else {
            0
        }
    }

    /// Every vec4 of B along n (4 consecutive n from a multiple of 4) is 16-byte aligned and
    /// inside its row: the tiled kernel's vec4 loads and the subgroup kernel's B_MODE 1.
    pub fn b_rows_vec4(&self) -> bool {
        self.b_ns == 1
            && self.b_off.is_multiple_of(4)
            && self.b_ks.is_multiple_of(4)
            && self.n.is_multiple_of(4)
    }

    /// B_MODE of gemm_subgroup.wgsl: 1 when B's rows are read as vec4s, else 0 (scalars).
    pub fn b_mode(&self) -> u32 {
        self.b_rows_vec4() as u32
    }

    fn params(&self) -> Params {
        assert!(
            self.bias_off.is_none() || self.split.splits == 1,
            "gemm: a bias can only be added without split-K"
        );
        assert!(
            self.map.is_some() || (self.a_gather == Gather::None && !self.c_scatter),
            "gemm: a gather or scatter needs a pixel map"
        );
        let map = self.map.unwrap_or(PixelMap {
            oh: 1,
            ow: 1,
            in_h: 1,
            in_w: 1,
            stride: 1,
        });
        let u = |v: usize| u32::try_from(v).expect("gemm: size does not fit in u32");
        Params {
            m: u(self.m),
            n: u(self.n),
            k: u(self.k),
            splits: self.split.splits,
            k_chunk: self.split.k_chunk,
            a_off: u(self.a_off),
            a_ms: u(self.a_ms),
            a_ks: u(self.a_ks),
            a_gather: match self.a_gather {
                Gather::None => 0,
                Gather::Rows => 1,
                Gather::K => 2,
            },
            b_off: u(self.b_off),
            b_ks: u(self.b_ks),
            b_ns: u(self.b_ns),
            c_off: u(self.c_off),
            c_ms: u(self.c_ms),
            c_split: u(self.m * self.n),
            c_gather: self.c_scatter as u32,
            bias_off: u(self.bias_off.unwrap_or(0)),
            has_bias: self.bias_off.is_some() as u32,
            g_ohw: u(map.oh * map.ow),
            g_ow: u(map.ow),
            g_in_w: u(map.in_w),
            g_in_hw: u(map.in_h * map.in_w),
            g_stride: u(map.stride),
            _pad: 0,
        }
    }
}

/// How K is split over workgroups: split s covers k in [s·k_chunk, min(K, (s+1)·k_chunk)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitK {
    pub splits: u32,
    pub k_chunk: u32,
}

/// K per split is a multiple of this (the subgroup kernel's K step is 32, the tiled one's 16).
const K_ALIGN: usize = 64;
/// Shortest K range worth a split of its own.
const MIN_K_PER_SPLIT: usize = 512;
/// Workgroups a split-K GEMM aims for: enough for any GPU's cores without exploding the
/// partials (each split writes a whole M×N partial).
const TARGET_GROUPS: usize = 256;
const NAIVE_XY: u32 = 16;
const WG_1D: u32 = 64;

impl SplitK {
    /// No split: the whole K in one pass.
    pub fn one(k: usize) -> Self {
        Self {
            splits: 1,
            k_chunk: k.div_ceil(K_ALIGN).max(1) as u32 * K_ALIGN as u32,
        }
    }

    /// Enough splits that `tiles` output tiles become about [`TARGET_GROUPS`] workgroups, but
    /// no more than ceil(K / [`MIN_K_PER_SPLIT`]) (short K ranges are not worth a partial).
    pub fn plan(tiles: usize, k: usize) -> Self {
        let want = TARGET_GROUPS
            .div_ceil(tiles.max(1))
            .min(k.div_ceil(MIN_K_PER_SPLIT))
            .max(1);
        let k_chunk = k.div_ceil(want).div_ceil(K_ALIGN).max(1) * K_ALIGN;
        Self {
            splits: k.div_ceil(k_chunk).max(1) as u32,
            k_chunk: k_chunk as u32,
        }
    }
}

/// Compiled GEMM pipelines for one device, and the variant chosen for its adapter.
pub struct Gemm {
    portable: ShaderFamily,
    /// gemm_subgroup pipelines by index A_MODE + 3·B_MODE, compiled on first use (each takes
    /// seconds the first time on a CPU adapter); None where subgroups are off.
    subgroup: Option<[OnceLock<ShaderFamily>; 6]>,
    sg_wg: u32,
    dummy: wgpu::Buffer,
}

/// Entry points of shaders/gemm.wgsl.
const PORTABLE_ENTRIES: [&str; 5] = [
    "gemm_naive",
    "gemm_tiled",
    "gemm_reduce",
    "gemm_colsum",
    "gemm_zero_skipped",
];

/// Why the subgroup variant can or cannot run on this adapter (`Ok` when it can).
pub(crate) fn subgroup_usable(ctx: &GpuContext) -> Result<(), String> {
    if !ctx.has_subgroups() {
        return Err("the adapter has no subgroups".into());
    }
    let min = ctx.info.subgroup_min_size;
    if min < 8 {
        return Err(format!(
            "its subgroups may have {min} lanes and the kernel reads lanes 0..7"
        ));
    }
    Ok(())
}

/// Lanes of one gemm_subgroup workgroup on `ctx`: a full hardware subgroup where it is larger
/// than 8 (at most 64).
pub fn subgroup_width(ctx: &GpuContext) -> u32 {
    ctx.info.subgroup_max_size.clamp(8, 64)
}

/// The default variant for this adapter and why: `subgroup` on CPU adapters with ≥ 8-lane
/// subgroups (measured 10–20× faster than tiles in workgroup memory on lavapipe); else the
/// portable `tiled`. `GPUCNN_VARIANT` overrides it ([`super::variants`]).
pub(crate) fn default_variant(ctx: &GpuContext) -> (Variant, String) {
    match subgroup_usable(ctx) {
        Ok(()) if ctx.is_software() => (
            Variant::Subgroup,
            format!(
                "CPU adapter with {}..{}-lane subgroups: A shared by subgroup shuffles, \
                 register tiles",
                ctx.info.subgroup_min_size, ctx.info.subgroup_max_size
            ),
        ),
        Ok(()) => (
            Variant::Tiled,
            "hardware GPU: workgroup-memory tiles (subgroup variant is tuned for CPU adapters)"
                .into(),
        ),
        Err(why) => (
            Variant::Tiled,
            format!("portable tiles; subgroup off: {why}"),
        ),
    }
}

/// Output tiles of an M×N product under `variant` with `sg_wg`-lane subgroup workgroups.
pub fn tiles(variant: Variant, sg_wg: u32, m: usize, n: usize) -> usize {
    let (tm, tn) = variant.tile(sg_wg);
    m.div_ceil(tm as usize) * n.div_ceil(tn as usize)
}

/// Split-K plan of a weight gradient over `rows` rows.
pub fn weight_split(variant: Variant, sg_wg: u32, rows: usize, cin: usize, cout: usize) -> SplitK {
    SplitK::plan(tiles(variant, sg_wg, cin, cout), rows)
}

/// Scratch (f32 elements) [`Gemm::linear_backward_weight`] needs: 0 without split-K, else
/// splits·(CIN·COUT + COUT) for the partials of dW and db. Shape arithmetic: no GPU needed.
pub fn weight_scratch_len(
    variant: Variant,
    sg_wg: u32,
    rows: usize,
    cin: usize,
    cout: usize,
) -> usize {
    let s = weight_split(variant, sg_wg, rows, cin, cout).splits as usize;
    if s == 1 { 0 } else { s * (cin * cout + cout) }
}

impl Gemm {
    /// Compiles gemm.wgsl and, where the adapter allows it, gemm_subgroup.wgsl.
    pub fn new(ctx: &GpuContext) -> Self {
        let portable = ShaderFamily::new(
            ctx,
            "gemm",
            include_str!("../../../shaders/gemm.wgsl"),
            &PORTABLE_ENTRIES,
            &[
                ("WG", WG_1D as f64),
                ("NX", NAIVE_XY as f64),
                ("NY", NAIVE_XY as f64),
            ],
        );
        let subgroup = subgroup_usable(ctx).is_ok().then(Default::default);
        Self {
            portable,
            subgroup,
            sg_wg: subgroup_width(ctx),
            dummy: ctx.zeros("gemm dummy", 4),
        }
    }

    fn subgroup_family(&self, ctx: &GpuContext, a_mode: u32, b_mode: u32) -> &ShaderFamily {
        let cells = self
            .subgroup
            .as_ref()
            .expect("gemm: the subgroup variant is not available on this adapter");
        cells[(a_mode + 3 * b_mode) as usize].get_or_init(|| {
            ShaderFamily::new(
                ctx,
                "gemm_subgroup",
                include_str!("../../../shaders/gemm_subgroup.wgsl"),
                &["gemm_subgroup"],
                &[
                    ("WG", self.sg_wg as f64),
                    ("A_MODE", a_mode as f64),
                    ("B_MODE", b_mode as f64),
                ],
            )
        })
    }

    /// Variants that can run on this adapter.
    pub fn available(&self) -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|&v| v != Variant::Subgroup || self.subgroup.is_some())
            .collect()
    }

    /// Output tiles of an M×N product under `variant` (for split-K plans).
    pub fn tiles(&self, variant: Variant, m: usize, n: usize) -> usize {
        tiles(variant, self.sg_wg, m, n)
    }

    /// C = A·B (+ bias) as described by `spec`, with `variant`. c, a, b, bias: flat f32 buffers
    /// addressed as in `spec`; `bias` is needed when `spec.bias_off` is set. Writes C (or the
    /// `spec.split.splits` partials of M·N each from `spec.c_off`).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        spec: &GemmSpec,
        c: &dyn Bind,
        a: &dyn Bind,
        b: &dyn Bind,
        bias: Option<&dyn Bind>,
    ) -> Dispatch {
        assert!(
            spec.bias_off.is_none() || bias.is_some(),
            "gemm: bias offset without a bias buffer"
        );
        let p = spec.params();
        let bias = bias.unwrap_or(&self.dummy);
        let (tm, tn) = variant.tile(self.sg_wg);
        let grid = [
            groups_for(spec.n, tn),
            groups_for(spec.m, tm),
            spec.split.splits,
        ];
        assert!(
            grid[0] <= MAX_GROUPS_PER_DIM && grid[1] <= MAX_GROUPS_PER_DIM,
            "gemm: {}×{} output needs grid {grid:?}, over 65535 groups a side: split the batch",
            spec.m,
            spec.n
        );
        let (family, entry) = match variant {
            Variant::Naive => (&self.portable, "gemm_naive"),
            Variant::Tiled => (&self.portable, "gemm_tiled"),
            Variant::Subgroup => (
                self.subgroup_family(ctx, spec.a_mode(), spec.b_mode()),
                "gemm_subgroup",
            ),
        };
        // The vec4 views are bound whether or not a pipeline reads them; each must hold at
        // least one vec4 (when a path reads one, the operand holds it: see a_mode, b_mode).
        let a4 = if a.size() >= 16 { a } else { &self.dummy };
        let b4 = if b.size() >= 16 { b } else { &self.dummy };
        family.dispatch(
            ctx,
            entry,
            &[
                Some(c),
                Some(a),
                Some(b),
                Some(bias),
                None,
                Some(a4),
                Some(b4),
            ],
            Some(&p),
            grid,
        )
    }

    /// out[out_off + i] = Σ_s partials[part_off + s·len + i] for i < len, s < splits: the
    /// split-K reduction. Writes out.
    #[allow(clippy::too_many_arguments)]
    pub fn reduce(
        &self,
        ctx: &GpuContext,
        out: &dyn Bind,
        partials: &dyn Bind,
        len: usize,
        splits: u32,
        out_off: usize,
        part_off: usize,
    ) -> Dispatch {
        let p = Params {
            m: len as u32,
            splits,
            a_off: part_off as u32,
            c_split: len as u32,
            c_off: out_off as u32,
            ..Default::default()
        };
        self.portable.dispatch(
            ctx,
            "gemm_reduce",
            &[Some(out), Some(partials)],
            Some(&p),
            grid_1d(groups_for(len, WG_1D)),
        )
    }

    /// Column sums of x [rows, cols] (row-major, from element 0), split over rows like `split`:
    /// partials[out_off + s·cols + j] = Σ_{r in split s} x[r·cols + j]. Writes the partials
    /// (with one split, the sums themselves).
    #[allow(clippy::too_many_arguments)]
    pub fn colsum(
        &self,
        ctx: &GpuContext,
        partials: &dyn Bind,
        x: &dyn Bind,
        rows: usize,
        cols: usize,
        split: SplitK,
        out_off: usize,
    ) -> Dispatch {
        let p = Params {
            k: rows as u32,
            n: cols as u32,
            a_ms: cols as u32,
            k_chunk: split.k_chunk,
            splits: split.splits,
            c_off: out_off as u32,
            ..Default::default()
        };
        self.portable.dispatch(
            ctx,
            "gemm_colsum",
            &[Some(partials), Some(x)],
            Some(&p),
            [groups_for(cols, WG_1D), split.splits, 1],
        )
    }

    /// Zeroes dx[img, h, w, :] wherever h or w is not a multiple of `stride` (the pixels a
    /// strided 1×1 convolution skips). dx: [N, H, W, C]. Writes only those pixels.
    #[allow(clippy::too_many_arguments)]
    pub fn zero_skipped(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        n: usize,
        h: usize,
        w: usize,
        c: usize,
        stride: usize,
    ) -> Dispatch {
        let p = Params {
            m: (n * h * w) as u32,
            n: c as u32,
            g_in_w: w as u32,
            g_in_hw: (h * w) as u32,
            g_stride: stride as u32,
            ..Default::default()
        };
        self.portable.dispatch(
            ctx,
            "gemm_zero_skipped",
            &[Some(dx)],
            Some(&p),
            grid_1d(groups_for(n * h * w * c.div_ceil(4), WG_1D)),
        )
    }

    /// The `gemm` op: C = A·B. c: [M, N], a: [M, K], b: [K, N], row-major. Writes C.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        c: &dyn Bind,
        a: &dyn Bind,
        b: &dyn Bind,
        m: usize,
        n: usize,
        k: usize,
    ) -> Dispatch {
        self.gemm(ctx, variant, &GemmSpec::row_major(m, n, k), c, a, b, None)
    }
}

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

/// The default variant on this adapter (compiles nothing).
pub fn selected_variant(ctx: &GpuContext) -> Variant {
    default_variant(ctx).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_plans_cover_k_exactly_once() {
        for (tiles, k) in [
            (1, 1),
            (4, 8100),
            (16, 64800),
            (2, 2116),
            (1024, 100_000),
            (3, 513),
        ] {
            let p = SplitK::plan(tiles, k);
            let (s, c) = (p.splits as usize, p.k_chunk as usize);
            assert_eq!(c % K_ALIGN, 0, "{tiles} {k}: chunk {c}");
            assert!(s * c >= k && (s - 1) * c < k, "{tiles} {k}: {s} × {c}");
            assert!(s <= k.div_ceil(MIN_K_PER_SPLIT), "{tiles} {k}: {s} splits");
        }
        // The large pointwise check (C 64→96 over 4·45·45 pixels) really is split.
        assert!(SplitK::plan(4, 8100).splits > 1);
    }

    #[test]
    fn vec4_modes_need_alignment() {
        let plain = GemmSpec::row_major(64, 96, 128);
        assert_eq!((plain.a_mode(), plain.b_mode()), (1, 1));
        let odd = GemmSpec::row_major(37, 29, 53);
        assert_eq!((odd.a_mode(), odd.b_mode()), (0, 0));
        // The weight gradient reads x transposed: A_MODE 2 when the rows come in fours.
        let wgrad = GemmSpec {
            a_ms: 1,
            a_ks: 64,
            ..GemmSpec::row_major(64, 96, 8100)
        };
        assert_eq!(wgrad.a_mode(), 2);
        let wgrad_odd = GemmSpec {
            a_ms: 1,
            a_ks: 5,
            ..GemmSpec::row_major(5, 3, 98)
        };
        assert_eq!(wgrad_odd.a_mode(), 0);
    }
}
