//! What a step needs of a device, decided before anything is allocated: the micro-batch size,
//! whether every buffer fits the device's limits, which pooled buffer holds each tensor, and
//! the memory report. Shape arithmetic on a [`Schedule`]: no GPU needed.

use super::executor::ExecError;
use super::liveness::{BufferPlan, Lifetime, plan_buffers};
use super::params::{ParamLayout, Region};
use super::planner::Planner;
use super::schedule::{Mode, Schedule, classifier, schedule};
use super::{Activation, Model, Shape};
use crate::cpu::augment::AugmentConfig;
use crate::kernels::variants::Variants;

/// Most pixel rows (N·H·W) one dispatch handles: kernels tile rows into workgroups and a grid
/// has at most 65,535 workgroups a side (the GEMM takes 32 rows per workgroup row).
pub const MAX_ROWS_PER_DISPATCH: usize = 1 << 20;

/// Memory the step uses, against the naive one-buffer-per-tensor sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReport {
    pub pooled_bytes: u64,
    pub naive_bytes: u64,
    pub pool_buffers: usize,
    pub tensors: usize,
    /// Parameters, gradients, Adam state, saved tensors, scratch, input.
    pub fixed_bytes: u64,
    /// The texture mirrors, where the variants read operands through them (0 where none do):
    /// [`crate::gpu::mirror::shared_bytes_for`] of [`largest_mirrored_bytes`], which the
    /// executor reserves (this over [`crate::gpu::mirror::SHARED`] in each) when it builds the
    /// step.
    pub mirror_bytes: u64,
}

/// The largest micro-batch (≤ `batch`) whose every tensor fits one storage binding of
/// `limit` bytes and whose largest activation has at most [`MAX_ROWS_PER_DISPATCH`] rows.
pub fn choose_micro_batch(
    model: &Model,
    variants: &Variants,
    batch: usize,
    limit: u64,
) -> Result<usize, ExecError> {
    let full = schedule(model, variants, batch, Mode::Train, None)?;
    let largest = full.pl.tensors.iter().map(|t| t.bytes).max().unwrap_or(0);
    let by_binding = if largest <= limit {
        batch
    } else {
        (batch as u64 * limit / largest) as usize
    };
    let max_hw = model
        .layers
        .iter()
        .map(|l| match l.output {
            Shape::Hwc(h, w, _) => h * w,
            Shape::Flat(_) => 1,
        })
        .max()
        .unwrap_or(1);
    Ok(by_binding
        .min(MAX_ROWS_PER_DISPATCH / max_hw)
        .clamp(1, batch))
}

/// Checks, before anything is allocated, that a step of `batch` samples run as micro-batches
/// of `micro` fits a device with `limits`: every parameter tensor within one binding (its layer
/// binds it whole), every whole-model buffer (parameters, gradients, Adam's m and v) and the
/// batch's input within the largest buffer. The micro-batch's activations are checked by
/// [`check_tensors_fit`].
pub fn check_device_fit(
    model: &Model,
    batch: usize,
    micro: usize,
    limits: &wgpu::Limits,
) -> Result<(), ExecError> {
    let binding = limits.max_storage_buffer_binding_size;
    let largest = limits.max_buffer_size;
    let layout = ParamLayout::new(model);
    if let Some(s) = layout.slots.iter().max_by_key(|s| s.len) {
        let bytes = s.len as u64 * 4;
        if bytes > binding {
            return Err(ExecError::ParameterTooLarge {
                name: s.name.clone(),
                mib: mib(bytes),
                limit_mib: mib(binding),
                width_factor: (binding as f64 / bytes as f64).sqrt(),
            });
        }
    }
    // Adam's m and v span the trainable prefix; each region is one buffer of its own.
    let region = |r: Region| layout.regions[r as usize].1;
    let wholes = [
        ("parameters (weights)", region(Region::Weights)),
        ("parameters (biases)", region(Region::Biases)),
        ("batch-norm statistics", region(Region::State)),
        ("Adam moments", layout.trainable_len),
    ];
    for (what, len) in wholes {
        let bytes = len as u64 * 4;
        if bytes > largest {
            return Err(ExecError::ModelTooLarge {
                what,
                mib: mib(bytes),
                limit_mib: mib(largest),
                width_factor: (largest as f64 / bytes as f64).sqrt(),
            });
        }
    }
    check_input_fits(model, batch, micro, limits)
}

/// The batch is uploaded whole (one buffer of `batch` images when it runs as micro-batches,
/// the bound input of `micro` images otherwise); targets are never larger than images.
fn check_input_fits(
    model: &Model,
    batch: usize,
    micro: usize,
    limits: &wgpu::Limits,
) -> Result<(), ExecError> {
    let binding = limits.max_storage_buffer_binding_size;
    let largest = limits.max_buffer_size;
    let sample_bytes = model.layers[0].output.len() as u64 * 4;
    let bound = largest.min(binding);
    if sample_bytes > bound {
        return Err(ExecError::TooLarge {
            name: "input".into(),
            mib: mib(sample_bytes),
            limit_mib: mib(bound),
            batch: 1,
        });
    }
    let limit = if micro < batch { largest } else { bound };
    if batch as u64 * sample_bytes > limit {
        return Err(ExecError::BatchTooLarge {
            batch,
            mib: mib(batch as u64 * sample_bytes),
            limit_mib: mib(limit),
            max_batch: (limit / sample_bytes) as usize,
        });
    }
    Ok(())
}

/// Fails when a tensor of the planned micro-batch exceeds one binding of `limit` bytes.
pub fn check_tensors_fit(main: &Schedule, limit: u64) -> Result<(), ExecError> {
    match main.pl.tensors.iter().find(|t| t.bytes > limit) {
        Some(t) => Err(ExecError::TooLarge {
            name: t.name.clone(),
            mib: mib(t.bytes),
            limit_mib: mib(limit),
            batch: main.n,
        }),
        None => Ok(()),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// Splits `[0, len)` into ranges of at most `limit` bytes that start at multiples of
/// [`super::params::ALIGN`] elements, so that an op over a whole flat buffer (Adam, gradient
/// accumulation) can bind it slice by slice on a device whose binding limit is smaller than
/// the buffer: (start, len) in f32 elements.
pub fn binding_slices(len: usize, limit: u64) -> Vec<(usize, usize)> {
    let align = super::params::ALIGN;
    let max = ((limit / 4) as usize / align * align).max(align);
    (0..len.div_ceil(max))
        .map(|i| (i * max, max.min(len - i * max)))
        .collect()
}

/// Gives tensors whose [first op, last op] lifetimes do not overlap the same pool buffer.
pub fn pool_plan(pl: &Planner) -> BufferPlan {
    let lifetimes: Vec<Lifetime> = (pl.tensors.iter().zip(uses(pl)))
        .map(|(t, l)| {
            let (first, last) = l.unwrap_or((0, 0));
            Lifetime {
                bytes: t.bytes,
                first,
                last,
            }
        })
        .collect();
    plan_buffers(&lifetimes)
}

/// Per tensor of `pl`: the first and last op that use it (None: no op does).
fn uses(pl: &Planner) -> Vec<Option<(usize, usize)>> {
    let mut life: Vec<Option<(usize, usize)>> = vec![None; pl.tensors.len()];
    for (i, op) in pl.ops.iter().enumerate() {
        for &t in &op.uses {
            life[t] = Some(life[t].map_or((i, i), |(a, _)| (a, i)));
        }
    }
    life
}

/// Whether the program `pl` can run in the pool `plan` made for another program (every
/// program of a step runs in the buffers of its training program at the micro-batch): each
/// tensor an op uses has a buffer at least its size, and no two tensors that share a buffer
/// are used by overlapping ranges of ops. The schedule keeps this true by construction (an
/// evaluation program's tensors are the training program's, smaller or empty, live within
/// the training lifetimes); this says so before a program is built, instead of a corrupted
/// result.
pub fn check_fits_pool(pl: &Planner, plan: &BufferPlan) -> Result<(), String> {
    let life = uses(pl);
    let mut held: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); plan.buffer_bytes.len()];
    for (t, l) in life.iter().enumerate() {
        let Some((first, last)) = *l else { continue };
        let name = &pl.tensors[t].name;
        let b = *plan
            .buffer_of
            .get(t)
            .ok_or_else(|| format!("tensor {t} ({name}) has no pooled buffer"))?;
        if pl.tensors[t].bytes > plan.buffer_bytes[b] {
            return Err(format!(
                "tensor {t} ({name}) needs {} bytes, its buffer has {}",
                pl.tensors[t].bytes, plan.buffer_bytes[b]
            ));
        }
        if let Some(&(u, _, _)) = held[b].iter().find(|&&(_, f, l)| !(l < first || last < f)) {
            return Err(format!(
                "tensors {u} ({}) and {t} ({name}) share buffer {b} while both are live",
                pl.tensors[u].name
            ));
        }
        held[b].push((t, first, last));
    }
    Ok(())
}

/// The scratch every program of up to `main.n` samples needs: a program may run any size up to
/// the micro-batch (the last partial batch of an epoch, validation, predict) and split-K plans
/// differ per size, so the maximum over `main` (planned at the micro-batch) and every smaller
/// size.
pub fn scratch_len(
    main: &Schedule,
    model: &Model,
    variants: &Variants,
    augment: Option<AugmentConfig>,
) -> Result<usize, ExecError> {
    // Inference programs need the scratch for their folded kernels (a size of the model's,
    // not of the batch).
    let mut len = (main.pl.scratch_len).max(
        schedule(model, variants, 1, Mode::Eval, None)?
            .pl
            .scratch_len,
    );
    for n in 1..main.n {
        len = len.max(
            schedule(model, variants, n, Mode::Train, augment)?
                .pl
                .scratch_len,
        );
    }
    Ok(len)
}

/// Floats per sample of the input and of the targets.
pub fn sample_sizes(model: &Model) -> Result<(usize, usize), ExecError> {
    let (activation, outputs) = classifier(model)?;
    let target = if activation == Activation::Softmax {
        1
    } else {
        outputs
    };
    Ok((model.layers[0].output.len(), target))
}

/// At least the bytes of any operand a program of `main` may read through a texture mirror:
/// the largest of its tensors, of the parameter slots (a weight's gradient or transposed copy
/// has a weight's size) and of the scratch.
fn largest_mirrored_bytes(main: &Schedule, layout: &ParamLayout, scratch: usize) -> u64 {
    let tensors = main.pl.tensors.iter().map(|t| t.bytes).max().unwrap_or(0);
    let params = layout.slots.iter().map(|s| s.len).max().unwrap_or(0);
    tensors.max((params.max(scratch) * 4) as u64)
}

/// The step's memory: pooled transient tensors against their naive sum, and the fixed buffers
/// (parameters, gradients, Adam's m and v, saved tensors, scratch, input (f32 and bytes) and
/// targets; with micro-batches also the whole batch's input and targets and the summed
/// gradients).
pub fn memory_report(
    model: &Model,
    main: &Schedule,
    plan: &BufferPlan,
    batch: usize,
    scratch: usize,
    variants: &Variants,
) -> Result<MemoryReport, ExecError> {
    let layout = ParamLayout::new(model);
    let (sample, target) = sample_sizes(model)?;
    let t = layout.trainable_len;
    // The input as bytes (see `kernels::rescale::u8_stride`) beside the f32 input.
    let words = crate::kernels::rescale::u8_stride(sample) / 4;
    let mut floats = layout.total_len + 3 * t + main.n * (sample + words + target) + scratch;
    floats += main.pl.saved.iter().map(|(_, len)| len).sum::<usize>();
    if batch > main.n {
        floats += t + batch * (sample + words + target);
    }
    Ok(MemoryReport {
        pooled_bytes: plan.pooled_bytes(),
        naive_bytes: main.pl.tensors.iter().map(|t| t.bytes).sum(),
        pool_buffers: plan.buffer_bytes.len(),
        tensors: main.pl.tensors.len(),
        fixed_bytes: (floats * 4) as u64,
        mirror_bytes: if variants.mirrors() {
            crate::gpu::mirror::shared_bytes_for(largest_mirrored_bytes(main, &layout, scratch))
        } else {
            0
        },
    })
}

/// The micro-batch size and memory plan of a training step of `batch` samples on a device
/// with `limits` and kernel `variants` (what [`super::executor::TrainStep`] would use), with
/// no GPU.
pub fn plan_memory(
    model: &Model,
    batch: usize,
    limits: &wgpu::Limits,
    variants: &Variants,
) -> Result<(usize, MemoryReport), ExecError> {
    let limit = limits.max_storage_buffer_binding_size;
    let micro = choose_micro_batch(model, variants, batch, limit)?;
    check_device_fit(model, batch, micro, limits)?;
    let main = schedule(model, variants, micro, Mode::Train, None)?;
    check_tensors_fit(&main, limit)?;
    let plan = pool_plan(&main.pl);
    let scratch = scratch_len(&main, model, variants, None)?;
    Ok((
        micro,
        memory_report(model, &main, &plan, batch, scratch, variants)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{XceptionConfig, xception_mini};

    fn keras_example() -> Model {
        xception_mini(&XceptionConfig::default()).unwrap()
    }

    fn largest_tensor(model: &Model, n: usize) -> u64 {
        let s = schedule(model, &Variants::portable(), n, Mode::Train, None).unwrap();
        s.pl.tensors.iter().map(|t| t.bytes).max().unwrap()
    }

    /// WebGPU's default limits (128 MiB per binding, as lavapipe): the recipe's batch of 128
    /// at 180² runs as the largest micro-batch whose tensors all fit one binding.
    #[test]
    fn the_micro_batch_is_the_largest_whose_tensors_fit_a_binding() {
        let m = keras_example();
        let limits = wgpu::Limits::default();
        let limit = limits.max_storage_buffer_binding_size;
        let micro = choose_micro_batch(&m, &Variants::portable(), 128, limit).unwrap();
        assert!(micro < 128, "{micro}");
        assert!(largest_tensor(&m, micro) <= limit);
        assert!(largest_tensor(&m, micro + 1) > limit);
        // A binding of 2 GiB (an H200): the row limit of one dispatch decides instead.
        let micro = choose_micro_batch(&m, &Variants::portable(), 128, 2047 << 20).unwrap();
        assert_eq!(micro, MAX_ROWS_PER_DISPATCH / (180 * 180));
        // A batch that fits is not split.
        assert_eq!(
            choose_micro_batch(&m, &Variants::portable(), 2, limit).unwrap(),
            2
        );
    }

    #[test]
    fn the_memory_plan_pools_tensors_and_counts_the_fixed_buffers() {
        let m = keras_example();
        let limits = wgpu::Limits::default();
        let (micro, r) = plan_memory(&m, 128, &limits, &Variants::portable()).unwrap();
        assert!(micro < 128);
        // Pooling shares buffers: well under the naive sum (under half of it before the fusions
        // removed the short-lived tensors, which pooled cheapest).
        assert!(r.pooled_bytes < r.naive_bytes * 3 / 5, "{r:?}");
        assert!(r.pool_buffers < r.tensors);
        // Parameters, gradients, Adam's m and v, and the whole batch's input at least.
        let layout = ParamLayout::new(&m);
        let floor = (4 * layout.trainable_len + 128 * 180 * 180 * 3) as u64 * 4;
        assert!(r.fixed_bytes > floor, "{} vs {floor}", r.fixed_bytes);
        // Without splitting, no whole-batch buffers.
        let (micro, small) = plan_memory(&m, 2, &limits, &Variants::portable()).unwrap();
        assert_eq!(micro, 2);
        assert!(small.fixed_bytes < r.fixed_bytes);
    }

    #[test]
    fn the_scratch_serves_every_program_size() {
        let m = keras_example();
        for v in [Variants::portable(), {
            let mut v = Variants::portable();
            v.apply("gemm=subgroup,conv2d=subgroup").unwrap();
            v
        }] {
            let main = schedule(&m, &v, 6, Mode::Train, None).unwrap();
            let all = scratch_len(&main, &m, &v, None).unwrap();
            for n in 1..=6 {
                let s = schedule(&m, &v, n, Mode::Train, None).unwrap();
                assert!(s.pl.scratch_len <= all);
            }
        }
    }

    #[test]
    fn a_parameter_larger_than_a_binding_names_the_width_that_fits() {
        let m = xception_mini(&XceptionConfig {
            width: 8.0,
            image_size: crate::model::ImageSize::square(32),
            ..Default::default()
        })
        .unwrap();
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: 16 << 20,
            ..Default::default()
        };
        match check_device_fit(&m, 8, 8, &limits) {
            Err(ExecError::ParameterTooLarge { width_factor, .. }) => {
                assert!(width_factor < 1.0)
            }
            other => panic!("{other:?}"),
        }
    }
}
