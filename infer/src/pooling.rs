//! From the transformer's per-piece vectors to one sentence vector, the way sentence-transformers
//! does it for all-MiniLM-L6-v2: the mean over the pieces the attention mask keeps (padding
//! left out), then scaled to unit length so that a dot product is the cosine.

use candle_core::{Result, Tensor};

/// sentence-transformers divides by at least this many pieces (a row with an all-zero mask
/// pools to zeros instead of NaN).
const MIN_PIECES: f64 = 1e-9;
/// torch.nn.functional.normalize divides by at least this norm.
const MIN_NORM: f64 = 1e-12;

/// The mean of `hidden` (batch, pieces, dim) over the pieces where `mask` (batch, pieces) is 1.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.maximum(MIN_PIECES)?;
    summed.broadcast_div(&counts)
}

/// Each row of `vectors` (batch, dim) divided by its Euclidean length.
pub fn l2_normalize(vectors: &Tensor) -> Result<Tensor> {
    let norms = vectors.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(MIN_NORM)?;
    vectors.broadcast_div(&norms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn tensor3(rows: &[&[&[f32]]]) -> Tensor {
        let (b, s, d) = (rows.len(), rows[0].len(), rows[0][0].len());
        let flat: Vec<f32> = rows
            .iter()
            .flat_map(|r| r.iter().flat_map(|p| p.iter().copied()))
            .collect();
        Tensor::from_vec(flat, (b, s, d), &Device::Cpu).unwrap()
    }

    fn mask(rows: &[&[u32]]) -> Tensor {
        let (b, s) = (rows.len(), rows[0].len());
        let flat: Vec<u32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_vec(flat, (b, s), &Device::Cpu).unwrap()
    }

    fn assert_close(actual: &[Vec<f32>], expected: &[&[f32]]) {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert_eq!(a.len(), e.len());
            for (x, y) in a.iter().zip(e.iter()) {
                assert!((x - y).abs() < 1e-6, "{actual:?} != {expected:?}");
            }
        }
    }

    #[test]
    fn mean_pool_averages_the_kept_pieces_and_ignores_padding() {
        let hidden = tensor3(&[
            &[&[1.0, 2.0], &[3.0, 4.0], &[100.0, -100.0]],
            &[&[-2.0, 6.0], &[50.0, 50.0], &[50.0, 50.0]],
        ]);
        let kept = mask(&[&[1, 1, 0], &[1, 0, 0]]);
        let pooled = mean_pool(&hidden, &kept).unwrap().to_vec2::<f32>().unwrap();
        assert_close(&pooled, &[&[2.0, 3.0], &[-2.0, 6.0]]);
    }

    #[test]
    fn mean_pool_of_an_all_padding_row_is_zero_not_nan() {
        let hidden = tensor3(&[&[&[7.0, 8.0], &[9.0, 10.0]]]);
        let pooled = mean_pool(&hidden, &mask(&[&[0, 0]]))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_close(&pooled, &[&[0.0, 0.0]]);
    }

    #[test]
    fn l2_normalize_scales_each_row_to_unit_length() {
        let vectors =
            Tensor::from_vec(vec![3.0f32, 4.0, 0.0, -2.0, 0.0, 0.0], (2, 3), &Device::Cpu).unwrap();
        let unit = l2_normalize(&vectors).unwrap().to_vec2::<f32>().unwrap();
        assert_close(&unit, &[&[0.6, 0.8, 0.0], &[-1.0, 0.0, 0.0]]);
    }

    #[test]
    fn l2_normalize_leaves_a_zero_row_zero() {
        let vectors = Tensor::zeros((1, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let unit = l2_normalize(&vectors).unwrap().to_vec2::<f32>().unwrap();
        assert_close(&unit, &[&[0.0, 0.0, 0.0, 0.0]]);
    }
}
