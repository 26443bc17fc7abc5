//! Image description with a small vision-language model on candle: SmolVLM (Hugging Face's
//! Idefics3 architecture: a SigLIP vision encoder, a pixel-shuffle connector, a Llama), chosen
//! because its 256M and 500M checkpoints are the sizes a Raspberry Pi 5's CPU answers with in
//! seconds, it is made of pieces this crate already runs (a ViT, a Llama-style decoder with a
//! key/value cache), and it takes one fixed square per image (64 tokens for 256M) where
//! Qwen2-VL's token count grows with the picture and Moondream's 1.9B weights are several
//! times larger. The model comes from a folder a model pack brings (config.json,
//! model.safetensors, tokenizer.json, preprocessor_config.json, as the checkpoint ships them);
//! the picture is resized as the reference processor does without splitting, put into
//! SmolVLM's chat prompt, and the answer is decoded greedily.

mod config;
mod connector;
mod encoder;
mod model;
mod preprocess;
mod prompt;
mod resample;
mod text;

use std::num::NonZeroUsize;
use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::threads::check_cpu_threads;
pub use config::{TextConfig, VisionConfig, VlmConfig};
pub use model::Idefics3;
pub use preprocess::{ImageProcessorConfig, decode_picture};
pub use prompt::{DEFAULT_QUESTION, chat_prompt};
pub use resample::{Rgb8, resize_lanczos};
pub use text::KvCache;

/// The most tokens an answer may have: a description, not an essay.
pub const MAX_ANSWER_TOKENS: usize = 256;
/// The longest question taken, in characters.
pub const MAX_QUESTION_CHARS: usize = 2000;

/// An answer and the tokens it took.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Description {
    pub text: String,
    pub tokens: Vec<u32>,
    /// Tokens of the prompt, image tokens included.
    pub prompt_tokens: usize,
    /// Whether generation stopped at the end of the turn (else at the token limit).
    pub finished: bool,
}

/// A loaded SmolVLM with its tokenizer and image processor settings.
pub struct Describer {
    model: Idefics3,
    tokenizer: Tokenizer,
    processor: ImageProcessorConfig,
    /// The ids that end an answer: `<end_of_utterance>` and config.json's eos.
    stop: Vec<u32>,
}

impl Describer {
    /// Loads config.json, model.safetensors, tokenizer.json and the processor's config from
    /// `dir`, to run on `threads` CPU threads.
    pub fn load(dir: &Path, threads: NonZeroUsize) -> Result<Describer> {
        check_cpu_threads(threads)?;
        let config = VlmConfig::read(&crate::embedder::model_file(dir, "config.json")?)?;
        let processor = ImageProcessorConfig::read(dir)?;
        let tokenizer_path = crate::embedder::model_file(dir, "tokenizer.json")?;
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|error| Error::BadTokenizer {
                path: tokenizer_path.clone(),
                reason: error.to_string(),
            })?;
        for token in [
            prompt::IMAGE_TOKEN,
            prompt::FAKE_IMAGE_TOKEN,
            prompt::GLOBAL_IMAGE_TOKEN,
        ] {
            let id = tokenizer.token_to_id(token);
            let expected = (token == prompt::IMAGE_TOKEN).then_some(config.image_token_id);
            if id.is_none() || (expected.is_some() && id != expected) {
                return Err(Error::BadTokenizer {
                    path: tokenizer_path,
                    reason: format!(
                        "{token} is {id:?} in it, and config.json's image_token_id is {}",
                        config.image_token_id
                    ),
                });
            }
        }
        let mut stop = config.text_config.eos_token_ids();
        stop.extend(tokenizer.token_to_id(prompt::END_OF_UTTERANCE));
        let weights = crate::embedder::model_file(dir, "model.safetensors")?;
        let model = Idefics3::load(config, &weights)?;
        Ok(Describer {
            model,
            tokenizer,
            processor,
            stop,
        })
    }

    pub fn model(&self) -> &Idefics3 {
        &self.model
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The encoder's input for `image`: [3, side, side], as the reference processor makes it.
    pub fn pixel_values(&self, image: &Rgb8) -> Vec<f32> {
        self.processor.pixel_values(image, self.model.image_side())
    }

    /// The prompt's token ids for `question`.
    pub fn prompt_ids(&self, question: &str) -> Result<Vec<u32>> {
        let text = chat_prompt(question, self.model.config.image_seq_len());
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|error| Error::Tokenize {
                reason: error.to_string(),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Answers `question` (None: "Describe this image.") about the PNG or JPEG in `image`,
    /// in at most `max_tokens` tokens.
    pub fn describe(
        &self,
        image: &[u8],
        question: Option<&str>,
        max_tokens: usize,
    ) -> Result<Description> {
        let question = question.map(str::trim).filter(|q| !q.is_empty());
        let question = question.unwrap_or(DEFAULT_QUESTION);
        if question.chars().count() > MAX_QUESTION_CHARS {
            return Err(Error::BadRequest {
                reason: format!(
                    "the prompt is longer than {MAX_QUESTION_CHARS} characters; ask a shorter question"
                ),
            });
        }
        // The image's own markers in a question would read as a second image.
        let markers = [
            prompt::IMAGE_TOKEN,
            prompt::FAKE_IMAGE_TOKEN,
            prompt::GLOBAL_IMAGE_TOKEN,
            prompt::END_OF_UTTERANCE,
        ];
        if let Some(marker) = markers.iter().find(|m| question.contains(*m)) {
            return Err(Error::BadRequest {
                reason: format!("the prompt may not contain {marker}; ask in plain words"),
            });
        }
        let pixels = self.pixel_values(&decode_picture(image)?);
        let ids = self.prompt_ids(question)?;
        let max_tokens = max_tokens
            .min(MAX_ANSWER_TOKENS)
            .min(self.model.max_positions().saturating_sub(ids.len()));
        let features = self.model.image_features(&pixels)?;
        let (mut logits, mut cache) = self.model.prefill(&ids, &features)?;
        let mut tokens = Vec::new();
        let mut finished = false;
        while tokens.len() < max_tokens {
            let token = argmax(&logits);
            if self.stop.contains(&token) {
                finished = true;
                break;
            }
            tokens.push(token);
            if tokens.len() < max_tokens {
                logits = self.model.step(token, &mut cache)?;
            }
        }
        let text = self
            .tokenizer
            .decode(&tokens, true)
            .map_err(|error| Error::Tokenize {
                reason: error.to_string(),
            })?;
        Ok(Description {
            text: text.trim().to_string(),
            tokens,
            prompt_tokens: ids.len(),
            finished,
        })
    }
}

/// A mid-grey PNG of `width` × `height`: a picture to measure the model with.
pub fn plain_png(width: u32, height: u32) -> Vec<u8> {
    let pixels = image::RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128]));
    let mut png = Vec::new();
    // Writing to memory fails only on a bug in the encoder; an empty picture then gets a
    // BadImage answer, not a panic.
    let _ = pixels.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png);
    png
}

/// The index of the highest score; the first of equal ones, as torch's argmax.
pub fn argmax(scores: &[f32]) -> u32 {
    let mut best = 0;
    for (index, score) in scores.iter().enumerate() {
        if *score > scores[best] {
            best = index;
        }
    }
    best as u32
}
