//! `max_pool2d` and `global_avg_pool2d`: forward and backward, NHWC f32 (shaders/pool.wgsl).
//!
//! Saved tensor: `max_pool2d_forward` writes, beside y, an `argmax` buffer holding for each
//! output element the **window-local** index `i·kw + j` of its window's winner (the first
//! maximum in row-major window order; padded cells never win), one byte per channel, packed 4
//! channels to a u32: [N, OH, OW, ceil(C/4)] u32 ([`max_pool2d_argmax_len`]), byte k of word g
//! = channel 4g + k, 0xFF for "no cell" and for channels past C ([`pack_argmax`] and
//! [`unpack_argmax`] convert from and to `cpu::pool`'s one-u32-per-element form). Packing cuts
//! the saved tensor and the backward's argmax loads 4×. `max_pool2d_backward` gathers: each dx
//! element sums the dy of the windows that chose it, so the pass writes every dx element
//! exactly once, with no atomics and no race.

use bytemuck::{Pod, Zeroable};

use crate::cpu;
use crate::cpu::Padding;
use crate::cpu::pool::Pool2d;
use crate::gpu::GpuContext;
use crate::gpu::mirror::MirroredFamily;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, MAX_GROUPS_PER_DIM, ShaderFamily, grid_1d, groups_for};

pub mod bench;
pub mod checks;

/// Mirrors `struct Params` in shaders/pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    pub pad_top: u32,
    pub pad_left: u32,
}

const WG: u32 = 64;
/// Rows of invocations reducing H·W in the global average pool (≤ GAP_MAX_ROWS = 32).
const GAP_ROWS: u32 = 8;
const _: () = assert!(GAP_ROWS >= 1 && GAP_ROWS <= 32);
/// Channels per global-average-pool workgroup (GAP_LANES in the shader).
const GAP_LANES: usize = 8;
/// Channels per max-pool invocation.
const CHANNELS_PER_INVOCATION: usize = 4;

/// u32 words of the packed argmax of a max pool: N·OH·OW·ceil(C/4).
pub fn max_pool2d_argmax_len(g: &Pool2d) -> usize {
    g.out_len() / g.c.max(1) * g.c.div_ceil(4)
}

/// Packs a per-element argmax ([N, OH, OW, C] u32, `cpu::pool` form) into the GPU's 4 bytes per
/// u32 ([N, OH, OW, ceil(C/4)]). Indices must be < 255 or [`cpu::pool::NO_ARGMAX`].
pub fn pack_argmax(a: &[u32], c: usize) -> Vec<u32> {
    let byte = |v: u32| {
        if v == cpu::pool::NO_ARGMAX {
            0xff
        } else {
            v.min(0xfe)
        }
    };
    a.chunks(c)
        .flat_map(|pixel| {
            pixel.chunks(4).map(|g| {
                (0..4).fold(0, |w, k| {
                    w | (byte(g.get(k).copied().unwrap_or(u32::MAX)) << (8 * k))
                })
            })
        })
        .collect()
}

/// Unpacks the GPU's packed argmax into one u32 per element ([N, OH, OW, C], `cpu::pool` form).
pub fn unpack_argmax(packed: &[u32], c: usize) -> Vec<u32> {
    let groups = c.div_ceil(4);
    packed
        .chunks(groups)
        .flat_map(|words| {
            (0..c).map(move |ch| match (words[ch / 4] >> (8 * (ch % 4))) & 0xff {
                0xff => cpu::pool::NO_ARGMAX,
                v => v,
            })
        })
        .collect()
}

impl Params {
    fn max_pool(g: &Pool2d) -> Self {
        let (oh, pad_top) = g.rows();
        let (ow, pad_left) = g.cols();
        assert!(
            g.kh > 0 && g.kw > 0 && g.sh > 0 && g.sw > 0,
            "empty window or stride"
        );
        assert!(g.kh * g.kw <= 255, "max_pool2d: a window of over 255 cells");
        let u = |v: usize| u32::try_from(v).expect("pool size exceeds u32");
        u(g.in_len().max(g.out_len()));
        Self {
            n: u(g.n),
            h: u(g.h),
            w: u(g.w),
            c: u(g.c),
            oh: u(oh),
            ow: u(ow),
            kh: u(g.kh),
            kw: u(g.kw),
            sh: u(g.sh),
            sw: u(g.sw),
            pad_top: u(pad_top),
            pad_left: u(pad_left),
        }
    }

    fn global(shape: [usize; 4]) -> Self {
        let [n, h, w, c] = shape;
        let p = Pool2d::square(n, h, w, c, 1, 1, Padding::Valid);
        Self {
            oh: 1,
            ow: 1,
            ..Self::max_pool(&p)
        }
    }
}

const SOURCE: &str = include_str!("../../../shaders/pool.wgsl");

/// The max-pool entry points, which the four-channel vector form serves.
const MAX_ENTRIES: [&str; 5] = [
    "max_pool2d_forward",
    "max_pool2d_forward_add",
    "max_pool2d_forward_inference",
    "max_pool2d_forward_add_inference",
    "max_pool2d_backward",
];

/// The arrays that the vector form reads from texture mirrors.
const MIRRORED: [&str; 2] = ["x4", "residual4v"];

/// Pipelines of shaders/pool.wgsl.
pub struct Pool {
    family: ShaderFamily,
    /// The max pool with VEC4 = 1 (C divisible by 4): a lane's 4 channels are one vec4 load
    /// and one vec4 store instead of 4 scalar ones; with `mirrors`, x and the residual are read
    /// through texture mirrors, where the vec4 is one texel fetch (lavapipe's per-lane storage
    /// loads bound these passes: 2.5–3.5× the forward, 1.4–1.8× the backward there). Compiled
    /// on first use.
    vec4: std::sync::OnceLock<MirroredFamily>,
    mirrors: bool,
    /// A read-only view's stand-in (one vec4), never bound beside `dummy_out`.
    dummy: wgpu::Buffer,
    /// Bound to the writable view (`out` or `out4`) a form never writes: a writable binding
    /// must not alias another binding of the same buffer.
    dummy_out: wgpu::Buffer,
}

impl Pool {
    /// [`Self::with_mirrors`] without mirrors: what runs on every adapter.
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_mirrors(ctx, false)
    }

    /// The pool, reading x and the residual of its four-channel form through texture mirrors
    /// when `mirrors` (where storage loads cost more than texel fetches and the copies:
    /// [`crate::kernels::variants::Variants`] decides, with the depthwise convolutions).
    pub fn with_mirrors(ctx: &GpuContext, mirrors: bool) -> Self {
        let mut entries = MAX_ENTRIES.to_vec();
        entries.extend(["global_avg_pool2d_forward", "global_avg_pool2d_backward"]);
        Self {
            family: ShaderFamily::new(
                ctx,
                "pool",
                SOURCE,
                &entries,
                &[("WG", WG as f64), ("GAP_ROWS", GAP_ROWS as f64)],
            ),
            vec4: std::sync::OnceLock::new(),
            mirrors,
            // One vec4 each: the smallest vec4 view.
            dummy: ctx.zeros("pool dummy", 4),
            dummy_out: ctx.zeros("pool dummy out", 4),
        }
    }

    /// `b` for a vector view the scalar form never reads, or a dummy where `b` is shorter
    /// than one vec4 (a vec4 view must hold one).
    fn readable_view<'a>(&'a self, b: &'a dyn Bind) -> &'a dyn Bind {
        if b.size() >= 16 { b } else { &self.dummy }
    }

    fn vec4_family(&self, ctx: &GpuContext) -> &MirroredFamily {
        self.vec4.get_or_init(|| {
            MirroredFamily::new(
                ctx,
                "pool_vec4",
                SOURCE,
                if self.mirrors { &MIRRORED } else { &[] },
                &MAX_ENTRIES,
                &[
                    ("WG", WG as f64),
                    ("GAP_ROWS", GAP_ROWS as f64),
                    ("VEC4", 1.0),
                ],
            )
        })
    }

    /// A max-pool pass: slots 0..5 as the shader's table (out, x, argmax_out, argmax, params,
    /// residual), to which this adds the vector views (6: x, 7: residual, 8: out): the vector
    /// form where C is divisible by 4, else the scalar one. The writable view the form never
    /// writes gets `dummy_out` (bound twice, a buffer would alias a writable view).
    fn max_dispatch(
        &self,
        ctx: &GpuContext,
        entry: &str,
        slots: [Option<&dyn Bind>; 6],
        c: usize,
        p: &Params,
        grid: [u32; 3],
    ) -> Dispatch {
        let stand_in: &dyn Bind = &self.dummy_out;
        let [out, x, argmax_out, argmax, _, residual] = slots;
        if c.is_multiple_of(CHANNELS_PER_INVOCATION) {
            let all = [
                Some(stand_in),
                x,
                argmax_out,
                argmax,
                None,
                residual,
                x,
                residual,
                out,
            ];
            return self
                .vec4_family(ctx)
                .dispatch(ctx, entry, &all, Some(p), grid);
        }
        let all = [
            out,
            x,
            argmax_out,
            argmax,
            None,
            residual,
            x.map(|b| self.readable_view(b)),
            residual.map(|b| self.readable_view(b)),
            Some(stand_in),
        ];
        self.family.dispatch(ctx, entry, &all, Some(p), grid)
    }

    /// Grid of the channel-lane kernels: x over channel groups of 4, z over rows (the shaders
    /// stride over rows beyond 65535), y = 1: each invocation walks every column of its rows
    /// (a workgroup per column cost lavapipe 10–25% more, spent starting workgroups).
    fn channel_grid(c: usize, rows: usize) -> [u32; 3] {
        let x = groups_for(c.div_ceil(CHANNELS_PER_INVOCATION), WG);
        let z = rows.clamp(1, MAX_GROUPS_PER_DIM as usize) as u32;
        [x, 1, z]
    }

    /// One of the four max-pool forward entry points: they share Params and grid.
    fn max_forward(
        &self,
        ctx: &GpuContext,
        entry: &str,
        slots: [Option<&dyn Bind>; 6],
        g: &Pool2d,
    ) -> Dispatch {
        let p = Params::max_pool(g);
        let grid = Self::channel_grid(g.c, g.n * p.oh as usize);
        self.max_dispatch(ctx, entry, slots, g.c, &p, grid)
    }

    /// Max pool forward (writes y and argmax). y: [N, OH, OW, C] f32; argmax: [N, OH, OW,
    /// ceil(C/4)] u32 (packed window-local index of each winner, saved for the backward pass,
    /// see the module doc); x: [N, H, W, C] f32.
    pub fn max_pool2d_forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        argmax: &dyn Bind,
        x: &dyn Bind,
        g: &Pool2d,
    ) -> Dispatch {
        self.max_forward(
            ctx,
            "max_pool2d_forward",
            [Some(y), Some(x), Some(argmax), None, None, None],
            g,
        )
    }

    /// Max pool forward with the following residual Add folded in: y = maxpool(x) + residual
    /// (writes y and argmax as [`Pool::max_pool2d_forward`]; the argmax is the pool's, so its
    /// backward is unchanged). residual: [N, OH, OW, C] f32.
    pub fn max_pool2d_forward_add(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        argmax: &dyn Bind,
        x: &dyn Bind,
        residual: &dyn Bind,
        g: &Pool2d,
    ) -> Dispatch {
        self.max_forward(
            ctx,
            "max_pool2d_forward_add",
            [Some(y), Some(x), Some(argmax), None, None, Some(residual)],
            g,
        )
    }

    /// Max pool forward for inference (writes y only: no argmax, since no backward pass
    /// follows). y: [N, OH, OW, C] f32; x: [N, H, W, C] f32.
    pub fn max_pool2d_forward_inference(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        g: &Pool2d,
    ) -> Dispatch {
        let slots = [Some(y), Some(x), None, None, None, None];
        self.max_forward(ctx, "max_pool2d_forward_inference", slots, g)
    }

    /// [`Pool::max_pool2d_forward_add`] for inference: y = maxpool(x) + residual, no argmax.
    pub fn max_pool2d_forward_add_inference(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        residual: &dyn Bind,
        g: &Pool2d,
    ) -> Dispatch {
        self.max_forward(
            ctx,
            "max_pool2d_forward_add_inference",
            [Some(y), Some(x), None, None, None, Some(residual)],
            g,
        )
    }

    /// Max pool backward (writes all of dx). dx: [N, H, W, C] f32; dy: [N, OH, OW, C] f32;
    /// argmax: [N, OH, OW, ceil(C/4)] u32 from [`Pool::max_pool2d_forward`] (same geometry).
    pub fn max_pool2d_backward(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        argmax: &dyn Bind,
        g: &Pool2d,
    ) -> Dispatch {
        let p = Params::max_pool(g);
        let grid = Self::channel_grid(g.c, g.n * g.h);
        let slots = [Some(dx), Some(dy), None, Some(argmax), None, None];
        self.max_dispatch(ctx, "max_pool2d_backward", slots, g.c, &p, grid)
    }

    /// Global average pool forward (writes y). y: [N, C]; x: [N, H, W, C]; shape = [N, H, W, C].
    pub fn global_avg_pool2d_forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        shape: [usize; 4],
    ) -> Dispatch {
        let [n, h, w, c] = shape;
        assert!(h * w > 0, "global average pool of an empty image");
        let p = Params::global(shape);
        self.family.dispatch(
            ctx,
            "global_avg_pool2d_forward",
            &[Some(y), Some(x)],
            Some(&p),
            grid_1d((n * c.div_ceil(GAP_LANES)) as u32),
        )
    }

    /// Global average pool backward: dx = dy/(H·W) broadcast (writes all of dx).
    /// dx: [N, H, W, C]; dy: [N, C]; shape = [N, H, W, C].
    pub fn global_avg_pool2d_backward(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        shape: [usize; 4],
    ) -> Dispatch {
        let [n, h, w, c] = shape;
        let p = Params::global(shape);
        let grid = Self::channel_grid(c, n * h * w);
        // load4 names the vector view (slot 6), which this pass never reads (VEC4 = 0).
        let dummy: &dyn Bind = &self.dummy;
        self.family.dispatch(
            ctx,
            "global_avg_pool2d_backward",
            &[Some(dx), Some(dy), None, None, None, None, Some(dummy)],
            Some(&p),
            grid,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector form is made at run time: it must validate and read x and the residual
    /// through their mirrors only.
    #[test]
    fn the_texture_form_validates() {
        let textured = crate::gpu::mirror::texture_form(SOURCE, &MIRRORED).unwrap();
        crate::kernels::validate_wgsl("pool texture form", &textured).unwrap();
        for name in MIRRORED {
            assert!(textured.contains(&format!(
                "var {name}_mirror: {};",
                crate::gpu::mirror::MIRROR_TYPE
            )));
            assert!(!textured.contains(&format!("var<storage, read> {name}:")));
        }
    }

    #[test]
    fn argmax_packing_round_trips() {
        // C = 5: two words per pixel, the second holding one channel and three 0xFF bytes.
        let a = vec![0, 8, 3, cpu::pool::NO_ARGMAX, 7, 1, 2, 4, 5, 6];
        let packed = pack_argmax(&a, 5);
        assert_eq!(
            packed,
            vec![0xff03_0800, 0xffff_ff07, 0x0504_0201, 0xffff_ff06]
        );
        assert_eq!(unpack_argmax(&packed, 5), a);
    }
}
