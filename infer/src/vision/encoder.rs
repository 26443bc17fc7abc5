//! The vision encoder: Idefics3's SigLIP variant (transformers' Idefics3VisionTransformer), by
//! Hugging Face's tensor names under `model.vision_model`. Patches of the image become
//! vectors, each plus its position's embedding, then pre-norm transformer layers attend over
//! all of them (no mask: one whole, unpadded image). candle-transformers' siglip has the same
//! layers but fixes its config's field names to SigLIP's and ends in a pooling head this model
//! does not have, so the few lines are here.

use candle_core::{Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Embedding, LayerNorm, VarBuilder};

use super::config::VisionConfig;
use crate::dense::Dense;
use crate::weights::StoredWeights;

type Result<T> = candle_core::Result<T>;

struct Attention {
    query: Dense,
    key: Dense,
    value: Dense,
    out: Dense,
    heads: usize,
}

impl Attention {
    fn load(config: &VisionConfig, vb: VarBuilder, stored: &StoredWeights) -> Result<Attention> {
        let d = config.hidden_size;
        Ok(Attention {
            query: stored.dense(&vb, "q_proj", d, d, true)?,
            key: stored.dense(&vb, "k_proj", d, d, true)?,
            value: stored.dense(&vb, "v_proj", d, d, true)?,
            out: stored.dense(&vb, "out_proj", d, d, true)?,
            heads: config.num_attention_heads,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, positions, d) = x.dims3()?;
        let head_dim = d / self.heads;
        let split = |t: Tensor| {
            t.reshape((batch, positions, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scale = (head_dim as f64).powf(-0.5);
        let mixed = crate::attention::attention(&q, &k, &v, scale, None)?
            .transpose(1, 2)?
            .reshape((batch, positions, d))?;
        self.out.forward(&mixed)
    }
}

struct Layer {
    norm1: LayerNorm,
    attention: Attention,
    norm2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
    /// gelu_pytorch_tanh (the tanh approximation) or gelu (erf).
    tanh_gelu: bool,
}

impl Layer {
    fn load(config: &VisionConfig, vb: VarBuilder, stored: &StoredWeights) -> Result<Layer> {
        let d = config.hidden_size;
        let eps = config.layer_norm_eps;
        Ok(Layer {
            norm1: candle_nn::layer_norm(d, eps, vb.pp("layer_norm1"))?,
            attention: Attention::load(config, vb.pp("self_attn"), stored)?,
            norm2: candle_nn::layer_norm(d, eps, vb.pp("layer_norm2"))?,
            fc1: stored.dense(&vb, "mlp.fc1", d, config.intermediate_size, true)?,
            fc2: stored.dense(&vb, "mlp.fc2", config.intermediate_size, d, true)?,
            tanh_gelu: config.hidden_act == "gelu_pytorch_tanh",
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.attention.forward(&self.norm1.forward(x)?)?)?;
        let hidden = self.fc1.forward(&self.norm2.forward(&x)?)?;
        let hidden = if self.tanh_gelu {
            crate::fast_ops::gelu_tanh(hidden)?
        } else {
            crate::fast_ops::gelu_erf(hidden)?
        };
        x + self.fc2.forward(&hidden)?
    }
}

pub struct VisionEncoder {
    patch_embedding: Conv2d,
    position_embedding: Embedding,
    layers: Vec<Layer>,
    post_layernorm: LayerNorm,
    position_ids: Tensor,
}

impl VisionEncoder {
    /// From the tensors under `vb` (`model.vision_model` in a checkpoint) and the dense
    /// layers' weights in `stored`.
    pub fn load(
        config: &VisionConfig,
        vb: VarBuilder,
        stored: &StoredWeights,
    ) -> Result<VisionEncoder> {
        let d = config.hidden_size;
        let side = config.image_size / config.patch_size;
        let conv = Conv2dConfig {
            stride: config.patch_size,
            ..Default::default()
        };
        let patch_embedding = candle_nn::conv2d(
            config.num_channels,
            d,
            config.patch_size,
            conv,
            vb.pp("embeddings.patch_embedding"),
        )?;
        let position_embedding =
            candle_nn::embedding(side * side, d, vb.pp("embeddings.position_embedding"))?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(config, vb.pp(format!("encoder.layers.{i}")), stored))
            .collect::<Result<Vec<_>>>()?;
        let post_layernorm =
            candle_nn::layer_norm(d, config.layer_norm_eps, vb.pp("post_layernorm"))?;
        let position_ids = Tensor::new(patch_positions(side), vb.device())?;
        Ok(VisionEncoder {
            patch_embedding,
            position_embedding,
            layers,
            post_layernorm,
            position_ids,
        })
    }

    /// [1, channels, image_size, image_size] normalized pixels → [1, patches, hidden].
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let patches = self
            .patch_embedding
            .forward(pixels)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let positions = self.position_embedding.forward(&self.position_ids)?;
        let mut x = patches.broadcast_add(&positions)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        self.post_layernorm.forward(&x)
    }
}

/// The position of each patch of a whole `side` × `side` image, as Idefics3VisionEmbeddings
/// buckets them (its fractional coordinates exist for padded images; on a whole one the
/// buckets are row × side + column, computed here the same way, in float32 as torch does).
fn patch_positions(side: usize) -> Vec<u32> {
    let step = 1.0f32 / side as f32;
    // torch.arange(1/side, 1.0, 1/side): computed in double, stored as float32.
    let boundaries: Vec<f32> = (1..side)
        .map(|k| (k as f64 * (1.0 / side as f64)) as f32)
        .collect();
    let bucket = |i: usize| {
        let coordinate = (i as f32 * step).min(1.0 - 1e-6);
        // bucketize(right=True): how many boundaries are <= the coordinate.
        boundaries.iter().filter(|&&b| b <= coordinate).count()
    };
    let mut ids = Vec::with_capacity(side * side);
    for row in 0..side {
        for column in 0..side {
            ids.push((bucket(row) * side + bucket(column)) as u32);
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::patch_positions;

    #[test]
    fn a_whole_image_has_its_patches_in_reading_order() {
        for side in [4, 7, 24, 32] {
            let expected: Vec<u32> = (0..(side * side) as u32).collect();
            assert_eq!(patch_positions(side), expected, "side {side}");
        }
    }
}
