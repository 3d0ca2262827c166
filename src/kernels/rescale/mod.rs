//! `rescale`: Keras' Rescaling layer, forward and backward (shaders/rescale.wgsl).

use bytemuck::{Pod, Zeroable};

use crate::gpu::GpuContext;
use crate::kernels::{Bind, Dispatch, ShaderFamily, grid_1d, groups_for};

pub mod bench;
pub mod checks;

/// Mirrors `struct Params` in shaders/rescale.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub len: u32,
    pub scale: f32,
    pub offset: f32,
    /// Bytes per record of `rescale_u8_forward`'s input (0 for the other entry points).
    pub sample_len: u32,
}

const WG: u32 = 64;
const PER_INVOCATION: u32 = 4;

/// Pipelines of shaders/rescale.wgsl.
pub struct Rescale {
    family: ShaderFamily,
}

impl Rescale {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            family: ShaderFamily::new(
                ctx,
                "rescale",
                include_str!("../../../shaders/rescale.wgsl"),
                &[
                    "rescale_forward",
                    "rescale_backward",
                    "rescale_accumulate",
                    "rescale_u8_forward",
                ],
                &[("WG", WG as f64)],
            ),
        }
    }

    fn grid(len: usize) -> [u32; 3] {
        grid_1d(groups_for(len, WG * PER_INVOCATION))
    }

    /// y = x·scale + offset (writes y). y, x: [len] f32.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        len: usize,
        scale: f32,
        offset: f32,
    ) -> Dispatch {
        let p = Params {
            len: len as u32,
            scale,
            offset,
            sample_len: 0,
        };
        self.family.dispatch(
            ctx,
            "rescale_forward",
            &[Some(y), Some(x)],
            Some(&p),
            Self::grid(len),
        )
    }

    /// dx = dy·scale (writes dx). dx, dy: [len] f32.
    pub fn backward(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        len: usize,
        scale: f32,
    ) -> Dispatch {
        let p = Params {
            len: len as u32,
            scale,
            offset: 0.0,
            sample_len: 0,
        };
        self.family.dispatch(
            ctx,
            "rescale_backward",
            &[Some(dx), Some(dy)],
            Some(&p),
            Self::grid(len),
        )
    }
}

impl Rescale {
    /// out += x·scale (ACCUMULATES). out, x: [len] f32.
    pub fn accumulate(
        &self,
        ctx: &GpuContext,
        out: &dyn Bind,
        x: &dyn Bind,
        len: usize,
        scale: f32,
    ) -> Dispatch {
        let p = Params {
            len: len as u32,
            scale,
            offset: 0.0,
            sample_len: 0,
        };
        self.family.dispatch(
            ctx,
            "rescale_accumulate",
            &[Some(out), Some(x)],
            Some(&p),
            Self::grid(len),
        )
    }
}

/// Bytes one record of `sample_len` u8 values takes in a packed byte batch: rounded up to 4, so
/// that every record starts on a 4-byte boundary (buffer copies and writes must be 4-aligned,
/// which lets a micro-batch's records be copied out of the whole batch's).
pub fn u8_stride(sample_len: usize) -> usize {
    sample_len.div_ceil(4) * 4
}

/// Packs `n` records of `sample_len` bytes each (`x`: [n, sample_len]) at [`u8_stride`], the
/// layout `rescale_u8_forward` reads. Borrows `x` when no padding is needed.
pub fn pack_u8(x: &[u8], sample_len: usize) -> std::borrow::Cow<'_, [u8]> {
    let stride = u8_stride(sample_len);
    if stride == sample_len {
        return x.into();
    }
    let mut out = vec![0u8; x.len() / sample_len * stride];
    for (o, r) in out.chunks_mut(stride).zip(x.chunks(sample_len)) {
        o[..sample_len].copy_from_slice(r);
    }
    out.into()
}

impl Rescale {
    /// y = f32(x)·scale + offset (writes y), with `(scale, offset)` = `affine`: the input batch
    /// widened from bytes on the GPU ((1, 0): exactly). y: [len] f32; xb: len / sample_len
    /// records of `sample_len` u8 as [`pack_u8`] lays them out (each at a multiple of 4 bytes).
    pub fn forward_u8(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        xb: &dyn Bind,
        len: usize,
        sample_len: usize,
        (scale, offset): (f32, f32),
    ) -> Dispatch {
        assert!(
            sample_len > 0 && len.is_multiple_of(sample_len),
            "whole records: {len} values of {sample_len}-byte records"
        );
        let p = Params {
            len: len as u32,
            scale,
            offset,
            sample_len: sample_len as u32,
        };
        self.family.dispatch(
            ctx,
            "rescale_u8_forward",
            &[Some(y), None, None, Some(xb)],
            Some(&p),
            Self::grid(len),
        )
    }
}
