//! Dense layers, x·W + b, with W kept in the precision the checkpoint stores it: float32, or
//! one of the 16-bit formats (bfloat16: SmolVLM's; IEEE half: Whisper's). The products run in
//! float32: a 16-bit W is widened exactly, a slice at a time, just before gemm reads it, so a
//! 16-bit checkpoint runs in half the memory that float32 weights would take, with the same
//! results. W is kept transposed, [inputs, outputs] row-major: gemm multiplies that as it
//! lies, where transformers' [outputs, inputs] made it repack all of W on every product (for
//! one short sentence of the BERT encoder, 45% of the time).

use candle_core::{CpuStorage, DType, Module, Storage, Tensor};
use carapace_infer_kernels::{Half, half_vecmat, widen};
use rayon::prelude::*;

use crate::matmul::{Matrix, Threads, multiply};
use crate::stored::{Stored, storable, with_stored};

/// At most this many rows (tokens) take the path for few rows: W's rows split among rayon
/// tasks, each multiplying its slice by the rows without widening it. More rows share each
/// widened slice of W through one product over the pool.
const FEW_ROWS: usize = 8;
/// Slices of W's rows per pool thread on the path for few rows (measured: 4 and 8 alike, 1
/// and 16 slower).
const TASKS_PER_THREAD: usize = 4;
/// W's rows widened at a time on the path for many rows: gemm's own depth per pass, so the
/// output is read and written no more often than gemm would anyway.
const DEPTH_PER_PASS: usize = 256;
/// Values widened per rayon task.
const WIDEN_PER_TASK: usize = 64 << 10;

pub struct Dense {
    /// [inputs, outputs], contiguous, F32, F16 or BF16: the loaded tensor itself, not a copy,
    /// so that a model's load never holds a weight twice.
    weight: Tensor,
    bias: Option<Vec<f32>>,
    inputs: usize,
    outputs: usize,
}

impl Dense {
    /// The layer whose W is `weight_t`, [inputs, outputs] (float32 or 16-bit), plus `bias`.
    pub fn new(weight_t: Tensor, bias: Option<Vec<f32>>) -> candle_core::Result<Dense> {
        let (inputs, outputs) = weight_t.dims2()?;
        if bias.as_ref().is_some_and(|b| b.len() != outputs) {
            candle_core::bail!(
                "a bias of {} values for {outputs} outputs",
                bias.map_or(0, |b| b.len())
            );
        }
        Ok(Dense {
            weight: storable(weight_t, "a dense layer's weight")?,
            bias,
            inputs,
            outputs,
        })
    }

    /// The layer from a checkpoint's weight, [outputs, inputs] as transformers stores it
    /// (transposed here, in its own type), and bias.
    pub fn from_checkpoint(weight: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Dense> {
        let bias = bias
            .map(|b| b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>())
            .transpose()?;
        Dense::new(weight.t()?.contiguous()?, bias)
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// The layer applied to every row of `x` ([rows, inputs]): [rows, outputs].
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.inputs;
        let mut out = match &self.bias {
            Some(bias) => bias.repeat(rows),
            None => vec![0.0; rows * self.outputs],
        };
        self.multiply_into(x, &mut out);
        out
    }

    /// `out` (a residual, [rows, outputs]) += the layer applied to `x`: the sum written in
    /// the product's own pass.
    pub fn add_to(&self, x: &[f32], out: &mut [f32]) {
        if let Some(bias) = &self.bias {
            out.par_chunks_mut(self.outputs * 32).for_each(|rows| {
                for row in rows.chunks_mut(self.outputs) {
                    row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                }
            });
        }
        self.multiply_into(x, out);
    }

    /// `out` += x · W.
    fn multiply_into(&self, x: &[f32], out: &mut [f32]) {
        let rows = x.len() / self.inputs;
        assert_eq!(
            rows * self.inputs,
            x.len(),
            "rows of {} inputs, {} values",
            self.inputs,
            x.len()
        );
        if rows == 0 {
            return;
        }
        let multiplied = with_stored(&self.weight, |values| match values {
            Stored::F32(w) => {
                let x = Matrix::row_major(x, rows, self.inputs);
                let w = Matrix::row_major(w, self.inputs, self.outputs);
                multiply(out, x, w, 1.0, true, Threads::Pool);
            }
            Stored::Half(half, bits) if rows <= FEW_ROWS => self.few_rows(half, bits, x, out),
            Stored::Half(half, bits) => self.many_rows(half, bits, x, out),
        });
        multiplied.expect("Dense::new keeps only weights that with_stored reads");
    }

    /// Slices of W's rows, one rayon task each, multiplied straight from their 16-bit values
    /// by the matching inputs of each row of `x` (carapace-infer-kernels' `half_vecmat`: W read
    /// once per row, never widened into memory); the tasks' partial products summed into
    /// `out`. Whole rows, so that each task streams one contiguous run of W: with W split by
    /// columns instead, each task read a short piece of every row, and two threads streamed
    /// SmolVLM-256M's text layers (bfloat16, 212 MB a token) at 7.7 GB/s, where slices of rows
    /// stream at 14.6 (27.6 against 14.6 ms a token, measured on a 2-core machine).
    fn few_rows(&self, half: Half, bits: &[u16], x: &[f32], out: &mut [f32]) {
        let (inputs, outputs) = (self.inputs, self.outputs);
        let rows = x.len() / inputs;
        let depth = inputs.div_ceil(TASKS_PER_THREAD * rayon::current_num_threads());
        let firsts: Vec<usize> = (0..inputs).step_by(depth).collect();
        let partials: Vec<Vec<f32>> = firsts
            .par_iter()
            .map(|&first| {
                let depth = depth.min(inputs - first);
                let mut partial = vec![0f32; rows * outputs];
                for (x_row, partial_row) in x
                    .chunks_exact(inputs)
                    .zip(partial.chunks_exact_mut(outputs))
                {
                    let x_slice = &x_row[first..first + depth];
                    half_vecmat(
                        half,
                        &bits[first * outputs..],
                        outputs,
                        x_slice,
                        partial_row,
                    );
                }
                partial
            })
            .collect();
        for partial in partials {
            out.iter_mut().zip(&partial).for_each(|(o, p)| *o += p);
        }
    }

    /// W a slice of its rows at a time: the slice widened over the pool, then one product of
    /// x's matching columns by it, over the pool, accumulated into `out`.
    fn many_rows(&self, half: Half, bits: &[u16], x: &[f32], out: &mut [f32]) {
        let (inputs, outputs) = (self.inputs, self.outputs);
        let rows = x.len() / inputs;
        let mut widened = vec![0f32; DEPTH_PER_PASS.min(inputs) * outputs];
        for first in (0..inputs).step_by(DEPTH_PER_PASS) {
            let depth = DEPTH_PER_PASS.min(inputs - first);
            let widened = &mut widened[..depth * outputs];
            widened
                .par_chunks_mut(WIDEN_PER_TASK)
                .zip(bits[first * outputs..(first + depth) * outputs].par_chunks(WIDEN_PER_TASK))
                .for_each(|(into, from)| widen(half, from, into));
            multiply(
                out,
                Matrix::strided(&x[first..], rows, depth, inputs, 1),
                Matrix::row_major(widened, depth, outputs),
                1.0,
                true,
                Threads::Pool,
            );
        }
    }
}

/// For candle models (the VLM, Whisper): [..., inputs] float32 → [..., outputs].
impl Module for Dense {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut dims = x.dims().to_vec();
        if dims.last() != Some(&self.inputs) {
            candle_core::bail!("a dense layer of {} inputs given {dims:?}", self.inputs);
        }
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        let (storage, layout) = x.storage_and_layout();
        let out = match (&*storage, layout.contiguous_offsets()) {
            (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) => {
                self.apply(&values[start..end])
            }
            _ => candle_core::bail!("a dense layer runs on float32 values on the CPU"),
        };
        *dims.last_mut().expect("checked above") = self.outputs;
        Tensor::from_vec(out, dims, x.device())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Reproducible values in [-1, 1).
    fn values(count: usize, seed: u32) -> Vec<f32> {
        (0..count)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 2000) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// x · Wᵀ + b the long way, W [outputs, inputs].
    fn textbook(x: &[f32], w: &[f32], b: &[f32], inputs: usize) -> Vec<f32> {
        let outputs = b.len();
        x.chunks(inputs)
            .flat_map(|row| {
                (0..outputs).map(move |o| {
                    let dot: f64 = (0..inputs)
                        .map(|i| f64::from(row[i]) * f64::from(w[o * inputs + i]))
                        .sum();
                    (dot + f64::from(b[o])) as f32
                })
            })
            .collect()
    }

    #[test]
    fn float32_half_and_bfloat16_weights_give_the_textbook_product_for_few_and_many_rows() {
        // Widths that are not multiples of a block or of gemm's lanes, and more inputs than
        // one pass of the path for many rows takes.
        let (inputs, outputs) = (DEPTH_PER_PASS + 37, 200);
        let device = Device::Cpu;
        let w32 =
            Tensor::from_vec(values(outputs * inputs, 1), (outputs, inputs), &device).unwrap();
        let bias = Tensor::from_vec(values(outputs, 2), outputs, &device).unwrap();
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let w = w32.to_dtype(dtype).unwrap();
            let dense = Dense::from_checkpoint(&w, Some(&bias)).unwrap();
            // The reference reads the same stored values, widened.
            let w_values = w
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let b_values = bias.to_vec1::<f32>().unwrap();
            for rows in [0, 1, 3, FEW_ROWS, FEW_ROWS + 1, 70] {
                let x = values(rows * inputs, rows as u32);
                let want = textbook(&x, &w_values, &b_values, inputs);
                let got = dense.apply(&x);
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() < 1e-3,
                        "{dtype:?}, {rows} rows: {g} against {w}"
                    );
                }
                let mut residual = vec![1.0; rows * outputs];
                dense.add_to(&x, &mut residual);
                for (r, w) in residual.iter().zip(&want) {
                    assert!((r - 1.0 - w).abs() < 1e-3, "{dtype:?}, {rows} rows, added");
                }
            }
        }
    }

    #[test]
    fn as_a_module_it_maps_the_last_dimension() {
        let device = Device::Cpu;
        let w = Tensor::from_vec(values(6, 3), (3, 2), &device)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let dense = Dense::from_checkpoint(&w, None).unwrap();
        let x = Tensor::from_vec(values(8, 4), (1, 4, 2), &device).unwrap();
        let y = dense.forward(&x).unwrap();
        assert_eq!(y.dims(), [1, 4, 3]);
        let want = x
            .matmul(
                &w.to_dtype(DType::F32)
                    .unwrap()
                    .t()
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap(),
            )
            .unwrap();
        let diff = (y - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        let wrong = Tensor::zeros((1, 4, 3), DType::F32, &device).unwrap();
        assert!(dense.forward(&wrong).is_err(), "3 inputs into a layer of 2");
    }
}
