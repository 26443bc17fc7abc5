//! SmolVLM (transformers' Idefics3ForConditionalGeneration) put together: the image's vectors
//! from the encoder and connector take the places of the `<image>` tokens in the prompt's
//! embeddings, and the text model reads the whole sequence once (the prefill), then one token
//! a step through its key/value cache.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::config::VlmConfig;
use super::connector::Connector;
use super::encoder::VisionEncoder;
use super::text::{KvCache, TextModel};
use crate::error::{Error, Result};
use crate::weights::StoredWeights;

/// The output projection's weight; absent where it is tied to the token embeddings.
const LM_HEAD: &str = "lm_head.weight";

pub struct Idefics3 {
    pub config: VlmConfig,
    vision: VisionEncoder,
    connector: Connector,
    text: TextModel,
    device: Device,
}

impl Idefics3 {
    /// The model computes in float32 (the box's CPUs have no faster path for 16-bit floats,
    /// and the reference is float32); its dense layers and token tables keep a 16-bit
    /// checkpoint's weights as they are (SmolVLM ships bfloat16), widened as they are used:
    /// half the memory, the same results.
    pub const DTYPE: DType = DType::F32;

    /// From a checkpoint's model.safetensors (Hugging Face's names: `model.vision_model.*`,
    /// `model.connector.*`, `model.text_model.*`, `lm_head.weight`, the last absent where it is
    /// tied to the embeddings).
    pub fn load(config: VlmConfig, weights: &Path) -> Result<Idefics3> {
        let device = Device::Cpu;
        let table = |name: &str| name == LM_HEAD || name.ends_with("embed_tokens.weight");
        let keep = |name: &str| table(name) || crate::weights::is_dense_weight(name);
        let mut tensors: HashMap<String, Tensor> = crate::weights::read_safetensors(
            weights,
            crate::weights::float32_but_16_bit(keep),
            &device,
        )?;
        let stored = StoredWeights::take(&mut tensors, table)?;
        let vb = VarBuilder::from_tensors(tensors, Self::DTYPE, &device);
        let vision_config = &config.vision_config;
        let vision = VisionEncoder::load(vision_config, vb.pp("model.vision_model"), &stored)
            .map_err(Error::tensor(
                "building the vision encoder from model.safetensors",
            ))?;
        let connector = Connector::load(
            vision_config.hidden_size,
            config.text_config.hidden_size,
            config.scale_factor,
            vb.pp("model.connector"),
            &stored,
        )
        .map_err(Error::tensor(
            "building the connector from model.safetensors",
        ))?;
        let text = TextModel::load(
            &config.text_config,
            vb.pp("model.text_model"),
            &stored,
            LM_HEAD,
        )
        .map_err(Error::tensor(
            "building the text model from model.safetensors",
        ))?;
        Ok(Idefics3 {
            config,
            vision,
            connector,
            text,
            device,
        })
    }

    /// The encoder's square side in pixels.
    pub fn image_side(&self) -> usize {
        self.config.vision_config.image_size
    }

    pub fn max_positions(&self) -> usize {
        self.text.max_positions()
    }

    /// [3, side, side] normalized pixels → the image's rows in the text model's space,
    /// [image tokens, text hidden].
    pub fn image_features(&self, pixel_values: &[f32]) -> Result<Tensor> {
        let side = self.image_side();
        let pixels = Tensor::from_slice(pixel_values, (1, 3, side, side), &self.device)
            .map_err(Error::tensor("building the pixel tensor"))?;
        self.vision
            .forward(&pixels)
            .and_then(|patches| self.connector.forward(&patches))
            .and_then(|features| features.squeeze(0))
            .map_err(Error::tensor("encoding the image"))
    }

    /// Reads the prompt `ids` with `image` in place of its image tokens into a fresh cache;
    /// answers the logits of the last position and the cache.
    pub fn prefill(&self, ids: &[u32], image: &Tensor) -> Result<(Vec<f32>, KvCache)> {
        let action = "reading the prompt";
        let image_token = self.config.image_token_id;
        let image_rows = image.dim(0).map_err(Error::tensor(action))?;
        let slots = ids.iter().filter(|&&id| id == image_token).count();
        if slots != image_rows {
            return Err(Error::Inference {
                model: "vision-language model",
                reason: format!(
                    "the prompt has {slots} image tokens and the image {image_rows} rows; the prompt must come from chat_prompt"
                ),
            });
        }
        let mut cache = KvCache::default();
        let logits = self
            .text
            .embed(ids, &self.device)
            .and_then(|text| merge_image(&text, ids, image_token, image))
            .and_then(|embeddings| self.text.forward(&embeddings, &mut cache))
            .and_then(|logits| logits.to_vec1())
            .map_err(Error::tensor(action))?;
        Ok((logits, cache))
    }

    /// Reads `token` after what `cache` holds; answers the next logits.
    pub fn step(&self, token: u32, cache: &mut KvCache) -> Result<Vec<f32>> {
        self.text
            .embed(&[token], &self.device)
            .and_then(|embedding| self.text.forward(&embedding, cache))
            .and_then(|logits| logits.to_vec1())
            .map_err(Error::tensor("reading a generated token"))
    }
}

/// [1, positions, hidden] text embeddings with the image token positions replaced, in order, by
/// the rows of `image` (transformers' masked_scatter).
fn merge_image(
    text: &Tensor,
    ids: &[u32],
    image_token: u32,
    image: &Tensor,
) -> candle_core::Result<Tensor> {
    let positions = ids.len();
    let table = Tensor::cat(&[&text.squeeze(0)?, image], 0)?;
    let mut next_row = positions as u32;
    let rows: Vec<u32> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            if id == image_token {
                next_row += 1;
                next_row - 1
            } else {
                i as u32
            }
        })
        .collect();
    let rows = Tensor::new(rows, text.device())?;
    table.index_select(&rows, 0)?.unsqueeze(0)
}
