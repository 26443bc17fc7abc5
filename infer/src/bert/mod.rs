//! A BERT encoder (all-MiniLM-L6-v2's architecture) on the CPU in f32, written for sentence
//! embeddings. The sentences of a batch are packed one after another, none padded, so every
//! dense layer is one matrix product over all the batch's word pieces and attention runs per
//! sentence and head (rayon tasks) on the pieces that sentence has. Padding a batch to its
//! longest sentence, as candle's BertModel and sentence-transformers do, made every dense
//! layer multiply the padding too, and candle's GELU and softmax called libm per value.

mod layer;
mod parts;

use std::ops::Range;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::dense::Dense;
use crate::error::{Error, Result};
use layer::Layer;
use parts::LayerNorm;

/// What config.json says about the encoder (transformers' BertConfig; other keys are ignored).
/// Made only by [`Config::read`], which refuses what this encoder cannot run.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    hidden_act: String,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    layer_norm_eps: f64,
    #[serde(default = "absolute")]
    position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

impl Config {
    /// config.json at `path`, or an error naming the file and what it says that this encoder
    /// cannot run.
    pub fn read(path: &Path) -> Result<Config> {
        let bad = |reason: String| Error::BadConfig {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        let config: Config = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        match config.unsupported() {
            Some(reason) => Err(bad(reason)),
            None => Ok(config),
        }
    }

    fn unsupported(&self) -> Option<String> {
        if self.hidden_act != "gelu" {
            return Some(format!(
                "hidden_act is {:?}; this engine runs BERT models with \"gelu\"",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Some(format!(
                "position_embedding_type is {:?}; this engine runs \"absolute\" ones",
                self.position_embedding_type
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Some(format!(
                "hidden_size {} does not split into {} attention heads",
                self.hidden_size, self.num_attention_heads
            ));
        }
        None
    }
}

/// A batch of sentences, packed: the word pieces of each sentence in a row, `sentences[i]`
/// the range of sentence i (in order, back to back, from 0).
pub struct Packed<'a> {
    pub ids: &'a [u32],
    pub type_ids: &'a [u32],
    pub sentences: &'a [Range<usize>],
}

/// A loaded encoder.
pub struct Bert {
    word_embeddings: Vec<f32>,
    position_embeddings: Vec<f32>,
    type_embeddings: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    max_positions: usize,
}

impl Bert {
    /// Reads the encoder's tensors from `weights` (model.safetensors, names as transformers
    /// writes them, with or without a "bert." prefix), checking each one's shape.
    pub fn load(weights: &Path, config: &Config) -> Result<Bert> {
        let mut tensors = Tensors {
            path: weights,
            all: crate::weights::read_safetensors(weights, |_, _| DType::F32, &Device::Cpu)?,
            prefix: "",
        };
        if tensors
            .all
            .contains_key("bert.embeddings.word_embeddings.weight")
        {
            tensors.prefix = "bert.";
        }
        let hidden = config.hidden_size;
        let eps = config.layer_norm_eps as f32;
        let bert = Bert {
            word_embeddings: tensors.take(
                "embeddings.word_embeddings.weight",
                &[config.vocab_size, hidden],
            )?,
            position_embeddings: tensors.take(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, hidden],
            )?,
            type_embeddings: tensors.take(
                "embeddings.token_type_embeddings.weight",
                &[config.type_vocab_size, hidden],
            )?,
            embedding_norm: tensors.layer_norm("embeddings.LayerNorm", hidden, eps)?,
            layers: (0..config.num_hidden_layers)
                .map(|i| Layer::load(&mut tensors, &format!("encoder.layer.{i}"), config))
                .collect::<Result<_>>()?,
            hidden,
            max_positions: config.max_position_embeddings,
        };
        Ok(bert)
    }

    /// The last layer's output for every word piece of `batch`: [pieces, hidden], row-major.
    pub fn forward(&self, batch: &Packed<'_>) -> Result<Vec<f32>> {
        let mut x = self.embed(batch)?;
        for layer in &self.layers {
            layer.forward(&mut x, batch.sentences);
        }
        Ok(x)
    }

    /// Word, position and type embeddings summed, then normalised.
    fn embed(&self, batch: &Packed<'_>) -> Result<Vec<f32>> {
        let hidden = self.hidden;
        let pieces = batch.ids.len();
        let back_to_back = batch.sentences.iter().try_fold(0, |end, s| {
            (s.start == end && s.end >= end).then_some(s.end)
        });
        if batch.type_ids.len() != pieces || back_to_back != Some(pieces) {
            return Err(Error::Tokenize {
                reason: format!(
                    "{pieces} word pieces, {} type ids and sentences {:?}, which do not cover \
                     them back to back",
                    batch.type_ids.len(),
                    batch.sentences
                ),
            });
        }
        let row = |table: &'static str, values: &[f32], index: usize| -> Result<Range<usize>> {
            let rows = values.len() / hidden;
            if index < rows {
                Ok(index * hidden..(index + 1) * hidden)
            } else {
                Err(Error::Tokenize {
                    reason: format!("{table} {index} is past the model's {rows}"),
                })
            }
        };
        let mut x = vec![0f32; pieces * hidden];
        for sentence in batch.sentences {
            if sentence.len() > self.max_positions {
                return Err(Error::Tokenize {
                    reason: format!(
                        "a sentence of {} word pieces is longer than the model's {} positions",
                        sentence.len(),
                        self.max_positions
                    ),
                });
            }
            for (position, piece) in sentence.clone().enumerate() {
                let word = row(
                    "word piece",
                    &self.word_embeddings,
                    batch.ids[piece] as usize,
                )?;
                let kind = row(
                    "type id",
                    &self.type_embeddings,
                    batch.type_ids[piece] as usize,
                )?;
                let at = row("position", &self.position_embeddings, position)?;
                let out = &mut x[piece * hidden..][..hidden];
                for (i, value) in out.iter_mut().enumerate() {
                    *value = self.word_embeddings[word.start + i]
                        + self.position_embeddings[at.start + i]
                        + self.type_embeddings[kind.start + i];
                }
            }
        }
        self.embedding_norm.apply(&mut x);
        Ok(x)
    }
}

/// model.safetensors' tensors, taken out one by one as the encoder is built (each is copied
/// into a vector of its own and its tensor dropped, so the load peaks at the weights plus one).
struct Tensors<'a> {
    path: &'a Path,
    all: std::collections::HashMap<String, Tensor>,
    prefix: &'static str,
}

impl Tensors<'_> {
    /// The tensor `name`, checked to be of `shape`, taken out of the file's tensors.
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let bad = |reason: String| Error::BadWeights {
            path: self.path.to_path_buf(),
            reason,
        };
        let tensor = self
            .all
            .remove(&full)
            .ok_or_else(|| bad(format!("it has no tensor {full}")))?;
        if tensor.dims() != shape {
            return Err(bad(format!(
                "{full} is {:?}, config.json makes it {shape:?}",
                tensor.dims()
            )));
        }
        Ok(tensor)
    }

    /// The values of the tensor `name`, checked to be of `shape`, row-major.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        values(&self.tensor(name, shape)?)
    }

    /// The dense layers `names`, each [outputs, inputs] as transformers stores them, as one
    /// layer whose outputs are theirs side by side (query, key and value as one product), its
    /// weight transposed once here.
    fn linear(&mut self, names: &[&str], inputs: usize, outputs: usize) -> Result<Dense> {
        let mut weights = Vec::with_capacity(names.len());
        let mut biases = Vec::with_capacity(names.len());
        for name in names {
            weights.push(self.tensor(&format!("{name}.weight"), &[outputs, inputs])?);
            biases.push(self.tensor(&format!("{name}.bias"), &[outputs])?);
        }
        Tensor::cat(&weights, 0)
            .and_then(|stacked| Dense::from_checkpoint(&stacked, Some(&Tensor::cat(&biases, 0)?)))
            .map_err(Error::tensor(
                "building a dense layer from model.safetensors",
            ))
    }

    fn layer_norm(&mut self, name: &str, width: usize, eps: f32) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.take(&format!("{name}.weight"), &[width])?,
            bias: self.take(&format!("{name}.bias"), &[width])?,
            eps,
        })
    }
}

/// A tensor's values, row-major.
fn values(tensor: &Tensor) -> Result<Vec<f32>> {
    tensor
        .flatten_all()
        .and_then(|flat| flat.to_vec1::<f32>())
        .map_err(Error::tensor("reading model.safetensors"))
}

/// Rows per rayon task in the row-wise steps (normalisation): small batches stay on one thread.
const ROWS_PER_TASK: usize = 32;

/// `f` on every row of `width` values, spread over rayon's pool in groups of rows.
fn for_each_row(values: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync) {
    values
        .par_chunks_mut(width * ROWS_PER_TASK)
        .for_each(|rows| rows.chunks_mut(width).for_each(&f));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An encoder of width 2 with no layers: 3 word pieces, 2 positions, 1 type.
    fn tiny() -> Bert {
        Bert {
            word_embeddings: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
            position_embeddings: vec![0.0, 0.0, 0.5, -0.5],
            type_embeddings: vec![0.0, 0.0],
            embedding_norm: LayerNorm {
                weight: vec![1.0, 1.0],
                bias: vec![0.0, 0.0],
                eps: 1e-12,
            },
            layers: Vec::new(),
            hidden: 2,
            max_positions: 2,
        }
    }

    /// `ids` (all of type 0) cut into `sentences`, through the tiny encoder.
    fn forward(ids: &[u32], sentences: &[Range<usize>]) -> Result<Vec<f32>> {
        let type_ids = vec![0; ids.len()];
        let batch = Packed {
            ids,
            type_ids: &type_ids,
            sentences,
        };
        tiny().forward(&batch)
    }

    /// The error for a batch of one sentence, `sentence`, of `ids`.
    fn error(ids: &[u32], sentence: Range<usize>) -> String {
        match forward(ids, &[sentence]) {
            Err(Error::Tokenize { reason }) => reason,
            other => panic!("expected a Tokenize error, got {other:?}"),
        }
    }

    #[test]
    fn each_sentence_counts_its_positions_from_zero() {
        // Word 0 at position 0, word 1 at position 1, word 0 at position 0 again, each
        // normalised: [1, 0] -> [1, -1]; [0.5, 0.5] -> [0, 0]; [1, 0] -> [1, -1].
        let x = forward(&[0, 1, 0], &[0..2, 2..3]).unwrap();
        let expected = [1.0, -1.0, 0.0, 0.0, 1.0, -1.0];
        assert!(
            x.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-5),
            "{x:?}"
        );
    }

    #[test]
    fn a_word_piece_past_the_vocabulary_is_refused_not_read() {
        assert_eq!(error(&[0, 3], 0..2), "word piece 3 is past the model's 3");
    }

    #[test]
    fn a_sentence_longer_than_the_positions_is_refused() {
        assert_eq!(
            error(&[0, 1, 2], 0..3),
            "a sentence of 3 word pieces is longer than the model's 2 positions"
        );
    }

    #[test]
    fn sentences_that_do_not_cover_the_pieces_are_refused() {
        assert_eq!(
            error(&[0, 1, 2], 0..2),
            "3 word pieces, 3 type ids and sentences [0..2], which do not cover them back to back"
        );
        assert!(matches!(
            forward(&[0, 1, 2], &[0..2, 1..3]),
            Err(Error::Tokenize { .. })
        ));
    }
}
