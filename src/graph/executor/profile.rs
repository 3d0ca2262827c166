//! Where a step's time goes: every planned op of one training step timed on its own, with GPU
//! timestamps around each op's compute pass where the adapter has them (lavapipe does), else
//! with the wall time of one submission per op (which adds a submission's overhead to each).

use std::time::Instant;

use super::{Mode, Program, TrainStep};
use crate::gpu::{GpuContext, GpuError};
use crate::kernels::Dispatch;

/// One op of the step and its time.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct OpTime {
    /// The layer's name ("" for the loss and Adam).
    pub layer: String,
    /// Kernel family and pass, e.g. `conv2d.backward_input`.
    pub op: &'static str,
    /// The variant the family runs ("" for families with one).
    pub variant: &'static str,
    /// Seconds per step (mean over the profiled steps).
    pub seconds: f64,
    /// FLOPs per step (0 for memory-bound ops).
    pub flops: u64,
    /// Bytes read and written per step, estimated from shapes (see
    /// [`crate::graph::planner::PlannedOp::bytes`]).
    pub bytes: u64,
}

/// The ops of one step and how they were timed.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Profile {
    /// "gpu timestamps" or "wall time per submission".
    pub timer: &'static str,
    /// Samples per profiled step (one micro-batch).
    pub batch: usize,
    /// Steps averaged.
    pub steps: usize,
    /// Every op in step order, Adam last.
    pub ops: Vec<OpTime>,
    /// Wall time of a whole step as training runs it (one submission, and the wait).
    pub step_seconds: f64,
    /// Bytes the step's ops read and write (the sum of the ops' `bytes`, Adam's included).
    pub bytes_per_step: u64,
    /// Floats a step copies into texture mirrors before the dispatches that read them, as
    /// training records it (one list: a copy an earlier dispatch made is not repeated).
    pub mirror_copied_floats: u64,
    /// Floats dispatches read through mirrors that alias their buffer's memory (lavapipe:
    /// gpu::alias), with no copy.
    pub mirror_aliased_floats: u64,
}

impl TrainStep {
    /// Profiles `steps` training steps of one micro-batch of the uploaded batch (upload one with
    /// [`Self::write_batch`] first): each op's time, and the wall time of a whole step.
    pub fn profile(&self, ctx: &GpuContext, steps: usize) -> Result<Profile, GpuError> {
        let steps = steps.max(1);
        let program = self.program(ctx, Mode::Train, self.micro, self.micro);
        let timestamps = ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY);
        let mut total = vec![0.0f64; self.groups(&program).len()];
        for s in 0..steps {
            self.seed_dropout(ctx, &program, s as u32);
            let times = if timestamps {
                self.time_with_timestamps(ctx, &program)?
            } else {
                self.time_with_submissions(ctx, &program)?
            };
            for (t, x) in total.iter_mut().zip(times) {
                *t += x;
            }
        }
        let started = Instant::now();
        for _ in 0..steps {
            self.checked(ctx, |st| st.submit(ctx, st.micro))?;
        }
        let step_seconds = started.elapsed().as_secs_f64() / steps as f64;
        // A batch uploaded as bytes is widened first: its own row, before the planned ops.
        let widened = self.bytes_uploaded.get() as usize;
        let mut ops: Vec<OpTime> = Vec::new();
        if widened == 1 {
            ops.push(OpTime {
                layer: "input".into(),
                op: "rescale.u8_forward",
                variant: "",
                seconds: total[0] / steps as f64,
                flops: 0,
                // Reads a byte and writes an f32 per input value.
                bytes: 5 * (self.micro * self.sample_len) as u64,
            });
        }
        ops.extend((program.ops.iter().zip(&total[widened..])).map(|(o, t)| {
            OpTime {
                layer: o
                    .layer
                    .map_or(String::new(), |l| self.model.layers[l].name.clone()),
                op: o.what,
                variant: self.variant_of(o.what),
                seconds: t / steps as f64,
                flops: o.flops,
                bytes: o.bytes,
            }
        }));
        ops.push(OpTime {
            layer: String::new(),
            op: "adam.update",
            variant: "",
            seconds: total[widened + program.ops.len()] / steps as f64,
            flops: 0,
            bytes: self.adam_bytes(),
        });
        let bytes_per_step = ops.iter().map(|o| o.bytes).sum();
        let (mirror_copied_floats, mirror_aliased_floats) = self.mirror_traffic(ctx);
        Ok(Profile {
            bytes_per_step,
            mirror_copied_floats,
            mirror_aliased_floats,
            timer: if timestamps {
                "gpu timestamps"
            } else {
                "wall time per submission"
            },
            batch: self.micro,
            steps,
            ops,
            step_seconds,
        })
    }

    /// Floats one training step of a micro-batch copies into texture mirrors, and floats its
    /// dispatches read through mirrors that alias their buffers instead (gpu::alias), as
    /// training records the step (one list: a copy an earlier dispatch made is not repeated).
    pub fn mirror_traffic(&self, ctx: &GpuContext) -> (u64, u64) {
        let program = self.program(ctx, Mode::Train, self.micro, self.micro);
        let all: Vec<&Dispatch> = self.groups(&program).into_iter().flatten().collect();
        let (mut copied, mut aliased) = (0, 0);
        for (d, copies) in all.iter().zip(crate::gpu::shader::copy_plan(&all)) {
            for (m, copy) in d.mirrors.iter().zip(copies) {
                if m.aliased() {
                    aliased += m.floats();
                } else if copy {
                    copied += m.floats();
                }
            }
        }
        (copied, aliased)
    }

    /// The variant name of the family an op label belongs to.
    fn variant_of(&self, what: &str) -> &'static str {
        let family = what.split('.').next().unwrap_or_default();
        match family {
            "conv2d" => self.variants.conv2d.name(),
            "pointwise_conv2d" | "dense" => self.variants.gemm.name(),
            "batch_norm" => self.variants.batch_norm.name(),
            _ => "",
        }
    }

    /// The ops' dispatches, Adam's last, as groups to time (the widening of a batch uploaded
    /// as bytes first).
    fn groups<'p>(&'p self, program: &'p Program) -> Vec<Vec<&'p Dispatch>> {
        let mut groups: Vec<Vec<&Dispatch>> = Vec::new();
        if self.bytes_uploaded.get() {
            groups.push(vec![&program.widen]);
        }
        groups.extend(
            (program.ops.iter()).map(|o| program.dispatches[o.dispatches.clone()].iter().collect()),
        );
        groups.push(self.optimizer.iter().collect());
        groups
    }

    /// Compute passes per op (one, or more where texture mirrors are copied between its
    /// dispatches), timestamps at its start and end; seconds per op.
    fn time_with_timestamps(
        &self,
        ctx: &GpuContext,
        program: &Program,
    ) -> Result<Vec<f64>, GpuError> {
        let groups = self.groups(program);
        let count = 2 * groups.len() as u32;
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile timestamps"),
            size: count as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        ctx.run(|enc| {
            // One state across the ops, as training records them in one list: an op skips the
            // mirror copies an op before it already made (gpu::shader::MirrorState).
            let mut state = crate::kernels::MirrorState::default();
            for (i, g) in groups.iter().enumerate() {
                let ts = (&set, 2 * i as u32, 2 * i as u32 + 1);
                crate::kernels::record_all_continued(enc, g, Some(ts), &mut state);
            }
            enc.resolve_query_set(&set, 0..count, &resolved, 0);
        })?;
        let ticks: Vec<u64> = ctx.read_range(&resolved, 0, count as u64 * 8)?;
        let period = ctx.queue.get_timestamp_period() as f64 * 1e-9;
        Ok(ticks
            .chunks_exact(2)
            .map(|t| t[1].saturating_sub(t[0]) as f64 * period)
            .collect())
    }

    /// One submission per op, each waited for; seconds per op.
    fn time_with_submissions(
        &self,
        ctx: &GpuContext,
        program: &Program,
    ) -> Result<Vec<f64>, GpuError> {
        let mut out = Vec::new();
        for g in self.groups(program) {
            let t = Instant::now();
            crate::kernels::run_all(ctx, &g)?;
            out.push(t.elapsed().as_secs_f64());
        }
        Ok(out)
    }
}
