//! From the transformer's per-piece vectors to one sentence vector, the way sentence-transformers
//! does it for all-MiniLM-L6-v2: the mean over the sentence's word pieces (its attention mask
//! leaves out the padding, which a packed batch does not have), then scaled to unit length so
//! that a dot product is the cosine.

use std::ops::Range;

/// torch.nn.functional.normalize divides by at least this norm.
const MIN_NORM: f32 = 1e-12;

/// The mean of the rows `pieces` of `hidden` ([rows, width], row-major); zeros for no rows.
pub fn mean_pool(hidden: &[f32], width: usize, pieces: Range<usize>) -> Vec<f32> {
    let mut sum = vec![0f32; width];
    let count = pieces.len();
    for row in hidden[pieces.start * width..pieces.end * width].chunks(width) {
        sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    if count > 0 {
        sum.iter_mut().for_each(|s| *s /= count as f32);
    }
    sum
}

/// `vector` divided by its Euclidean length, in place.
pub fn l2_normalize(vector: &mut [f32]) {
    let norm = vector
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(MIN_NORM);
    vector.iter_mut().for_each(|v| *v /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: &[f32], expected: &[f32]) {
        assert_eq!(actual.len(), expected.len());
        for (x, y) in actual.iter().zip(expected) {
            assert!((x - y).abs() < 1e-6, "{actual:?} != {expected:?}");
        }
    }

    #[test]
    fn mean_pool_averages_only_the_sentence_s_own_rows() {
        let hidden = [100.0, -100.0, 1.0, 2.0, 3.0, 4.0, 50.0, 50.0];
        assert_close(&mean_pool(&hidden, 2, 1..3), &[2.0, 3.0]);
        assert_close(&mean_pool(&hidden, 2, 3..4), &[50.0, 50.0]);
    }

    #[test]
    fn mean_pool_of_no_rows_is_zero_not_nan() {
        assert_close(&mean_pool(&[7.0, 8.0], 2, 1..1), &[0.0, 0.0]);
    }

    #[test]
    fn l2_normalize_scales_to_unit_length() {
        let mut vector = [3.0, 4.0, 0.0];
        l2_normalize(&mut vector);
        assert_close(&vector, &[0.6, 0.8, 0.0]);
    }

    #[test]
    fn l2_normalize_leaves_a_zero_vector_zero() {
        let mut vector = [0.0; 4];
        l2_normalize(&mut vector);
        assert_close(&vector, &[0.0; 4]);
    }
}
