//! `gemm`: the matrix-product core behind `dense` and `pointwise_conv2d` (shaders/gemm.wgsl,
//! shaders/gemm_subgroup.wgsl, shaders/gemm_subgroup64.wgsl), in four variants side by side:
//!
//! - `naive`: one output per invocation, for comparison only;
//! - `tiled`: the portable variant for real GPUs: 64×64 tiles staged in workgroup memory,
//!   4×4 outputs per invocation, vec4 loads of B where aligned;
//! - `subgroup`: for adapters with subgroups of ≥ 8 lanes, shaped for CPU adapters (lavapipe):
//!   32 rows × 2 vec4 columns of named accumulators per invocation, A loaded once per subgroup
//!   and handed round with `subgroupShuffle` (LAVAPIPE-NOTES.md);
//! - `subgroup64`: the same kernel with 64 rows per invocation: each B vec4 a lane loads feeds
//!   twice as many rows, which halves B's loads (the per-lane loads that bound lavapipe) at the
//!   cost of more spilled accumulators; measured ~1.1× the 32-row kernel on lavapipe.
//! - `texture64`: `subgroup64` reading A and B from rgba32float texture mirrors of their
//!   buffers (shaders/gemm_subgroup64_texture.wgsl, [`crate::gpu::mirror`]): the dispatch copies each
//!   operand's bound range into a texture first. Where a storage load is a per-lane loop and a
//!   texel fetch one gather (lavapipe on an AVX2 EPYC: 1.75–2.7× `subgroup64` at the step's
//!   shapes) it wins; elsewhere the copies cost more than they save, and the tuner keeps
//!   another. An operand that cannot be mirrored (bound at an offset that is not a multiple of
//!   16 bytes, or larger than a mirror) makes that one GEMM run `subgroup64`.
//!
//! Every variant takes the same [`GemmSpec`]: offsets and strides per operand (so transposes
//! are free), the strided-pixel row gather/scatter of a 1×1 convolution, an optional bias, and
//! split-K (each split writes a partial, [`Gemm::reduce`] sums them).

use std::sync::OnceLock;

use bytemuck::{Pod, Zeroable};

use crate::gpu::GpuContext;
use crate::gpu::mirror::{self, MirrorScratch, MirroredFamily};
use crate::kernels::Bind;
use crate::kernels::variants::VariantError;
use crate::kernels::{Dispatch, MAX_GROUPS_PER_DIM, ShaderFamily, grid_1d, groups_for};

pub mod bench;
pub mod checks;
#[cfg(test)]
mod generate;
mod linear;
mod spec;

pub use crate::kernels::{WeightGrads, Weights};
pub use crate::shapes::GemmDims;
pub use spec::{Gather, GemmSpec, LinearShape, PixelMap, SplitK};

/// The buffers of one [`Gemm::gemm`]: C (written), A, B and the bias, addressed as its
/// [`GemmSpec`] says; `bias` is needed when the spec's `bias_off` is set.
#[derive(Clone, Copy)]
pub struct GemmBuffers<'a> {
    pub c: &'a dyn Bind,
    pub a: &'a dyn Bind,
    pub b: &'a dyn Bind,
    pub bias: Option<&'a dyn Bind>,
}

/// A flat f32 buffer from element `off` on: where the split-K passes write or read their
/// partials.
#[derive(Clone, Copy)]
pub struct BufAt<'a> {
    pub buf: &'a dyn Bind,
    pub off: usize,
}

impl<'a> BufAt<'a> {
    /// `buf` from element `off`.
    pub fn at(buf: &'a dyn Bind, off: usize) -> Self {
        Self { buf, off }
    }
    /// `buf` from its first element.
    pub fn start(buf: &'a dyn Bind) -> Self {
        Self::at(buf, 0)
    }
}

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
    /// 1: C = max(A·B + bias, 0), a ReLU in the epilogue (only with one split).
    pub relu: u32,
}

/// A GEMM kernel variant (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Naive,
    Tiled,
    Subgroup,
    Subgroup64,
    Texture64,
}

impl Variant {
    pub const ALL: [Variant; 5] = [
        Variant::Naive,
        Variant::Tiled,
        Variant::Subgroup,
        Variant::Subgroup64,
        Variant::Texture64,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Naive => "naive",
            Variant::Tiled => "tiled",
            Variant::Subgroup => "subgroup",
            Variant::Subgroup64 => "subgroup64",
            Variant::Texture64 => "texture64",
        }
    }

    /// The variant [`Self::name`] calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// True for the variants built on gemm_subgroup*.wgsl and gemm_subgroup64_texture.wgsl (they need
    /// [`subgroup_usable`]).
    pub fn uses_subgroups(self) -> bool {
        matches!(
            self,
            Variant::Subgroup | Variant::Subgroup64 | Variant::Texture64
        )
    }

    /// Output rows and columns one workgroup computes.
    fn tile(self, sg_wg: u32) -> (u32, u32) {
        match self {
            Variant::Naive => (NAIVE_XY, NAIVE_XY),
            Variant::Tiled => (64, 64),
            Variant::Subgroup => (32, 8 * sg_wg),
            Variant::Subgroup64 | Variant::Texture64 => (64, 8 * sg_wg),
        }
    }
}

/// Why a subgroup variant cannot run on a device without subgroups.
pub(crate) const NO_SUBGROUP: &str = "the device lacks wgpu::Features::SUBGROUP (the adapter \
     does not offer it, or the device was requested without it)";

const NAIVE_XY: u32 = 16;
const WG_1D: u32 = 64;

/// Compiled GEMM pipelines for one device, and the variant chosen for its adapter.
pub struct Gemm {
    portable: ShaderFamily,
    /// gemm_subgroup pipelines by index A_MODE + 3·B_MODE + 6·file + 18·GATHER + 36·C_MODE
    /// (file 0: gemm_subgroup, 1: gemm_subgroup64, 2: gemm_subgroup64_texture), compiled on
    /// first use (each takes seconds the first time on a CPU adapter); where the device cannot
    /// run them, why not.
    subgroup: Result<[OnceLock<ShaderFamily>; 72], String>,
    sg_wg: u32,
    dummy: wgpu::Buffer,
    /// The writable stand-in for whichever of C's two views (c, c4) a pipeline never writes:
    /// a writable binding must not alias another binding of its buffer.
    dummy_out: wgpu::Buffer,
    /// Why this device cannot hold a mirror, if so.
    mirror_limit: Option<String>,
    /// `gemm_colsum4` with A through a texture mirror, for `texture64` (compiled on first use).
    colsum_textured: OnceLock<MirroredFamily>,
}

/// Entry points of shaders/gemm.wgsl.
const PORTABLE_ENTRIES: [&str; 6] = [
    "gemm_naive",
    "gemm_tiled",
    "gemm_reduce",
    "gemm_colsum",
    "gemm_transpose",
    "gemm_zero_skipped",
];

/// Why the subgroup variants can or cannot run on this device (`Ok` when they can).
pub(crate) fn subgroup_usable(ctx: &GpuContext) -> Result<(), String> {
    if !ctx.has_subgroups() {
        return Err(NO_SUBGROUP.into());
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

/// f32 elements of scratch [`Gemm::linear_backward_input`] uses for Wᵀ (0: none): `texture64`
/// reads W transposed as vec4 rows (B_MODE 1) from a copy, where W itself could only be read
/// as scalars, when CIN is divisible by 4. Plain data, for plans made without a GPU.
pub fn input_scratch_len(variant: Variant, cin: usize, cout: usize) -> usize {
    if variant == Variant::Texture64 && cin.is_multiple_of(4) {
        cin * cout
    } else {
        0
    }
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
        let subgroup = subgroup_usable(ctx).map(|()| std::array::from_fn(|_| OnceLock::new()));
        Self {
            portable,
            subgroup,
            sg_wg: subgroup_width(ctx),
            dummy: ctx.zeros("gemm dummy", 4),
            dummy_out: ctx.zeros("gemm dummy out", 4),
            mirror_limit: MirrorScratch::supported(ctx).err(),
            colsum_textured: OnceLock::new(),
        }
    }

    fn subgroup_family(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        a_mode: u32,
        b_mode: u32,
        gather: bool,
        c_mode: u32,
    ) -> &ShaderFamily {
        let cells = match &self.subgroup {
            Ok(cells) => cells,
            Err(why) => panic!("gemm: the subgroup variants cannot run on this device: {why}"),
        };
        let (file, name, source) = match variant {
            Variant::Subgroup => (
                0,
                "gemm_subgroup",
                include_str!("../../../shaders/gemm_subgroup.wgsl"),
            ),
            Variant::Subgroup64 => (
                1,
                "gemm_subgroup64",
                include_str!("../../../shaders/gemm_subgroup64.wgsl"),
            ),
            Variant::Texture64 => (
                2,
                "gemm_subgroup64_texture",
                include_str!("../../../shaders/gemm_subgroup64_texture.wgsl"),
            ),
            Variant::Naive | Variant::Tiled => unreachable!("{variant:?} is not a subgroup kernel"),
        };
        let cell = a_mode + 3 * b_mode + 6 * file + 18 * gather as u32 + 36 * c_mode;
        cells[cell as usize].get_or_init(|| {
            ShaderFamily::new(
                ctx,
                name,
                source,
                &["gemm_subgroup"],
                &[
                    ("WG", self.sg_wg as f64),
                    ("A_MODE", a_mode as f64),
                    ("B_MODE", b_mode as f64),
                    ("GATHER", gather as u32 as f64),
                    ("C_MODE", c_mode as f64),
                ],
            )
        })
    }

    /// Variants that can run on this device.
    pub fn available(&self) -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|&v| self.supports(v).is_ok())
            .collect()
    }

    /// `Ok` when `variant` can run on this device; else why not, naming the missing wgpu
    /// feature or property.
    pub fn supports(&self, variant: Variant) -> Result<(), VariantError> {
        let why = match &self.subgroup {
            Err(why) if variant.uses_subgroups() => Some(why.clone()),
            _ if variant == Variant::Texture64 => self.mirror_limit.clone(),
            _ => None,
        };
        match why {
            Some(why) => Err(VariantError::Unsupported {
                family: "gemm",
                variant: variant.name(),
                why,
            }),
            None => Ok(()),
        }
    }

    /// Output tiles of an M×N product under `variant` (for split-K plans).
    pub fn tiles(&self, variant: Variant, m: usize, n: usize) -> usize {
        tiles(variant, self.sg_wg, m, n)
    }

    /// C = A·B (+ bias) as described by `spec`, with `variant`. `bufs`: flat f32 buffers
    /// addressed as in `spec`. Writes C (or the `spec.split.splits` partials of M·N each from
    /// `spec.c_off`). Panics, naming the missing feature, when `variant` cannot run on this
    /// device: ask [`Self::supports`] first (or build [`crate::kernels::dense::Dense`] and
    /// friends, which do) where the variant is not from [`Self::available`].
    pub fn gemm(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        spec: &GemmSpec,
        bufs: GemmBuffers,
    ) -> Dispatch {
        let GemmBuffers { c, a, b, bias } = bufs;
        assert!(
            spec.bias_off.is_none() || bias.is_some(),
            "gemm: bias offset without a bias buffer"
        );
        let p = spec.params();
        let bias = bias.unwrap_or(&self.dummy);
        // texture64 mirrors A and B; where either cannot be, this GEMM runs subgroup64.
        let mirrors = (variant == Variant::Texture64)
            .then(|| {
                // A and B through the device's shared mirrors 0 and 1 (gpu::mirror), or 1 and 0.
                let a_at = usize::from(spec.a_in_mirror_1);
                let (ma, mb) = (mirror::shared(ctx, a_at), mirror::shared(ctx, 1 - a_at));
                Some([(1, ma.mirror(ctx, a).ok()?), (2, mb.mirror(ctx, b).ok()?)])
            })
            .flatten();
        let variant = match (variant, &mirrors) {
            (Variant::Texture64, None) => Variant::Subgroup64,
            _ => variant,
        };
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
            Variant::Subgroup | Variant::Subgroup64 | Variant::Texture64 => (
                self.subgroup_family(
                    ctx,
                    variant,
                    spec.a_mode(),
                    spec.b_mode(),
                    spec.gathers(),
                    spec.c_mode(),
                ),
                "gemm_subgroup",
            ),
        };
        // The vec4 views are bound whether or not a pipeline reads them; each must hold at
        // least one vec4 (when a path reads one, the operand holds it: see a_mode, b_mode).
        let a4 = if a.size() >= 16 { a } else { &self.dummy };
        let b4 = if b.size() >= 16 { b } else { &self.dummy };
        // C through its vec4 view (C_MODE 1, subgroup kernels only) or the scalar one.
        let vec4_c = variant.uses_subgroups() && spec.c_mode() == 1;
        let (c1, c4): (&dyn Bind, &dyn Bind) = if vec4_c {
            (&self.dummy_out, c)
        } else {
            (c, &self.dummy_out)
        };
        family.dispatch_mirrored(
            ctx,
            entry,
            &[
                Some(c1),
                Some(a),
                Some(b),
                Some(bias),
                None,
                Some(a4),
                Some(b4),
                Some(c4),
            ],
            mirrors.map(Vec::from).unwrap_or_default(),
            Some(&p),
            grid,
        )
    }

    /// out[out.off + i] = Σ_s partials[partials.off + s·len + i] for i < len, s < splits: the
    /// split-K reduction. Writes out.
    pub fn reduce(
        &self,
        ctx: &GpuContext,
        out: BufAt,
        partials: BufAt,
        len: usize,
        splits: u32,
    ) -> Dispatch {
        let p = Params {
            m: len as u32,
            splits,
            a_off: partials.off as u32,
            c_split: len as u32,
            c_off: out.off as u32,
            ..Default::default()
        };
        self.portable.dispatch(
            ctx,
            "gemm_reduce",
            &[Some(out.buf), Some(partials.buf)],
            Some(&p),
            grid_1d(groups_for(len, WG_1D)),
        )
    }

    /// Column sums of x [rows, cols] (row-major, from element 0), split over rows like `split`:
    /// partials[partials.off + s·cols + j] = Σ_{r in split s} x[r·cols + j]. Writes the
    /// partials (with one split, the sums themselves). With `texture64` and cols divisible by
    /// 4, four columns per lane read through a texture mirror of x (`gemm_colsum4`): the
    /// storage form's per-lane loads made db cost up to a third of the pointwise weight
    /// gradient on lavapipe.
    #[allow(clippy::too_many_arguments)]
    pub fn colsum(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        partials: BufAt,
        x: &dyn Bind,
        rows: usize,
        cols: usize,
        split: SplitK,
    ) -> Dispatch {
        let p = Params {
            k: rows as u32,
            n: cols as u32,
            a_ms: cols as u32,
            k_chunk: split.k_chunk,
            splits: split.splits,
            c_off: partials.off as u32,
            ..Default::default()
        };
        if variant == Variant::Texture64 && cols.is_multiple_of(4) && self.mirror_limit.is_none() {
            let family = self.colsum_textured.get_or_init(|| {
                MirroredFamily::new(
                    ctx,
                    "gemm",
                    include_str!("../../../shaders/gemm.wgsl"),
                    &["a4"],
                    &["gemm_colsum4"],
                    &[("WG", WG_1D as f64)],
                )
            });
            let mut slots: [Option<&dyn Bind>; 6] = [None; 6];
            slots[0] = Some(partials.buf);
            slots[5] = Some(x);
            // dy in shared mirror 1, where the weight gradient's GEMM mirrors B, so that the
            // copy the GEMM made serves the sums too (linear_backward_weight).
            return family.dispatch_rotated(
                ctx,
                "gemm_colsum4",
                &slots,
                Some(&p),
                [groups_for(cols / 4, WG_1D), split.splits, 1],
                1,
            );
        }
        self.portable.dispatch(
            ctx,
            "gemm_colsum",
            &[Some(partials.buf), Some(x)],
            Some(&p),
            [groups_for(cols, WG_1D), split.splits, 1],
        )
    }

    /// out[j·rows + i] = a[i·cols + j]: the [rows, cols] row-major `a` transposed into `out`
    /// [cols, rows] (writes out).
    pub fn transpose(
        &self,
        ctx: &GpuContext,
        out: &dyn Bind,
        a: &dyn Bind,
        rows: usize,
        cols: usize,
    ) -> Dispatch {
        let p = Params {
            m: rows as u32,
            n: cols as u32,
            a_ms: cols as u32,
            ..Default::default()
        };
        self.portable.dispatch(
            ctx,
            "gemm_transpose",
            &[Some(out), Some(a)],
            Some(&p),
            grid_1d(groups_for(rows * cols, WG_1D)),
        )
    }

    /// Zeroes dx[img, h, w, :] wherever h or w is not a multiple of `map.stride` (the pixels a
    /// strided 1×1 convolution skips). dx: [N, H, W, C] with H, W = `map.in_h`, `map.in_w`.
    /// Writes only those pixels.
    pub fn zero_skipped(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        n: usize,
        map: &PixelMap,
        c: usize,
    ) -> Dispatch {
        let (h, w, stride) = (map.in_h, map.in_w, map.stride);
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
    pub fn forward(
        &self,
        ctx: &GpuContext,
        variant: Variant,
        c: &dyn Bind,
        a: &dyn Bind,
        b: &dyn Bind,
        d: &GemmDims,
    ) -> Dispatch {
        let spec = GemmSpec::row_major(d.m, d.n, d.k);
        let bias = None;
        self.gemm(ctx, variant, &spec, GemmBuffers { c, a, b, bias })
    }
}

/// The default variant on this adapter ([`super::variants::Variants::default_for`]).
pub fn selected_variant(ctx: &GpuContext) -> Variant {
    super::variants::Variants::default_for(ctx).0.gemm
}

#[cfg(test)]
mod mirror_tests {
    use super::*;
    use crate::gpu::shader::BufferRange;
    use crate::harness::random_vec;

    /// The weight gradient's bias sums, then the input gradient's GEMM, read dy through the
    /// mirror the weight gradient's GEMM filled as B, with no copy of their own (and copy it
    /// when recorded alone); dW, db and dx still equal the CPU's, with and without split-K.
    #[test]
    fn the_gradients_reuse_the_weight_gemms_copy_of_dy() {
        let Some(ctx) = crate::gpu::test_context() else {
            return;
        };
        let g = Gemm::new(&ctx);
        if g.supports(Variant::Texture64).is_err() {
            return;
        }
        use crate::gpu::shader::copy_plan;
        let (t, f) = (true, false);
        for rows in [96, 4096] {
            let (cin, cout) = (12, 8);
            let x = random_vec(1, rows * cin, -1.0, 1.0);
            let dy = random_vec(2, rows * cout, -1.0, 1.0);
            let w = random_vec(3, cin * cout, -1.0, 1.0);
            let (xb, dyb, wb) = (
                ctx.upload("x", &x),
                ctx.upload("dy", &dy),
                ctx.upload("w", &w),
            );
            let (dw, db, dx) = (
                ctx.zeros("dw", cin * cout),
                ctx.zeros("db", cout),
                ctx.zeros("dx", rows * cin),
            );
            let sl = g.weight_scratch_len(Variant::Texture64, rows, cin, cout);
            let scratch = ctx.zeros("scratch", sl.max(1));
            let wt = ctx.zeros("w transposed", cin * cout);
            let shape = LinearShape {
                rows,
                cin,
                cout,
                map: None,
            };
            let grads = crate::kernels::WeightGrads {
                dw: &dw,
                db: &db,
                scratch: (sl > 0).then_some(&scratch as &dyn Bind),
            };
            let mut ds =
                g.linear_backward_weight(&ctx, Variant::Texture64, grads, &xb, &dyb, &shape);
            let weight = ds.len();
            ds.extend(g.linear_backward_input(
                &ctx,
                Variant::Texture64,
                &dx,
                &dyb,
                &wb,
                Some(&wt),
                &shape,
            ));
            let refs: Vec<&Dispatch> = ds.iter().collect();
            let plan = copy_plan(&refs);
            // A mirror that views its buffer's memory (lavapipe, large buffers: gpu::alias)
            // is never copied.
            let copies = |d: &Dispatch, want: &[bool]| -> Vec<bool> {
                (want.iter().zip(&d.mirrors))
                    .map(|(&w, m)| w && !m.aliased())
                    .collect()
            };
            let last = refs[ds.len() - 1];
            // The GEMM copies x and dy; the sums and dx's GEMM (last) copy only Wᵀ.
            assert_eq!(plan[0], copies(refs[0], &[t, t]), "rows {rows}");
            assert_eq!(plan[1], [f], "rows {rows}");
            assert_eq!(
                plan[ds.len() - 1],
                copies(last, &[f, t]),
                "rows {rows}: {plan:?}"
            );
            let alone = copy_plan(&refs[1..2]);
            assert_eq!(alone, [copies(refs[1], &[t])], "alone, the sums copy dy");
            let input = copy_plan(&refs[weight..]);
            assert_eq!(input.last().unwrap(), &copies(last, &[t, t]));
            crate::kernels::run_all(&ctx, &refs).unwrap();
            let (gw, gb) = (ctx.read::<f32>(&dw).unwrap(), ctx.read::<f32>(&db).unwrap());
            let gx = ctx.read::<f32>(&dx).unwrap();
            let close = |a: f32, b: f32| (a - b).abs() < 1e-3;
            for o in 0..cout {
                let want: f32 = (0..rows).map(|r| dy[r * cout + o]).sum();
                assert!(
                    close(gb[o], want),
                    "rows {rows}: db[{o}] {} vs {want}",
                    gb[o]
                );
                for i in 0..cin {
                    let want: f32 = (0..rows).map(|r| x[r * cin + i] * dy[r * cout + o]).sum();
                    let got = gw[i * cout + o];
                    assert!(close(got, want), "rows {rows}: dw[{i},{o}] {got} vs {want}");
                }
            }
            for r in 0..rows {
                for i in 0..cin {
                    let want: f32 = (0..cout).map(|o| dy[r * cout + o] * w[i * cout + o]).sum();
                    let got = gx[r * cin + i];
                    assert!(close(got, want), "rows {rows}: dx[{r},{i}] {got} vs {want}");
                }
            }
        }
    }

    /// texture64 GEMMs of growing, shrinking and odd sizes (a last partial texel, an operand
    /// bound 256 bytes into its buffer) recorded into one submission, sharing the mirror
    /// textures: each equals subgroup64's result bit for bit (same products, same order),
    /// which only holds if each GEMM's copies landed after the previous GEMM read the mirror.
    #[test]
    fn texture64_shares_its_mirrors_across_one_submission() {
        let Some(ctx) = crate::gpu::test_context() else {
            return;
        };
        let g = Gemm::new(&ctx);
        if g.supports(Variant::Texture64).is_err() {
            // subgroup_usable says why; the parity checks skip the variant the same way.
            return;
        }
        let shapes = [(40, 36, 64), (300, 257, 190), (37, 29, 53), (5, 3, 7)];
        let mut held = Vec::new();
        for (i, &(m, n, k)) in shapes.iter().enumerate() {
            // A lives 64 floats (256 bytes) into its buffer.
            let mut a = vec![9.0f32; 64];
            a.extend(random_vec(i as u64, m * k, -1.0, 1.0));
            let b = random_vec(100 + i as u64, k * n, -1.0, 1.0);
            let (ab, bb) = (ctx.upload("a", &a), ctx.upload("b", &b));
            let outs = [ctx.zeros("c tex", m * n), ctx.zeros("c sg", m * n)];
            held.push((ab, bb, outs, (m, n, k)));
        }
        let mut dispatches = Vec::new();
        for (ab, bb, outs, (m, n, k)) in &held {
            let range = BufferRange {
                buffer: ab,
                offset: 256,
                size: (m * k * 4) as u64,
            };
            let d = GemmDims {
                m: *m,
                n: *n,
                k: *k,
            };
            for (variant, c) in [Variant::Texture64, Variant::Subgroup64].iter().zip(outs) {
                dispatches.push(g.forward(&ctx, *variant, c, &range, bb, &d));
            }
        }
        assert!(dispatches.iter().step_by(2).all(|d| d.has_mirrors()));
        assert!(dispatches[0].label.starts_with("gemm_subgroup64_texture"));
        // Interleaved in one submission: texture, storage, texture, ...
        crate::kernels::run_all(&ctx, &dispatches.iter().collect::<Vec<_>>()).unwrap();
        for (_, _, [tex, sg], shape) in &held {
            let (t, s) = (ctx.read::<f32>(tex).unwrap(), ctx.read::<f32>(sg).unwrap());
            assert!(t == s, "{shape:?}: texture64 differs from subgroup64");
            assert!(t.iter().any(|&v| v != 0.0), "{shape:?}: nothing written");
        }
    }
}
