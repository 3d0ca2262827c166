//! `add` (the residual) and `dropout` (inverted, seeded): shaders/elementwise.wgsl.
//!
//! Writing vs accumulating gradients of the residual add: [`Elementwise::add_backward`] WRITES
//! da = dy and db = dy (both branches' gradient buffers start here); the executor uses
//! [`Elementwise::add_backward_accumulate`] (grad += dy) for a branch whose gradient buffer
//! already holds another consumer's contribution. (Where a branch's gradient buffer may simply
//! alias dy, no dispatch is needed at all.)
//!
//! Dropout's mask is recomputed from (seed, element index) by a u32 hash
//! ([`cpu::elementwise::pcg_hash`]), so backward needs no stored mask, only the forward's seed.

use bytemuck::{Pod, Zeroable};

use crate::gpu::GpuContext;
use crate::kernels::Bind;
use crate::kernels::{Dispatch, ShaderFamily, grid_1d, groups_for};

pub mod bench;
pub mod checks;

/// Mirrors `struct Params` in shaders/elementwise.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct Params {
    pub len: u32,
    /// Dropout seed; the trainer uses a new one every step.
    pub seed: u32,
    /// Dropout rate in [0, 1).
    pub rate: f32,
    pub _pad0: u32,
}

impl Params {
    /// Params of the add entry points.
    pub fn add(len: usize) -> Self {
        Self {
            len: len as u32,
            seed: 0,
            rate: 0.0,
            _pad0: 0,
        }
    }

    /// Params of both dropout passes. The trainer rewrites this uniform with a new seed every
    /// step (the backward pass of a step must see the same seed as its forward).
    pub fn dropout(len: usize, seed: u32, rate: f32) -> Self {
        assert!(
            (0.0..1.0).contains(&rate),
            "dropout rate must be in [0, 1), got {rate}"
        );
        Self {
            len: len as u32,
            seed,
            rate,
            _pad0: 0,
        }
    }
}

const WG: u32 = 64;
const PER_INVOCATION: u32 = 4;

/// Pipelines of shaders/elementwise.wgsl.
pub struct Elementwise {
    family: ShaderFamily,
}

impl Elementwise {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            family: ShaderFamily::new(
                ctx,
                "elementwise",
                include_str!("../../../shaders/elementwise.wgsl"),
                &[
                    "add_forward",
                    "add_backward",
                    "add_backward_accumulate",
                    "dropout_forward",
                    "dropout_backward",
                ],
                &[("WG", WG as f64)],
            ),
        }
    }

    fn dispatch(
        &self,
        ctx: &GpuContext,
        entry: &str,
        slots: &[Option<&dyn Bind>],
        params: Params,
    ) -> Dispatch {
        let grid = grid_1d(groups_for(params.len as usize, WG * PER_INVOCATION));
        self.family.dispatch(ctx, entry, slots, Some(&params), grid)
    }

    /// y = a + b (writes y). y, a, b: [len] f32, any layout.
    pub fn add_forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        a: &dyn Bind,
        b: &dyn Bind,
        len: usize,
    ) -> Dispatch {
        let slots = [Some(y), None, Some(a), Some(b)];
        self.dispatch(ctx, "add_forward", &slots, Params::add(len))
    }

    /// Gradient fan-out of y = a + b: WRITES da = dy and db = dy. da, db, dy: [len] f32.
    pub fn add_backward(
        &self,
        ctx: &GpuContext,
        da: &dyn Bind,
        db: &dyn Bind,
        dy: &dyn Bind,
        len: usize,
    ) -> Dispatch {
        let slots = [Some(da), Some(db), Some(dy)];
        self.dispatch(ctx, "add_backward", &slots, Params::add(len))
    }

    /// One branch of the fan-out, ACCUMULATING: grad += dy. grad, dy: [len] f32.
    pub fn add_backward_accumulate(
        &self,
        ctx: &GpuContext,
        grad: &dyn Bind,
        dy: &dyn Bind,
        len: usize,
    ) -> Dispatch {
        let slots = [Some(grad), None, Some(dy)];
        self.dispatch(ctx, "add_backward_accumulate", &slots, Params::add(len))
    }

    /// Inverted dropout: y = x · keep(seed, i) / (1 − rate) (writes y). y, x: [len] f32;
    /// rate in [0, 1). Keep ⇔ the hash's uniform in [0, 1) is ≥ rate.
    pub fn dropout_forward(
        &self,
        ctx: &GpuContext,
        y: &dyn Bind,
        x: &dyn Bind,
        len: usize,
        seed: u32,
        rate: f32,
    ) -> Dispatch {
        let slots = [Some(y), None, Some(x)];
        let p = Params::dropout(len, seed, rate);
        self.dispatch(ctx, "dropout_forward", &slots, p)
    }

    /// dx = dy · keep(seed, i) / (1 − rate) (writes dx), with the forward's seed and rate.
    /// dx, dy: [len] f32.
    pub fn dropout_backward(
        &self,
        ctx: &GpuContext,
        dx: &dyn Bind,
        dy: &dyn Bind,
        len: usize,
        seed: u32,
        rate: f32,
    ) -> Dispatch {
        let slots = [Some(dx), None, Some(dy)];
        let p = Params::dropout(len, seed, rate);
        self.dispatch(ctx, "dropout_backward", &slots, p)
    }
}
