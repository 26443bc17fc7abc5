//! Layer normalisation on rows of f32 values (the dense layers are crate::dense's).

use super::for_each_row;

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
