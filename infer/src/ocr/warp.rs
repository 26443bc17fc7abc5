//! Cutting one detected line out of the image as an upright strip: the perspective transform
//! that takes the strip's corners to the box's corners, sampled bicubically with the edge
//! pixels repeated outside (rapidocr's `get_rotate_crop_image`: OpenCV's `warpPerspective`
//! with `INTER_CUBIC` and `BORDER_REPLICATE`), and tall strips turned to lie flat.

use image::{Rgb, RgbImage};

use super::geometry::{Point, Quad};

/// A 3 x 3 projective transform, row-major, with its last entry 1.
#[derive(Debug, Clone, Copy)]
pub struct Homography([f64; 9]);

impl Homography {
    /// The transform taking each of `from` to the matching point of `to` (OpenCV's
    /// `getPerspectiveTransform`); None when the points are degenerate (three in a line).
    pub fn between(from: &Quad, to: &Quad) -> Option<Homography> {
        // Eight equations in the eight unknowns h0..h7, solved by Gaussian elimination.
        let mut system = [[0f64; 9]; 8];
        for i in 0..4 {
            let (x, y) = (f64::from(from[i].x), f64::from(from[i].y));
            let (u, v) = (f64::from(to[i].x), f64::from(to[i].y));
            system[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -x * u, -y * u, u];
            system[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -x * v, -y * v, v];
        }
        for column in 0..8 {
            let pivot = (column..8)
                .max_by(|&a, &b| system[a][column].abs().total_cmp(&system[b][column].abs()))?;
            if system[pivot][column].abs() < 1e-12 {
                return None;
            }
            system.swap(column, pivot);
            let pivot_row = system[column];
            for (row, equation) in system.iter_mut().enumerate() {
                if row != column {
                    let factor = equation[column] / pivot_row[column];
                    for (value, pivot_value) in equation.iter_mut().zip(pivot_row).skip(column) {
                        *value -= factor * pivot_value;
                    }
                }
            }
        }
        let mut h = [1f64; 9];
        for (i, row) in system.iter().enumerate() {
            h[i] = row[8] / row[i];
        }
        Some(Homography(h))
    }

    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let h = &self.0;
        let w = h[6] * x + h[7] * y + h[8];
        (
            (h[0] * x + h[1] * y + h[2]) / w,
            (h[3] * x + h[4] * y + h[5]) / w,
        )
    }
}

/// The strip under `corners` (top-left, top-right, bottom-right, bottom-left) of `image`, as
/// wide as the longer of its top and bottom edges and as tall as the longer of its sides,
/// turned a quarter anticlockwise when it is at least 1.5 times as tall as wide (a vertical
/// line of text), and whether it was. None when the box has no area.
pub fn crop_line(image: &RgbImage, corners: &Quad) -> Option<(RgbImage, bool)> {
    let width = corners[0]
        .distance(corners[1])
        .max(corners[2].distance(corners[3])) as u32;
    let height = corners[0]
        .distance(corners[3])
        .max(corners[1].distance(corners[2])) as u32;
    if width == 0 || height == 0 {
        return None;
    }
    let (w, h) = (width as f32, height as f32);
    let upright = [
        Point::new(0.0, 0.0),
        Point::new(w, 0.0),
        Point::new(w, h),
        Point::new(0.0, h),
    ];
    let to_image = Homography::between(&upright, corners)?;
    let mut strip = RgbImage::new(width, height);
    for y in 0..height {
        for x in 0..width {
            let (sx, sy) = to_image.apply(f64::from(x), f64::from(y));
            strip.put_pixel(x, y, bicubic(image, sx, sy));
        }
    }
    let quarter = f64::from(height) / f64::from(width) >= 1.5;
    if quarter {
        strip = image::imageops::rotate270(&strip);
    }
    Some((strip, quarter))
}

/// OpenCV's cubic convolution weights (a = -0.75) for an offset in 0..1.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |d: f64| ((A + 2.0) * d - (A + 3.0)) * d * d + 1.0;
    let far = |d: f64| ((A * d - 5.0 * A) * d + 8.0 * A) * d - 4.0 * A;
    [far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t)]
}

/// The colour at (`x`, `y`), from the 4 x 4 pixels around it, edges repeated outside.
fn bicubic(image: &RgbImage, x: f64, y: f64) -> Rgb<u8> {
    let (width, height) = (i64::from(image.width()), i64::from(image.height()));
    let (x0, y0) = (x.floor(), y.floor());
    let (wx, wy) = (cubic_weights(x - x0), cubic_weights(y - y0));
    let (x0, y0) = (x0 as i64 - 1, y0 as i64 - 1);
    let mut sum = [0f64; 3];
    for (j, wy) in wy.iter().enumerate() {
        let sy = (y0 + j as i64).clamp(0, height - 1) as u32;
        for (i, wx) in wx.iter().enumerate() {
            let sx = (x0 + i as i64).clamp(0, width - 1) as u32;
            let pixel = image.get_pixel(sx, sy);
            for c in 0..3 {
                sum[c] += wx * wy * f64::from(pixel[c]);
            }
        }
    }
    Rgb(sum.map(|v| v.round().clamp(0.0, 255.0) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transform_takes_each_corner_to_its_match() {
        let from = [
            Point::new(0.0, 0.0),
            Point::new(100.0, 0.0),
            Point::new(100.0, 20.0),
            Point::new(0.0, 20.0),
        ];
        let to = [
            Point::new(13.0, 7.0),
            Point::new(110.0, 25.0),
            Point::new(105.0, 48.0),
            Point::new(9.0, 30.0),
        ];
        let h = Homography::between(&from, &to).unwrap();
        for (a, b) in from.iter().zip(&to) {
            let (x, y) = h.apply(f64::from(a.x), f64::from(a.y));
            assert!((x - f64::from(b.x)).abs() < 1e-6 && (y - f64::from(b.y)).abs() < 1e-6);
        }
        let line = [Point::new(0.0, 0.0); 4];
        assert!(Homography::between(&from, &line).is_none());
    }

    #[test]
    fn an_upright_box_is_cut_out_pixel_for_pixel() {
        let image = RgbImage::from_fn(40, 30, |x, y| Rgb([x as u8 * 5, y as u8 * 7, 9]));
        let corners = [
            Point::new(10.0, 5.0),
            Point::new(30.0, 5.0),
            Point::new(30.0, 15.0),
            Point::new(10.0, 15.0),
        ];
        let (strip, quarter) = crop_line(&image, &corners).unwrap();
        assert!(!quarter);
        assert_eq!(strip.dimensions(), (20, 10));
        for (x, y, pixel) in strip.enumerate_pixels() {
            assert_eq!(pixel, image.get_pixel(x + 10, y + 5), "at {x},{y}");
        }
    }

    #[test]
    fn a_tall_box_is_turned_to_lie_flat() {
        let image = RgbImage::from_fn(40, 60, |x, y| Rgb([x as u8, y as u8, 0]));
        let corners = [
            Point::new(5.0, 5.0),
            Point::new(15.0, 5.0),
            Point::new(15.0, 45.0),
            Point::new(5.0, 45.0),
        ];
        let (strip, quarter) = crop_line(&image, &corners).unwrap();
        assert!(quarter);
        assert_eq!(strip.dimensions(), (40, 10));
        // A quarter turn anticlockwise: the box's top-right corner is now the top-left.
        assert_eq!(strip.get_pixel(0, 0), image.get_pixel(14, 5));
        assert_eq!(strip.get_pixel(39, 9), image.get_pixel(5, 44));
    }
}
