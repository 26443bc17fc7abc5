//! A language model's token table, [vocabulary, width], kept in the checkpoint's own type
//! (float32 or 16-bit): the embedding of each token is a row of it, and where the checkpoint
//! ties them (Whisper always, a VLM maybe) the output projection is its transpose. Each decoded
//! token's scores read the whole table, the most memory a step touches (Whisper tiny's
//! 51,864 x 384: 40 MB in half precision instead of 80), so a 16-bit table is read in place,
//! through carapace-infer-kernels, never widened as a whole; a decoder that only needs the
//! likeliest token (Whisper's greedy steps) reads an int8 copy instead, 20 MB, and the few
//! rows that could be the likeliest again in full (`masked_scores`).

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use carapace_infer_kernels::{half_matvec, widen};
use rayon::prelude::*;

use crate::int8_rows::Int8Rows;
use crate::matmul::{Matrix, Threads, multiply};
use crate::stored::{Stored, storable, with_stored};

type Result<T> = candle_core::Result<T>;

/// Rows of the vocabulary scored per rayon task.
const SCORED_ROWS_PER_TASK: usize = 4096;

#[derive(Clone)]
pub struct TokenTable {
    /// [vocabulary, width], contiguous, F32, F16 or BF16: the checkpoint's tensor, not a copy.
    table: Tensor,
    /// The table again in int8, where `with_int8_scores` asked for it.
    int8: Option<Arc<Int8Rows>>,
    vocabulary: usize,
    width: usize,
}

impl TokenTable {
    pub fn new(table: Tensor) -> Result<TokenTable> {
        let (vocabulary, width) = table.dims2()?;
        Ok(TokenTable {
            table: storable(table, "a token table")?,
            int8: None,
            vocabulary,
            width,
        })
    }

    /// A 16-bit table with an int8 copy beside it (half its size) for `masked_scores`: the
    /// decoder that picks one token a step reads that, not the whole table. A float32 table
    /// stays as it is: its scores come from gemm, whose sums a row scored again alone need not
    /// round the same way.
    pub fn with_int8_scores(mut self) -> Result<TokenTable> {
        let width = self.width;
        let int8 = with_stored(&self.table, |rows| match rows {
            Stored::F32(_) => None,
            Stored::Half(half, bits) => {
                Some(Int8Rows::quantize(self.vocabulary, width, |r, into| {
                    widen(half, &bits[r * width..(r + 1) * width], into)
                }))
            }
        })?;
        self.int8 = int8.map(Arc::new);
        Ok(self)
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

    /// The scores of one hidden state `x` plus `mask` (a value per token, −∞ for a token that
    /// may not come next), for picking the largest: that one, and every score that could be
    /// as large, is computed from the stored table as `scores` computes it; the others are
    /// int8 products, each within its bound of that and below the largest. From the int8
    /// copy where there is one (`with_int8_scores`): a step reads half the memory.
    pub fn masked_scores(&self, x: &[f32], mask: &[f32]) -> Result<Vec<f32>> {
        if x.len() != self.width || mask.len() != self.vocabulary {
            candle_core::bail!(
                "a hidden state of {} values and a mask of {} for a {}x{} token table",
                x.len(),
                mask.len(),
                self.vocabulary,
                self.width
            );
        }
        let approximate = self.int8.as_ref().map(|int8| int8.approximate(x));
        let Some(approximate) = approximate.filter(|a| a.bounds.iter().all(|b| b.is_finite()))
        else {
            let hidden = Tensor::from_slice(x, (1, self.width), &Device::Cpu)?;
            let scores = self.scores(&hidden)?.flatten_all()?.to_vec1::<f32>()?;
            return Ok(scores.iter().zip(mask).map(|(s, m)| s + m).collect());
        };
        let mut scores = approximate.scores;
        // The largest score is at least the largest lower bound; a row whose upper bound is
        // below that cannot be the largest, nor equal to it.
        let floor = scores
            .iter()
            .zip(&approximate.bounds)
            .zip(mask)
            .map(|((s, b), m)| s - b + m)
            .fold(f32::NEG_INFINITY, f32::max);
        let contenders = scores
            .iter_mut()
            .zip(&approximate.bounds)
            .zip(mask)
            .enumerate()
            .filter(|(_, ((s, b), m))| **s + **b + **m >= floor)
            .map(|(r, ((s, _), _))| (r, s));
        // Each row as `scores` sums it (half_matvec's sums do not depend on the rows beside).
        with_stored(&self.table, |table| match table {
            Stored::Half(half, bits) => {
                for (r, score) in contenders {
                    let row = &bits[r * self.width..(r + 1) * self.width];
                    half_matvec(half, row, x, std::slice::from_mut(score));
                }
                Ok(())
            }
            Stored::F32(_) => Err(candle_core::Error::Msg(
                "a float32 token table has no int8 copy".into(),
            )),
        })??;
        Ok(scores.iter().zip(mask).map(|(s, m)| s + m).collect())
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

    #[test]
    fn masked_scores_pick_what_the_full_scores_pick_and_score_it_the_same() {
        let device = Device::Cpu;
        let (vocabulary, width) = (3000, 96);
        let mut values = crate::int8_rows::tests::values(vocabulary * width, 0.1, 11);
        // Two rows the same: the first of equal scores is the pick.
        let (first, second) = (values[..width].to_vec(), 2000 * width);
        values[second..second + width].copy_from_slice(&first);
        let table = Tensor::from_vec(values, (vocabulary, width), &device).unwrap();
        let mut mask = vec![0f32; vocabulary];
        mask[17..40].fill(f32::NEG_INFINITY);
        for dtype in [DType::F16, DType::BF16, DType::F32] {
            let plain = TokenTable::new(table.to_dtype(dtype).unwrap()).unwrap();
            let int8 = plain.clone().with_int8_scores().unwrap();
            for round in 0..40 {
                let mut x = crate::int8_rows::tests::values(width, 3.0, 100 + round);
                if round == 0 {
                    // Row 0 (and its twin) the largest.
                    x = first.iter().map(|v| v * 50.0).collect();
                }
                let hidden = Tensor::from_slice(&x, (1, width), &device).unwrap();
                let full: Vec<f32> = plain
                    .scores(&hidden)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let full: Vec<f32> = full.iter().zip(&mask).map(|(s, m)| s + m).collect();
                let got = int8.masked_scores(&x, &mask).unwrap();
                let argmax =
                    |v: &[f32]| (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b });
                let (want, picked) = (argmax(&full), argmax(&got));
                assert_eq!(picked, want, "{dtype:?} round {round}");
                assert_eq!(
                    got[picked].to_bits(),
                    full[want].to_bits(),
                    "{dtype:?} round {round}"
                );
                if round == 0 {
                    assert_eq!(picked, 0, "{dtype:?}: the first of two equal rows");
                }
                for (r, (g, f)) in got.iter().zip(&full).enumerate() {
                    assert!(
                        g == f || (g - f).abs() < 0.05 * (1.0 + f.abs()),
                        "{dtype:?} row {r}: {g} against {f}"
                    );
                }
                assert_eq!(plain.masked_scores(&x, &mask).unwrap(), full);
            }
        }
        assert!(
            TokenTable::new(table)
                .unwrap()
                .masked_scores(&[0.0; 3], &mask)
                .is_err()
        );
    }
}
