//! A token table again in int8, for the product each decoded token makes with all of it: the
//! scores of Whisper tiny's 51,864 x 384 table read 20 MB in int8 against 40 in half
//! precision, and that product is bound by memory, not arithmetic. Each int8 score comes with
//! a bound on how far it may lie from the full-precision one, so the caller can score again,
//! exactly, the rows that could still be the largest (token_table.rs).
//!
//! Each row is scaled by its largest magnitude to [-127, 127], and the vector it is multiplied
//! by likewise, per product. With x = x̂ + dx and w = ŵ + dw, |dx| ≤ sx/2 and |dw| ≤ sw/2 in
//! every element, x·w − x̂·ŵ = x̂·dw + dx·ŵ + dx·dw, so
//! |x·w − x̂·ŵ| ≤ sw/2 · Σ|x̂| + sx/2 · Σ|ŵ| + n · sx · sw / 4,
//! plus the rounding of the full-precision sum itself (n float32 additions).

use carapace_infer_kernels::{I8_DOT_MAX_LEN, i8_matvec};
use rayon::prelude::*;

/// Rows scored per rayon task.
const ROWS_PER_TASK: usize = 4096;

pub struct Int8Rows {
    /// [rows, width], each row divided by its scale and rounded.
    values: Vec<i8>,
    /// What 1 stands for in each row.
    scales: Vec<f32>,
    /// Σ|ŵ| of each row, in the row's own units.
    magnitudes: Vec<f32>,
    width: usize,
}

/// Scores of one vector against every row, and how far each may be from the exact one.
pub struct Approximate {
    pub scores: Vec<f32>,
    pub bounds: Vec<f32>,
}

impl Int8Rows {
    /// The `rows` x `width` matrix whose row r `row(r, into)` writes, in int8.
    pub fn quantize(rows: usize, width: usize, row: impl Fn(usize, &mut [f32]) + Sync) -> Int8Rows {
        assert!(
            width <= I8_DOT_MAX_LEN,
            "rows of {width} values are too long for int8 products"
        );
        let mut values = vec![0i8; rows * width];
        let mut scales = vec![0f32; rows];
        let mut magnitudes = vec![0f32; rows];
        values
            .par_chunks_mut(width.max(1))
            .zip(scales.par_iter_mut())
            .zip(magnitudes.par_iter_mut())
            .enumerate()
            .for_each_init(
                || vec![0f32; width],
                |widened, (r, ((out, scale), magnitude))| {
                    row(r, widened);
                    *scale = quantize(widened, out);
                    *magnitude = *scale * out.iter().map(|&q| f32::from(q).abs()).sum::<f32>();
                },
            );
        Int8Rows {
            values,
            scales,
            magnitudes,
            width,
        }
    }

    pub fn rows(&self) -> usize {
        self.scales.len()
    }

    /// `x` (`width` values) times every row, in int8, with each score's bound.
    pub fn approximate(&self, x: &[f32]) -> Approximate {
        assert_eq!(x.len(), self.width, "a vector of another width");
        let mut quantized = vec![0i8; x.len()];
        let x_scale = quantize(x, &mut quantized);
        let x_magnitude = x_scale * quantized.iter().map(|&q| f32::from(q).abs()).sum::<f32>();
        let x_largest = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let n = self.width as f32;
        // Float32 sums of n terms are within n · 2⁻²³ of Σ|xᵢ wᵢ| (doubled for the int8
        // score's own two roundings); Σ|wᵢ| ≤ Σ|ŵᵢ| + n · sw/2.
        let rounding = n * f32::EPSILON * 2.0 * x_largest;
        let mut dots = vec![0i32; self.rows()];
        dots.par_chunks_mut(ROWS_PER_TASK)
            .zip(self.values.par_chunks(ROWS_PER_TASK * self.width.max(1)))
            .for_each(|(out, rows)| i8_matvec(rows, &quantized, out));
        let (scores, bounds) = dots
            .par_iter()
            .zip(&self.scales)
            .zip(&self.magnitudes)
            .map(|((&dot, &scale), &magnitude)| {
                let score = dot as f32 * x_scale * scale;
                let bound = scale / 2.0 * x_magnitude
                    + x_scale / 2.0 * magnitude
                    + n * x_scale * scale / 4.0
                    + rounding * (magnitude + n * scale / 2.0);
                // One step of float32 above the bound's own rounding.
                (score, bound * (1.0 + 4.0 * f32::EPSILON))
            })
            .unzip();
        Approximate { scores, bounds }
    }
}

/// `values` divided by the scale that takes their largest magnitude to 127, rounded into `out`;
/// the scale: 0 for all zeros (whose int8 form is all zeros), not finite where a value is not
/// (the scores and bounds then are not either).
fn quantize(values: &[f32], out: &mut [i8]) -> f32 {
    // NaN, once met, stays the largest (f32::max would drop it).
    let largest = values.iter().fold(0f32, |m, v| {
        if v.abs() > m || v.is_nan() {
            v.abs()
        } else {
            m
        }
    });
    if largest == 0.0 || !largest.is_finite() {
        out.fill(0);
        return if largest == 0.0 { 0.0 } else { f32::NAN };
    }
    let scale = largest / 127.0;
    for (q, &v) in out.iter_mut().zip(values) {
        *q = (v / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reproducible values in [-scale, scale].
    pub(crate) fn values(count: usize, scale: f32, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    #[test]
    fn every_int8_score_lies_within_its_bound_of_the_exact_product() {
        let (rows, width) = (300, 384);
        let mut table = values(rows * width, 0.2, 1);
        // A row of zeros, one with a single large value, one of equal values.
        table[..width].fill(0.0);
        table[width + 5] = 40.0;
        table[2 * width..3 * width].fill(-0.125);
        let int8 = Int8Rows::quantize(rows, width, |r, into| {
            into.copy_from_slice(&table[r * width..(r + 1) * width])
        });
        for (seed, x_scale) in [(2, 3.0), (3, 0.001), (4, 50.0)] {
            let x = values(width, x_scale, seed);
            let got = int8.approximate(&x);
            for r in 0..rows {
                let exact: f64 = table[r * width..(r + 1) * width]
                    .iter()
                    .zip(&x)
                    .map(|(&w, &v)| f64::from(w) * f64::from(v))
                    .sum();
                let off = (f64::from(got.scores[r]) - exact).abs();
                assert!(
                    off <= f64::from(got.bounds[r]),
                    "row {r}: {} is {off} from {exact}, bound {}",
                    got.scores[r],
                    got.bounds[r]
                );
            }
            assert_eq!(got.scores[0], 0.0);
        }
    }

    #[test]
    fn the_bounds_are_tight_enough_to_leave_few_contenders() {
        let (rows, width) = (4000, 384);
        let table = values(rows * width, 0.1, 7);
        let int8 = Int8Rows::quantize(rows, width, |r, into| {
            into.copy_from_slice(&table[r * width..(r + 1) * width])
        });
        let x = values(width, 2.0, 8);
        let got = int8.approximate(&x);
        let floor = got
            .scores
            .iter()
            .zip(&got.bounds)
            .map(|(s, b)| s - b)
            .fold(f32::NEG_INFINITY, f32::max);
        let contenders = got
            .scores
            .iter()
            .zip(&got.bounds)
            .filter(|(s, b)| *s + *b >= floor)
            .count();
        assert!(
            (1..=40).contains(&contenders),
            "{contenders} of {rows} rows could be the largest"
        );
    }
}
