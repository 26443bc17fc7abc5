//! One encoder layer: self-attention within each sentence, then the feed-forward block, each
//! added to its input and normalised (post-norm, as BERT).

use std::ops::Range;

use rayon::prelude::*;

use super::parts::LayerNorm;
use super::{Config, Tensors};
use crate::dense::Dense;
use crate::error::Result;
use crate::matmul::{Matrix, Threads, multiply};

pub(super) struct Layer {
    /// The query, key and value projections as one: [3 · hidden, hidden], so that the three
    /// are one matrix product.
    qkv: Dense,
    attention_output: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
    heads: usize,
}

impl Layer {
    pub fn load(tensors: &mut Tensors<'_>, name: &str, config: &Config) -> Result<Layer> {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        let eps = config.layer_norm_eps as f32;
        let name = |part: &str| format!("{name}.{part}");
        let qkv = ["query", "key", "value"].map(|which| name(&format!("attention.self.{which}")));
        let qkv = tensors.linear(&qkv.each_ref().map(String::as_str), hidden, hidden)?;
        Ok(Layer {
            qkv,
            attention_output: tensors.linear(&[&name("attention.output.dense")], hidden, hidden)?,
            attention_norm: tensors.layer_norm(&name("attention.output.LayerNorm"), hidden, eps)?,
            intermediate: tensors.linear(&[&name("intermediate.dense")], hidden, inner)?,
            output: tensors.linear(&[&name("output.dense")], inner, hidden)?,
            output_norm: tensors.layer_norm(&name("output.LayerNorm"), hidden, eps)?,
            heads: config.num_attention_heads,
        })
    }

    /// `x` ([pieces, hidden]) through the layer, in place.
    pub fn forward(&self, x: &mut [f32], sentences: &[Range<usize>]) {
        let qkv = self.qkv.apply(x);
        let context = attend(&qkv, sentences, self.heads, self.qkv.inputs());
        self.attention_output.add_to(&context, x);
        self.attention_norm.apply(x);
        let mut inner = self.intermediate.apply(x);
        inner
            .par_chunks_mut(crate::fast_ops::MIN_TASK)
            .for_each(carapace_infer_kernels::gelu_erf);
        self.output.add_to(&inner, x);
        self.output_norm.apply(x);
    }
}

/// Scaled dot-product attention of every piece over the pieces of its own sentence, each head
/// a rayon task per sentence. `qkv` is [pieces, 3 · hidden] (queries, keys, values side by
/// side); returns [pieces, hidden] with the heads side by side.
fn attend(qkv: &[f32], sentences: &[Range<usize>], heads: usize, hidden: usize) -> Vec<f32> {
    let width = 3 * hidden;
    let head_dim = hidden / heads;
    let pieces = qkv.len() / width;
    let scale = 1.0 / (head_dim as f32).sqrt();
    // Each head's output for all pieces, [heads, pieces, head_dim], so that every task
    // writes a slice of its own.
    let mut by_head = vec![0f32; heads * pieces * head_dim];
    let mut tasks = Vec::with_capacity(heads * sentences.len());
    for (head, mut rest) in by_head.chunks_mut(pieces * head_dim).enumerate() {
        for sentence in sentences {
            let (out, after) = rest.split_at_mut(sentence.len() * head_dim);
            tasks.push((head, sentence.clone(), out));
            rest = after;
        }
    }
    tasks.into_par_iter().for_each(|(head, sentence, out)| {
        let len = sentence.len();
        let start = sentence.start * width + head * head_dim;
        let part = |offset: usize| Matrix::strided(&qkv[start + offset..], len, head_dim, width, 1);
        let mut scores = vec![0f32; len * len];
        multiply(
            &mut scores,
            part(0),
            part(hidden).t(),
            scale,
            false,
            Threads::One,
        );
        carapace_infer_kernels::softmax_rows(&mut scores, len);
        let scores = Matrix::row_major(&scores, len, len);
        multiply(out, scores, part(2 * hidden), 1.0, false, Threads::One);
    });
    let mut context = vec![0f32; pieces * hidden];
    for (head, values) in by_head.chunks(pieces * head_dim).enumerate() {
        for (row, piece) in context.chunks_mut(hidden).zip(values.chunks(head_dim)) {
            row[head * head_dim..][..head_dim].copy_from_slice(piece);
        }
    }
    context
}
