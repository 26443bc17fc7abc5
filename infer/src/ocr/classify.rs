//! Upside-down lines: PP-OCR's direction classifier says for each cut-out line whether it reads
//! at 0° or 180°, and a line it calls 180° with more than 0.9 confidence is turned round before
//! recognition (rapidocr's `TextClassifier`: lines of similar shape batched six at a time).

use image::RgbImage;
use ort::session::{RunOptions, Session};
use ort::value::Tensor;

use super::resize::{resize_bilinear, write_normalized};
use crate::error::{Error, Result};

/// The classifier's input: 48 pixels high, up to 192 wide.
const HEIGHT: u32 = 48;
const WIDTH: u32 = 192;
const BATCH: usize = 6;
/// Above this confidence in "180°", a line is turned.
const THRESHOLD: f32 = 0.9;

/// Turns round, in place, each of `lines` the classifier reads as upside down; returns which
/// it turned.
pub fn turn_upside_down_lines(
    session: &mut Session,
    runs: &RunOptions,
    lines: &mut [RgbImage],
) -> Result<Vec<bool>> {
    let failed = |e: ort::Error| Error::Inference {
        model: "PP-OCR direction classifier",
        reason: e.to_string(),
    };
    let mut turned = vec![false; lines.len()];
    for batch in batches_by_shape(lines, BATCH) {
        let slot = 3 * (HEIGHT * WIDTH) as usize;
        let mut input = vec![0f32; batch.len() * slot];
        for (&index, tensor) in batch.iter().zip(input.chunks_mut(slot)) {
            write_normalized(&fit(&lines[index], HEIGHT, WIDTH), tensor, WIDTH as usize);
        }
        let input = Tensor::from_array(([batch.len(), 3, HEIGHT as usize, WIDTH as usize], input))
            .map_err(failed)?;
        let outputs = session
            .run_with_options(ort::inputs![input], runs)
            .map_err(failed)?;
        let (_, scores) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        if scores.len() != 2 * batch.len() {
            return Err(failed(ort::Error::new(format!(
                "{} scores for {} lines, not two each",
                scores.len(),
                batch.len()
            ))));
        }
        for (&index, pair) in batch.iter().zip(scores.chunks(2)) {
            // Labels "0" and "180", in that order; the argmax wins, above the threshold.
            if pair[1] > pair[0] && pair[1] > THRESHOLD {
                image::imageops::rotate180_in_place(&mut lines[index]);
                turned[index] = true;
            }
        }
    }
    Ok(turned)
}

/// The indices of `lines`, narrowest (width over height) first, in groups of `size`: lines of
/// similar shape padded to the same width waste little.
fn batches_by_shape(lines: &[RgbImage], size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by(|&a, &b| ratio(&lines[a]).total_cmp(&ratio(&lines[b])));
    order.chunks(size).map(<[usize]>::to_vec).collect()
}

pub fn ratio(line: &RgbImage) -> f32 {
    line.width() as f32 / line.height() as f32
}

/// `line` scaled to `height`, keeping its shape, and no wider than `max_width`.
pub fn fit(line: &RgbImage, height: u32, max_width: u32) -> RgbImage {
    let width = (height as f32 * ratio(line)).ceil() as u32;
    resize_bilinear(line, width.clamp(1, max_width), height)
}
