//! The planner's records: tensors with sizes, ops that name the tensors they touch and build
//! their dispatches later, and what the step needs besides (scratch, saved buffers, dropout
//! seeds). Planning is shape arithmetic: nothing here touches a GPU, so a whole step can be
//! planned, and tested, without an adapter.

use std::collections::HashMap;

use super::bind::Env;
pub use super::bind::TensorId;
use super::names::Saved;
use crate::kernels::Dispatch;

/// Index of a planned op, returned by [`Planner::op`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId(pub usize);

/// Builds an op's dispatches once buffers exist.
pub(crate) type Build = Box<dyn Fn(&Env) -> Vec<Dispatch>>;

/// A transient tensor of one program (pooled by liveness).
#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub bytes: u64,
}

/// One op of a program: what it is, the tensors it reads or writes, and its builder.
pub struct PlannedOp {
    /// The layer it belongs to (None: loss, augmentation).
    pub layer: Option<usize>,
    /// Kernel family and pass, e.g. `conv2d.backward_input`.
    pub what: &'static str,
    pub uses: Vec<TensorId>,
    /// Floating-point operations of the op's multiply-adds (2 per multiply-add; 0 for the
    /// memory-bound ops, which are measured in bytes, not FLOPs).
    pub flops: u64,
    /// Bytes the op reads and writes, estimated from shapes: every pooled tensor it uses once,
    /// plus what [`Planner::more_bytes`] adds (weights, the raw input, a read-modify-write).
    /// Per-channel vectors (bias, batch-norm statistics) and the scratch partials are left out:
    /// they are smaller than one row of an activation.
    pub bytes: u64,
    pub(crate) build: Build,
}

/// A dropout op whose per-step seed is written before each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutOp {
    pub op: OpId,
    pub rate: f32,
    pub len: usize,
}

/// What a program is planned into.
#[derive(Default)]
pub struct Planner {
    pub tensors: Vec<Tensor>,
    pub ops: Vec<PlannedOp>,
    /// Floats of the one scratch buffer every op shares (the largest need).
    pub scratch_len: usize,
    /// Buffers kept from forward to backward outside the pool: (layer, what) and floats.
    pub saved: Vec<((usize, Saved), usize)>,
    /// Pooled tensors kept from forward to backward (the separable conv's depthwise output).
    kept: HashMap<(usize, Saved), TensorId>,
    pub dropout: Vec<DropoutOp>,
    /// The layer whose ops are being planned (labels the ops).
    pub(crate) layer: Option<usize>,
}

impl Planner {
    /// A new tensor of `floats` f32 (at least one).
    pub fn tensor(&mut self, name: String, floats: usize) -> TensorId {
        self.tensors.push(Tensor {
            name,
            bytes: (floats.max(1) * 4) as u64,
        });
        self.tensors.len() - 1
    }

    /// A tensor id that holds nothing (0 bytes, never used by an op): where an inference
    /// program folds away a tensor that the training program has, so that every later tensor
    /// keeps the training program's id, and with it its pooled buffer (evaluation programs
    /// run in the training program's pool).
    pub fn placeholder(&mut self, name: String) -> TensorId {
        self.tensors.push(Tensor { name, bytes: 0 });
        self.tensors.len() - 1
    }

    /// Plans an op of the current layer.
    pub(crate) fn op(
        &mut self,
        what: &'static str,
        uses: Vec<TensorId>,
        build: impl Fn(&Env) -> Vec<Dispatch> + 'static,
    ) -> OpId {
        let bytes = uses.iter().map(|&t| self.tensors[t].bytes).sum();
        self.ops.push(PlannedOp {
            layer: self.layer,
            what,
            uses,
            flops: 0,
            bytes,
            build: Box::new(build),
        });
        OpId(self.ops.len() - 1)
    }

    /// Records that op `id` does `macs` multiply-adds (2·macs FLOPs).
    pub fn macs(&mut self, id: OpId, macs: usize) {
        self.ops[id.0].flops = 2 * macs as u64;
    }

    /// FLOPs of every op planned (see [`PlannedOp::flops`]).
    pub fn flops(&self) -> u64 {
        self.ops.iter().map(|o| o.flops).sum()
    }

    /// Adds `floats` f32 that op `id` moves besides its pooled tensors: a weight read or its
    /// gradient written, the raw input buffer, a tensor read and written back.
    pub fn more_bytes(&mut self, id: OpId, floats: usize) {
        self.ops[id.0].bytes += 4 * floats as u64;
    }

    /// Bytes every op planned reads and writes (see [`PlannedOp::bytes`]).
    pub fn bytes(&self) -> u64 {
        self.ops.iter().map(|o| o.bytes).sum()
    }

    /// Marks `op` as a dropout pass whose seed changes every step.
    pub fn dropout(&mut self, op: OpId, rate: f32, len: usize) {
        self.dropout.push(DropoutOp { op, rate, len });
    }

    /// Makes the shared scratch at least `len` floats.
    pub fn need_scratch(&mut self, len: usize) {
        self.scratch_len = self.scratch_len.max(len);
    }

    /// Asks for a buffer of `len` floats that `layer`'s forward writes and its backward reads.
    pub fn save(&mut self, layer: usize, what: Saved, len: usize) {
        self.saved.push(((layer, what), len));
    }

    /// Keeps a pooled tensor of `layer`'s forward for its backward.
    pub fn keep(&mut self, layer: usize, what: Saved, t: TensorId) {
        self.kept.insert((layer, what), t);
    }

    /// A tensor kept by [`Self::keep`].
    pub fn kept(&self, layer: usize, what: Saved) -> TensorId {
        self.kept[&(layer, what)]
    }

    /// The ops in order, as (layer, what) labels.
    pub fn labels(&self) -> Vec<(Option<usize>, &'static str)> {
        self.ops.iter().map(|o| (o.layer, o.what)).collect()
    }
}
