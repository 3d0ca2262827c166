//! Running a compiled step: parameters and batches in, steps and evaluations submitted,
//! loss, metrics, gradients and predictions read back (only when asked).

use super::{BatchTargets, Mode, Program, TrainStep};
use crate::gpu::{GpuContext, GpuError};
use crate::graph::Activation;
use crate::graph::params::Region;
use crate::kernels::Dispatch;
use crate::kernels::adam::Adam;
use crate::kernels::augment::Augment;
use crate::kernels::elementwise;
use crate::kernels::loss::METRICS_LEN;
use crate::kernels::rescale::{pack_u8, u8_stride};

/// A batch's pixels as the caller has them.
#[derive(Clone, Copy)]
enum Pixels<'a> {
    F32(&'a [f32]),
    /// Whole values 0–255, uploaded as bytes and widened on the GPU.
    U8(&'a [u8]),
}

impl Pixels<'_> {
    fn len(&self) -> usize {
        match self {
            Pixels::F32(x) => x.len(),
            Pixels::U8(x) => x.len(),
        }
    }
}

impl TrainStep {
    /// Writes all parameters (flat, in [`ParamLayout`] order, `layout.total_len` values).
    pub fn load_params(&self, ctx: &GpuContext, values: &[f32]) {
        assert_eq!(
            values.len(),
            self.layout.total_len,
            "parameter vector length"
        );
        for r in Region::ALL {
            let (start, len) = self.layout.regions[r as usize];
            if len > 0 {
                ctx.queue.write_buffer(
                    &self.b.params[r as usize],
                    0,
                    bytemuck::cast_slice(&values[start..start + len]),
                );
            }
        }
    }

    /// Reads all parameters back (flat, in layout order).
    pub fn read_params(&self, ctx: &GpuContext) -> Result<Vec<f32>, GpuError> {
        let mut out = vec![0.0; self.layout.total_len];
        for r in Region::ALL {
            let (start, len) = self.layout.regions[r as usize];
            if len > 0 {
                out[start..start + len].copy_from_slice(&ctx.read_range::<f32>(
                    &self.b.params[r as usize],
                    0,
                    (len * 4) as u64,
                )?);
            }
        }
        Ok(out)
    }

    /// Reads the last step's gradients back (flat, in layout order; zeros for the BN state).
    /// With micro-batches, the batch-mean gradient that Adam used.
    pub fn read_grads(&self, ctx: &GpuContext) -> Result<Vec<f32>, GpuError> {
        let grads = self.b.full.as_ref().map_or(&self.b.grads, |a| &a.grads);
        let mut out = vec![0.0; self.layout.total_len];
        for r in [Region::Weights, Region::Biases] {
            let (start, len) = self.layout.regions[r as usize];
            if len > 0 {
                out[start..start + len].copy_from_slice(&ctx.read_range::<f32>(
                    &grads[r as usize],
                    0,
                    (len * 4) as u64,
                )?);
            }
        }
        Ok(out)
    }

    /// Adam's state: (step count t, m, v), m and v flat over the trainable prefix.
    pub fn read_optimizer(&self, ctx: &GpuContext) -> Result<(u32, Vec<f32>, Vec<f32>), GpuError> {
        let state: Vec<u32> = ctx.read(&self.b.fixed.adam_state)?;
        Ok((
            state[0],
            ctx.read(&self.b.fixed.m)?,
            ctx.read(&self.b.fixed.v)?,
        ))
    }

    /// Restores Adam's state (for `--resume`): step count `t`, learning rate, m and v.
    pub fn load_optimizer(&self, ctx: &GpuContext, t: u32, lr: f32, m: &[f32], v: &[f32]) {
        assert_eq!(m.len(), self.layout.trainable_len, "Adam m length");
        assert_eq!(v.len(), self.layout.trainable_len, "Adam v length");
        let mut s = crate::kernels::adam::AdamState::new(lr);
        s.t = t;
        Adam::write_state(ctx, &self.b.fixed.adam_state, &s);
        ctx.queue
            .write_buffer(&self.b.fixed.m, 0, bytemuck::cast_slice(m));
        ctx.queue
            .write_buffer(&self.b.fixed.v, 0, bytemuck::cast_slice(v));
    }

    /// Sets Adam's learning rate for the following steps: 4 bytes written into the GPU-side
    /// state (its step count t untouched), no bind group rebuilt.
    pub fn set_lr(&self, ctx: &GpuContext, lr: f32) {
        let at = std::mem::offset_of!(crate::kernels::adam::AdamState, lr) as u64;
        ctx.queue
            .write_buffer(&self.b.fixed.adam_state, at, bytemuck::bytes_of(&lr));
    }

    /// Sets the training loss's class weights (Keras' `fit(class_weight=...)`) for the following
    /// steps: `weights` holds one per class for a softmax model, `[negative, positive]` for a
    /// sigmoid one ([`crate::kernels::loss::weights_len`]); all 1.0 is the unweighted loss (the
    /// default, bit for bit). Evaluations are never weighted. A buffer write: no bind group is
    /// rebuilt.
    pub fn set_class_weights(&self, ctx: &GpuContext, weights: &[f32]) {
        let want =
            crate::kernels::loss::weights_len(self.activation == Activation::Softmax, self.outputs);
        assert_eq!(
            weights.len(),
            want,
            "class weights: {} given, the loss takes {want}",
            weights.len()
        );
        ctx.queue.write_buffer(
            &self.b.fixed.class_weights,
            0,
            bytemuck::cast_slice(weights),
        );
    }

    /// Uploads a batch of up to `batch` samples: `x` [n, H, W, C] as the input layer takes it
    /// (or as the augmentation takes it), and its targets. Returns n.
    pub fn write_batch(&self, ctx: &GpuContext, x: &[f32], targets: BatchTargets) -> usize {
        self.upload(ctx, Pixels::F32(x), targets, self.sample_len)
    }

    /// As [`Self::write_batch`] with the pixels as bytes (`x` [n, H, W, C] u8, values 0–255),
    /// a quarter of the upload: each step widens them to f32 on the GPU first
    /// (`rescale_u8_forward`), which gives exactly the f32 batch `write_batch` would have
    /// uploaded, so training and evaluation see identical values.
    pub fn write_batch_u8(&self, ctx: &GpuContext, x: &[u8], targets: BatchTargets) -> usize {
        self.upload(ctx, Pixels::U8(x), targets, self.sample_len)
    }

    /// As [`Self::write_batch_u8`] for a batch to train on: its samples are
    /// [`Self::training_sample_len`] floats, which is larger than the input layer's when the
    /// augmentation crops (Keras' RandomCrop: the batch arrives at `--image-size` and the
    /// kernel cuts the model's size out of it).
    pub fn write_training_batch_u8(
        &self,
        ctx: &GpuContext,
        x: &[u8],
        targets: BatchTargets,
    ) -> usize {
        self.upload(ctx, Pixels::U8(x), targets, self.train_sample_len)
    }

    /// Values per sample of a training batch ([`Self::write_training_batch_u8`]).
    pub fn training_sample_len(&self) -> usize {
        self.train_sample_len
    }

    /// Values per sample the programs of `mode` read.
    pub(super) fn mode_sample_len(&self, mode: Mode) -> usize {
        match mode {
            Mode::Train => self.train_sample_len,
            Mode::Eval => self.sample_len,
        }
    }

    /// Bytes a batch of `n` samples takes to upload as f32 and as u8 pixels (targets not
    /// counted; u8 records are padded to 4 bytes, see [`pack_u8`]).
    pub fn upload_bytes(&self, n: usize) -> (u64, u64) {
        let n = n as u64;
        (
            n * self.sample_len as u64 * 4,
            n * u8_stride(self.sample_len) as u64,
        )
    }

    fn upload(
        &self,
        ctx: &GpuContext,
        x: Pixels,
        targets: BatchTargets,
        sample_len: usize,
    ) -> usize {
        let n = x.len() / sample_len;
        assert!(
            n > 0 && n <= self.batch && n * sample_len == x.len(),
            "input batch length"
        );
        self.uploaded_len.set(sample_len);
        let (input, input_u8, target_buf) = match &self.b.full {
            Some(a) => (&a.input, &a.input_u8, &a.targets),
            None => (
                &self.b.fixed.input,
                &self.b.fixed.input_u8,
                &self.b.fixed.targets,
            ),
        };
        match x {
            Pixels::F32(x) => ctx.queue.write_buffer(input, 0, bytemuck::cast_slice(x)),
            Pixels::U8(x) => ctx.queue.write_buffer(input_u8, 0, &pack_u8(x, sample_len)),
        }
        self.bytes_uploaded.set(matches!(x, Pixels::U8(_)));
        let bytes: &[u8] = match (targets, self.activation) {
            (BatchTargets::Binary(t), Activation::Sigmoid) => {
                assert_eq!(t.len(), n * self.target_per_sample, "targets length");
                bytemuck::cast_slice(t)
            }
            (BatchTargets::Classes(t), Activation::Softmax) => {
                assert_eq!(t.len(), n, "labels length");
                bytemuck::cast_slice(t)
            }
            _ => panic!("targets do not match the model's output activation"),
        };
        ctx.queue.write_buffer(target_buf, 0, bytes);
        n
    }

    /// Sets the dropout and augmentation seed of the next step (micro-batch i uses
    /// `seed + i·0x9E3779B9`).
    pub fn set_dropout_seed(&self, _ctx: &GpuContext, seed: u32) {
        self.seed.set(seed);
    }

    /// Submits one training step on the first `n` uploaded samples — forward, loss, backward,
    /// Adam — without waiting: one command encoder, or one per micro-batch when the batch is
    /// split (each with its own seeds).
    pub fn submit(&self, ctx: &GpuContext, n: usize) {
        self.submit_mode(ctx, Mode::Train, n, true);
    }

    /// Submits an evaluation of the first `n` uploaded samples: forward with the moving
    /// statistics and no dropout, loss, metrics accumulated. No update.
    pub fn submit_eval(&self, ctx: &GpuContext, n: usize) {
        self.submit_mode(ctx, Mode::Eval, n, false);
    }

    /// Writes `seed` into the program's dropout dispatches (forward and backward).
    pub(super) fn seed_dropout(&self, ctx: &GpuContext, program: &Program, seed: u32) {
        for &(d, rate, len) in &program.dropout {
            program.dispatches[d].write_params(ctx, &elementwise::Params::dropout(len, seed, rate));
        }
    }

    /// `update`: a training step ends with Adam (else [`Self::submit_update`] does it later).
    pub(super) fn submit_mode(&self, ctx: &GpuContext, mode: Mode, n: usize, update: bool) {
        self.submit_reading(ctx, mode, n, update, None)
            .expect("nothing is read back without a logits buffer");
    }

    /// Submits an evaluation of the first `n` uploaded samples as [`Self::submit_eval`] does
    /// (the metrics accumulate), and reads their logits back ([n, outputs]; a readback per
    /// micro-batch, which waits for it).
    pub fn submit_eval_logits(&self, ctx: &GpuContext, n: usize) -> Result<Vec<f32>, GpuError> {
        let mut logits = Vec::with_capacity(n * self.outputs);
        self.submit_reading(ctx, Mode::Eval, n, false, Some(&mut logits))?;
        Ok(logits)
    }

    /// [`Self::submit_mode`], reading each micro-batch's logits into `logits` when given.
    fn submit_reading(
        &self,
        ctx: &GpuContext,
        mode: Mode,
        n: usize,
        update: bool,
        mut logits: Option<&mut Vec<f32>>,
    ) -> Result<(), GpuError> {
        assert!(
            n > 0 && n <= self.batch,
            "{n} samples with a step compiled for up to {}",
            self.batch
        );
        let sample_len = self.mode_sample_len(mode);
        assert_eq!(
            self.uploaded_len.get(),
            sample_len,
            "a {mode:?} step needs a batch of {sample_len} values per sample (training batches \
             of a cropping augmentation: write_training_batch_u8)"
        );
        let count = n.div_ceil(self.micro);
        for i in 0..count {
            let size = self.micro.min(n - i * self.micro);
            let program = self.program(ctx, mode, size, n);
            let seed = self
                .seed
                .get()
                .wrapping_add((i as u32).wrapping_mul(0x9E37_79B9));
            if mode == Mode::Train {
                self.seed_dropout(ctx, &program, seed);
                if self.augment.is_some() {
                    Augment::write_seed(ctx, &self.b.fixed.aug_seed, seed);
                }
            }
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("step"),
                });
            let bytes = self.bytes_uploaded.get();
            if let Some(a) = &self.b.full {
                let at = (i * self.micro) as u64;
                let t_bytes = (self.target_per_sample * 4) as u64;
                let (src, dst, x_bytes) = if bytes {
                    let stride = u8_stride(sample_len) as u64;
                    (&a.input_u8, &self.b.fixed.input_u8, stride)
                } else {
                    let x_bytes = (sample_len * 4) as u64;
                    (&a.input, &self.b.fixed.input, x_bytes)
                };
                enc.copy_buffer_to_buffer(src, at * x_bytes, dst, 0, size as u64 * x_bytes);
                enc.copy_buffer_to_buffer(
                    &a.targets,
                    at * t_bytes,
                    &self.b.fixed.targets,
                    0,
                    size as u64 * t_bytes,
                );
            }
            let acc = if i == 0 {
                &program.acc_first
            } else {
                &program.acc_rest
            };
            let widen = bytes.then_some(&program.widen);
            let mut refs: Vec<&Dispatch> = widen
                .into_iter()
                .chain(&program.dispatches)
                .chain(acc)
                .collect();
            if mode == Mode::Train && update && i + 1 == count {
                refs.extend(&self.optimizer);
            }
            crate::kernels::record_all(&mut enc, &refs);
            ctx.queue.submit([enc.finish()]);
            if let Some(out) = logits.as_deref_mut() {
                let (t, bytes) = program.logits;
                let buf = &self.b.buffers[self.b.buffer_of[t]];
                out.extend(ctx.read_range::<f32>(buf, 0, bytes)?);
            }
        }
        Ok(())
    }

    /// Runs one training step on a full uploaded batch and waits for it (no readback).
    pub fn run(&self, ctx: &GpuContext) -> Result<(), GpuError> {
        self.checked(ctx, |s| s.submit(ctx, s.batch))
    }

    /// Runs an evaluation of `n` uploaded samples and waits for it.
    pub fn run_eval(&self, ctx: &GpuContext, n: usize) -> Result<(), GpuError> {
        self.checked(ctx, |s| s.submit_eval(ctx, n))
    }

    /// Runs `f`, waits for the GPU, and turns a validation error into an `Err`.
    pub fn checked(&self, ctx: &GpuContext, f: impl FnOnce(&Self)) -> Result<(), GpuError> {
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        f(self);
        ctx.wait()?;
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Validation(e.to_string()));
        }
        Ok(())
    }

    /// The last step's mean loss (a readback: call it when a number must reach the user).
    pub fn read_loss(&self, ctx: &GpuContext) -> Result<f32, GpuError> {
        let loss = self.b.full.as_ref().map_or(&self.b.fixed.loss, |a| &a.loss);
        Ok(ctx.read::<f32>(loss)?[0])
    }

    /// [loss_sum, correct, seen] accumulated since the last [`Self::reset_metrics`] (training
    /// and evaluation runs alike; sigmoid outputs count labels, softmax outputs samples).
    pub fn read_metrics(&self, ctx: &GpuContext) -> Result<[f32; 3], GpuError> {
        let v = ctx.read::<f32>(&self.b.fixed.metrics)?;
        Ok([v[0], v[1], v[2]])
    }

    /// Sets the accumulated metrics ([loss sum, correct, seen]): an epoch resumed in its middle
    /// continues the sums of its first steps.
    pub fn write_metrics(&self, ctx: &GpuContext, m: [f32; 3]) {
        let mut v = [0.0f32; METRICS_LEN];
        v[..3].copy_from_slice(&m);
        ctx.queue
            .write_buffer(&self.b.fixed.metrics, 0, bytemuck::cast_slice(&v));
    }

    /// Clears the accumulated metrics.
    pub fn reset_metrics(&self, ctx: &GpuContext) {
        ctx.queue.write_buffer(
            &self.b.fixed.metrics,
            0,
            bytemuck::cast_slice(&[0.0f32; METRICS_LEN]),
        );
    }

    /// The model's outputs (logits, [n, outputs]) for the images `x` ([n, H, W, C] as the
    /// input layer takes them), in evaluation mode, any n: it runs micro-batch by micro-batch
    /// and reads each one's logits back. The uploaded batch is overwritten.
    pub fn predict_logits(&self, ctx: &GpuContext, x: &[f32]) -> Result<Vec<f32>, GpuError> {
        self.predict(ctx, Pixels::F32(x))
    }

    /// As [`Self::predict_logits`] with the pixels as bytes (0–255), widened on the GPU.
    pub fn predict_logits_u8(&self, ctx: &GpuContext, x: &[u8]) -> Result<Vec<f32>, GpuError> {
        self.predict(ctx, Pixels::U8(x))
    }

    fn predict(&self, ctx: &GpuContext, x: Pixels) -> Result<Vec<f32>, GpuError> {
        assert_eq!(x.len() % self.sample_len, 0, "input length");
        let mut out = Vec::with_capacity(x.len() / self.sample_len * self.outputs);
        let per_chunk = self.micro * self.sample_len;
        for at in (0..x.len()).step_by(per_chunk) {
            let end = (at + per_chunk).min(x.len());
            let n = (end - at) / self.sample_len;
            let fixed = &self.b.fixed;
            self.uploaded_len.set(self.sample_len);
            match x {
                Pixels::F32(x) => {
                    let chunk = bytemuck::cast_slice(&x[at..end]);
                    ctx.queue.write_buffer(&fixed.input, 0, chunk)
                }
                Pixels::U8(x) => {
                    let chunk = pack_u8(&x[at..end], self.sample_len);
                    ctx.queue.write_buffer(&fixed.input_u8, 0, &chunk)
                }
            }
            // The loss needs targets; class 0 / label 0 are valid for every model.
            let zeros = vec![0u32; n * self.target_per_sample];
            ctx.queue
                .write_buffer(&fixed.targets, 0, bytemuck::cast_slice(&zeros));
            let program = self.program(ctx, Mode::Eval, n, 0);
            let widen = matches!(x, Pixels::U8(_)).then_some(&program.widen);
            let refs: Vec<&Dispatch> = widen.into_iter().chain(&program.dispatches).collect();
            crate::kernels::run_all(ctx, &refs)?;
            let (t, bytes) = program.logits;
            out.extend(ctx.read_range::<f32>(&self.b.buffers[self.b.buffer_of[t]], 0, bytes)?);
        }
        Ok(out)
    }

    /// Number of dispatches in one training step of a full batch (all micro-batches).
    pub fn dispatch_count(&self, ctx: &GpuContext) -> usize {
        let count = self.batch.div_ceil(self.micro);
        (0..count)
            .map(|i| {
                let size = self.micro.min(self.batch - i * self.micro);
                let p = self.program(ctx, Mode::Train, size, self.batch);
                p.dispatches.len() + p.acc_rest.len()
            })
            .sum::<usize>()
            + self.optimizer.len()
    }
}
