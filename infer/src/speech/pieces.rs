//! Where a sentence's latent frames are cut to be decoded on several threads at once. Each
//! piece reads the frames of its receptive field on either side (the decoder's context) and
//! keeps the samples of its own frames only, so the pieces put back together are the samples
//! of the whole.

use std::ops::Range;

/// One piece: the frames whose samples it gives, and the frames it reads for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub own: Range<usize>,
    pub read: Range<usize>,
}

/// `frames` cut into `wanted` pieces of near equal length, each reading `context` frames either
/// side, or into fewer where a piece would be shorter than twice the context it reads (more of
/// its work would be context than its own).
pub fn cut(frames: usize, wanted: usize, context: usize) -> Vec<Piece> {
    let most = (frames / (2 * context).max(1)).max(1);
    let count = wanted.clamp(1, most);
    (0..count)
        .map(|i| {
            let own = frames * i / count..frames * (i + 1) / count;
            let read = own.start.saturating_sub(context)..(own.end + context).min(frames);
            Piece { own, read }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_every_frame_once_and_read_their_context() {
        let pieces = cut(262, 2, 12);
        assert_eq!(
            pieces,
            [
                Piece {
                    own: 0..131,
                    read: 0..143
                },
                Piece {
                    own: 131..262,
                    read: 119..262
                },
            ]
        );
        for (frames, wanted) in [(1000, 7), (61, 3), (100, 4)] {
            let pieces = cut(frames, wanted, 12);
            assert_eq!(pieces.first().unwrap().own.start, 0);
            assert_eq!(pieces.last().unwrap().own.end, frames);
            for pair in pieces.windows(2) {
                assert_eq!(pair[0].own.end, pair[1].own.start);
            }
        }
    }

    #[test]
    fn short_sentences_are_not_cut_finer_than_their_context() {
        assert_eq!(cut(30, 2, 12).len(), 1);
        assert_eq!(cut(48, 4, 12).len(), 2);
        assert_eq!(
            cut(0, 2, 12),
            [Piece {
                own: 0..0,
                read: 0..0
            }]
        );
        assert_eq!(cut(10, 0, 0).len(), 1);
    }
}
