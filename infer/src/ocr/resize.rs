//! The pixel work around the three OCR models, as rapidocr does it with OpenCV: bilinear
//! resizing with OpenCV's pixel-centre convention (the `image` crate's filters smooth when they
//! shrink, which the models were not trained on), black bands, and the models' input tensors.

use image::RgbImage;

/// `image` resized to `width` x `height` as OpenCV's `INTER_LINEAR` does (no smoothing).
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (source_width, source_height) = image.dimensions();
    if (source_width, source_height) == (width, height) {
        return image.clone();
    }
    let taps = |to: u32, from: u32| -> Vec<(u32, u32, f32)> {
        let scale = from as f32 / to as f32;
        (0..to)
            .map(|i| {
                let at = (i as f32 + 0.5) * scale - 0.5;
                let low = at.floor();
                let weight = at - low;
                if low < 0.0 {
                    (0, 0, 0.0)
                } else if low as u32 >= from - 1 {
                    (from - 1, from - 1, 0.0)
                } else {
                    (low as u32, low as u32 + 1, weight)
                }
            })
            .collect()
    };
    let columns = taps(width, source_width);
    let rows = taps(height, source_height);
    // Separable: each source row is blended along x once, into the two rows the output row
    // at hand reads (the rows go down in order), then the two are blended along y. The same
    // operations in the same order as blending each pixel's four neighbours: the same bytes.
    let source = image.as_raw();
    let stride = 3 * source_width as usize;
    let along_x = |y: u32, blended: &mut Vec<f32>| {
        let row = &source[y as usize * stride..][..stride];
        blended.clear();
        for &(x0, x1, wx) in &columns {
            let (left, right) = (&row[3 * x0 as usize..][..3], &row[3 * x1 as usize..][..3]);
            for c in 0..3 {
                blended.push(f32::from(left[c]) * (1.0 - wx) + f32::from(right[c]) * wx);
            }
        }
    };
    let mut upper: (Option<u32>, Vec<f32>) = (None, Vec::with_capacity(3 * width as usize));
    let mut lower: (Option<u32>, Vec<f32>) = (None, Vec::with_capacity(3 * width as usize));
    let mut resized = vec![0u8; 3 * width as usize * height as usize];
    for (&(y0, y1, wy), out) in rows
        .iter()
        .zip(resized.chunks_exact_mut(3 * width as usize))
    {
        if upper.0 != Some(y0) {
            if lower.0 == Some(y0) {
                std::mem::swap(&mut upper, &mut lower);
            } else {
                along_x(y0, &mut upper.1);
                upper.0 = Some(y0);
            }
        }
        if lower.0 != Some(y1) {
            along_x(y1, &mut lower.1);
            lower.0 = Some(y1);
        }
        for ((value, top), bottom) in out.iter_mut().zip(&upper.1).zip(&lower.1) {
            *value = round_to_byte(top * (1.0 - wy) + bottom * wy);
        }
    }
    RgbImage::from_raw(width, height, resized).expect("the buffer is width x height x 3")
}

/// `value` (a blend of bytes, so 0 to 255) rounded half away from zero as `f32::round` does,
/// without its call into the C library: a quarter of the resize's time.
fn round_to_byte(value: f32) -> u8 {
    let whole = value as i32;
    // Exact: `whole` is within a factor of two of `value` (or 0).
    let fraction = value - whole as f32;
    (whole + i32::from(fraction >= 0.5)).clamp(0, 255) as u8
}

/// What each byte of a pixel becomes in the models' input: scaled to -1..1 as PP-OCR's
/// normalization computes it (x / 255 / 0.5 - 1), once per byte value.
fn normalized_bytes() -> &'static [f32; 256] {
    static TABLE: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|byte| byte as f32 / 255.0 / 0.5 - 1.0))
}

/// `image` with `band` black rows above and below (rapidocr's letterbox for short, wide
/// images, which the detector finds no text in otherwise).
pub fn pad_top_and_bottom(image: &RgbImage, band: u32) -> RgbImage {
    let mut padded = RgbImage::new(image.width(), image.height() + 2 * band);
    image::imageops::replace(&mut padded, image, 0, i64::from(band));
    padded
}

/// Writes `image` into `tensor` (one `3 x height x width` slot of a batch) as the PP-OCR models
/// take it: channels in OpenCV's order (blue, green, red), each scaled to -1..1, and zeros to
/// the right of the image up to `width`.
pub fn write_normalized(image: &RgbImage, tensor: &mut [f32], width: usize) {
    let height = image.height() as usize;
    debug_assert_eq!(tensor.len(), 3 * height * width);
    let (planes, stride) = (height * width, 3 * image.width() as usize);
    let drawn = width.min(image.width() as usize);
    // Each element is written once: a pixel's, or a zero right of the image.
    for plane in tensor.chunks_exact_mut(planes.max(1)) {
        for row in plane.chunks_exact_mut(width.max(1)) {
            row[drawn..].fill(0.0);
        }
    }
    if stride == 0 {
        return;
    }
    let normalized = normalized_bytes();
    for (y, row) in image.as_raw().chunks_exact(stride).enumerate() {
        for (x, pixel) in row.chunks_exact(3).take(width).enumerate() {
            for (plane, channel) in [2, 1, 0].into_iter().enumerate() {
                tensor[plane * planes + y * width + x] = normalized[usize::from(pixel[channel])];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn doubling_interpolates_between_pixel_centres_like_opencv() {
        // One row 0, 100: OpenCV's INTER_LINEAR to four columns gives 0, 25, 75, 100.
        let mut row = RgbImage::new(2, 1);
        row.put_pixel(1, 0, Rgb([100, 100, 100]));
        let wide = resize_bilinear(&row, 4, 1);
        let values: Vec<u8> = (0..4).map(|x| wide.get_pixel(x, 0)[0]).collect();
        assert_eq!(values, [0, 25, 75, 100]);
    }

    /// Each output pixel from its four neighbours, one at a time: what the separable resize
    /// must give byte for byte.
    fn resized_pixel_by_pixel(image: &RgbImage, width: u32, height: u32) -> RgbImage {
        let tap = |i: u32, to: u32, from: u32| {
            let at = (i as f32 + 0.5) * (from as f32 / to as f32) - 0.5;
            let low = at.floor();
            if low < 0.0 {
                (0, 0, 0.0)
            } else if low as u32 >= from - 1 {
                (from - 1, from - 1, 0.0)
            } else {
                (low as u32, low as u32 + 1, at - low)
            }
        };
        RgbImage::from_fn(width, height, |x, y| {
            let (x0, x1, wx) = tap(x, width, image.width());
            let (y0, y1, wy) = tap(y, height, image.height());
            Rgb(std::array::from_fn(|c| {
                let at = |x: u32, y: u32| f32::from(image.get_pixel(x, y)[c]);
                let top = at(x0, y0) * (1.0 - wx) + at(x1, y0) * wx;
                let bottom = at(x0, y1) * (1.0 - wx) + at(x1, y1) * wx;
                (top * (1.0 - wy) + bottom * wy).round().clamp(0.0, 255.0) as u8
            }))
        })
    }

    #[test]
    fn the_separable_resize_gives_the_bytes_of_blending_each_pixel() {
        let mut seed = 7u32;
        let image = RgbImage::from_fn(37, 23, |_, _| {
            Rgb(std::array::from_fn(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 24) as u8
            }))
        });
        for (width, height) in [(75, 47), (18, 11), (37, 60), (100, 5), (3, 3)] {
            assert_eq!(
                resize_bilinear(&image, width, height),
                resized_pixel_by_pixel(&image, width, height),
                "{width} x {height}"
            );
        }
    }

    #[test]
    fn bytes_round_as_f32_round_does() {
        for step in 0..=(255 * 1024) {
            let value = step as f32 / 1024.0;
            for v in [
                value,
                f32::from_bits(value.to_bits().saturating_sub(1)),
                f32::from_bits(value.to_bits() + 1),
            ] {
                if v <= 255.0 {
                    assert_eq!(round_to_byte(v), v.round().clamp(0.0, 255.0) as u8, "{v}");
                }
            }
        }
    }

    #[test]
    fn halving_averages_pairs_without_smoothing_further() {
        let mut row = RgbImage::new(4, 1);
        for (x, v) in [0u8, 100, 200, 40].into_iter().enumerate() {
            row.put_pixel(x as u32, 0, Rgb([v, 0, 0]));
        }
        let narrow = resize_bilinear(&row, 2, 1);
        assert_eq!(
            (narrow.get_pixel(0, 0)[0], narrow.get_pixel(1, 0)[0]),
            (50, 120)
        );
    }

    #[test]
    fn the_tensor_is_blue_green_red_scaled_to_minus_one_to_one_and_padded_with_zeros() {
        let mut image = RgbImage::new(1, 1);
        image.put_pixel(0, 0, Rgb([255, 0, 51]));
        let mut tensor = vec![9.0; 3 * 2];
        write_normalized(&image, &mut tensor, 2);
        let expected = [51.0 / 127.5 - 1.0, 0.0, -1.0, 0.0, 1.0, 0.0];
        for (got, want) in tensor.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{tensor:?}");
        }
    }

    #[test]
    fn padding_adds_black_bands_above_and_below() {
        let image = RgbImage::from_pixel(3, 2, Rgb([200, 200, 200]));
        let padded = pad_top_and_bottom(&image, 4);
        assert_eq!(padded.dimensions(), (3, 10));
        assert_eq!(padded.get_pixel(1, 3)[0], 0);
        assert_eq!(padded.get_pixel(1, 4)[0], 200);
        assert_eq!(padded.get_pixel(1, 5)[0], 200);
        assert_eq!(padded.get_pixel(1, 6)[0], 0);
    }
}
