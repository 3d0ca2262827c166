//! Data-parallel training over several processes (`mpirun -np N gpucnn train ...`).
//!
//! Each process (rank) holds a whole replica of the model on its own adapter and trains on its
//! shard of every global batch ([`shard`]). After each backward the replicas sum their
//! gradients, weighted by their share of the batch, and compose their batch-norm updates
//! ([`DataParallel::step`]); then every replica runs the same Adam update on the same numbers,
//! so the parameters stay identical without a broadcast ([`same_everywhere`] checks it at
//! every epoch end).
//!
//! The processes talk through [`Collective`]: [`Solo`] is one process (every call is free and
//! local), and with the `mpi` feature `mpi::Mpi` is an MPI world (Open MPI through the `mpi`
//! crate). The trainer runs the same code on both.
//!
//! Failures: a decision every rank must share (bad flags, bad data, a run folder that cannot
//! be used) goes through [`agree`], so that every rank stops together with one message and
//! the same exit status; a failure inside a step on one rank aborts the whole job
//! ([`Collective::abort`]), since the others wait for it in the next exchange.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;

use crate::gpu::GpuContext;
use crate::graph::Model;
use crate::graph::executor::TrainStep;
use crate::graph::params::{ParamLayout, Region};

#[cfg(feature = "mpi")]
pub mod mpi;

/// The processes of one training job and the few collectives the trainer needs. Every call
/// must be made by every rank, in the same order (MPI's rule).
pub trait Collective {
    /// This process's index, 0 ..= size − 1; rank 0 writes the run folder and prints.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// This process's index among the processes of its machine (for the adapter choice).
    fn local_rank(&self) -> usize;
    /// Number of processes on this machine.
    fn local_size(&self) -> usize;
    /// Element-wise sum over the ranks, in place; every rank ends with the same values.
    fn sum_f32(&self, x: &mut [f32]);
    /// As [`Self::sum_f32`] in f64.
    fn sum_f64(&self, x: &mut [f64]);
    /// Every rank's `x`, in rank order.
    fn gather_u64(&self, x: u64) -> Vec<u64>;
    /// Rank `root`'s bytes, on every rank (`bytes` is replaced on the others).
    fn broadcast(&self, root: usize, bytes: &mut Vec<u8>);
    /// Ends every process of the job now with `code` (a rank failed where the others cannot
    /// learn of it otherwise).
    fn abort(&self, code: i32) -> !;
}

/// One process alone: the collectives of a world of one.
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn local_size(&self) -> usize {
        1
    }
    fn sum_f32(&self, _: &mut [f32]) {}
    fn sum_f64(&self, _: &mut [f64]) {}
    fn gather_u64(&self, x: u64) -> Vec<u64> {
        vec![x]
    }
    fn broadcast(&self, _: usize, _: &mut Vec<u8>) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The samples of a batch of `len` that rank `rank` takes when each takes up to `per_rank`
/// ([`local_batch`]): consecutive shards in rank order, so an N-rank step is exactly one
/// process's step run as micro-batches of `per_rank` (a last partial batch leaves the last
/// ranks less, or nothing).
pub fn shard(len: usize, per_rank: usize, rank: usize) -> Range<usize> {
    (rank * per_rank).min(len)..((rank + 1) * per_rank).min(len)
}

/// An epoch's visiting order cut into this rank's shards of each global batch of
/// `batch_size`: the indices this rank visits, in order, and how many of them each step takes
/// (zero when a last partial batch has fewer samples than there are ranks).
pub fn shard_order(
    order: &[usize],
    batch_size: usize,
    size: usize,
    rank: usize,
) -> (Vec<usize>, Vec<usize>) {
    let per_rank = local_batch(batch_size, size);
    let mut mine = Vec::with_capacity(order.len() / size + batch_size);
    let mut sizes = Vec::with_capacity(order.len().div_ceil(batch_size));
    for batch in order.chunks(batch_size) {
        let r = shard(batch.len(), per_rank, rank);
        sizes.push(r.len());
        mine.extend_from_slice(&batch[r]);
    }
    (mine, sizes)
}

/// The largest shard any rank takes of a batch of `batch_size`: the batch a replica's step is
/// compiled for.
pub fn local_batch(batch_size: usize, size: usize) -> usize {
    batch_size.div_ceil(size)
}

/// A failure another rank reported (and printed): this rank exits with the same status and
/// prints nothing, so that a job prints one message.
#[derive(Debug)]
pub struct ReportedElsewhere {
    pub rank: usize,
    pub code: u8,
}

impl std::fmt::Display for ReportedElsewhere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rank {} failed (its message says why)", self.rank)
    }
}

impl std::error::Error for ReportedElsewhere {}

/// Makes a result every rank's: when any rank failed, every rank returns an error: the lowest
/// failing rank its own (printed), the others [`ReportedElsewhere`] with its exit status
/// (`exit_code` maps an error to one: 1 failure, 2 bad input).
pub fn agree<T>(
    comm: &dyn Collective,
    r: anyhow::Result<T>,
    exit_code: fn(&anyhow::Error) -> u8,
) -> anyhow::Result<T> {
    if comm.size() == 1 {
        return r;
    }
    let mine = r.as_ref().err().map_or(0, |e| u64::from(exit_code(e)));
    let all = comm.gather_u64(mine);
    match all.iter().position(|&c| c != 0) {
        None => r,
        Some(first) if first == comm.rank() => r,
        Some(first) => Err(ReportedElsewhere {
            rank: first,
            code: all[first] as u8,
        }
        .into()),
    }
}

/// A training job's processes, with how its errors map to exit statuses (the CLI's rule: 1
/// failure, 2 bad input), for [`agree`].
#[derive(Clone, Copy)]
pub struct Job<'a> {
    pub comm: &'a dyn Collective,
    pub exit_code: fn(&anyhow::Error) -> u8,
}

impl Job<'static> {
    /// One process: every rule below is a no-op.
    pub fn solo() -> Self {
        static SOLO: Solo = Solo;
        Job {
            comm: &SOLO,
            exit_code: |_| 1,
        }
    }
}

impl Job<'_> {
    /// Rank 0: the one that prints, writes the run folder and decides where the run starts.
    pub fn lead(&self) -> bool {
        self.comm.rank() == 0
    }

    /// More than one process.
    pub fn parallel(&self) -> bool {
        self.comm.size() > 1
    }

    /// [`agree`]: a result every rank shares.
    pub fn agree<T>(&self, r: anyhow::Result<T>) -> anyhow::Result<T> {
        agree(self.comm, r, self.exit_code)
    }

    /// A result of this rank alone, in the middle of work the ranks do in step: on failure,
    /// prints it (naming the rank) and aborts the whole job with its exit status, since the
    /// other ranks are, or soon will be, waiting for this one in a collective.
    pub fn local<T>(&self, r: anyhow::Result<T>) -> anyhow::Result<T> {
        match r {
            Err(e) if self.parallel() && !e.is::<ReportedElsewhere>() => {
                crate::msgln!("error: rank {}: {e:#}", self.comm.rank());
                crate::msgln!("error: stopping every rank of the job");
                self.comm.abort(i32::from((self.exit_code)(&e)))
            }
            r => r,
        }
    }

    /// Fails on every rank when the replicas' parameters (`digest` of this rank's) differ:
    /// data parallelism keeps them identical, so a difference is a bug or a faulty device,
    /// and nothing of `epoch` is saved.
    pub fn check_replicas(&self, digest: u64, epoch: usize) -> anyhow::Result<()> {
        let differ = differing_ranks(self.comm, digest);
        if differ.is_empty() {
            return Ok(());
        }
        if !self.lead() {
            return Err(ReportedElsewhere { rank: 0, code: 1 }.into());
        }
        let ranks: Vec<String> = differ.iter().map(|r| r.to_string()).collect();
        anyhow::bail!(
            "the replicas' parameters differ at the end of epoch {epoch}: rank(s) {} hold other              values than rank 0 (a bug, or a faulty GPU: run `gpucnn selftest` on each machine).              Nothing of epoch {epoch} was saved",
            ranks.join(", ")
        )
    }
}

/// Every rank's `s`, in rank order, on every rank.
pub fn gather_strings(comm: &dyn Collective, s: &str) -> Vec<String> {
    (0..comm.size())
        .map(|root| {
            let mut bytes = if root == comm.rank() {
                s.as_bytes().to_vec()
            } else {
                Vec::new()
            };
            comm.broadcast(root, &mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect()
}

/// A stable digest of anything hashable (the same on every rank of one build).
pub fn digest(x: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    x.hash(&mut h);
    h.finish()
}

/// The ranks whose `value` differs from rank 0's (empty: all agree). Every rank gets the same
/// answer.
pub fn differing_ranks(comm: &dyn Collective, value: u64) -> Vec<usize> {
    let all = comm.gather_u64(value);
    (0..all.len()).filter(|&r| all[r] != all[0]).collect()
}

/// Fails on every rank, with one message from rank 0, when the ranks do not share `what`
/// (`value` is its digest): a launch whose ranks were given different flags or data.
pub fn same_everywhere(comm: &dyn Collective, what: &str, value: u64) -> anyhow::Result<()> {
    let differ = differing_ranks(comm, value);
    if differ.is_empty() {
        return Ok(());
    }
    if comm.rank() != 0 {
        return Err(ReportedElsewhere { rank: 0, code: 2 }.into());
    }
    let ranks: Vec<String> = differ.iter().map(|r| r.to_string()).collect();
    crate::bail_input!(
        "the ranks of this MPI job do not share {what}: rank(s) {} differ from rank 0. Start \
         every rank with the same flags and the same data (the same files at the same path on \
         every machine)",
        ranks.join(", ")
    )
}

/// The exchange of a data-parallel step (see the module doc), with what it keeps between
/// steps: the batch-norm state every replica shares and each of its elements' momentum.
pub struct DataParallel<'a> {
    comm: &'a dyn Collective,
    /// The `State` region as every replica holds it between steps.
    state: Vec<f32>,
    /// The momentum of each `State` element (1 for alignment padding).
    momentum: Vec<f64>,
    /// Seconds spent waiting for this rank's own backward to finish, in the collectives (which
    /// includes waiting for the slowest rank), and in the readback and write around them; for
    /// the bench.
    pub wait_secs: f64,
    pub comm_secs: f64,
    pub copy_secs: f64,
}

/// What one exchange gave: the batch's samples over all ranks and its mean loss.
#[derive(Debug, Clone, Copy)]
pub struct Exchanged {
    pub samples: usize,
    pub loss: f32,
}

impl<'a> DataParallel<'a> {
    /// The exchange for `model` laid out as `layout`, with the batch-norm state the replicas
    /// start from (`state`: the `State` region of the parameters every rank loaded).
    pub fn new(
        comm: &'a dyn Collective,
        model: &Model,
        layout: &ParamLayout,
        state: &[f32],
    ) -> Self {
        let (start, len) = layout.regions[Region::State as usize];
        assert_eq!(state.len(), len, "batch-norm state length");
        let mut momentum = vec![1.0; len];
        for s in layout.slots.iter().filter(|s| s.region == Region::State) {
            let m = match &model.layers[s.layer].kind {
                crate::graph::LayerKind::BatchNormalization(bn) => bn.momentum as f64,
                other => panic!(
                    "non-trainable parameter {} of a {} layer: only batch norm has state",
                    s.name,
                    other.type_name()
                ),
            };
            momentum[s.offset - start..s.offset - start + s.len].fill(m);
        }
        Self {
            comm,
            state: state.to_vec(),
            momentum,
            wait_secs: 0.0,
            comm_secs: 0.0,
            copy_secs: 0.0,
        }
    }

    /// After this rank submitted the gradient half of its step on `n` samples
    /// ([`TrainStep::submit_gradients`]; nothing when `n` is 0): sums the replicas' gradients
    /// and losses weighted by n_r / N, composes their batch-norm updates, writes both into
    /// `step` and submits Adam. Every rank must call it for every step.
    ///
    /// Batch norm: rank r's step moved each moving statistic m from the shared m₀ by k_r
    /// micro-batch updates m ← μ·m + (1 − μ)·s, an affine map m ↦ a_r·m + b_r with
    /// a_r = μ^k_r. Applying the ranks' maps one after another in rank order gives exactly what
    /// one process running the ranks' shards as its micro-batches computes:
    /// m = (Π a_r)·m₀ + Σ_r b_r·Π_{q>r} a_q.
    pub fn step(
        &mut self,
        ctx: &GpuContext,
        step: &TrainStep,
        n: usize,
    ) -> Result<Exchanged, crate::gpu::GpuError> {
        let start = std::time::Instant::now();
        ctx.wait()?;
        let t0 = std::time::Instant::now();
        self.wait_secs += (t0 - start).as_secs_f64();
        let k = n.div_ceil(step.micro);
        let counts = self.comm.gather_u64(((n as u64) << 32) | k as u64);
        let (ns, ks): (Vec<usize>, Vec<usize>) = counts
            .iter()
            .map(|&c| ((c >> 32) as usize, (c & 0xFFFF_FFFF) as usize))
            .unzip();
        let total: usize = ns.iter().sum();
        let t1 = std::time::Instant::now();
        if total == 0 {
            // Every file of this batch was unreadable: no step anywhere.
            self.comm_secs += (t1 - t0).as_secs_f64();
            return Ok(Exchanged {
                samples: 0,
                loss: 0.0,
            });
        }
        let trainable = step.layout.trainable_len;
        let (mut flat, mine) = if n > 0 {
            let ex = step.read_exchange(ctx)?;
            let w = n as f32;
            let mut flat: Vec<f32> = ex.grads.iter().map(|g| g * w).collect();
            flat.push(ex.loss * w);
            (flat, Some(ex.state))
        } else {
            (vec![0.0; trainable + 1], None)
        };
        let t2 = std::time::Instant::now();
        // Batch norm: this rank's b_r·Π_{q>r} a_q, in f64.
        let rank = self.comm.rank();
        let later: usize = ks[rank + 1..].iter().sum();
        let mut bn: Vec<f64> = match &mine {
            Some(m) => (m.iter().zip(&self.state).zip(&self.momentum))
                .map(|((&m, &m0), &mu)| {
                    let b = m as f64 - mu.powi(k as i32) * m0 as f64;
                    b * mu.powi(later as i32)
                })
                .collect(),
            None => vec![0.0; self.state.len()],
        };
        self.comm.sum_f32(&mut flat);
        self.comm.sum_f64(&mut bn);
        let t3 = std::time::Instant::now();
        let all_k: usize = ks.iter().sum();
        for ((s, b), &mu) in self.state.iter_mut().zip(&bn).zip(&self.momentum) {
            *s = (mu.powi(all_k as i32) * *s as f64 + b) as f32;
        }
        let inv = 1.0 / total as f32;
        for g in &mut flat {
            *g *= inv;
        }
        let loss = flat[trainable];
        step.write_exchange(ctx, &flat[..trainable], &self.state);
        step.submit_update(ctx);
        let t4 = std::time::Instant::now();
        self.comm_secs += (t1 - t0 + (t3 - t2)).as_secs_f64();
        self.copy_secs += (t2 - t1 + (t4 - t3)).as_secs_f64();
        Ok(Exchanged {
            samples: total,
            loss,
        })
    }

    /// The batch-norm state the replicas share now.
    pub fn state(&self) -> &[f32] {
        &self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_a_batch_in_rank_order_as_micro_batches() {
        for batch in 1..20 {
            for size in 1..6 {
                let per = local_batch(batch, size);
                for len in 0..=batch {
                    let parts: Vec<Range<usize>> = (0..size).map(|r| shard(len, per, r)).collect();
                    assert_eq!(parts[0].start, 0);
                    assert_eq!(parts[size - 1].end, len, "{len} of {batch} over {size}");
                    for w in parts.windows(2) {
                        assert_eq!(w[0].end, w[1].start);
                    }
                    // As micro-batches of `per`: all full but the last non-empty one.
                    let micro: Vec<usize> =
                        (0..len).step_by(per).map(|s| per.min(len - s)).collect();
                    let lens: Vec<usize> =
                        parts.iter().map(|p| p.len()).filter(|&n| n > 0).collect();
                    assert_eq!(lens, micro);
                }
            }
        }
        assert_eq!(shard(8, 4, 0), 0..4);
        assert_eq!(shard(8, 4, 1), 4..8);
        assert_eq!(shard(3, 4, 1), 3..3);
    }

    #[test]
    fn shard_orders_of_all_ranks_partition_the_epoch_batch_by_batch() {
        let order: Vec<usize> = (0..23).rev().collect();
        let (size, batch) = (3, 5);
        let parts: Vec<_> = (0..size)
            .map(|r| shard_order(&order, batch, size, r))
            .collect();
        for (i, global) in order.chunks(batch).enumerate() {
            let mut joined = Vec::new();
            for (mine, sizes) in &parts {
                let at: usize = sizes[..i].iter().sum();
                joined.extend_from_slice(&mine[at..at + sizes[i]]);
            }
            assert_eq!(joined, global);
        }
        // A last batch of 1 over 2 ranks: rank 0 takes it, rank 1 none.
        assert_eq!(shard_order(&[7], 4, 2, 1), (vec![], vec![0]));
        assert_eq!(shard_order(&[7], 4, 2, 0), (vec![7], vec![1]));
    }

    #[test]
    fn solo_agrees_with_itself() {
        let ok: anyhow::Result<u8> = Ok(3);
        assert_eq!(agree(&Solo, ok, |_| 1).unwrap(), 3);
        assert!(same_everywhere(&Solo, "x", 5).is_ok());
        assert_eq!(Solo.gather_u64(9), vec![9]);
    }
}
