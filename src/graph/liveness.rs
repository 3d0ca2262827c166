//! Buffer pooling by liveness: tensors whose lifetimes do not overlap share one buffer.
//!
//! The executor lists every transient tensor of a step (activations, gradients, scratch) with
//! its byte size and the first and last op index that touch it. [`plan_buffers`] assigns each a
//! pool buffer, trying two greedy orders and keeping the plan with fewer bytes:
//!
//! - in time order ([`by_time`]): at a tensor's first op, buffers whose tensors are all dead
//!   are free; it takes the free buffer whose size is closest to its need (growing it if it is
//!   smaller), or opens a new one;
//! - largest first ([`by_size`], the "greedy by size" of TFLite's planner): each tensor goes to
//!   the first buffer none of whose tensors' lifetimes overlaps its own, so a buffer is sized
//!   by its first, largest tensor and never grows.
//!
//! Buffers are created only after planning, at their final size.

/// One transient tensor to place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub bytes: u64,
    /// Index of the first op that writes it.
    pub first: usize,
    /// Index of the last op that reads it (≥ first).
    pub last: usize,
}

/// The result: `buffer_of[t]` for every tensor, and each pool buffer's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferPlan {
    pub buffer_of: Vec<usize>,
    pub buffer_bytes: Vec<u64>,
}

impl BufferPlan {
    /// Bytes of all pool buffers: the plan's peak.
    pub fn pooled_bytes(&self) -> u64 {
        self.buffer_bytes.iter().sum()
    }
}

/// Assigns pool buffers to `tensors`: the smaller of [`by_time`] and [`by_size`] (the former
/// on a tie). Deterministic.
pub fn plan_buffers(tensors: &[Lifetime]) -> BufferPlan {
    let a = by_time(tensors);
    let b = by_size(tensors);
    if b.pooled_bytes() < a.pooled_bytes() {
        b
    } else {
        a
    }
}

/// Largest tensor first, each into the first buffer holding no tensor whose lifetime overlaps
/// its own (see the module doc).
pub fn by_size(tensors: &[Lifetime]) -> BufferPlan {
    for (t, lt) in tensors.iter().enumerate() {
        assert!(
            lt.last >= lt.first,
            "tensor {t}: last use before first write"
        );
    }
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&t| (std::cmp::Reverse(tensors[t].bytes), tensors[t].first, t));
    let mut buffer_of = vec![usize::MAX; tensors.len()];
    let mut buffer_bytes: Vec<u64> = Vec::new();
    // The lifetimes each buffer already holds.
    let mut held: Vec<Vec<(usize, usize)>> = Vec::new();
    for t in order {
        let lt = tensors[t];
        let fits = |b: &Vec<(usize, usize)>| b.iter().all(|&(f, l)| l < lt.first || lt.last < f);
        let b = match held.iter().position(fits) {
            Some(b) => b,
            None => {
                // Sorted largest first: a buffer's first tensor is its largest.
                buffer_bytes.push(lt.bytes);
                held.push(Vec::new());
                held.len() - 1
            }
        };
        held[b].push((lt.first, lt.last));
        buffer_of[t] = b;
    }
    BufferPlan {
        buffer_of,
        buffer_bytes,
    }
}

/// In order of first use, each into the free buffer closest in size (see the module doc).
pub fn by_time(tensors: &[Lifetime]) -> BufferPlan {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&t| (tensors[t].first, std::cmp::Reverse(tensors[t].bytes), t));
    let mut buffer_of = vec![usize::MAX; tensors.len()];
    let mut buffer_bytes: Vec<u64> = Vec::new();
    // Last op index at which each buffer is still in use.
    let mut busy_until: Vec<usize> = Vec::new();
    for t in order {
        let lt = tensors[t];
        assert!(
            lt.last >= lt.first,
            "tensor {t}: last use before first write"
        );
        let free = (0..buffer_bytes.len()).filter(|&b| busy_until[b] < lt.first);
        // Closest size; prefer one big enough (no growth), then the largest to grow.
        let pick = free.min_by_key(|&b| {
            let have = buffer_bytes[b];
            if have >= lt.bytes {
                (0, have - lt.bytes)
            } else {
                (1, lt.bytes - have)
            }
        });
        let b = match pick {
            Some(b) => {
                buffer_bytes[b] = buffer_bytes[b].max(lt.bytes);
                busy_until[b] = lt.last;
                b
            }
            None => {
                buffer_bytes.push(lt.bytes);
                busy_until.push(lt.last);
                buffer_bytes.len() - 1
            }
        };
        buffer_of[t] = b;
    }
    BufferPlan {
        buffer_of,
        buffer_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(bytes: u64, first: usize, last: usize) -> Lifetime {
        Lifetime { bytes, first, last }
    }

    #[test]
    fn overlapping_tensors_never_share_and_disjoint_ones_do() {
        // A chain a→b→c→d: each tensor dies when the next op has read it.
        let ts = [lt(100, 0, 1), lt(100, 1, 2), lt(100, 2, 3), lt(100, 3, 4)];
        let p = plan_buffers(&ts);
        assert_eq!(p.buffer_bytes.len(), 2, "{p:?}");
        assert_eq!(p.pooled_bytes(), 200);
        check_no_overlap(&ts, &p);
    }

    #[test]
    fn a_long_lived_tensor_keeps_its_buffer() {
        // The residual: tensor 0 lives across the whole block.
        let ts = [
            lt(64, 0, 5),
            lt(32, 1, 2),
            lt(32, 2, 3),
            lt(32, 3, 4),
            lt(64, 4, 5),
        ];
        let p = plan_buffers(&ts);
        check_no_overlap(&ts, &p);
        assert!(p.pooled_bytes() < ts.iter().map(|t| t.bytes).sum::<u64>());
    }

    #[test]
    fn random_lifetimes_are_always_valid() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let ts: Vec<Lifetime> = (0..40)
                .map(|_| {
                    let first = rng.random_range(0..30);
                    lt(
                        rng.random_range(1..1000),
                        first,
                        first + rng.random_range(0..8),
                    )
                })
                .collect();
            for p in [plan_buffers(&ts), by_time(&ts), by_size(&ts)] {
                check_no_overlap(&ts, &p);
                for (t, &b) in p.buffer_of.iter().enumerate() {
                    assert!(p.buffer_bytes[b] >= ts[t].bytes);
                }
            }
            let best = plan_buffers(&ts).pooled_bytes();
            assert_eq!(
                best,
                by_time(&ts).pooled_bytes().min(by_size(&ts).pooled_bytes())
            );
        }
    }

    #[test]
    fn largest_first_beats_time_order_where_a_small_tensor_takes_a_big_buffer() {
        // Time order gives the free big buffer to the small tensor at op 2, so the second big
        // tensor (op 3) needs a big buffer of its own; largest first puts both big tensors,
        // which never overlap, in one buffer and the small one in a small buffer.
        let ts = [lt(1000, 0, 1), lt(10, 2, 5), lt(1000, 3, 4)];
        let (time, size) = (by_time(&ts), by_size(&ts));
        check_no_overlap(&ts, &time);
        check_no_overlap(&ts, &size);
        assert_eq!(time.pooled_bytes(), 2000, "{time:?}");
        assert_eq!(size.pooled_bytes(), 1010, "{size:?}");
        assert_eq!(plan_buffers(&ts), size);
    }

    fn check_no_overlap(ts: &[Lifetime], p: &BufferPlan) {
        for i in 0..ts.len() {
            for j in i + 1..ts.len() {
                let overlap = ts[i].first <= ts[j].last && ts[j].first <= ts[i].last;
                assert!(
                    !(overlap && p.buffer_of[i] == p.buffer_of[j]),
                    "tensors {i} {:?} and {j} {:?} overlap but share buffer {}",
                    ts[i],
                    ts[j],
                    p.buffer_of[i]
                );
            }
        }
    }
}
