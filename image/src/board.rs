//! The builder's door to board-support's board descriptions: turns a recipe's `board =` into
//! the description, or into an error that lists the boards there are.

pub use board_support::board::Board;

use crate::error::{Error, Result};

pub fn find(name: &str) -> Result<&'static Board> {
    board_support::board::find(name).ok_or_else(|| Error::UnknownBoard {
        board: name.to_string(),
        known: board_support::board::known_names(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_board_lists_the_known_ones() {
        let err = super::find("pi4").unwrap_err().to_string();
        assert!(err.contains("pi4") && err.contains("x86-64"), "{err}");
    }
}
