//! `conv2d`: k×k convolution with stride, same/valid padding and bias, forward and both
//! backward passes as implicit GEMMs (im2col gathered on the fly, padding as the bounds check).
//!
//! Two variants, chosen once per adapter ([`crate::kernels::variants`]):
//! - **portable** (shaders/conv2d.wgsl), for real GPUs: register-blocked 16×4 per invocation,
//!   neighbouring lanes on neighbouring channels (coalesced). Compiled in two lane layouts:
//!   "wide" (32 lanes along the GEMM columns, so all lanes share the rows: one row value serves
//!   the workgroup) for passes with more than 16 columns, "narrow" (64 lanes along the rows) for
//!   few columns, e.g. the stem's backward_input with Cin = 3.
//! - **subgroup** (shaders/conv2d_subgroup.wgsl) for software adapters with a fixed subgroup
//!   size dividing 16 (lavapipe: 8): the row operand is loaded once per subgroup and shuffled,
//!   and the 16×8 accumulators are indexed by literals only. On lavapipe it runs the stem's
//!   forward ~7× and backward_weight ~10× faster than portable. Passes with ≤ 16 columns use
//!   the narrow portable layout in both variants.
//!
//! `forward_relu` is the forward with max(y, 0) in its epilogue (`Params.relu`), for a
//! convolution whose inference batch norm and ReLU are folded into it.
//!
//! backward_weight is split-K: partial sums go into a caller-provided scratch buffer
//! ([`Conv2d::backward_weight_scratch_len`]) and a second dispatch reduces them into dw and db.

use bytemuck::{Pod, Zeroable};

use crate::cpu::Padding;
use crate::cpu::conv2d::{
    Conv2dShape, conv2d_backward_input, conv2d_backward_weight, conv2d_forward,
};
use crate::gpu::GpuContext;
use crate::kernels::variants::VariantError;
use crate::kernels::{Bind, Dispatch, ShaderFamily, WeightGrads, grid_1d, groups_for};

pub mod bench;
pub mod checks;

/// Mirrors `struct Params` in shaders/conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub cin: u32,
    pub oh: u32,
    pub ow: u32,
    pub cout: u32,
    pub k: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub col_tiles: u32,
    pub row_tiles: u32,
    pub splits: u32,
    pub k_chunk: u32,
    pub groups: u32,
    /// forward: 1 writes max(y, 0) (the ReLU epilogue of a folded batch norm and ReLU).
    pub relu: u32,
    pub _pad: [u32; 3],
}

/// Passes with at most this many GEMM columns use the narrow layout.
const NARROW_MAX_COLS: usize = 16;
/// backward_weight: fewest K steps per split, and the workgroup count splitting aims for.
const MIN_K_CHUNK: usize = 256;
const TARGET_GROUPS: usize = 256;

/// Kernel variant, chosen once per adapter ([`crate::kernels::variants`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// conv2d.wgsl only: register-blocked implicit GEMM, for every adapter.
    Portable,
    /// conv2d_subgroup.wgsl (row operand loaded once per subgroup and shuffled) for passes with
    /// more than 16 GEMM columns, conv2d.wgsl's narrow layout and reduction for the rest. For
    /// software adapters, where per-lane loads are the cost; needs a fixed subgroup size that
    /// divides 16.
    Subgroup,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Portable, Variant::Subgroup];

    /// The variant string used in checks and bench ids.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Portable => "portable",
            Variant::Subgroup => "subgroup",
        }
    }

    /// The variant [`Self::name`] calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The subgroup size the subgroup variant would use on `ctx`, if it can run there.
    pub(crate) fn subgroup_size(ctx: &GpuContext) -> Option<u32> {
        Self::subgroup_usable(ctx).ok()
    }

    /// The subgroup size the subgroup variant would use on `ctx`, or why it cannot run there
    /// (naming the missing wgpu feature or the subgroup sizes it needs).
    pub(crate) fn subgroup_usable(ctx: &GpuContext) -> Result<u32, String> {
        if !ctx.has_subgroups() {
            return Err(crate::kernels::gemm::NO_SUBGROUP.into());
        }
        let (lo, hi) = (ctx.info.subgroup_min_size, ctx.info.subgroup_max_size);
        if lo == hi && (1..=16).contains(&lo) && 16 % lo == 0 {
            Ok(lo)
        } else {
            Err(format!(
                "it needs a fixed subgroup size that divides 16; this device's subgroups have \
                 {lo}..{hi} lanes"
            ))
        }
    }

    /// `Ok` when this variant can run on `ctx`; else why not.
    pub fn supported(self, ctx: &GpuContext) -> Result<(), VariantError> {
        match self {
            Variant::Portable => Ok(()),
            Variant::Subgroup => {
                Self::subgroup_usable(ctx)
                    .map(|_| ())
                    .map_err(|why| VariantError::Unsupported {
                        family: "conv2d",
                        variant: self.name(),
                        why,
                    })
            }
        }
    }

    /// Every variant that runs on `ctx` (what the checks and benches cover).
    pub fn available(ctx: &GpuContext) -> Vec<Variant> {
        (Self::ALL.into_iter())
            .filter(|v| v.supported(ctx).is_ok())
            .collect()
    }
}

/// Lane layouts of the GEMM tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// conv2d.wgsl, 32 lanes along columns, 16×4 per invocation: 16 rows × 128 columns.
    Wide,
    /// conv2d.wgsl, 64 lanes along rows, 16×4 per invocation: 1024 rows × 4 columns.
    Narrow,
    /// conv2d_subgroup.wgsl, 16 lanes along columns, 16×8 per invocation: 16 × 128.
    Subgroup,
}

impl Layout {
    /// (workgroup size, lanes along columns, rows per tile, columns per tile).
    fn dims(self) -> (u32, u32, usize, usize) {
        match self {
            Layout::Wide => (32, 32, 16, 128),
            Layout::Narrow => (64, 1, 64 * 16, 4),
            Layout::Subgroup => (16, 16, 16, 128),
        }
    }
}

/// How one GEMM pass is tiled.
struct Tiling {
    layout: Layout,
    row_tiles: usize,
    col_tiles: usize,
}

/// Tiling of a GEMM pass with `rows` × `cols` outputs; `subgroup` when the pass has a
/// subgroup kernel and the subgroup variant is in use.
fn tiling(rows: usize, cols: usize, subgroup: bool) -> Tiling {
    let layout = match (cols > NARROW_MAX_COLS, subgroup) {
        (false, _) => Layout::Narrow,
        (true, false) => Layout::Wide,
        (true, true) => Layout::Subgroup,
    };
    let (_, _, tile_rows, tile_cols) = layout.dims();
    Tiling {
        layout,
        row_tiles: rows.div_ceil(tile_rows).max(1),
        col_tiles: cols.div_ceil(tile_cols).max(1),
    }
}

fn weight_tiling(variant: Variant, s: &Conv2dShape) -> Tiling {
    tiling(s.k * s.k * s.cin, s.cout, variant == Variant::Subgroup)
}

/// Floats of scratch [`Conv2d::backward_weight`] needs under `variant`: splits × (k·k·Cin·Cout
/// + Cout). Shape arithmetic: no GPU needed.
pub fn backward_weight_scratch_len(variant: Variant, s: &Conv2dShape) -> usize {
    split_k(s, &weight_tiling(variant, s)).0 * (s.w_len() + s.cout)
}

/// Splits of backward_weight's K = N·OH·OW: enough workgroups to fill a GPU, but at least
/// MIN_K_CHUNK steps per split. Returns (splits, k_chunk).
fn split_k(s: &Conv2dShape, t: &Tiling) -> (usize, usize) {
    let kk = s.n * s.oh() * s.ow();
    let want = TARGET_GROUPS.div_ceil(t.row_tiles * t.col_tiles);
    let splits = want.min(kk.div_ceil(MIN_K_CHUNK)).max(1);
    let k_chunk = kk.div_ceil(splits).max(1);
    (kk.div_ceil(k_chunk).max(1), k_chunk)
}

fn params(s: &Conv2dShape) -> Params {
    assert!(
        s.n > 0 && s.h > 0 && s.w > 0 && s.cin > 0 && s.cout > 0 && s.k > 0 && s.stride > 0,
        "conv2d: every size must be positive: {s:?}"
    );
    assert!(
        s.padding == Padding::Same || (s.h >= s.k && s.w >= s.k),
        "conv2d: valid padding needs an input at least as large as the kernel: {s:?}"
    );
    let (oh, pad_top) = s.oh_pad();
    let (ow, pad_left) = s.ow_pad();
    Params {
        n: s.n as u32,
        h: s.h as u32,
        w: s.w as u32,
        cin: s.cin as u32,
        oh: oh as u32,
        ow: ow as u32,
        cout: s.cout as u32,
        k: s.k as u32,
        stride: s.stride as u32,
        pad_top: pad_top as u32,
        pad_left: pad_left as u32,
        col_tiles: 1,
        row_tiles: 1,
        splits: 1,
        k_chunk: 1,
        groups: 1,
        relu: 0,
        _pad: [0; 3],
    }
}

/// Pipelines of shaders/conv2d.wgsl in both lane layouts, plus conv2d_subgroup.wgsl for the
/// subgroup variant.
pub struct Conv2d {
    wide: ShaderFamily,
    narrow: ShaderFamily,
    subgroup: Option<ShaderFamily>,
    variant: Variant,
}

impl Conv2d {
    /// The variant this adapter should use ([`crate::kernels::variants`]).
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_variant(
            ctx,
            crate::kernels::variants::Variants::default_for(ctx)
                .0
                .conv2d,
        )
        .expect("the default variant runs on the device it was chosen for")
    }

    /// A given variant; an error names what the device lacks when it cannot run `variant`
    /// ([`Variant::supported`]), before any pipeline is made.
    pub fn with_variant(ctx: &GpuContext, variant: Variant) -> Result<Self, VariantError> {
        variant.supported(ctx)?;
        const ALL: &[&str] = &[
            "conv2d_forward",
            "conv2d_backward_input",
            "conv2d_backward_weight",
            "conv2d_backward_weight_reduce",
        ];
        let family = |layout: Layout, entries: &[&str]| {
            let (wg, lc, _, _) = layout.dims();
            ShaderFamily::new(
                ctx,
                "conv2d",
                include_str!("../../../shaders/conv2d.wgsl"),
                entries,
                &[("WG", wg as f64), ("LC", lc as f64)],
            )
        };
        let subgroup = (variant == Variant::Subgroup).then(|| {
            let sg = Variant::subgroup_size(ctx).expect("checked by supported()");
            ShaderFamily::new(
                ctx,
                "conv2d_subgroup",
                include_str!("../../../shaders/conv2d_subgroup.wgsl"),
                &[
                    "conv2d_forward",
                    "conv2d_backward_input",
                    "conv2d_backward_weight",
                ],
                &[("WG", Layout::Subgroup.dims().0 as f64), ("SG", sg as f64)],
            )
        });
        // With the subgroup variant the wide layout only runs the split-K reduction.
        let wide_entries = match variant {
            Variant::Portable => ALL,
            Variant::Subgroup => &["conv2d_backward_weight_reduce"],
        };
        Ok(Self {
            wide: family(Layout::Wide, wide_entries),
            narrow: family(Layout::Narrow, ALL),
            subgroup,
            variant,
        })
    }

    /// The variant in use.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    fn family(&self, layout: Layout) -> &ShaderFamily {
        match layout {
            Layout::Wide => &self.wide,
            Layout::Narrow => &self.narrow,
            Layout::Subgroup => self.subgroup.as_ref().expect("subgroup family built"),
        }
    }

    fn subgroup(&self) -> bool {
        self.variant == Variant::Subgroup
    }

    fn weight_tiling(&self, s: &Conv2dShape) -> Tiling {
        weight_tiling(self.variant, s)
    }

    /// Floats of scratch [`Conv2d::backward_weight`] needs: splits × (k·k·Cin·Cout + Cout).
    pub fn backward_weight_scratch_len(&self, s: &Conv2dShape) -> usize {
        backward_weight_scratch_len(self.variant, s)
    }

    /// y = conv(x, w) + b (writes y). y: [N, OH, OW, Cout], x: [N, H, W, Cin],
    /// w: [k, k, Cin, Cout], b: [Cout]; NHWC f32.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        w: &dyn Bind,
        b: &dyn Bind,
        s: &Conv2dShape,
    ) -> Dispatch {
        self.forward_epilogue(ctx, [y, x, w, b], s, false)
    }

    /// y = max(conv(x, w) + b, 0) (writes y): [`Self::forward`] with a ReLU epilogue, for a
    /// convolution whose batch norm and ReLU are folded into it. Shapes as [`Self::forward`].
    pub fn forward_relu(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        w: &dyn Bind,
        b: &dyn Bind,
        s: &Conv2dShape,
    ) -> Dispatch {
        self.forward_epilogue(ctx, [y, x, w, b], s, true)
    }

    fn forward_epilogue(
        &self,
        ctx: &GpuContext,
        [y, x, w, b]: [&dyn Bind; 4],
        s: &Conv2dShape,
        relu: bool,
    ) -> Dispatch {
        let t = tiling(s.n * s.oh() * s.ow(), s.cout, self.subgroup());
        let groups = t.row_tiles * t.col_tiles;
        let p = Params {
            row_tiles: t.row_tiles as u32,
            col_tiles: t.col_tiles as u32,
            groups: groups as u32,
            relu: relu as u32,
            ..params(s)
        };
        self.family(t.layout).dispatch(
            ctx,
            "conv2d_forward",
            &[Some(y), None, Some(x), Some(w), Some(b)],
            Some(&p),
            grid_1d(groups as u32),
        )
    }

    /// dx = ∂(Σ y·dy)/∂x (writes dx). dx: [N, H, W, Cin], dy: [N, OH, OW, Cout],
    /// w: [k, k, Cin, Cout]; NHWC f32.
    pub fn backward_input(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        w: &dyn Bind,
        s: &Conv2dShape,
    ) -> Dispatch {
        let t = tiling(s.n * s.h * s.w, s.cin, self.subgroup());
        let groups = t.row_tiles * t.col_tiles;
        let p = Params {
            row_tiles: t.row_tiles as u32,
            col_tiles: t.col_tiles as u32,
            groups: groups as u32,
            ..params(s)
        };
        self.family(t.layout).dispatch(
            ctx,
            "conv2d_backward_input",
            &[Some(dx), None, Some(dy), Some(w)],
            Some(&p),
            grid_1d(groups as u32),
        )
    }

    /// dw = ∂(Σ y·dy)/∂w and db = Σ_{N,OH,OW} dy (writes both): a split-K pass into
    /// `grads.scratch` (required: at least [`Conv2d::backward_weight_scratch_len`] floats) and
    /// its reduction, to be recorded in this order. dw: [k, k, Cin, Cout], db: [Cout],
    /// dy: [N, OH, OW, Cout], x: [N, H, W, Cin] saved from the forward pass; NHWC f32.
    pub fn backward_weight(
        &self,
        ctx: &GpuContext,
        grads: WeightGrads,
        dy: &dyn Bind,
        x: &dyn Bind,
        s: &Conv2dShape,
    ) -> [Dispatch; 2] {
        let WeightGrads { dw, db, scratch } = grads;
        let scratch = scratch.expect("conv2d backward_weight: needs a scratch buffer");
        let need = self.backward_weight_scratch_len(s) as u64 * 4;
        assert!(
            scratch.size() >= need,
            "conv2d backward_weight: scratch has {} bytes, needs {need}",
            scratch.size()
        );
        let t = self.weight_tiling(s);
        let (splits, k_chunk) = split_k(s, &t);
        let groups = t.row_tiles * t.col_tiles * splits;
        let p = Params {
            row_tiles: t.row_tiles as u32,
            col_tiles: t.col_tiles as u32,
            splits: splits as u32,
            k_chunk: k_chunk as u32,
            groups: groups as u32,
            ..params(s)
        };
        let partial = self.family(t.layout).dispatch(
            ctx,
            "conv2d_backward_weight",
            &[Some(scratch), None, Some(x), Some(dy)],
            Some(&p),
            grid_1d(groups as u32),
        );
        // The reduction is the same for every layout; the wide family's runs it.
        let reduce_groups = groups_for(s.w_len() + s.cout, Layout::Wide.dims().0);
        let reduce = self.wide.dispatch(
            ctx,
            "conv2d_backward_weight_reduce",
            &[Some(dw), Some(db), Some(scratch)],
            Some(&Params {
                groups: reduce_groups,
                ..p
            }),
            grid_1d(reduce_groups),
        );
        [partial, reduce]
    }
}
