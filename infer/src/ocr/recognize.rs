//! Reading each cut-out line: PP-OCRv4's recognizer takes lines 48 pixels high and gives, for
//! each 8-pixel step along the line, a probability for every character of its dictionary and
//! for "no character" (CTC's blank). The greedy reading keeps the most likely at each step,
//! merges repeats and drops blanks; its confidence is the mean probability of the characters
//! kept (rapidocr's `TextRecognizer` and `CTCLabelDecode`). The spaces between words come
//! from the line's pixels (word_gaps.rs).
//!
//! Each line is read at its own width (at least 320), in a batch only with lines of that same
//! width. rapidocr pads every line of a batch of six to the widest one's width: the padding is
//! work (on the bench's page of six lines, one batch as wide as its longest line took 370 ms;
//! a run per line 255 ms; the short lines sharing one 320 wide, ~190 ms), and the recognizer
//! mixes the whole width of its input (SVTR's attention), so what a line read depended on the
//! lines beside it in its batch: that page's "Room 42", padded to a line three times as long,
//! came out "Ro0m 42".

use image::RgbImage;
use ort::session::{RunOptions, Session};
use ort::value::Tensor;

use super::classify::{fit, ratio};
use super::resize::write_normalized;
use super::word_gaps::{InkColumns, spell};
use crate::error::{Error, Result};

/// The recognizer's input height, and the narrowest width it reads (rec_img_shape): narrower
/// lines are padded to it, as the model was trained.
const HEIGHT: u32 = 48;
const MIN_WIDTH: u32 = 320;
/// Lines of one width read in one run, at most (rapidocr's rec_batch_num).
const BATCH: usize = 6;

/// The recognizer's characters: index 0 is CTC's blank, then the dictionary's characters in
/// its order, then a space (which the dictionary does not list).
#[derive(Debug, Clone)]
pub struct Dictionary {
    characters: Vec<String>,
}

impl Dictionary {
    /// From the model's `character` metadata: one character per line, the lines split as
    /// Python's `str.splitlines` splits them (rapidocr reads it so).
    pub fn from_metadata(listed: &str) -> Dictionary {
        let mut characters = vec![String::new()];
        let mut rest = listed;
        while !rest.is_empty() {
            let end = rest.find(is_line_break).unwrap_or(rest.len());
            characters.push(rest[..end].to_string());
            rest = &rest[end..];
            match rest.chars().next() {
                Some('\r') if rest[1..].starts_with('\n') => rest = &rest[2..],
                Some(c) => rest = &rest[c.len_utf8()..],
                None => {}
            }
        }
        characters.push(" ".into());
        Dictionary { characters }
    }

    /// How many classes the recognizer scores: the characters, the space and the blank.
    pub fn classes(&self) -> usize {
        self.characters.len()
    }

    /// The greedy CTC reading of `steps` (one row of `classes()` probabilities per step).
    pub fn decode(&self, steps: &[f32]) -> Reading<'_> {
        let mut characters = Vec::new();
        let mut sum = 0f32;
        let mut previous = usize::MAX;
        for (step, scores) in steps.chunks(self.classes()).enumerate() {
            let (best, probability) =
                scores
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f32::MIN),
                        |(bi, bp), (i, &p)| {
                            if p > bp { (i, p) } else { (bi, bp) }
                        },
                    );
            if best != 0 && best != previous {
                characters.push((self.characters[best].as_str(), step));
                sum += probability;
            }
            previous = best;
        }
        let confidence = if characters.is_empty() {
            0.0
        } else {
            sum / characters.len() as f32
        };
        Reading {
            characters,
            confidence,
        }
    }
}

/// One line as the recognizer read it: each character with the step it was read at, and the
/// mean probability of the characters (0 when there are none).
#[derive(Debug, PartialEq)]
pub struct Reading<'a> {
    pub characters: Vec<(&'a str, usize)>,
    pub confidence: f32,
}

/// The characters Python's `str.splitlines` ends a line at.
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\u{0b}'
            | '\u{0c}'
            | '\u{1c}'
            | '\u{1d}'
            | '\u{1e}'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// The text of each of `lines` and its confidence, in the order of `lines`. The runs (a batch
/// of lines of one width each) are shared out between `sessions`, one thread each, widest
/// first: each session runs on its own thread alone. ONNX Runtime's pool, splitting each run
/// between two threads, ran it 1.6-1.7 times faster than one thread; two runs side by side,
/// twice as fast (`make bench`'s page: the whole read 519 ms with the pool, 494 so, for a
/// second session's 40 MiB).
pub fn recognize(
    sessions: &mut [Session],
    runs: &RunOptions,
    dictionary: &Dictionary,
    lines: &[RgbImage],
) -> Result<Vec<(String, f32)>> {
    let widths: Vec<u32> = lines.iter().map(input_width).collect();
    let mut batches = batches_of_one_width(&widths, BATCH);
    // The longest run first, so that the last ones to start are short.
    batches.sort_by_key(|batch| std::cmp::Reverse(widths[batch[0]] as usize * batch.len()));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let read = std::sync::Mutex::new(vec![(String::new(), 0.0); lines.len()]);
    let work = |session: &mut Session| -> Result<()> {
        loop {
            let taken = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(batch) = batches.get(taken) else {
                return Ok(());
            };
            let texts = read_batch(session, runs, dictionary, lines, &widths, batch)?;
            let mut read = read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (&index, text) in batch.iter().zip(texts) {
                read[index] = text;
            }
        }
    };
    let Some((first, others)) = sessions.split_first_mut() else {
        return Err(Error::Inference {
            model: "PP-OCRv4 recognition",
            reason: "no recognizer session".into(),
        });
    };
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let spawned: Vec<_> = others
            .iter_mut()
            .map(|session| scope.spawn(|| work(session)))
            .collect();
        let mut results = vec![work(first)];
        results.extend(spawned.into_iter().map(|handle| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }));
        results
    });
    results.into_iter().collect::<Result<()>>()?;
    Ok(read
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// The text and confidence of each line of `batch` (indices into `lines`, all of one width).
fn read_batch(
    session: &mut Session,
    runs: &RunOptions,
    dictionary: &Dictionary,
    lines: &[RgbImage],
    widths: &[u32],
    batch: &[usize],
) -> Result<Vec<(String, f32)>> {
    let failed = |e: ort::Error| Error::Inference {
        model: "PP-OCRv4 recognition",
        reason: e.to_string(),
    };
    let width = widths[batch[0]];
    let slot = 3 * (HEIGHT * width) as usize;
    let mut input = vec![0f32; batch.len() * slot];
    let mut ink = Vec::with_capacity(batch.len());
    for (&index, tensor) in batch.iter().zip(input.chunks_mut(slot)) {
        let fitted = fit(&lines[index], HEIGHT, width);
        write_normalized(&fitted, tensor, width as usize);
        ink.push(InkColumns::of(&fitted));
    }
    let input = Tensor::from_array(([batch.len(), 3, HEIGHT as usize, width as usize], input))
        .map_err(failed)?;
    let outputs = session
        .run_with_options(ort::inputs![input], runs)
        .map_err(failed)?;
    let (shape, scores) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
    if shape.len() != 3
        || shape[0] as usize != batch.len()
        || shape[2] as usize != dictionary.classes()
    {
        return Err(failed(ort::Error::new(format!(
            "the scores are {shape:?}, not {} lines x steps x {} classes; the dictionary \
             does not match the model",
            batch.len(),
            dictionary.classes()
        ))));
    }
    let per_line = scores.len() / batch.len();
    Ok(scores
        .chunks(per_line)
        .zip(&ink)
        .map(|(steps, ink)| {
            let reading = dictionary.decode(steps);
            (spell(&reading, ink), reading.confidence)
        })
        .collect())
}

/// The width `line` is read at: its shape at the recognizer's height, at least MIN_WIDTH.
fn input_width(line: &RgbImage) -> u32 {
    ((HEIGHT as f32 * ratio(line)) as u32).max(MIN_WIDTH)
}

/// The indices of lines of the given `widths` in runs of at most `size`, narrowest first, each
/// run of lines of one width only (in their order among themselves).
fn batches_of_one_width(widths: &[u32], size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..widths.len()).collect();
    order.sort_by_key(|&index| widths[index]);
    order
        .chunk_by(|&a, &b| widths[a] == widths[b])
        .flat_map(|same| same.chunks(size))
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_share_a_run_only_with_lines_of_their_width_six_at_most() {
        let widths = [640, 320, 320, 900, 320, 320, 320, 320, 320, 640, 321];
        assert_eq!(
            batches_of_one_width(&widths, 6),
            [
                vec![1, 2, 4, 5, 6, 7],
                vec![8],
                vec![10],
                vec![0, 9],
                vec![3]
            ]
        );
        assert!(batches_of_one_width(&[], 6).is_empty());
    }

    #[test]
    fn lines_are_read_at_their_own_width_and_short_ones_at_320() {
        // 48 high: a line 10 times as wide as high is read 480 wide; 3 times, padded to 320.
        assert_eq!(input_width(&RgbImage::new(300, 30)), 480);
        assert_eq!(input_width(&RgbImage::new(90, 30)), 320);
        assert_eq!(input_width(&RgbImage::new(641, 48)), 641);
    }

    #[test]
    fn the_dictionary_has_the_blank_first_and_the_space_last() {
        let dictionary = Dictionary::from_metadata("a\nb\r\nc\n");
        assert_eq!(dictionary.classes(), 5);
        assert_eq!(dictionary.characters[1..4], ["a", "b", "c"]);
        assert_eq!(dictionary.characters[0], "");
        assert_eq!(dictionary.characters[4], " ");
    }

    #[test]
    fn repeats_merge_blanks_separate_and_confidence_is_the_mean_of_kept_steps() {
        let dictionary = Dictionary::from_metadata("a\nb");
        // Classes: blank, a, b, space.
        let step = |best: usize, p: f32| {
            let mut row = vec![(1.0 - p) / 3.0; 4];
            row[best] = p;
            row
        };
        let steps: Vec<f32> = [
            step(1, 0.9),
            step(1, 0.7), // the same "a" again
            step(0, 0.8), // blank
            step(1, 0.5), // a second "a"
            step(3, 0.6),
            step(2, 1.0),
        ]
        .concat();
        let reading = dictionary.decode(&steps);
        assert_eq!(reading.characters, [("a", 0), ("a", 3), (" ", 4), ("b", 5)]);
        assert!((reading.confidence - (0.9 + 0.5 + 0.6 + 1.0) / 4.0).abs() < 1e-6);
        let empty = dictionary.decode(&step(0, 0.9));
        assert_eq!((empty.characters.len(), empty.confidence), (0, 0.0));
    }
}
