//! A language model's token table, [vocabulary, width], kept in the checkpoint's own type
//! (float32 or 16-bit): the embedding of each token is a row of it, and where the checkpoint
//! ties them (Whisper always, a VLM maybe) the output projection is its transpose. Each decoded
//! token's scores read the whole table, the most memory a step touches (Whisper tiny's
//! 51,864 x 384: 40 MB in half precision instead of 80), so a 16-bit table is read in place,
//! through carapace-infer-kernels, never widened as a whole.

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use carapace_infer_kernels::{Half, half_matvec, widen};
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::matmul::{Matrix, Threads, multiply};

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

/// The table's values as stored.
enum Rows<'a> {
    F32(&'a [f32]),
    Half(Half, &'a [u16]),
}

impl TokenTable {
    pub fn new(table: Tensor) -> Result<TokenTable> {
        let (vocabulary, width) = table.dims2()?;
        if !matches!(table.dtype(), DType::F32 | DType::F16 | DType::BF16) {
            candle_core::bail!("a token table in {:?}", table.dtype());
        }
        Ok(TokenTable {
            table: table.contiguous()?,
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

    /// `f` on the table's values, read in place.
    fn with_rows<R>(&self, f: impl FnOnce(Rows<'_>) -> R) -> Result<R> {
        let (storage, layout) = self.table.storage_and_layout();
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("the token table is not contiguous");
        };
        Ok(match &*storage {
            Storage::Cpu(CpuStorage::F32(v)) => f(Rows::F32(&v[start..end])),
            Storage::Cpu(CpuStorage::F16(v)) => {
                f(Rows::Half(Half::F16, v[start..end].reinterpret_cast()))
            }
            Storage::Cpu(CpuStorage::BF16(v)) => {
                f(Rows::Half(Half::Bf16, v[start..end].reinterpret_cast()))
            }
            _ => candle_core::bail!("the token table is not float32 or 16-bit on the CPU"),
        })
    }

    /// The embeddings of `tokens`, [tokens, width], float32.
    pub fn rows(&self, tokens: &[u32], device: &Device) -> Result<Tensor> {
        let width = self.width;
        let mut values = vec![0f32; tokens.len() * width];
        self.with_rows(|rows| {
            for (&token, into) in tokens.iter().zip(values.chunks_exact_mut(width.max(1))) {
                if token as usize >= self.vocabulary {
                    candle_core::bail!("token {token} is not in the vocabulary");
                }
                let start = token as usize * width;
                match rows {
                    Rows::F32(v) => into.copy_from_slice(&v[start..start + width]),
                    Rows::Half(half, bits) => widen(half, &bits[start..start + width], into),
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
        self.with_rows(|rows| match rows {
            Rows::F32(table) => multiply(
                &mut scores,
                Matrix::row_major(&hidden, n, width),
                Matrix::row_major(table, vocabulary, width).t(),
                1.0,
                false,
                Threads::Pool,
            ),
            Rows::Half(half, bits) => {
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
