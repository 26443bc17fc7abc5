//! Spaces between words, from the line's pixels. PP-OCRv4's recognizer (a Chinese and English
//! model) rarely scores the space, so "Total due 348.50" reads "Totaldue348.50" (rapidocr
//! reads it so too); and the step a character is read at is too coarse (8 pixels, a third of
//! a letter) to tell a word's end from a letter's. The pixels tell: between two words a line
//! has a run of columns without ink, and on the sample page every such run is at least twice
//! as wide as the typical run between two letters of a word (13 to 28 pixels at the
//! recognizer's height of 48, against a median of 5 to 8 and at most 12 inside a word).
//! Chinese and Japanese have no spaces between words, so none goes next to their characters.
//! The recognizer also reads some commas and brackets of Latin text as their full-width
//! Chinese forms; between Latin characters they are made ASCII again.

use std::borrow::Cow;

use image::RgbImage;

use super::recognize::Reading;

/// The recognizer's step along the line, in pixels of its input.
const STEP: usize = 8;
/// A gap is a space when it is this many times the line's median gap between characters...
const SPACE_OVER_MEDIAN: usize = 2;
/// ...and at least this wide, in pixels of the recognizer's input (so that a line printed
/// letter against letter does not call every hairline a space).
const MIN_SPACE: usize = STEP;

/// Which columns of a line, cut out and scaled to the recognizer's height, carry ink: the
/// pixels split into ink and background at Otsu's threshold, the background being the side
/// most of them are on (dark text on light, or light on dark).
pub struct InkColumns {
    inked: Vec<bool>,
}

impl InkColumns {
    pub fn of(line: &RgbImage) -> InkColumns {
        let width = line.width() as usize;
        let gray: Vec<u8> = line
            .pixels()
            .map(|p| {
                let [r, g, b] = p.0.map(u32::from);
                ((r * 299 + g * 587 + b * 114) / 1000) as u8
            })
            .collect();
        let threshold = otsu(&gray);
        let dark = gray.iter().filter(|&&g| g <= threshold).count();
        let ink_is_dark = dark * 2 < gray.len();
        let mut inked = vec![false; width];
        for (i, &g) in gray.iter().enumerate() {
            if (g <= threshold) == ink_is_dark {
                inked[i % width] = true;
            }
        }
        InkColumns { inked }
    }

    /// The widest run of columns without ink from the start of step `from` to the end of
    /// step `to`: where the characters read at those steps stand, and what lies between them.
    fn widest_gap(&self, from: usize, to: usize) -> usize {
        let end = ((to + 1) * STEP).min(self.inked.len());
        let start = (from * STEP).min(end);
        let (mut widest, mut run) = (0, 0);
        for &ink in &self.inked[start..end] {
            run = if ink { 0 } else { run + 1 };
            widest = widest.max(run);
        }
        widest
    }
}

/// The text of `reading`, with a space between two characters wherever `ink` shows one (but
/// never before a comma, a full stop or a closing bracket, nor after an opening one, where
/// monospaced type leaves wide gaps), and the full-width punctuation the recognizer reads in
/// Latin text ("MUM，Tom", "p. 4）") made the ASCII it is.
pub fn spell(reading: &Reading, ink: &InkColumns) -> String {
    let characters: Vec<&str> = reading.characters.iter().map(|&(c, _)| c).collect();
    let gaps: Vec<usize> = reading
        .characters
        .windows(2)
        .map(|pair| ink.widest_gap(pair[0].1, pair[1].1))
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort_unstable();
    // The lower median: with two gaps, the narrower.
    let typical = sorted.get(sorted.len().saturating_sub(1) / 2).copied();
    let threshold = typical.map_or(usize::MAX, |t| (SPACE_OVER_MEDIAN * t + 1).max(MIN_SPACE));
    // Full-width forms first: whether a space may follow depends on what they become.
    let spelled: Vec<Cow<str>> = characters
        .iter()
        .enumerate()
        .map(|(i, &character)| {
            let before = i.checked_sub(1).map(|b| characters[b]);
            let after = characters.get(i + 1).copied();
            let in_latin_text =
                !before.is_some_and(is_east_asian) && !after.is_some_and(is_east_asian);
            match half_width(character) {
                Some(ascii) if in_latin_text => Cow::Owned(ascii.to_string()),
                _ => Cow::Borrowed(character),
            }
        })
        .collect();
    let mut text = String::new();
    for (i, character) in spelled.iter().enumerate() {
        if i > 0
            && gaps[i - 1] >= threshold
            && takes_spaces(&spelled[i - 1])
            && takes_spaces(character)
            && !spelled[i - 1].ends_with(['(', '[', '{'])
            && !character.starts_with([',', '.', ';', ':', '!', '?', ')', ']', '}', '%'])
        {
            text.push(' ');
        }
        text.push_str(character);
    }
    text
}

/// Whether a space may stand next to `character`: not next to a space already read, nor to
/// Chinese or Japanese writing and its full-width punctuation.
fn takes_spaces(character: &str) -> bool {
    !character
        .chars()
        .any(|c| c.is_whitespace() || ('\u{FF00}'..='\u{FFEF}').contains(&c))
        && !is_east_asian(character)
}

/// Whether `character` is Chinese or Japanese writing: ideographs, kana, and their
/// punctuation (not the full-width forms of ASCII, which the recognizer also reads in Latin
/// text).
fn is_east_asian(character: &str) -> bool {
    character.chars().any(|c| {
        matches!(u32::from(c),
            0x2E80..=0x303F // CJK radicals, symbols and punctuation
            | 0x3040..=0x30FF // hiragana, katakana
            | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF // ideographs
            | 0x20000..=0x3FFFF)
    })
}

/// The ASCII character whose full-width form `character` is ("，" is ",").
fn half_width(character: &str) -> Option<char> {
    let mut chars = character.chars();
    match (chars.next(), chars.next()) {
        (Some(c @ '\u{FF01}'..='\u{FF5E}'), None) => char::from_u32(u32::from(c) - 0xFEE0),
        _ => None,
    }
}

/// Otsu's threshold: the grey level that best splits `gray` into two classes (the level
/// itself falls in the darker).
fn otsu(gray: &[u8]) -> u8 {
    let mut histogram = [0u64; 256];
    for &g in gray {
        histogram[usize::from(g)] += 1;
    }
    let total = gray.len() as f64;
    let sum: f64 = (0..256).map(|g| g as f64 * histogram[g] as f64).sum();
    let (mut below, mut below_sum) = (0f64, 0f64);
    let (mut best, mut best_variance) = (0u8, -1f64);
    for (g, &n) in histogram.iter().enumerate() {
        below += n as f64;
        below_sum += g as f64 * n as f64;
        let above = total - below;
        if below == 0.0 || above == 0.0 {
            continue;
        }
        let difference = below_sum / below - (sum - below_sum) / above;
        let variance = below * above * difference * difference;
        if variance > best_variance {
            best_variance = variance;
            best = g as u8;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A line 48 pixels high, `background` with ink of colour `text` in the columns where
    /// `pattern` has '#'.
    fn line(pattern: &str, text: Rgb<u8>, background: Rgb<u8>) -> RgbImage {
        let columns: Vec<bool> = pattern.chars().map(|c| c == '#').collect();
        RgbImage::from_fn(columns.len() as u32, 48, |x, y| {
            if columns[x as usize] && (12..36).contains(&y) {
                text
            } else {
                background
            }
        })
    }

    fn reading<'a>(characters: &[(&'a str, usize)]) -> Reading<'a> {
        Reading {
            characters: characters.to_vec(),
            confidence: 0.9,
        }
    }

    /// "ab cd": four letters 10 pixels wide, 4 apart within a word and 20 between the words,
    /// each read at the step its left edge is in (0, 1, 5, 7).
    const AB_CD: &str = "##########....##########....................##########....##########";

    #[test]
    fn a_gap_twice_the_line_s_usual_is_a_space_in_dark_on_light_and_light_on_dark() {
        let read = reading(&[("a", 0), ("b", 1), ("c", 5), ("d", 7)]);
        let (black, white) = (Rgb([20, 20, 20]), Rgb([235, 235, 235]));
        for (text, background) in [(black, white), (white, black)] {
            let ink = InkColumns::of(&line(AB_CD, text, background));
            assert_eq!(spell(&read, &ink), "ab cd");
        }
    }

    #[test]
    fn letters_evenly_apart_get_no_space() {
        let even = "#####...#####...#####...#####...#####...";
        let ink = InkColumns::of(&line(even, Rgb([0, 0, 0]), Rgb([255, 255, 255])));
        let read = reading(&[("a", 0), ("b", 1), ("c", 2), ("d", 3), ("e", 4)]);
        assert_eq!(spell(&read, &ink), "abcde");
    }

    #[test]
    fn no_space_next_to_chinese_characters_or_a_space_already_read() {
        let ink = InkColumns::of(&line(AB_CD, Rgb([0, 0, 0]), Rgb([255, 255, 255])));
        let read = reading(&[("a", 0), ("b", 1), ("价", 5), ("d", 7)]);
        assert_eq!(spell(&read, &ink), "ab价d");
        let read = reading(&[("a", 0), ("b", 1), (" ", 3), ("c", 5), ("d", 7)]);
        assert_eq!(spell(&read, &ink), "ab cd");
    }

    #[test]
    fn no_space_before_a_comma_or_a_closing_bracket_nor_after_an_opening_one() {
        let ink = InkColumns::of(&line(AB_CD, Rgb([0, 0, 0]), Rgb([255, 255, 255])));
        for (wide, read) in [(",", "ab,d"), (")", "ab)d"), ("(", "ab (d")] {
            let characters = [("a", 0), ("b", 1), (wide, 5), ("d", 7)];
            assert_eq!(spell(&reading(&characters), &ink), read);
        }
        let characters = [("a", 0), ("(", 1), ("c", 5), ("d", 7)];
        assert_eq!(spell(&reading(&characters), &ink), "a(cd");
    }

    #[test]
    fn full_width_punctuation_in_latin_text_is_made_ascii_and_spaced() {
        let ink = InkColumns::of(&line(AB_CD, Rgb([0, 0, 0]), Rgb([255, 255, 255])));
        let read = reading(&[("a", 0), ("，", 1), ("c", 5), ("）", 7)]);
        assert_eq!(spell(&read, &ink), "a, c)");
        // Next to Chinese it stays as read, and unspaced.
        let read = reading(&[("价", 0), ("，", 1), ("c", 5), ("d", 7)]);
        assert_eq!(spell(&read, &ink), "价，cd");
        let read = reading(&[("a", 0), ("b", 1), ("（", 5), ("价", 7)]);
        assert_eq!(spell(&read, &ink), "ab（价");
    }

    #[test]
    fn a_line_of_one_or_two_characters_gets_no_space() {
        let ink = InkColumns::of(&line(AB_CD, Rgb([0, 0, 0]), Rgb([255, 255, 255])));
        assert_eq!(spell(&reading(&[("b", 1), ("c", 5)]), &ink), "bc");
        assert_eq!(spell(&reading(&[("a", 0)]), &ink), "a");
        assert_eq!(spell(&reading(&[]), &ink), "");
    }
}
