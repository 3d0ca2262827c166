//! The geometry of every op, in one place: TensorFlow's padding arithmetic and the shape of

//! each convolution, pooling and batch norm. The CPU reference, the kernels and the layers all
//! describe an op with these (re-exported where each family lives).
/// TensorFlow's "same"/"valid" padding arithmetic for one spatial dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Same,
    Valid,
}

/// Output size and padding before for input `n`, kernel `k`, stride `s`:
/// same: out = ceil(n/s), pad_total = max((out−1)·s + k − n, 0), pad_before = pad_total/2;
/// valid: out = ceil((n − k + 1)/s), no padding.
///
/// ```
/// use gpucnn::cpu::{Padding, out_size};
/// assert_eq!(out_size(180, 3, 2, Padding::Same), (90, 0)); // pads 0 before, 1 after
/// assert_eq!(out_size(45, 3, 2, Padding::Same), (23, 1));
/// ```
pub fn out_size(n: usize, k: usize, s: usize, padding: Padding) -> (usize, usize) {
    match padding {
        Padding::Same => {
            let out = n.div_ceil(s);
            let total = ((out - 1) * s + k).saturating_sub(n);
            (out, total / 2)
        }
        Padding::Valid => ((n + 1).saturating_sub(k).div_ceil(s), 0),
    }
}

/// The sizes of one conv2d (square kernel, same stride in both dimensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: Padding,
}

impl Conv2dShape {
    /// Output height and the padding above the first row (TensorFlow's rule).
    pub fn oh_pad(&self) -> (usize, usize) {
        out_size(self.h, self.k, self.stride, self.padding)
    }
    /// Output width and the padding left of the first column (TensorFlow's rule).
    pub fn ow_pad(&self) -> (usize, usize) {
        out_size(self.w, self.k, self.stride, self.padding)
    }
    /// Output height.
    pub fn oh(&self) -> usize {
        self.oh_pad().0
    }
    /// Output width.
    pub fn ow(&self) -> usize {
        self.ow_pad().0
    }
    /// Elements of x: N·H·W·Cin.
    pub fn x_len(&self) -> usize {
        self.n * self.h * self.w * self.cin
    }
    /// Elements of y: N·OH·OW·Cout.
    pub fn y_len(&self) -> usize {
        self.n * self.oh() * self.ow() * self.cout
    }
    /// Elements of the weights: k·k·Cin·Cout.
    pub fn w_len(&self) -> usize {
        self.k * self.k * self.cin * self.cout
    }
    /// Multiply-adds of one pass (the same count for forward and both backward passes).
    pub fn macs(&self) -> usize {
        self.n * self.oh() * self.ow() * self.cout * self.k * self.k * self.cin
    }
}

/// The sizes of one depthwise conv2d (square kernel, stride 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub k: usize,
    pub padding: Padding,
}

impl DepthwiseShape {
    /// Output height and the padding above the first row.
    pub fn oh_pad(&self) -> (usize, usize) {
        out_size(self.h, self.k, 1, self.padding)
    }
    /// Output width and the padding left of the first column.
    pub fn ow_pad(&self) -> (usize, usize) {
        out_size(self.w, self.k, 1, self.padding)
    }
    /// Output height.
    pub fn oh(&self) -> usize {
        self.oh_pad().0
    }
    /// Output width.
    pub fn ow(&self) -> usize {
        self.ow_pad().0
    }
    /// Elements of x: N·H·W·C.
    pub fn x_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }
    /// Elements of y: N·OH·OW·C.
    pub fn y_len(&self) -> usize {
        self.n * self.oh() * self.ow() * self.c
    }
    /// Elements of the weights: k·k·C.
    pub fn w_len(&self) -> usize {
        self.k * self.k * self.c
    }
    /// Multiply-adds of one pass.
    pub fn macs(&self) -> usize {
        self.y_len() * self.k * self.k
    }
}

/// Geometry of a 2-D pooling: input [n, h, w, c] NHWC, window kh×kw, stride sh×sw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2d {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub padding: Padding,
}

impl Pool2d {
    /// A square k×k window with stride s in both dimensions.
    pub fn square(
        n: usize,
        h: usize,
        w: usize,
        c: usize,
        k: usize,
        s: usize,
        padding: Padding,
    ) -> Self {
        Self {
            n,
            h,
            w,
            c,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            padding,
        }
    }

    /// (out_h, pad_top) by TensorFlow's rule.
    pub fn rows(&self) -> (usize, usize) {
        out_size(self.h, self.kh, self.sh, self.padding)
    }

    /// (out_w, pad_left) by TensorFlow's rule.
    pub fn cols(&self) -> (usize, usize) {
        out_size(self.w, self.kw, self.sw, self.padding)
    }

    /// Elements of the input x: n·h·w·c.
    pub fn in_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// Elements of the output y (and of the saved argmax): n·oh·ow·c.
    pub fn out_len(&self) -> usize {
        self.n * self.rows().0 * self.cols().0 * self.c
    }
}

/// Shape of one 1×1 convolution: input [N, H, W, CIN], output [N, OH, OW, COUT].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointwiseShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub stride: usize,
}

impl PointwiseShape {
    /// (OH, OW) = (ceil(H/s), ceil(W/s)).
    pub fn out_hw(&self) -> (usize, usize) {
        (self.h.div_ceil(self.stride), self.w.div_ceil(self.stride))
    }

    /// Output pixels N·OH·OW: the GEMM's M (forward) or K (weight gradient).
    pub fn pixels(&self) -> usize {
        let (oh, ow) = self.out_hw();
        self.n * oh * ow
    }
}

/// Keras' default momentum of batch norm's moving statistics.
pub const MOMENTUM: f32 = 0.99;
/// Keras' default epsilon added to batch norm's variance.
pub const EPSILON: f32 = 1e-3;

/// The size of one batch-norm layer and its hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BnShape {
    /// M = N·H·W.
    pub rows: usize,
    /// C.
    pub channels: usize,
    pub momentum: f32,
    pub epsilon: f32,
    /// The GPU kernels only: a ReLU that follows is fused in (forward writes max(y, 0),
    /// backward takes the ReLU's output gradient). The CPU reference is the unfused spec and
    /// refuses it: compose `cpu::relu` with it instead.
    pub relu: bool,
}

impl BnShape {
    /// A layer with Keras' default momentum and epsilon, no ReLU fused.
    pub fn keras(rows: usize, channels: usize) -> Self {
        Self {
            rows,
            channels,
            momentum: MOMENTUM,
            epsilon: EPSILON,
            relu: false,
        }
    }
}

/// The sizes of one dense layer: x [N, IN] · W [IN, OUT] + b [OUT].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseShape {
    /// N: the batch.
    pub n: usize,
    /// IN: input features.
    pub inp: usize,
    /// OUT: units.
    pub out: usize,
}

/// The sizes of one matrix product C[M, N] = A[M, K]·B[K, N].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmDims {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// The sizes of an NHWC batch of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NhwcShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}
