//! The pixel work around the three OCR models, as rapidocr does it with OpenCV: bilinear
//! resizing with OpenCV's pixel-centre convention (the `image` crate's filters smooth when they
//! shrink, which the models were not trained on), black bands, and the models' input tensors.

use image::{Rgb, RgbImage};

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
    let mut resized = RgbImage::new(width, height);
    for (y, &(y0, y1, wy)) in rows.iter().enumerate() {
        for (x, &(x0, x1, wx)) in columns.iter().enumerate() {
            let mut pixel = [0u8; 3];
            for (c, value) in pixel.iter_mut().enumerate() {
                let at = |x: u32, y: u32| f32::from(image.get_pixel(x, y)[c]);
                let top = at(x0, y0) * (1.0 - wx) + at(x1, y0) * wx;
                let bottom = at(x0, y1) * (1.0 - wx) + at(x1, y1) * wx;
                *value = (top * (1.0 - wy) + bottom * wy).round().clamp(0.0, 255.0) as u8;
            }
            resized.put_pixel(x as u32, y as u32, Rgb(pixel));
        }
    }
    resized
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
    tensor.fill(0.0);
    for (x, y, pixel) in image.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        if x >= width {
            continue;
        }
        for (plane, channel) in [2, 1, 0].into_iter().enumerate() {
            tensor[plane * height * width + y * width + x] =
                f32::from(pixel[channel]) / 255.0 / 0.5 - 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_interpolates_between_pixel_centres_like_opencv() {
        // One row 0, 100: OpenCV's INTER_LINEAR to four columns gives 0, 25, 75, 100.
        let mut row = RgbImage::new(2, 1);
        row.put_pixel(1, 0, Rgb([100, 100, 100]));
        let wide = resize_bilinear(&row, 4, 1);
        let values: Vec<u8> = (0..4).map(|x| wide.get_pixel(x, 0)[0]).collect();
        assert_eq!(values, [0, 25, 75, 100]);
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
