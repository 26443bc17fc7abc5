//! The text model: a Llama (transformers' LlamaModel and lm_head), by Hugging Face's tensor
//! names under `model.text_model`, taking embeddings rather than token ids, since the image's
//! rows come from the connector, and keeping each layer's keys and values so that a greedy step
//! costs one token's work. candle-transformers' llama takes embeddings too, but it panics on a
//! missing tensor and answers only the last position, so this one is written out here, with
//! transformers' math: RMSNorm, RoPE on the halves of each head (rotate_half), grouped-query
//! attention with a causal mask, SiLU-gated MLP.

use candle_core::{Device, Module, Tensor};
use candle_nn::{RmsNorm, VarBuilder};

use super::config::TextConfig;
use crate::dense::Dense;
use crate::token_table::TokenTable;
use crate::weights::StoredWeights;

type Result<T> = candle_core::Result<T>;

/// The keys and values of every position so far, per layer.
#[derive(Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    positions: usize,
}

impl KvCache {
    /// Positions held (the prompt and the tokens generated so far).
    pub fn len(&self) -> usize {
        self.positions
    }

    pub fn is_empty(&self) -> bool {
        self.positions == 0
    }
}

struct Attention {
    query: Dense,
    key: Dense,
    value: Dense,
    out: Dense,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(config: &TextConfig, vb: VarBuilder, stored: &StoredWeights) -> Result<Attention> {
        let d = config.hidden_size;
        let head_dim = config.head_dim();
        let heads = config.num_attention_heads;
        let kv_heads = config.key_value_heads();
        let bias = config.attention_bias;
        Ok(Attention {
            query: stored.dense(&vb, "q_proj", d, heads * head_dim, bias)?,
            key: stored.dense(&vb, "k_proj", d, kv_heads * head_dim, bias)?,
            value: stored.dense(&vb, "v_proj", d, kv_heads * head_dim, bias)?,
            out: stored.dense(&vb, "o_proj", heads * head_dim, d, bias)?,
            heads,
            kv_heads,
            head_dim,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        start: usize,
        cache: &mut Option<(Tensor, Tensor)>,
    ) -> Result<Tensor> {
        let (batch, positions, _) = x.dims3()?;
        let split = |t: Tensor, heads: usize| {
            t.reshape((batch, positions, heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = rope.apply(&split(self.query.forward(x)?, self.heads)?, start)?;
        let k = rope.apply(&split(self.key.forward(x)?, self.kv_heads)?, start)?;
        let v = split(self.value.forward(x)?, self.kv_heads)?;
        let (k, v) = match cache.take() {
            Some((past_k, past_v)) => (
                Tensor::cat(&[&past_k, &k], 2)?,
                Tensor::cat(&[&past_v, &v], 2)?,
            ),
            None => (k, v),
        };
        *cache = Some((k.clone(), v.clone()));
        let scale = (self.head_dim as f64).powf(-0.5);
        let causal_past = (positions > 1).then_some(start);
        let mixed = crate::attention::attention(&q, &k, &v, scale, causal_past)?
            .transpose(1, 2)?
            .reshape((batch, positions, self.heads * self.head_dim))?;
        self.out.forward(&mixed)
    }
}

struct Mlp {
    gate: Dense,
    up: Dense,
    down: Dense,
}

impl Mlp {
    fn load(config: &TextConfig, vb: VarBuilder, stored: &StoredWeights) -> Result<Mlp> {
        let (d, i, bias) = (
            config.hidden_size,
            config.intermediate_size,
            config.mlp_bias,
        );
        Ok(Mlp {
            gate: stored.dense(&vb, "gate_proj", d, i, bias)?,
            up: stored.dense(&vb, "up_proj", d, i, bias)?,
            down: stored.dense(&vb, "down_proj", i, d, bias)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gated = (candle_nn::ops::silu(&self.gate.forward(x)?)? * self.up.forward(x)?)?;
        self.down.forward(&gated)
    }
}

struct Layer {
    input_norm: RmsNorm,
    attention: Attention,
    post_attention_norm: RmsNorm,
    mlp: Mlp,
}

/// RoPE's angles, position × frequency, as transformers computes them (float32: inverse
/// frequencies base^(−2i/d), times the position).
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(config: &TextConfig, device: &Device) -> Result<Rope> {
        let head_dim = config.head_dim();
        let base = config.rope_theta() as f32;
        let inverse: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
            .collect();
        let half = inverse.len();
        let positions = config.max_position_embeddings;
        let mut angles = Vec::with_capacity(positions * half);
        for position in 0..positions {
            angles.extend(inverse.iter().map(|f| position as f32 * f));
        }
        let angles = Tensor::from_vec(angles, (positions, half), device)?;
        Ok(Rope {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// Rotates [batch, heads, positions, head dim] for positions start.. .
    fn apply(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let positions = x.dim(2)?;
        let cos = self.cos.narrow(0, start, positions)?;
        let sin = self.sin.narrow(0, start, positions)?;
        candle_nn::rotary_emb::rope(x, &cos, &sin)
    }
}

pub struct TextModel {
    embed_tokens: TokenTable,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// The output projection's weight, [vocab, hidden]: a token table's shape (the same
    /// table where the checkpoint ties them).
    lm_head: TokenTable,
    rope: Rope,
    max_positions: usize,
}

impl TextModel {
    /// From the tensors under `vb` (`model.text_model`), the dense layers' weights and the
    /// token tables in `stored`, and the head `lm_head`'s name there (where `stored` has no
    /// such tensor, the head is the embedding table: a checkpoint with tied weights).
    pub fn load(
        config: &TextConfig,
        vb: VarBuilder,
        stored: &StoredWeights,
        lm_head: &str,
    ) -> Result<TextModel> {
        let d = config.hidden_size;
        let eps = config.rms_norm_eps;
        let embed_tokens = stored.table(
            &format!("{}.embed_tokens.weight", vb.prefix()),
            config.vocab_size,
            d,
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                Ok(Layer {
                    input_norm: candle_nn::rms_norm(d, eps, vb.pp("input_layernorm"))?,
                    attention: Attention::load(config, vb.pp("self_attn"), stored)?,
                    post_attention_norm: candle_nn::rms_norm(
                        d,
                        eps,
                        vb.pp("post_attention_layernorm"),
                    )?,
                    mlp: Mlp::load(config, vb.pp("mlp"), stored)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lm_head = if stored.contains(lm_head) {
            stored.table(lm_head, config.vocab_size, d)?
        } else {
            embed_tokens.clone()
        };
        Ok(TextModel {
            embed_tokens,
            layers,
            norm: candle_nn::rms_norm(d, eps, vb.pp("norm"))?,
            lm_head,
            rope: Rope::new(config, vb.device())?,
            max_positions: config.max_position_embeddings,
        })
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// [positions] token ids → [1, positions, hidden].
    pub fn embed(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        self.embed_tokens.rows(ids, device)?.unsqueeze(0)
    }

    /// Runs `embeddings` ([1, positions, hidden]) after what `cache` holds, adds their keys
    /// and values to it, and answers the logits of the last position ([vocab], float32).
    pub fn forward(&self, embeddings: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let positions = embeddings.dim(1)?;
        let start = cache.positions;
        if start + positions > self.max_positions {
            candle_core::bail!(
                "{} positions are more than the model's {}",
                start + positions,
                self.max_positions
            );
        }
        cache.layers.resize(self.layers.len(), None);
        let mut x = embeddings.clone();
        for (layer, kv) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let attended =
                layer
                    .attention
                    .forward(&layer.input_norm.forward(&x)?, &self.rope, start, kv)?;
            x = (x + attended)?;
            let mixed = layer.mlp.forward(&layer.post_attention_norm.forward(&x)?)?;
            x = (x + mixed)?;
        }
        cache.positions = start + positions;
        let last = x.narrow(1, positions - 1, 1)?.squeeze(0)?;
        self.lm_head
            .scores(&self.norm.forward(&last)?)?
            .flatten_all()
    }
}
