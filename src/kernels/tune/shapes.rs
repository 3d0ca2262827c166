//! The representative shapes of a model's hot kernels that the tuner times.

use super::*;

/// A few representative shapes of a model's hot kernels, each at as many of a batch's images
/// as keep its work near [`MACS_PER_CASE`] (or [`BN_ELEMENTS`]).
#[derive(Debug, Default, PartialEq)]
pub struct ModelShapes {
    /// The GEMMs of the 1×1 convolutions with the most and the fewest rows.
    pub gemm: Vec<GemmDims>,
    /// The k×k convolution (k > 1) with the most multiply-adds.
    pub conv: Vec<Conv2dShape>,
    /// The largest batch norm.
    pub bn: Vec<BnShape>,
}

impl ModelShapes {
    /// Multiply-adds of the GEMM and convolution shapes (one forward pass of each).
    pub fn work(&self) -> u64 {
        let g = self.gemm.iter().map(|d| (d.m * d.n * d.k) as u64);
        let c = self.conv.iter().map(|s| s.macs() as u64);
        g.chain(c).sum()
    }

    /// The representative shapes among a model's `layers` (one image each) for batches of up
    /// to `batch` images: the 1×1 GEMMs with the most and the fewest pixels, the costliest k×k
    /// convolution and the largest batch norm.
    pub fn pick(layers: &[HotLayer], batch: usize) -> Self {
        // Never more images than a batch holds: a layer with few channels at thousands of
        // images is no shape training runs (and can take seconds on a CPU adapter).
        let images = |per_image: usize, cap: usize| (cap / per_image.max(1)).clamp(1, batch.max(1));
        let gemms: Vec<(usize, usize, usize)> = (layers.iter())
            .filter_map(|l| match *l {
                HotLayer::Gemm { pixels, k, n } => Some((pixels, k, n)),
                _ => None,
            })
            .collect();
        let gemm_dims = |&(px, k, n): &(usize, usize, usize)| GemmDims {
            m: px * images(px * k * n, MACS_PER_CASE),
            n,
            k,
        };
        let mut gemm = Vec::new();
        let most = gemms.iter().max_by_key(|g| g.0);
        if let Some(most) = most {
            gemm.push(gemm_dims(most));
        }
        if let Some(fewest) = gemms.iter().min_by_key(|g| g.0)
            && most != Some(fewest)
        {
            gemm.push(gemm_dims(fewest));
        }
        let conv = (layers.iter())
            .filter_map(|l| match l {
                HotLayer::Conv(s) => Some(*s),
                _ => None,
            })
            .max_by_key(|s| s.macs())
            .map(|s| Conv2dShape {
                n: images(s.macs(), MACS_PER_CASE),
                ..s
            })
            .into_iter()
            .collect();
        let bn = (layers.iter())
            .filter_map(|l| match *l {
                HotLayer::Bn { pixels, channels } => Some((pixels, channels)),
                _ => None,
            })
            .max_by_key(|&(px, c)| px * c)
            .map(|(px, c)| BnShape::keras(px * images(px * c, BN_ELEMENTS), c))
            .into_iter()
            .collect();
        Self { gemm, conv, bn }
    }
}

/// One layer's hot kernel, for one image, as [`ModelShapes::pick`] takes them (the graph
/// lists a model's: `graph::executor` calls [`prepare`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HotLayer {
    /// A 1×1 convolution's GEMM: output pixels, K = input channels, N = output channels.
    Gemm { pixels: usize, k: usize, n: usize },
    /// A k×k convolution (k > 1) of one image.
    Conv(Conv2dShape),
    /// A batch norm over `pixels` × `channels`.
    Bn { pixels: usize, channels: usize },
}
