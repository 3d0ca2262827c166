//! A step of one replica of data-parallel training: the gradient half of [`TrainStep::submit`]
//! and its update half, and between them one readback of what replicas exchange (the gradient,
//! the loss, the batch-norm state) and one write of what they agreed on. The exchange itself
//! (MPI) lives with the trainer; nothing here knows of other processes.

use super::TrainStep;
use crate::gpu::{GpuContext, GpuError};
use crate::graph::params::Region;
use crate::graph::schedule::Mode;

/// What a replica's step produced, read back in one transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// The step's mean gradient over its samples, flat over the trainable prefix (weights then
    /// biases, `layout.trainable_len` values).
    pub grads: Vec<f32>,
    /// The step's mean loss.
    pub loss: f32,
    /// The batch-norm moving statistics after the step (the `State` region).
    pub state: Vec<f32>,
}

impl TrainStep {
    /// Submits forward, loss and backward of the first `n` uploaded samples (every
    /// micro-batch, the gradient accumulated as in [`Self::submit`]), without Adam.
    pub fn submit_gradients(&self, ctx: &GpuContext, n: usize) {
        self.submit_mode(ctx, Mode::Train, n, false);
    }

    /// Submits Adam's update with the gradient in place (the step's own, or one written by
    /// [`Self::write_exchange`]).
    pub fn submit_update(&self, ctx: &GpuContext) {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("update"),
            });
        let refs: Vec<_> = self.optimizer.iter().collect();
        crate::kernels::record_all(&mut enc, &refs);
        ctx.queue.submit([enc.finish()]);
    }

    /// The gradient Adam reads: the whole batch's when the step runs as micro-batches.
    fn update_grads(&self) -> &[wgpu::Buffer; 2] {
        self.b.full.as_ref().map_or(&self.b.grads, |a| &a.grads)
    }

    /// Waits for the submitted work and reads the gradient, loss and batch-norm state back in
    /// one transfer (a staging buffer kept for the next step).
    pub fn read_exchange(&self, ctx: &GpuContext) -> Result<Exchange, GpuError> {
        let (trainable, state_len) = (
            self.layout.trainable_len,
            self.layout.regions[Region::State as usize].1,
        );
        let words = trainable + 1 + state_len;
        let bytes = (words * 4) as u64;
        let mut staging = self.exchange_staging.borrow_mut();
        let staging = staging.get_or_insert_with(|| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("exchange readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let loss = self.b.full.as_ref().map_or(&self.b.fixed.loss, |a| &a.loss);
        let grads = self.update_grads();
        ctx.run(|enc| {
            for r in [Region::Weights, Region::Biases] {
                let (start, len) = self.layout.regions[r as usize];
                if len > 0 {
                    let (at, n) = ((start * 4) as u64, (len * 4) as u64);
                    enc.copy_buffer_to_buffer(&grads[r as usize], 0, staging, at, n);
                }
            }
            enc.copy_buffer_to_buffer(loss, 0, staging, (trainable * 4) as u64, 4);
            if state_len > 0 {
                let p = &self.b.params[Region::State as usize];
                let at = ((trainable + 1) * 4) as u64;
                enc.copy_buffer_to_buffer(p, 0, staging, at, (state_len * 4) as u64);
            }
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        ctx.wait()?;
        let failed = |e: String| GpuError::Readback(e);
        rx.recv()
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(e.to_string()))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| failed(e.to_string()))?;
        let all: &[f32] = bytemuck::cast_slice(&view);
        let out = Exchange {
            grads: all[..trainable].to_vec(),
            loss: all[trainable],
            state: all[trainable + 1..].to_vec(),
        };
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Writes the gradient Adam will read (flat over the trainable prefix) and the batch-norm
    /// state (the `State` region), as the replicas agreed on them.
    pub fn write_exchange(&self, ctx: &GpuContext, grads: &[f32], state: &[f32]) {
        assert_eq!(grads.len(), self.layout.trainable_len, "gradient length");
        let s = self.layout.regions[Region::State as usize];
        assert_eq!(state.len(), s.1, "batch-norm state length");
        let dst = self.update_grads();
        for r in [Region::Weights, Region::Biases] {
            let (start, len) = self.layout.regions[r as usize];
            if len > 0 {
                let src = bytemuck::cast_slice(&grads[start..start + len]);
                ctx.queue.write_buffer(&dst[r as usize], 0, src);
            }
        }
        if s.1 > 0 {
            let p = &self.b.params[Region::State as usize];
            ctx.queue.write_buffer(p, 0, bytemuck::cast_slice(state));
        }
    }
}
