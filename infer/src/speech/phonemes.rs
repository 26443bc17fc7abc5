//! Text to the phoneme ids a Piper voice reads, as piper-tts makes them: espeak-ng's IPA per
//! clause, the clause's mark kept (a space after `,` `:` `;`), clauses grouped into sentences,
//! each sentence split into Unicode NFD code points, and each code point's ids between the
//! voice's start and end symbols, with the pad symbol after every one.

use icu_normalizer::DecomposingNormalizerBorrowed;

use super::clauses::clauses;
use super::config::{BOS, EOS, PAD, VoiceConfig};
use super::espeak::ipa_clauses;
use crate::error::Result;

/// The phonemes of each sentence of `text`, spoken by espeak-ng's `voice`: one code point each.
pub fn phonemize(voice: &str, text: &str) -> Result<Vec<Vec<String>>> {
    let clauses = clauses(text);
    if clauses.is_empty() {
        return Ok(Vec::new());
    }
    // espeak-ng over the whole text reads each word in its context, as piper-tts does. Where
    // it cut the text into clauses other than these rules did, each clause is read alone
    // instead, so that every mark still lands after its own clause. Within one, espeak-ng cuts
    // only a clause too long for it, without a mark, and piper-tts joins the parts as they are.
    let mut ipa = ipa_clauses(voice, text)?;
    if ipa.len() != clauses.len() {
        ipa = clauses
            .iter()
            .map(|clause| ipa_clauses(voice, clause.text).map(|parts| parts.concat()))
            .collect::<Result<_>>()?;
    }
    let mut sentences = Vec::new();
    let mut sentence = String::new();
    for (clause, phonemes) in clauses.iter().zip(&ipa) {
        sentence.push_str(&without_language_switches(phonemes));
        sentence.push_str(clause.ending.mark());
        if clause.ending.ends_sentence() {
            sentences.push(std::mem::take(&mut sentence));
        }
    }
    if !sentence.is_empty() {
        sentences.push(sentence);
    }
    let nfd = DecomposingNormalizerBorrowed::new_nfd();
    Ok(sentences
        .iter()
        .map(|s| {
            nfd.normalize(s)
                .chars()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|s: &Vec<String>| !s.is_empty())
        .collect())
}

/// espeak-ng marks words it reads in another language's voice as `(fr)word(en)`; piper-tts
/// drops the marks and keeps the words.
fn without_language_switches(phonemes: &str) -> String {
    let mut kept = String::with_capacity(phonemes.len());
    let mut rest = phonemes;
    while let Some(open) = rest.find('(') {
        match rest[open..].find(')') {
            Some(close) if close > 1 => {
                kept.push_str(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            _ => break,
        }
    }
    kept.push_str(rest);
    kept
}

/// The ids of one sentence's `phonemes`: start, pad, then each phoneme and a pad, then end.
/// A phoneme the voice has no id for is left out, as piper-tts leaves it out.
pub fn phoneme_ids(config: &VoiceConfig, phonemes: &[String]) -> Vec<i64> {
    let map = &config.phoneme_id_map;
    let ids = |symbol: &str| map.get(symbol).map(Vec::as_slice).unwrap_or_default();
    let mut out = Vec::with_capacity(2 * phonemes.len() + 3);
    out.extend(ids(BOS));
    out.extend(ids(PAD));
    for phoneme in phonemes {
        if let Some(id) = map.get(phoneme) {
            out.extend(id);
            out.extend(ids(PAD));
        }
    }
    out.extend(ids(EOS));
    out
}

/// The phoneme ids of each sentence of `text`, for the voice `config` describes.
pub fn text_to_ids(config: &VoiceConfig, text: &str) -> Result<Vec<Vec<i64>>> {
    Ok(phonemize(&config.espeak_voice, text)?
        .iter()
        .map(|sentence| phoneme_ids(config, sentence))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_interleaved_with_the_pad_between_start_and_end() {
        let config = VoiceConfig::parse(
            r#"{"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"},
                "phoneme_id_map": {"_": [0], "^": [1], "$": [2], "a": [14], "b": [15]}}"#,
        )
        .unwrap();
        let phonemes: Vec<String> = ["a", "?", "b"].map(String::from).to_vec();
        // "?" has no id in this map: left out, pad and all.
        assert_eq!(phoneme_ids(&config, &phonemes), [1, 0, 14, 0, 15, 0, 2]);
    }

    #[test]
    fn language_switch_marks_are_dropped() {
        assert_eq!(
            without_language_switches("(fr)bɔ̃ʒuʁ(en) wˈɜːld"),
            "bɔ̃ʒuʁ wˈɜːld"
        );
        assert_eq!(without_language_switches("no marks"), "no marks");
        assert_eq!(without_language_switches("open ( only"), "open ( only");
    }
}
