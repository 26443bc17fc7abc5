//! Long replies cut into messages an IM server accepts. Limits count UTF-16 code units (as
//! Telegram's do), so an emoji outside the BMP counts twice. A cut falls after the last line
//! break that fits, else after the last space, else between two characters (never inside one).

pub(crate) fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// `text` in pieces of at most `limit` UTF-16 units, in order. Pieces that are only white
/// space are left out (Telegram refuses an empty message); nothing else is lost.
pub(crate) fn split_text(text: &str, limit: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut units = 0;
    // Byte offsets just after the last newline and the last space in the current piece.
    let mut after_newline = None;
    let mut after_space = None;
    for (index, character) in text.char_indices() {
        let width = character.len_utf16();
        if units + width > limit {
            let cut = after_newline.or(after_space).unwrap_or(index);
            pieces.push(&text[start..cut]);
            start = cut;
            units = utf16_len(&text[cut..index]);
            after_newline = None;
            after_space = None;
        }
        units += width;
        let after = index + character.len_utf8();
        if character == '\n' {
            after_newline = Some(after);
        } else if character.is_whitespace() {
            after_space = Some(after);
        }
    }
    pieces.push(&text[start..]);
    pieces.retain(|piece| !piece.trim().is_empty());
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, limit: usize) -> Vec<&str> {
        let pieces = split_text(text, limit);
        for piece in &pieces {
            assert!(utf16_len(piece) <= limit, "{piece:?} is over {limit}");
        }
        pieces
    }

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(check("hello", 4096), ["hello"]);
    }

    #[test]
    fn cuts_fall_after_line_breaks() {
        let pieces = check("aaa\nbbb\nccc\n", 9);
        assert_eq!(pieces, ["aaa\nbbb\n", "ccc\n"]);
    }

    #[test]
    fn without_line_breaks_cuts_fall_after_spaces() {
        assert_eq!(check("one two three", 9), ["one two ", "three"]);
    }

    #[test]
    fn a_long_word_is_cut_between_characters() {
        assert_eq!(check("abcdefgh", 3), ["abc", "def", "gh"]);
    }

    #[test]
    fn an_astral_character_is_never_cut_and_counts_twice() {
        // '😀' is two UTF-16 units: three fit in 7 units, not four.
        let pieces = check("😀😀😀😀", 7);
        assert_eq!(pieces, ["😀😀😀", "😀"]);
    }

    #[test]
    fn nothing_is_lost_in_a_long_mixed_text() {
        let line = "Grüße, 世界 😀 — a line of text\n";
        let text = line.repeat(500);
        let pieces = check(&text, 4096);
        assert!(pieces.len() > 1);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.iter().all(|piece| piece.ends_with('\n')));
    }

    #[test]
    fn blank_pieces_are_left_out() {
        assert!(check("", 10).is_empty());
        assert!(check("   \n\n", 10).is_empty());
        let text = format!("a{}b", " ".repeat(20));
        let pieces = check(&text, 10);
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        assert!(pieces[0].starts_with('a') && pieces[1].ends_with('b'));
    }
}
