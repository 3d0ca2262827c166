//! The flat parameter layout: every parameter of a model in ONE buffer, at fixed offsets.
//!
//! One flat buffer (and its gradients, Adam's m and v likewise) means one Adam dispatch for the
//! whole model and one write for a checkpoint (as llm.c does). Trainable parameters come first,
//! in layer order, then the non-trainable batch-norm statistics, so Adam runs over the prefix
//! `[0, trainable_len)` only.

use rand::{Rng, SeedableRng};

use super::{Init, Model};

/// Where one parameter tensor lives in the flat buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSlot {
    /// Index of the layer in `Model::layers`.
    pub layer: usize,
    /// Keras-style full name, e.g. `conv2d/kernel`, `batch_normalization_3/moving_mean`.
    pub name: String,
    /// Offset in f32 elements.
    pub offset: usize,
    pub len: usize,
    pub shape: Vec<usize>,
    pub trainable: bool,
    pub init: Init,
}

/// Offsets of every parameter of a model in one flat f32 buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamLayout {
    pub slots: Vec<ParamSlot>,
    /// Elements in the trainable prefix.
    pub trainable_len: usize,
    /// All elements.
    pub total_len: usize,
}

impl ParamLayout {
    /// Lays out `model`'s parameters: trainable ones first, then the non-trainable ones.
    pub fn new(model: &Model) -> Self {
        let mut slots = Vec::new();
        let mut offset = 0;
        for pass_trainable in [true, false] {
            for (li, layer) in model.layers.iter().enumerate() {
                for p in layer
                    .params
                    .iter()
                    .filter(|p| p.trainable == pass_trainable)
                {
                    slots.push(ParamSlot {
                        layer: li,
                        name: format!("{}/{}", layer.name, p.name),
                        offset,
                        len: p.len(),
                        shape: p.shape.clone(),
                        trainable: p.trainable,
                        init: p.init,
                    });
                    offset += p.len();
                }
            }
        }
        let trainable_len = slots.iter().filter(|s| s.trainable).map(|s| s.len).sum();
        Self {
            slots,
            trainable_len,
            total_len: offset,
        }
    }

    /// The slot of `layer`'s parameter called `name` (`kernel`, `gamma`, …).
    pub fn find(&self, layer: usize, name: &str) -> Option<&ParamSlot> {
        self.slots
            .iter()
            .find(|s| s.layer == layer && s.name.rsplit('/').next() == Some(name))
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
        assert_eq!(l.total_len, 2_731_065);
        assert_eq!(l.trainable_len, 2_722_777);
        assert!(l.slots.iter().take_while(|s| s.trainable).count() < l.slots.len());
        assert!(
            l.slots
                .windows(2)
                .all(|w| w[0].offset + w[0].len == w[1].offset)
        );
        let first_non = l.slots.iter().position(|s| !s.trainable).unwrap();
        assert!(l.slots[first_non..].iter().all(|s| !s.trainable));
        assert_eq!(l.slots[0].name, "conv2d/kernel");
        assert_eq!(l.slots[0].shape, vec![3, 3, 3, 128]);
    }

    #[test]
    fn initial_values_follow_keras_initialisers() {
        let m = xception_mini(&XceptionConfig {
            width: 0.125,
            image_size: 32,
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
