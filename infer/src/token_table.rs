//! A language model's token table, [vocabulary, width], kept in the checkpoint's own type
//! (float32 or 16-bit): the embedding of each token is a row of it, and where the checkpoint
//! ties them (Whisper always, a VLM maybe) the output projection is its transpose. Each decoded
//! token's scores read the whole table, the most memory a step touches (Whisper tiny's
//! 51,864 x 384: 40 MB in half precision instead of 80), so a 16-bit table is read in place,
//! through carapace-infer-kernels, never widened as a whole.

use candle_core::{DType, Device, Tensor};
use carapace_infer_kernels::{half_matvec, widen};
use rayon::prelude::*;

use crate::matmul::{Matrix, Threads, multiply};
use crate::stored::{Stored, storable, with_stored};

type Result<T> = candle_core::Result<T>;

/// Rows of the vocabulary scored per rayon task.
const SCORED_ROWS_PER_TASK: usize = 4096;

#[derive(Clone)]
pub struct TokenTable {
    /// [vocabulary, width], contiguous, F32, F16 or BF16: the checkpoint's tensor, not a copy.
    table: Tensor,
    vocabulary: usize,
    width: usize,
}

impl TokenTable {
    pub fn new(table: Tensor) -> Result<TokenTable> {
        let (vocabulary, width) = table.dims2()?;
        Ok(TokenTable {
            table: storable(table, "a token table")?,
            vocabulary,
            width,
        })
    }

    pub fn vocabulary(&self) -> usize {
        self.vocabulary
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// The embeddings of `tokens`, [tokens, width], float32.
    pub fn rows(&self, tokens: &[u32], device: &Device) -> Result<Tensor> {
        let width = self.width;
        let mut values = vec![0f32; tokens.len() * width];
        with_stored(&self.table, |rows| {
            for (&token, into) in tokens.iter().zip(values.chunks_exact_mut(width.max(1))) {
                if token as usize >= self.vocabulary {
                    candle_core::bail!("token {token} is not in the vocabulary");
                }
                let start = token as usize * width;
                match rows {
                    Stored::F32(v) => into.copy_from_slice(&v[start..start + width]),
                    Stored::Half(half, bits) => widen(half, &bits[start..start + width], into),
                }
            }
            Ok(())
        })??;
        Tensor::from_vec(values, (tokens.len(), width), device)
    }

    /// `hidden` [n, width] times the table, transposed: [n, vocabulary] scores.
    pub fn scores(&self, hidden: &Tensor) -> Result<Tensor> {
        let (n, width) = hidden.dims2()?;
        if width != self.width {
            candle_core::bail!(
                "hidden states of width {width}, a token table of {}",
                self.width
            );
        }
        let hidden = hidden
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let vocabulary = self.vocabulary;
        let mut scores = vec![0f32; n * vocabulary];
        with_stored(&self.table, |rows| match rows {
            Stored::F32(table) => multiply(
                &mut scores,
                Matrix::row_major(&hidden, n, width),
                Matrix::row_major(table, vocabulary, width).t(),
                1.0,
                false,
                Threads::Pool,
            ),
            Stored::Half(half, bits) => {
                for (x, out) in hidden
                    .chunks_exact(width.max(1))
                    .zip(scores.chunks_mut(vocabulary))
                {
                    out.par_chunks_mut(SCORED_ROWS_PER_TASK)
                        .zip(bits.par_chunks(SCORED_ROWS_PER_TASK * width.max(1)))
                        .for_each(|(out, rows)| half_matvec(half, rows, x, out));
                }
            }
        })?;
        Tensor::from_vec(scores, (n, vocabulary), &Device::Cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_scores_are_the_tables_in_every_type() {
        let device = Device::Cpu;
        let values: Vec<f32> = (0..5 * 3).map(|i| i as f32 * 0.25 - 1.5).collect();
        let table32 = Tensor::from_vec(values, (5, 3), &device).unwrap();
        let hidden = Tensor::new(&[[1f32, -2.0, 0.5], [0.0, 1.0, 3.0]], &device).unwrap();
        let want_scores = hidden
            .matmul(&table32.t().unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            // Quarters are exact in every type.
            let table = TokenTable::new(table32.to_dtype(dtype).unwrap()).unwrap();
            let rows = table
                .rows(&[4, 0], &device)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            assert_eq!(rows, [[1.5, 1.75, 2.0], [-1.5, -1.25, -1.0]], "{dtype:?}");
            let scores = table.scores(&hidden).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(scores, want_scores, "{dtype:?}");
            assert!(table.rows(&[5], &device).is_err(), "a token past the table");
        }
    }
}
