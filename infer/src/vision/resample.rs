//! Pillow's LANCZOS resize (libImaging/Resample.c), to the bit: SmolVLM's processor resizes
//! with Pillow in 8 bits twice (the longest side to its `size`, then to the encoder's square),
//! and any other resize (the image crate's Lanczos3 included) gives other pixels and so other
//! logits. Pillow resizes horizontally, rounds to 8 bits, then vertically, each output pixel a
//! weighted sum with weights in 22-bit fixed point.

/// Pillow's PRECISION_BITS for 8-bit images: 32 − 8 − 2.
const PRECISION_BITS: u32 = 22;
/// LANCZOS's support: three lobes each side.
const SUPPORT: f64 = 3.0;

/// An 8-bit RGB image, rows of interleaved R, G, B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Pillow's `Image.resize((width, height), Image.LANCZOS)` of an RGB image.
pub fn resize_lanczos(image: &Rgb8, width: usize, height: usize) -> Rgb8 {
    if image.width == width && image.height == height {
        return image.clone();
    }
    let mut current = image.clone();
    if width != current.width {
        current = horizontal(&current, width);
    }
    if height != current.height {
        current = vertical(&current, height);
    }
    current
}

/// For each output pixel: the first input pixel it reads and its fixed-point weights.
struct Coefficients {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos(x: f64) -> f64 {
    if (-SUPPORT..SUPPORT).contains(&x) {
        sinc(x) * sinc(x / SUPPORT)
    } else {
        0.0
    }
}

/// precompute_coeffs and normalize_coeffs_8bpc, for the whole input span.
fn coefficients(in_size: usize, out_size: usize) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = SUPPORT * filter_scale;
    // Pillow multiplies by the reciprocal, and so must this, to round the same.
    let step = 1.0 / filter_scale;
    let mut first = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin);
        let mut row: Vec<f64> = (0..count)
            .map(|x| lanczos((x as f64 + xmin as f64 - center + 0.5) * step))
            .collect();
        let total: f64 = row.iter().sum();
        if total != 0.0 {
            for w in &mut row {
                *w /= total;
            }
        }
        let one = f64::from(1u32 << PRECISION_BITS);
        let fixed = row
            .iter()
            .map(|&w| {
                if w < 0.0 {
                    (-0.5 + w * one) as i32
                } else {
                    (0.5 + w * one) as i32
                }
            })
            .collect();
        first.push(xmin);
        weights.push(fixed);
    }
    Coefficients { first, weights }
}

/// The weighted sum, rounded and clipped to 8 bits as Pillow's clip8.
fn convolve(samples: impl Iterator<Item = u8>, weights: &[i32]) -> u8 {
    let mut sum: i64 = 1 << (PRECISION_BITS - 1);
    for (sample, weight) in samples.zip(weights) {
        sum += i64::from(sample) * i64::from(*weight);
    }
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

fn horizontal(image: &Rgb8, width: usize) -> Rgb8 {
    let c = coefficients(image.width, width);
    let mut pixels = Vec::with_capacity(width * image.height * 3);
    for y in 0..image.height {
        let row = &image.pixels[y * image.width * 3..(y + 1) * image.width * 3];
        for x in 0..width {
            let (first, weights) = (c.first[x], &c.weights[x]);
            for channel in 0..3 {
                let samples = (first..first + weights.len()).map(|i| row[i * 3 + channel]);
                pixels.push(convolve(samples, weights));
            }
        }
    }
    Rgb8 {
        width,
        height: image.height,
        pixels,
    }
}

fn vertical(image: &Rgb8, height: usize) -> Rgb8 {
    let c = coefficients(image.height, height);
    let stride = image.width * 3;
    let mut pixels = Vec::with_capacity(image.width * height * 3);
    for y in 0..height {
        let (first, weights) = (c.first[y], &c.weights[y]);
        for i in 0..stride {
            let samples = (first..first + weights.len()).map(|row| image.pixels[row * stride + i]);
            pixels.push(convolve(samples, weights));
        }
    }
    Rgb8 {
        width: image.width,
        height,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_image_stays_flat_at_any_size() {
        let image = Rgb8 {
            width: 5,
            height: 3,
            pixels: [10, 200, 77].repeat(15),
        };
        for (w, h) in [(2, 2), (11, 7), (5, 9)] {
            let resized = resize_lanczos(&image, w, h);
            assert_eq!(resized.pixels, [10, 200, 77].repeat(w * h), "{w}×{h}");
        }
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (from, to) in [(45, 128), (128, 32), (7, 3)] {
            for weights in coefficients(from, to).weights {
                let sum: i64 = weights.iter().map(|&w| i64::from(w)).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= weights.len() as i64);
            }
        }
    }
}
