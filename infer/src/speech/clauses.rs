//! Where espeak-ng ends a clause, and with which mark. piper-tts keeps each clause's closing
//! punctuation in the phonemes (its voices were trained with it: a question sounds like one),
//! and groups clauses into sentences by it; the espeak-ng program prints a clause's phonemes
//! without the mark. These are espeak-ng's rules for the marks English text uses.

/// How a clause ends, as espeak-ng classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Period,
    Question,
    Exclamation,
    Comma,
    Colon,
    /// `;`, and a dash between words (espeak-ng reads both as a semicolon).
    Semicolon,
    /// An ellipsis: a pause within the sentence, which piper-tts writes as nothing.
    Pause,
    /// A blank line, or the end of the text without a mark.
    Unmarked,
}

impl Ending {
    /// What piper-tts writes after the clause's phonemes.
    pub fn mark(self) -> &'static str {
        match self {
            Ending::Period => ".",
            Ending::Question => "?",
            Ending::Exclamation => "!",
            Ending::Comma => ", ",
            Ending::Colon => ": ",
            Ending::Semicolon => "; ",
            Ending::Pause | Ending::Unmarked => "",
        }
    }

    /// Whether the sentence ends with this clause (piper-tts synthesizes one sentence at a time).
    pub fn ends_sentence(self) -> bool {
        !matches!(
            self,
            Ending::Comma | Ending::Colon | Ending::Semicolon | Ending::Pause
        )
    }
}

/// One clause of the text, its mark included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clause<'a> {
    pub text: &'a str,
    pub ending: Ending,
}

/// The clauses of `text`, in order; text without a letter or digit in it is no clause.
pub fn clauses(text: &str) -> Vec<Clause<'_>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(text.len(), |&(o, _)| o);
    let mut found = Vec::new();
    let mut push = |from: usize, to: usize, ending: Ending| {
        let clause = text[from..to].trim();
        if clause.chars().any(char::is_alphanumeric) {
            found.push(Clause {
                text: clause,
                ending,
            });
        }
    };
    let mut start = 0;
    let mut i = 0;
    while let Some(c) = at(i) {
        if c == '\n' {
            // A blank line ends a paragraph.
            let mut j = i + 1;
            while at(j).is_some_and(|c| c != '\n' && c.is_whitespace()) {
                j += 1;
            }
            if at(j) == Some('\n') {
                push(start, offset(i), Ending::Unmarked);
                start = offset(j + 1);
                i = j + 1;
                continue;
            }
        }
        let mut ending = match c {
            '.' => Ending::Period,
            '?' => Ending::Question,
            '!' => Ending::Exclamation,
            ',' => Ending::Comma,
            ':' => Ending::Colon,
            ';' | '\u{2013}' | '\u{2014}' => Ending::Semicolon,
            '\u{2026}' => Ending::Pause,
            _ => {
                i += 1;
                continue;
            }
        };
        let mut j = i + 1;
        if c == '.' && at(j) == Some('.') {
            while at(j) == Some('.') {
                j += 1;
            }
            ending = Ending::Pause;
        } else if matches!(
            ending,
            Ending::Period | Ending::Question | Ending::Exclamation
        ) {
            // "?!" and "!!!" end once, as their first mark.
            while at(j).is_some_and(|c| matches!(c, '.' | '?' | '!')) {
                j += 1;
            }
        }
        // Closing quotes and brackets belong to the clause they close, which ends there
        // whatever follows (`"No!" and left`).
        let marks_end = j;
        while at(j).is_some_and(|c| {
            matches!(
                c,
                '"' | '\'' | ')' | ']' | '}' | '\u{201d}' | '\u{2019}' | '\u{bb}'
            )
        }) {
            j += 1;
        }
        // A mark ends a clause only before a space or the end ("3.5", "1,000", "10:30" go on),
        // and a full stop before a lower-case word is an abbreviation's ("e.g. this").
        let mut next = j;
        while at(next).is_some_and(char::is_whitespace) {
            next += 1;
        }
        let closed = j > marks_end;
        let before_space = at(j).is_none_or(char::is_whitespace);
        let lower_next = at(next).is_some_and(char::is_lowercase);
        if !closed && (!before_space || (ending == Ending::Period && lower_next)) {
            i = j;
            continue;
        }
        push(start, offset(j), ending);
        start = offset(j);
        i = j;
    }
    push(start, text.len(), Ending::Unmarked);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ending::*;

    fn cut(text: &str) -> Vec<(&str, Ending)> {
        clauses(text).iter().map(|c| (c.text, c.ending)).collect()
    }

    #[test]
    fn each_mark_ends_its_clause() {
        assert_eq!(
            cut("Hello, world. How are you? I'm fine; thanks! Go: now"),
            [
                ("Hello,", Comma),
                ("world.", Period),
                ("How are you?", Question),
                ("I'm fine;", Semicolon),
                ("thanks!", Exclamation),
                ("Go:", Colon),
                ("now", Unmarked),
            ]
        );
    }

    #[test]
    fn marks_inside_numbers_and_abbreviations_before_lower_case_do_not() {
        assert_eq!(
            cut("It costs 4.50, at 10:30 for 1,000 people."),
            [
                ("It costs 4.50,", Comma),
                ("at 10:30 for 1,000 people.", Period)
            ]
        );
        assert_eq!(cut("e.g. this is fine."), [("e.g. this is fine.", Period)]);
    }

    #[test]
    fn a_quote_or_bracket_after_a_mark_ends_the_clause_whatever_follows() {
        assert_eq!(
            cut("He said \"no!\" and left. What?\"Quoted.\" (why?) ok"),
            [
                ("He said \"no!\"", Exclamation),
                ("and left.", Period),
                ("What?\"", Question),
                ("Quoted.\"", Period),
                ("(why?)", Question),
                ("ok", Unmarked),
            ]
        );
    }

    #[test]
    fn ellipses_dashes_runs_quotes_and_paragraphs() {
        assert_eq!(
            cut("Wait... what?! No\u{2026} \"Yes.\" One \u{2014} two - three\n\nNew"),
            [
                ("Wait...", Pause),
                ("what?!", Question),
                ("No\u{2026}", Pause),
                ("\"Yes.\"", Period),
                ("One \u{2014}", Semicolon),
                ("two - three", Unmarked),
                ("New", Unmarked),
            ]
        );
    }

    #[test]
    fn text_without_words_has_no_clauses() {
        assert!(cut("").is_empty());
        assert!(cut(" ... !?\n\n").is_empty());
    }

    #[test]
    fn sentences_end_at_full_stops_questions_exclamations_and_unmarked_ends() {
        assert!(Period.ends_sentence() && Question.ends_sentence() && Unmarked.ends_sentence());
        assert!(!Comma.ends_sentence() && !Pause.ends_sentence() && !Semicolon.ends_sentence());
        assert_eq!(Comma.mark(), ", ");
        assert_eq!(Pause.mark(), "");
    }
}
