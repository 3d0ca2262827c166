//! The flat parameter layout: every parameter of a model at a fixed offset of one index space,
//! split into three regions that live in three GPU buffers.
//!
//! One flat space (and gradients, Adam's m and v likewise) means a few Adam dispatches for the
//! whole model and one write for a checkpoint (as llm.c does). The regions exist because of a
//! GPU rule: a dispatch must never bind one buffer twice when one binding is written (wgpu
//! rejects read + write; lavapipe corrupts two writable ranges). A layer's backward writes its
//! kernel gradient and its bias gradient in one dispatch, and batch norm's training forward
//! reads γ/β while it updates the moving statistics, so:
//!
//! - `Weights`: kernels (conv, depthwise, pointwise, dense) and batch-norm γ;
//! - `Biases`: biases and batch-norm β;
//! - `State`: batch-norm moving mean and variance (non-trainable).
//!
//! Regions follow each other in that order, so the trainable parameters are the prefix
//! `[0, trainable_len)`. Every slot starts at a multiple of [`ALIGN`] elements (256 bytes,
//! WebGPU's largest storage-offset alignment), so any slot can be bound as a buffer range.

use rand::{Rng, SeedableRng};

use super::{Init, Model, Param};

/// Slot alignment in f32 elements (256 bytes).
pub const ALIGN: usize = 64;

/// Which buffer a parameter lives in (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    Weights = 0,
    Biases = 1,
    State = 2,
}

impl Region {
    pub const ALL: [Region; 3] = [Region::Weights, Region::Biases, Region::State];

    fn of(p: Param, trainable: bool) -> Self {
        match (trainable, p.is_bias()) {
            (false, _) => Region::State,
            (true, true) => Region::Biases,
            (true, false) => Region::Weights,
        }
    }
}

/// Where one parameter tensor lives.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSlot {
    /// Index of the layer in `Model::layers`.
    pub layer: usize,
    /// Keras-style full name, e.g. `conv2d/kernel`, `batch_normalization_3/moving_mean`.
    pub name: String,
    /// Which parameter of its layer.
    pub param: Param,
    /// Offset in f32 elements in the whole flat space.
    pub offset: usize,
    pub len: usize,
    pub shape: Vec<usize>,
    pub trainable: bool,
    pub region: Region,
    pub init: Init,
}

/// Offsets of every parameter of a model in one flat f32 space of three regions.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamLayout {
    pub slots: Vec<ParamSlot>,
    /// (start, len) of each region, indexed by `Region as usize`.
    pub regions: [(usize, usize); 3],
    /// Elements in the trainable prefix (Weights and Biases, with alignment padding).
    pub trainable_len: usize,
    /// All elements, padding included.
    pub total_len: usize,
}

impl ParamLayout {
    /// Lays out `model`'s parameters region by region, in layer order within a region.
    pub fn new(model: &Model) -> Self {
        let mut slots = Vec::new();
        let mut regions = [(0, 0); 3];
        let mut offset = 0;
        for region in Region::ALL {
            let start = offset;
            for (li, layer) in model.layers.iter().enumerate() {
                for p in layer
                    .params
                    .iter()
                    .filter(|p| Region::of(p.name, p.trainable) == region)
                {
                    slots.push(ParamSlot {
                        layer: li,
                        name: format!("{}/{}", layer.name, p.name.keras_name()),
                        param: p.name,
                        offset,
                        len: p.len(),
                        shape: p.shape.clone(),
                        trainable: p.trainable,
                        region,
                        init: p.init,
                    });
                    offset += p.len().next_multiple_of(ALIGN);
                }
            }
            regions[region as usize] = (start, offset - start);
        }
        Self {
            slots,
            regions,
            trainable_len: regions[Region::State as usize].0,
            total_len: offset,
        }
    }

    /// The L2 regularizer's mask over the weights region (`regions[Weights].1` values, the
    /// region starting at 0): 1.0 over every kernel's elements (Conv2D and Dense `kernel`,
    /// SeparableConv2D's `depthwise_kernel` and `pointwise_kernel`, what Keras'
    /// `kernel_regularizer`, `depthwise_regularizer` and `pointwise_regularizer` reach), 0.0
    /// over batch-norm γ and the alignment padding.
    pub fn l2_mask(&self) -> Vec<f32> {
        let (start, len) = self.regions[Region::Weights as usize];
        let mut mask = vec![0.0; len];
        for s in self.slots.iter().filter(|s| s.region == Region::Weights) {
            if matches!(
                s.param,
                Param::Kernel | Param::DepthwiseKernel | Param::PointwiseKernel
            ) {
                mask[s.offset - start..s.offset - start + s.len].fill(1.0);
            }
        }
        mask
    }

    /// Parameters that exist (padding excluded): (total, trainable).
    pub fn counts(&self) -> (usize, usize) {
        let total = self.slots.iter().map(|s| s.len).sum();
        let trainable = self
            .slots
            .iter()
            .filter(|s| s.trainable)
            .map(|s| s.len)
            .sum();
        (total, trainable)
    }

    /// The slot of `layer`'s parameter `p`.
    pub fn find(&self, layer: usize, p: Param) -> Option<&ParamSlot> {
        self.slots.iter().find(|s| s.layer == layer && s.param == p)
    }

    /// Initial values, seeded: glorot_uniform kernels (limit sqrt(6/(fan_in+fan_out))), zero
    /// biases and β, γ = 1, moving mean 0 and moving variance 1 (Keras' initialisers).
    pub fn initial_values(&self, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut v = vec![0.0f32; self.total_len];
        for s in &self.slots {
            let dst = &mut v[s.offset..s.offset + s.len];
            match s.init {
                Init::Zeros => dst.fill(0.0),
                Init::Ones => dst.fill(1.0),
                Init::GlorotUniform { fan_in, fan_out } => {
                    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
                    for x in dst {
                        *x = rng.random_range(-limit..limit);
                    }
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{XceptionConfig, xception_mini};

    #[test]
    fn layout_puts_trainable_first_and_counts_match_keras() {
        let m = xception_mini(&XceptionConfig::default()).unwrap();
        let l = ParamLayout::new(&m);
        assert_eq!(l.counts(), (2_731_065, 2_722_777));
        assert!(l.slots.iter().all(|s| s.offset % ALIGN == 0));
        assert!(
            l.slots
                .windows(2)
                .all(|w| w[0].offset + w[0].len <= w[1].offset)
        );
        assert!(
            l.slots
                .windows(2)
                .all(|w| w[0].region as usize <= w[1].region as usize)
        );
        assert!(
            l.slots
                .iter()
                .all(|s| s.trainable == (s.offset < l.trainable_len))
        );
        for s in &l.slots {
            let (start, len) = l.regions[s.region as usize];
            assert!(
                s.offset >= start && s.offset + s.len <= start + len,
                "{}",
                s.name
            );
        }
        assert_eq!(l.slots[0].name, "conv2d/kernel");
        assert_eq!(l.slots[0].shape, vec![3, 3, 3, 128]);
        let beta = l
            .slots
            .iter()
            .find(|s| s.name == "batch_normalization/beta")
            .unwrap();
        assert_eq!(beta.region, Region::Biases);
    }

    #[test]
    fn initial_values_follow_keras_initialisers() {
        let m = xception_mini(&XceptionConfig {
            width: 0.125,
            image_size: crate::model::ImageSize::square(32),
            ..Default::default()
        })
        .unwrap();
        let l = ParamLayout::new(&m);
        let v = l.initial_values(1337);
        assert_eq!(v, l.initial_values(1337), "same seed, same values");
        for s in &l.slots {
            let x = &v[s.offset..s.offset + s.len];
            match s.init {
                Init::Zeros => assert!(x.iter().all(|&a| a == 0.0), "{}", s.name),
                Init::Ones => assert!(x.iter().all(|&a| a == 1.0), "{}", s.name),
                Init::GlorotUniform { fan_in, fan_out } => {
                    let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
                    assert!(x.iter().all(|a| a.abs() <= limit), "{}", s.name);
                    // Uniform on [-limit, limit]: the spread is a good fraction of the limit.
                    let max = x.iter().fold(0.0f32, |m, a| m.max(a.abs()));
                    assert!(s.len < 16 || max > 0.5 * limit, "{}", s.name);
                }
            }
        }
        let bn = l
            .slots
            .iter()
            .find(|s| s.name == "batch_normalization/moving_variance")
            .unwrap();
        assert!(!bn.trainable);
        // depthwise kernel (3,3,C,1): fan_in 9·C, fan_out 9.
        let dw = l
            .slots
            .iter()
            .find(|s| s.name == "separable_conv2d/depthwise_kernel")
            .unwrap();
        assert_eq!(
            dw.init,
            Init::GlorotUniform {
                fan_in: 9 * 16,
                fan_out: 9
            }
        );
    }
}
