//! Idefics3's config.json (SmolVLM's architecture), read as transformers reads it: a field a
//! checkpoint leaves out takes transformers' default, so a real checkpoint's file loads as is.
//! Only what this engine computes is accepted: an activation or a RoPE variant it does not
//! implement is refused by name rather than run wrongly.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole model: a SigLIP-style vision encoder, the pixel-shuffle connector, a Llama.
#[derive(Debug, Clone, Deserialize)]
pub struct VlmConfig {
    #[serde(default = "default_image_token_id")]
    pub image_token_id: u32,
    #[serde(default = "default_scale_factor")]
    pub scale_factor: usize,
    pub vision_config: VisionConfig,
    pub text_config: TextConfig,
}

/// transformers' Idefics3VisionConfig, defaults included.
#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    #[serde(default = "default_vision_hidden")]
    pub hidden_size: usize,
    #[serde(default = "default_vision_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "default_vision_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_vision_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    #[serde(default = "default_vision_act")]
    pub hidden_act: String,
    #[serde(default = "default_vision_eps")]
    pub layer_norm_eps: f64,
}

/// transformers' LlamaConfig as Idefics3 builds it (its rms_norm_eps default is 1e-5).
#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_text_act")]
    pub hidden_act: String,
    #[serde(default = "default_text_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// transformers before 5 write it here ...
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// ... transformers 5 in rope_parameters, with the variant.
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// An older name for a RoPE variant; null in SmolVLM.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_type: Option<String>,
}

impl VlmConfig {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<VlmConfig> {
        let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        let bad = |reason: String| Error::BadConfig {
            path: path.to_path_buf(),
            reason,
        };
        let config: VlmConfig =
            serde_json::from_str(&text).map_err(|error| bad(error.to_string()))?;
        config.check().map_err(bad)?;
        Ok(config)
    }

    fn check(&self) -> std::result::Result<(), String> {
        let vision = &self.vision_config;
        let text = &self.text_config;
        if !matches!(vision.hidden_act.as_str(), "gelu_pytorch_tanh" | "gelu") {
            return Err(format!(
                "the vision encoder's activation {:?} is not one this engine has (gelu_pytorch_tanh, gelu)",
                vision.hidden_act
            ));
        }
        if text.hidden_act != "silu" {
            return Err(format!(
                "the text model's activation {:?} is not silu, the only one this engine has",
                text.hidden_act
            ));
        }
        let rope_type = text
            .rope_parameters
            .as_ref()
            .and_then(|p| p.rope_type.as_deref())
            .unwrap_or("default");
        let scaled = text.rope_scaling.as_ref().is_some_and(|v| !v.is_null());
        if rope_type != "default" || scaled {
            return Err(format!(
                "the text model's RoPE variant ({rope_type}, rope_scaling {:?}) is not the plain one this engine has",
                text.rope_scaling
            ));
        }
        let side = vision.image_size / vision.patch_size.max(1);
        if vision.patch_size == 0
            || !vision.image_size.is_multiple_of(vision.patch_size)
            || self.scale_factor == 0
            || !side.is_multiple_of(self.scale_factor)
        {
            return Err(format!(
                "image_size {} must be a multiple of patch_size {}, and the {side} patches a side a multiple of scale_factor {}",
                vision.image_size, vision.patch_size, self.scale_factor
            ));
        }
        if vision.num_attention_heads == 0
            || !vision
                .hidden_size
                .is_multiple_of(vision.num_attention_heads)
        {
            return Err("the vision hidden_size must divide into its attention heads".into());
        }
        let heads = text.num_attention_heads;
        if heads == 0
            || !heads.is_multiple_of(text.key_value_heads().max(1))
            || text.key_value_heads() == 0
        {
            return Err(
                "the text model's attention heads must be a multiple of its key/value heads".into(),
            );
        }
        Ok(())
    }

    /// Image tokens in the prompt per image: one per `scale_factor`² patches.
    pub fn image_seq_len(&self) -> usize {
        let side = self.vision_config.image_size / self.vision_config.patch_size;
        side * side / (self.scale_factor * self.scale_factor)
    }
}

impl TextConfig {
    pub fn key_value_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0)
    }

    /// The end-of-sequence ids config.json names (one or a list).
    pub fn eos_token_ids(&self) -> Vec<u32> {
        match &self.eos_token_id {
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().map(|n| n as u32).into_iter().collect()
            }
            Some(serde_json::Value::Array(ids)) => ids
                .iter()
                .filter_map(|id| id.as_u64().map(|n| n as u32))
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn default_image_token_id() -> u32 {
    128_257
}
fn default_scale_factor() -> usize {
    2
}
fn default_vision_hidden() -> usize {
    1152
}
fn default_vision_intermediate() -> usize {
    3072
}
fn default_vision_layers() -> usize {
    12
}
fn default_vision_heads() -> usize {
    16
}
fn default_channels() -> usize {
    3
}
fn default_image_size() -> usize {
    224
}
fn default_patch_size() -> usize {
    32
}
fn default_vision_act() -> String {
    "gelu_pytorch_tanh".into()
}
fn default_vision_eps() -> f64 {
    1e-6
}
fn default_text_act() -> String {
    "silu".into()
}
fn default_text_eps() -> f64 {
    1e-5
}
fn default_max_positions() -> usize {
    2048
}
