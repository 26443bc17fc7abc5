//! The encoder's two building blocks on rows of f32 values: a dense layer and layer
//! normalisation.

use super::for_each_row;
use crate::matmul::{Matrix, Threads, multiply};

/// x·Wᵀ + b. W is kept transposed, [inputs, outputs] row-major: read that way gemm takes it
/// as it is, while transformers' [outputs, inputs] made gemm repack all of W on every call
/// (for one short sentence, 45% of the time).
pub(super) struct Linear {
    pub weight_t: Vec<f32>,
    pub bias: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
}

impl Linear {
    /// The layer applied to every row of `x` ([rows, inputs]): [rows, outputs].
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.inputs;
        let mut out: Vec<f32> = self.bias.repeat(rows);
        self.multiply_into(x, &mut out);
        out
    }

    /// `out` (a residual, [rows, outputs]) += the layer applied to `x`: the sum written in
    /// the product's own pass.
    pub fn add_to(&self, x: &[f32], out: &mut [f32]) {
        for_each_row(out, self.outputs, |row| {
            row.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b)
        });
        self.multiply_into(x, out);
    }

    fn multiply_into(&self, x: &[f32], out: &mut [f32]) {
        let rows = x.len() / self.inputs;
        let x = Matrix::row_major(x, rows, self.inputs);
        let weight_t = Matrix::row_major(&self.weight_t, self.inputs, self.outputs);
        multiply(out, x, weight_t, 1.0, true, Threads::Pool);
    }
}

/// (x − mean) / √(variance + eps) · weight + bias over each row, as torch's LayerNorm.
pub(super) struct LayerNorm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub eps: f32,
}

impl LayerNorm {
    pub fn apply(&self, x: &mut [f32]) {
        let width = self.weight.len();
        for_each_row(x, width, |row| {
            let mean = row.iter().sum::<f32>() / width as f32;
            let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
            let scale = 1.0 / (variance + self.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *v = (*v - mean) * scale * w + b;
            }
        });
    }
}
