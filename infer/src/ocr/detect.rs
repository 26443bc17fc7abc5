//! Finding the lines of text: PP-OCRv4's detector (DB, differentiable binarization) gives each
//! pixel a probability of being text; the pixels above a threshold, grouped into connected
//! regions, each become a rotated box, scored by the mean probability inside it and widened by
//! the unclip ratio (the detector marks a shrunken core of each line). rapidocr's
//! `TextDetector` and `DBPostProcess` with its config.yaml, step by step.

use image::RgbImage;
use ort::session::{RunOptions, Session};
use ort::value::Tensor;

use super::geometry::{
    Point, Quad, area_and_perimeter, covers, min_area_rect, mini_box_order, rounded_offset,
};
use super::resize::{resize_bilinear, write_normalized};
use crate::error::{Error, Result};

/// rapidocr's Det section: the shorter side is scaled up to at least this (limit_type min).
const LIMIT_SIDE: f64 = 736.0;
/// A pixel above this probability is text.
const PIXEL_THRESHOLD: f32 = 0.3;
/// A box whose mean probability is below this is dropped.
const BOX_THRESHOLD: f32 = 0.5;
/// Regions considered, at most.
const MAX_CANDIDATES: usize = 1000;
/// How far a box is widened: its area times this over its perimeter.
const UNCLIP_RATIO: f32 = 1.6;
/// Boxes with a shorter side (in the probability map's pixels) below this are noise.
const MIN_SIZE: f32 = 3.0;

/// The lines of text in `image`, each as four corners in `image`'s pixels, ordered
/// top-left, top-right, bottom-right, bottom-left.
pub fn detect(session: &mut Session, runs: &RunOptions, image: &RgbImage) -> Result<Vec<Quad>> {
    let (width, height) = image.dimensions();
    let Some((input_width, input_height)) = input_size(width, height) else {
        return Ok(Vec::new());
    };
    let resized = resize_bilinear(image, input_width, input_height);
    let (w, h) = (input_width as usize, input_height as usize);
    let mut input = vec![0f32; 3 * w * h];
    write_normalized(&resized, &mut input, w);
    let failed = |e: ort::Error| Error::Inference {
        model: "PP-OCRv4 detection",
        reason: e.to_string(),
    };
    let outputs = session
        .run_with_options(
            ort::inputs![Tensor::from_array(([1usize, 3, h, w], input)).map_err(failed)?],
            runs,
        )
        .map_err(failed)?;
    let (shape, probabilities) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
    if shape.iter().product::<i64>() != (w * h) as i64 {
        return Err(failed(ort::Error::new(format!(
            "the probability map is {shape:?}, not {h} x {w}"
        ))));
    }
    let map = ProbabilityMap {
        width: w,
        height: h,
        values: probabilities,
    };
    Ok(boxes(&map, width, height))
}

/// The detector's input size for a `width` x `height` image: the shorter side scaled up to
/// LIMIT_SIDE, both rounded to multiples of 32. None when one rounds to nothing. In f64, as
/// Python computes it: 900 x 736 / 360 is 1839.99... there, and a pixel row more or less
/// moves every box.
pub fn input_size(width: u32, height: u32) -> Option<(u32, u32)> {
    let (w, h) = (f64::from(width), f64::from(height));
    let ratio = if w.min(h) < LIMIT_SIDE {
        LIMIT_SIDE / w.min(h)
    } else {
        1.0
    };
    let to_32 = |side: f64| ((side * ratio).trunc() / 32.0).round_ties_even() as u32 * 32;
    let (w, h) = (to_32(w), to_32(h));
    (w > 0 && h > 0).then_some((w, h))
}

/// The detector's output: one probability per pixel of its input, row by row.
pub struct ProbabilityMap<'a> {
    pub width: usize,
    pub height: usize,
    pub values: &'a [f32],
}

impl ProbabilityMap<'_> {
    fn at(&self, x: usize, y: usize) -> f32 {
        self.values[y * self.width + x]
    }
}

/// The text boxes in `map`, scaled to an image of `width` x `height`, ordered and clipped as
/// rapidocr's `filter_tag_det_res` does; boxes 3 pixels or less across are dropped.
pub fn boxes(map: &ProbabilityMap, width: u32, height: u32) -> Vec<Quad> {
    let mask = dilated_mask(map);
    let mut found = Vec::new();
    for region in regions(&mask, map.width, map.height)
        .into_iter()
        .take(MAX_CANDIDATES)
    {
        let rect = min_area_rect(&region);
        if rect.short_side() < MIN_SIZE {
            continue;
        }
        let quad = mini_box_order(&rect);
        if box_score(map, &quad) < BOX_THRESHOLD {
            continue;
        }
        let (area, perimeter) = area_and_perimeter(&quad);
        let grown = min_area_rect(&rounded_offset(&quad, area * UNCLIP_RATIO / perimeter));
        if grown.short_side() < MIN_SIZE + 2.0 {
            continue;
        }
        let scale = |p: Point| {
            let x = (p.x / map.width as f32 * width as f32).round_ties_even();
            let y = (p.y / map.height as f32 * height as f32).round_ties_even();
            // rapidocr clips twice: to the image (while scaling), then to its last pixel.
            let x = x.clamp(0.0, width as f32).trunc().min(width as f32 - 1.0);
            let y = y.clamp(0.0, height as f32).trunc().min(height as f32 - 1.0);
            Point::new(x, y)
        };
        let quad = super::geometry::order_clockwise(&mini_box_order(&grown).map(scale));
        let across = quad[0].distance(quad[1]) as u32;
        let down = quad[0].distance(quad[3]) as u32;
        if across <= 3 || down <= 3 {
            continue;
        }
        found.push(quad);
    }
    found
}

/// The pixels above PIXEL_THRESHOLD, dilated by a 2 x 2 square as rapidocr does (use_dilation:
/// a pixel is set when it or its neighbour to the left, above, or above-left is above).
fn dilated_mask(map: &ProbabilityMap) -> Vec<bool> {
    let above: Vec<bool> = map.values.iter().map(|&p| p > PIXEL_THRESHOLD).collect();
    let mut mask = vec![false; above.len()];
    for y in 0..map.height {
        for x in 0..map.width {
            let at =
                |dx: usize, dy: usize| x >= dx && y >= dy && above[(y - dy) * map.width + (x - dx)];
            mask[y * map.width + x] = at(0, 0) || at(1, 0) || at(0, 1) || at(1, 1);
        }
    }
    mask
}

/// Each 8-connected region of set pixels in `mask`, as the first and last pixel of each of its
/// rows: the points whose convex hull is the region's (what OpenCV's outer contour bounds).
fn regions(mask: &[bool], width: usize, height: usize) -> Vec<Vec<Point>> {
    let mut seen = vec![false; mask.len()];
    let mut found = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        // Per row of this region: its leftmost and rightmost pixel.
        let mut rows: std::collections::BTreeMap<usize, (usize, usize)> = Default::default();
        seen[start] = true;
        stack.push(start);
        while let Some(at) = stack.pop() {
            let (x, y) = (at % width, at / width);
            let extent = rows.entry(y).or_insert((x, x));
            extent.0 = extent.0.min(x);
            extent.1 = extent.1.max(x);
            for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                    let next = ny * width + nx;
                    if mask[next] && !seen[next] {
                        seen[next] = true;
                        stack.push(next);
                    }
                }
            }
        }
        found.push(
            rows.into_iter()
                .flat_map(|(y, (left, right))| {
                    [
                        Point::new(left as f32, y as f32),
                        Point::new(right as f32, y as f32),
                    ]
                })
                .collect(),
        );
    }
    found
}

/// The mean probability inside `quad` (its corners cut to whole pixels), rapidocr's
/// `box_score_fast`.
fn box_score(map: &ProbabilityMap, quad: &Quad) -> f32 {
    let clamp_x = |v: f32| (v as i64).clamp(0, map.width as i64 - 1) as usize;
    let clamp_y = |v: f32| (v as i64).clamp(0, map.height as i64 - 1) as usize;
    let xs = quad.map(|p| p.x);
    let ys = quad.map(|p| p.y);
    let x_min = clamp_x(xs.iter().copied().fold(f32::MAX, f32::min).floor());
    let x_max = clamp_x(xs.iter().copied().fold(f32::MIN, f32::max).ceil());
    let y_min = clamp_y(ys.iter().copied().fold(f32::MAX, f32::min).floor());
    let y_max = clamp_y(ys.iter().copied().fold(f32::MIN, f32::max).ceil());
    let polygon = quad.map(|p| Point::new(p.x.trunc(), p.y.trunc()));
    let (mut sum, mut count) = (0f64, 0u32);
    for y in y_min..=y_max {
        for x in x_min..=x_max {
            if covers(&polygon, Point::new(x as f32, y as f32)) {
                sum += f64::from(map.at(x, y));
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        (sum / f64::from(count)) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shorter_side_is_scaled_to_736_and_both_rounded_to_32() {
        assert_eq!(input_size(1000, 200), Some((3680, 736)));
        assert_eq!(input_size(800, 600), Some((992, 736)));
        // 900 x 736 / 360 is 1839.99... in f64: 57 x 32, not 58.
        assert_eq!(input_size(900, 360), Some((1824, 736)));
        // Large enough already: only rounded.
        assert_eq!(input_size(1000, 1000), Some((992, 992)));
        // 2000 / 32 = 62.5 rounds to even, as Python rounds.
        assert_eq!(input_size(2000, 750), Some((1984, 736)));
    }

    /// A map of `width` x `height` with probability 0.9 inside each of `blocks`
    /// (x0, y0, x1, y1, end exclusive) and 0.05 elsewhere.
    fn map_with(width: usize, height: usize, blocks: &[(usize, usize, usize, usize)]) -> Vec<f32> {
        let mut values = vec![0.05; width * height];
        for &(x0, y0, x1, y1) in blocks {
            for y in y0..y1 {
                for x in x0..x1 {
                    values[y * width + x] = 0.9;
                }
            }
        }
        values
    }

    #[test]
    fn two_blocks_of_text_become_two_widened_boxes_scaled_to_the_image() {
        let values = map_with(200, 100, &[(20, 10, 120, 30), (30, 60, 170, 80)]);
        let map = ProbabilityMap {
            width: 200,
            height: 100,
            values: &values,
        };
        // The image is half the map's size.
        let mut found = boxes(&map, 100, 50);
        found.sort_by(|a, b| a[0].y.total_cmp(&b[0].y));
        assert_eq!(found.len(), 2, "{found:?}");
        // The first block, dilated, spans 20..=120 x 10..=30 (100 x 20 between centres);
        // unclipped by 2000 * 1.6 / 240 = 13.3 on every side, then halved.
        let [tl, tr, br, bl] = found[0];
        assert!(
            (tl.x - 3.0).abs() <= 1.0 && (tl.y - (-1.7f32).max(0.0)).abs() <= 1.0,
            "{tl:?}"
        );
        assert!((tr.x - 67.0).abs() <= 1.0, "{tr:?}");
        assert!((br.y - 22.0).abs() <= 1.0, "{br:?}");
        assert!((bl.x - tl.x).abs() < 1e-3 && (tr.y - tl.y).abs() < 1e-3);
    }

    #[test]
    fn specks_and_faint_regions_give_no_boxes() {
        let mut values = map_with(100, 100, &[(10, 10, 12, 12)]);
        // A faint region: above the pixel threshold, below the box threshold.
        for y in 50..70 {
            for x in 20..80 {
                values[y * 100 + x] = 0.4;
            }
        }
        let map = ProbabilityMap {
            width: 100,
            height: 100,
            values: &values,
        };
        assert!(boxes(&map, 100, 100).is_empty());
    }

    #[test]
    fn diagonal_neighbours_are_one_region() {
        let mut mask = vec![false; 16];
        mask[0] = true;
        mask[5] = true;
        mask[15] = true;
        let found = regions(&mask, 4, 4);
        assert_eq!(found.len(), 2);
    }
}
