//! Text in images (OCR): PP-OCRv4 through ONNX Runtime, the three models rapidocr_onnxruntime
//! ships and runs, with its settings (config.yaml) and its steps, so that the engine reads what
//! rapidocr reads. The image is brought within 30..2000 pixels a side, the detector finds the
//! lines, each is cut out upright, turned round if the classifier finds it upside down, and
//! read by the recognizer; lines read with less than 0.5 confidence are dropped. Unlike
//! rapidocr, a page lying on its side or upside down comes out in its own reading order, from
//! the way most of its lines had to be turned (page_turn.rs).

mod classify;
mod detect;
mod geometry;
mod page_turn;
mod reading_order;
mod recognize;
mod resize;
mod warp;
mod word_gaps;

use std::path::Path;

use image::RgbImage;
use ort::session::{RunOptions, Session};

use crate::error::{Error, Result};
use crate::onnx::{OnnxRuntime, SessionOptions};

use geometry::{Point, Quad};
use page_turn::Turn;
use recognize::Dictionary;

/// The model files, as the pp-ocrv4 entry of models.lock unpacks them.
const DETECTION_FILE: &str = "ch_PP-OCRv4_det_infer.onnx";
const RECOGNITION_FILE: &str = "ch_PP-OCRv4_rec_infer.onnx";
const CLASSIFIER_FILE: &str = "ch_ppocr_mobile_v2.0_cls_infer.onnx";
/// The recognition model's metadata key that lists its characters.
const DICTIONARY_KEY: &str = "character";

/// rapidocr's Global section: sides are brought within these before detection...
const MAX_SIDE: u32 = 2000;
const MIN_SIDE: u32 = 30;
/// ...and an image this low, or wider than this many heights, gets black bands above and below.
const MIN_HEIGHT: u32 = 30;
const WIDTH_HEIGHT_RATIO: u32 = 8;
/// Lines read with less confidence are dropped (text_score).
const MIN_CONFIDENCE: f32 = 0.5;

/// One line of text read, with its corners in the image's pixels: from where its text starts
/// at the top, along the top, then the bottom back (top-left, top-right, bottom-right,
/// bottom-left on an upright page; on a page lying turned, as they are on it turned upright).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TextLine {
    pub text: String,
    pub confidence: f32,
    #[serde(rename = "box")]
    pub corners: [[f32; 2]; 4],
}

/// The three loaded models, the recognizer's dictionary, and the options each run takes
/// (their arenas shrunk after it: a photo's size is its own).
pub struct TextReader {
    detector: Session,
    classifier: Session,
    /// One per thread of the engine's pool, each run on its thread alone (recognize.rs).
    recognizers: Vec<Session>,
    dictionary: Dictionary,
    runs: RunOptions,
}

impl TextReader {
    /// Loads the models from `dir` (the unpacked pp-ocrv4 entry).
    pub fn load(runtime: &OnnxRuntime, dir: &Path) -> Result<TextReader> {
        let recognition = dir.join(RECOGNITION_FILE);
        let on_its_thread = SessionOptions {
            on_the_callers_thread: true,
            ..SessionOptions::default()
        };
        let recognizers = (0..runtime.threads().get())
            .map(|_| runtime.session_with(&recognition, on_its_thread))
            .collect::<Result<Vec<_>>>()?;
        let listed = recognizers[0]
            .metadata()
            .map_err(|e| Error::OnnxModel {
                path: recognition.clone(),
                reason: format!("reading its metadata: {e}"),
            })?
            .custom(DICTIONARY_KEY)
            .ok_or_else(|| Error::OnnxModel {
                path: recognition.clone(),
                reason: format!(
                    "its metadata has no `{DICTIONARY_KEY}` key, the dictionary it reads with"
                ),
            })?;
        Ok(TextReader {
            detector: runtime.session(&dir.join(DETECTION_FILE))?,
            classifier: runtime.session(&dir.join(CLASSIFIER_FILE))?,
            recognizers,
            dictionary: Dictionary::from_metadata(&listed),
            runs: runtime.returning_arena_runs()?,
        })
    }

    /// The lines of text in `image`, in reading order (of the page turned upright, if it lies
    /// turned).
    pub fn read(&mut self, image: &RgbImage) -> Result<Vec<TextLine>> {
        let (raw_width, raw_height) = image.dimensions();
        let scaled = within_sides(image);
        let band = letterbox_band(scaled.width(), scaled.height());
        let framed = if band > 0 {
            resize::pad_top_and_bottom(&scaled, band)
        } else {
            scaled.clone()
        };
        let mut boxes = detect::detect(&mut self.detector, &self.runs, &framed)?;
        reading_order::sort_for_reading(&mut boxes, |corners| corners[0]);
        let (mut kept, mut strips, mut quarters) = (Vec::new(), Vec::new(), Vec::new());
        for corners in boxes {
            if let Some((strip, quarter)) = warp::crop_line(&framed, &corners) {
                kept.push(corners);
                strips.push(strip);
                quarters.push(quarter);
            }
        }
        if strips.is_empty() {
            return Ok(Vec::new());
        }
        let flipped =
            classify::turn_upside_down_lines(&mut self.classifier, &self.runs, &mut strips)?;
        let read =
            recognize::recognize(&mut self.recognizers, &self.runs, &self.dictionary, &strips)?;
        let mut lines: Vec<(Quad, Turn, String, f32)> = kept
            .into_iter()
            .zip(quarters.into_iter().zip(flipped))
            .zip(read)
            .filter(|(_, (_, confidence))| *confidence >= MIN_CONFIDENCE)
            .map(|((corners, (quarter, flipped)), (text, confidence))| {
                (corners, Turn::of_line(quarter, flipped), text, confidence)
            })
            .collect();
        let turn = Turn::of_page(
            lines
                .iter()
                .map(|(_, line, text, _)| (*line, text.chars().count())),
        );
        if turn != Turn::Upright {
            let (width, height) = (framed.width() as f32, framed.height() as f32);
            reading_order::sort_for_reading(&mut lines, |(corners, ..)| {
                page_turn::start_upright(corners, turn, width, height)
            });
        }
        // From the framed image's pixels back to the original's.
        let scale_x = raw_width as f32 / scaled.width() as f32;
        let scale_y = raw_height as f32 / scaled.height() as f32;
        let back = |p: Point| {
            [
                (p.x * scale_x).clamp(0.0, raw_width as f32),
                ((p.y - band as f32) * scale_y).clamp(0.0, raw_height as f32),
            ]
        };
        Ok(lines
            .into_iter()
            .map(|(corners, _, text, confidence)| TextLine {
                text,
                confidence,
                corners: turn.corners_as_read(corners).map(back),
            })
            .collect())
    }
}

/// `image` scaled so that no side is over MAX_SIDE and none under MIN_SIDE, sides rounded to
/// multiples of 32 when scaled (rapidocr's `reduce_max_side`, then `increase_min_side`).
fn within_sides(image: &RgbImage) -> RgbImage {
    // In f64, as Python computes the sizes.
    let rescale = |image: &RgbImage, ratio: f64| {
        let to_32 = |side: u32| {
            (((f64::from(side) * ratio).trunc() / 32.0).round_ties_even() as u32 * 32).max(32)
        };
        resize::resize_bilinear(image, to_32(image.width()), to_32(image.height()))
    };
    let (width, height) = image.dimensions();
    let longest = width.max(height);
    let mut scaled = if longest > MAX_SIDE {
        rescale(image, f64::from(MAX_SIDE) / f64::from(longest))
    } else {
        image.clone()
    };
    let shortest = scaled.width().min(scaled.height());
    if shortest < MIN_SIDE {
        scaled = rescale(&scaled, f64::from(MIN_SIDE) / f64::from(shortest));
    }
    scaled
}

/// The black band above and below a `width` x `height` image that is too low or too wide for
/// the detector (rapidocr's `maybe_add_letterbox`), or 0.
fn letterbox_band(width: u32, height: u32) -> u32 {
    if height > MIN_HEIGHT && width <= WIDTH_HEIGHT_RATIO * height {
        return 0;
    }
    let framed_height = (width / WIDTH_HEIGHT_RATIO).max(MIN_HEIGHT) * 2;
    framed_height.abs_diff(height) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_brought_within_30_to_2000_pixels_a_side() {
        let big = within_sides(&RgbImage::new(4000, 1000));
        // 2000 / 32 = 62.5 rounds to even, as Python rounds.
        assert_eq!(big.dimensions(), (1984, 512));
        let thin = within_sides(&RgbImage::new(300, 10));
        assert_eq!(thin.dimensions(), (896, 32));
        let fine = within_sides(&RgbImage::new(640, 480));
        assert_eq!(fine.dimensions(), (640, 480));
    }

    #[test]
    fn low_or_wide_images_get_bands_and_others_none() {
        assert_eq!(letterbox_band(640, 480), 0);
        // 900 wide, 100 high: more than 8 heights wide, so framed 2 x 112 high.
        assert_eq!(letterbox_band(900, 100), 62);
        // 100 wide, 20 high: too low, framed 60 high.
        assert_eq!(letterbox_band(100, 20), 20);
    }
}
