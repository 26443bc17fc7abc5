//! Whisper's encoder and decoder on candle, from Hugging Face's tensor names, with a key/value
//! cache in the decoder's self-attention: each new token attends to the keys and values kept
//! from the tokens before it, so a step costs one token's work, not the whole prefix's (the
//! decoder of candle-transformers' Whisper re-runs the prefix every step). The cross-attention's
//! keys and values come from the audio and are computed once per 30-second window.

use candle_core::{DType, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, LayerNorm, VarBuilder};

use crate::dense::Dense;
use crate::token_table::TokenTable;
use crate::weights::StoredWeights;

/// The model's dimensions, from Hugging Face's config.json.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct WhisperConfig {
    pub num_mel_bins: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_layers: usize,
    pub decoder_attention_heads: usize,
    pub vocab_size: usize,
    pub max_source_positions: usize,
    pub max_target_positions: usize,
    #[serde(default)]
    pub suppress_tokens: Option<Vec<u32>>,
    #[serde(default)]
    pub begin_suppress_tokens: Option<Vec<u32>>,
}

type Result<T> = candle_core::Result<T>;

const LAYER_NORM_EPS: f64 = 1e-5;

struct Attention {
    query: Dense,
    key: Dense,
    value: Dense,
    out: Dense,
    heads: usize,
}

impl Attention {
    fn load(d: usize, heads: usize, vb: VarBuilder, stored: &StoredWeights) -> Result<Attention> {
        Ok(Attention {
            query: stored.dense(&vb, "q_proj", d, d, true)?,
            key: stored.dense(&vb, "k_proj", d, d, false)?,
            value: stored.dense(&vb, "v_proj", d, d, true)?,
            out: stored.dense(&vb, "out_proj", d, d, true)?,
            heads,
        })
    }

    /// [batch, positions, d] → [batch, heads, positions, d / heads].
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, positions, d) = x.dims3()?;
        x.reshape((batch, positions, self.heads, d / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// The keys and values of `x`, split into heads.
    fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.split_heads(&self.key.forward(x)?)?,
            self.split_heads(&self.value.forward(x)?)?,
        ))
    }

    /// `x` attending to `keys` and `values` ([batch, heads, m, d / heads]); with
    /// `causal_past`, each of `x`'s positions sees the `causal_past` keys before it and those
    /// up to its own.
    fn attend(
        &self,
        x: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        causal_past: Option<usize>,
    ) -> Result<Tensor> {
        let (batch, positions, d) = x.dims3()?;
        let scale = 1.0 / ((d / self.heads) as f64).sqrt();
        let query = self.split_heads(&self.query.forward(x)?)?;
        let mixed = crate::attention::attention(&query, keys, values, scale, causal_past)?
            .transpose(1, 2)?
            .reshape((batch, positions, d))?;
        self.out.forward(&mixed)
    }
}

struct FeedForward {
    norm: LayerNorm,
    up: Dense,
    down: Dense,
}

impl FeedForward {
    fn load(d: usize, vb: &VarBuilder, stored: &StoredWeights) -> Result<FeedForward> {
        Ok(FeedForward {
            norm: candle_nn::layer_norm(d, LAYER_NORM_EPS, vb.pp("final_layer_norm"))?,
            up: stored.dense(vb, "fc1", d, 4 * d, true)?,
            down: stored.dense(vb, "fc2", 4 * d, d, true)?,
        })
    }

    /// `x` plus the block's feed-forward of it (exact GELU, as Whisper).
    fn residual(&self, x: &Tensor) -> Result<Tensor> {
        let hidden = crate::fast_ops::gelu_erf(self.up.forward(&self.norm.forward(x)?)?)?;
        x + self.down.forward(&hidden)?
    }
}

struct EncoderLayer {
    attention: Attention,
    attention_norm: LayerNorm,
    feed_forward: FeedForward,
}

/// Audio (a log-mel spectrogram) to the features the decoder attends to.
pub struct Encoder {
    conv1: Conv1d,
    conv2: Conv1d,
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    norm: LayerNorm,
}

impl Encoder {
    fn load(config: &WhisperConfig, vb: VarBuilder, stored: &StoredWeights) -> Result<Encoder> {
        let d = config.d_model;
        let same = Conv1dConfig {
            padding: 1,
            ..Default::default()
        };
        let halving = Conv1dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let layers = (0..config.encoder_layers)
            .map(|n| {
                let vb = vb.pp(format!("layers.{n}"));
                Ok(EncoderLayer {
                    attention: Attention::load(
                        d,
                        config.encoder_attention_heads,
                        vb.pp("self_attn"),
                        stored,
                    )?,
                    attention_norm: candle_nn::layer_norm(
                        d,
                        LAYER_NORM_EPS,
                        vb.pp("self_attn_layer_norm"),
                    )?,
                    feed_forward: FeedForward::load(d, &vb, stored)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder {
            conv1: candle_nn::conv1d(config.num_mel_bins, d, 3, same, vb.pp("conv1"))?,
            conv2: candle_nn::conv1d(d, d, 3, halving, vb.pp("conv2"))?,
            positions: vb.get((config.max_source_positions, d), "embed_positions.weight")?,
            layers,
            norm: candle_nn::layer_norm(d, LAYER_NORM_EPS, vb.pp("layer_norm"))?,
        })
    }

    /// `mel` [1, mel bins, frames] → [1, frames / 2, d].
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let x = crate::fast_ops::gelu_erf(self.conv1.forward(mel)?)?;
        let x = crate::fast_ops::gelu_erf(self.conv2.forward(&x)?)?.transpose(1, 2)?;
        let positions = x.dim(1)?;
        let mut x = x.broadcast_add(&self.positions.narrow(0, 0, positions)?)?;
        for layer in &self.layers {
            let normed = layer.attention_norm.forward(&x)?;
            let (keys, values) = layer.attention.keys_values(&normed)?;
            x = (&x + layer.attention.attend(&normed, &keys, &values, None)?)?;
            x = layer.feed_forward.residual(&x)?;
        }
        self.norm.forward(&x)
    }
}

struct DecoderLayer {
    self_attention: Attention,
    self_attention_norm: LayerNorm,
    cross_attention: Attention,
    cross_attention_norm: LayerNorm,
    feed_forward: FeedForward,
}

/// What the decoder keeps between steps of one window: per layer, the self-attention's keys
/// and values so far and the cross-attention's keys and values of the audio.
#[derive(Clone)]
pub struct DecoderCache {
    past: Vec<Option<(Tensor, Tensor)>>,
    audio: Vec<(Tensor, Tensor)>,
    length: usize,
}

impl DecoderCache {
    /// The tokens decoded so far.
    pub fn len(&self) -> usize {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }
}

/// Tokens and audio features to the next token's scores.
pub struct Decoder {
    /// The token embeddings, which are also the output projection.
    embeddings: TokenTable,
    positions: Tensor,
    layers: Vec<DecoderLayer>,
    norm: LayerNorm,
}

impl Decoder {
    fn load(config: &WhisperConfig, vb: VarBuilder, stored: &StoredWeights) -> Result<Decoder> {
        let d = config.d_model;
        let heads = config.decoder_attention_heads;
        let layers = (0..config.decoder_layers)
            .map(|n| {
                let vb = vb.pp(format!("layers.{n}"));
                let norm = |name: &str| candle_nn::layer_norm(d, LAYER_NORM_EPS, vb.pp(name));
                Ok(DecoderLayer {
                    self_attention: Attention::load(d, heads, vb.pp("self_attn"), stored)?,
                    self_attention_norm: norm("self_attn_layer_norm")?,
                    cross_attention: Attention::load(d, heads, vb.pp("encoder_attn"), stored)?,
                    cross_attention_norm: norm("encoder_attn_layer_norm")?,
                    feed_forward: FeedForward::load(d, &vb, stored)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Decoder {
            embeddings: stored
                .table(
                    &format!("{}.embed_tokens.weight", vb.prefix()),
                    config.vocab_size,
                    d,
                )?
                .with_int8_scores()?,
            positions: vb.get((config.max_target_positions, d), "embed_positions.weight")?,
            layers,
            norm: candle_nn::layer_norm(d, LAYER_NORM_EPS, vb.pp("layer_norm"))?,
        })
    }

    /// A fresh cache for decoding against `audio` (the encoder's output).
    pub fn start(&self, audio: &Tensor) -> Result<DecoderCache> {
        let audio = self
            .layers
            .iter()
            .map(|layer| layer.cross_attention.keys_values(audio))
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderCache {
            past: vec![None; self.layers.len()],
            audio,
            length: 0,
        })
    }

    /// The most tokens one window can hold (448 for every Whisper).
    pub fn max_tokens(&self) -> usize {
        self.positions.dim(0).unwrap_or(0)
    }

    /// Runs `tokens` after those already in `cache` (adding them to it) and returns the final
    /// hidden state of each, [tokens, d]. Several tokens at once attend causally among
    /// themselves, so a prompt goes in one call.
    pub fn forward(&self, tokens: &[u32], cache: &mut DecoderCache) -> Result<Tensor> {
        let past = cache.length;
        let count = tokens.len();
        if count == 0 || past + count > self.max_tokens() {
            candle_core::bail!(
                "{count} tokens after {past} do not fit the decoder's {} positions",
                self.max_tokens()
            );
        }
        let device = self.positions.device();
        let mut x = self
            .embeddings
            .rows(tokens, device)?
            .add(&self.positions.narrow(0, past, count)?)?
            .unsqueeze(0)?;
        let causal_past = (count > 1).then_some(past);
        for (layer, (kept, audio)) in self
            .layers
            .iter()
            .zip(cache.past.iter_mut().zip(&cache.audio))
        {
            let normed = layer.self_attention_norm.forward(&x)?;
            let (new_keys, new_values) = layer.self_attention.keys_values(&normed)?;
            let (keys, values) = match kept.take() {
                Some((keys, values)) => (
                    Tensor::cat(&[&keys, &new_keys], 2)?,
                    Tensor::cat(&[&values, &new_values], 2)?,
                ),
                None => (new_keys, new_values),
            };
            x = (&x
                + layer
                    .self_attention
                    .attend(&normed, &keys, &values, causal_past)?)?;
            *kept = Some((keys, values));
            let normed = layer.cross_attention_norm.forward(&x)?;
            x = (&x
                + layer
                    .cross_attention
                    .attend(&normed, &audio.0, &audio.1, None)?)?;
            x = layer.feed_forward.residual(&x)?;
        }
        cache.length += count;
        self.norm.forward(&x)?.squeeze(0)
    }

    /// Scores over the vocabulary for each row of `hidden` ([n, d] → [n, vocabulary]): the
    /// output projection is the token embeddings, transposed.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.embeddings.scores(hidden)
    }

    /// One hidden state's scores plus `mask`, exact where they could be the largest
    /// (TokenTable::masked_scores): greedy decoding's step.
    pub fn masked_scores(&self, hidden: &[f32], mask: &[f32]) -> Result<Vec<f32>> {
        self.embeddings.masked_scores(hidden, mask)
    }
}

/// A whole Whisper.
pub struct Whisper {
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub config: WhisperConfig,
}

impl Whisper {
    /// Builds the model from Hugging Face's tensor names: the dense layers' weights and the
    /// token table from `stored`, the rest from `vb` (f32 on the CPU).
    pub fn load(config: WhisperConfig, vb: VarBuilder, stored: &StoredWeights) -> Result<Whisper> {
        Ok(Whisper {
            encoder: Encoder::load(&config, vb.pp("model.encoder"), stored)?,
            decoder: Decoder::load(&config, vb.pp("model.decoder"), stored)?,
            config,
        })
    }

    /// The dtype the model computes in.
    pub const DTYPE: DType = DType::F32;

    /// Whether model.safetensors' tensor `name` is a token table (kept in the checkpoint's
    /// type, as the dense layers' weights are: the shipped weights are half precision).
    pub fn is_token_table(name: &str) -> bool {
        name.ends_with("embed_tokens.weight")
    }
}
