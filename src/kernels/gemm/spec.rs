//! What one GEMM computes, independent of the variant that runs it: operand offsets and
//! strides ([`GemmSpec`]), the pixel gather of a strided 1×1 convolution ([`PixelMap`]) and
//! the split of K over workgroups ([`SplitK`]). Plain data: plans are made without a GPU.

use super::Params;

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

/// One linear layer y = x·W + b as the GEMM core runs it: `rows` rows (dense: the batch;
/// pointwise_conv2d: the output pixels, read from the input through `map` when strided),
/// W [CIN, COUT].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearShape {
    pub rows: usize,
    pub cin: usize,
    pub cout: usize,
    pub map: Option<PixelMap>,
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
    /// C = max(A·B + bias, 0): a ReLU in the epilogue (a convolution whose batch norm and
    /// ReLU are folded into it; only without split-K, as the bias).
    pub relu: bool,
    /// Under `texture64`, A through the device's shared mirror 1 and B through mirror 0 (the
    /// other way round by default): the input gradient reads as A the dy that the weight
    /// gradient recorded just before it mirrored as B, and then needs no copy of its own
    /// (gpu::shader::MirrorState).
    pub a_in_mirror_1: bool,
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
            relu: false,
            a_in_mirror_1: false,
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

    /// GATHER of gemm_subgroup.wgsl: whether A's rows or k, or C's rows, go through the pixel
    /// map (false compiles the map's arithmetic out of the pipeline).
    pub fn gathers(&self) -> bool {
        self.a_gather != Gather::None || self.c_scatter
    }

    /// C_MODE of gemm_subgroup.wgsl: 1 when every four columns a lane stores (from a multiple
    /// of 4) are one 16-byte aligned vec4 inside its row of C, in every split's partial, so
    /// that they go out as one vec4 store; else 0 (scalars).
    pub fn c_mode(&self) -> u32 {
        (self.n.is_multiple_of(4)
            && self.c_ms.is_multiple_of(4)
            && self.c_off.is_multiple_of(4)
            && (self.m * self.n).is_multiple_of(4)) as u32
    }

    /// B_MODE of gemm_subgroup.wgsl: 1 when B's rows are read as vec4s, else 0 (scalars).
    pub fn b_mode(&self) -> u32 {
        self.b_rows_vec4() as u32
    }

    pub(super) fn params(&self) -> Params {
        assert!(
            self.bias_off.is_none() || self.split.splits == 1,
            "gemm: a bias can only be added without split-K"
        );
        assert!(
            !self.relu || self.split.splits == 1,
            "gemm: a ReLU epilogue needs the whole sum: no split-K"
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
            relu: self.relu as u32,
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
