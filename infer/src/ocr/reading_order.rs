//! Lines in the order a person reads them: top to bottom, and left to right among lines whose
//! tops lie within 10 pixels of each other (rapidocr's `sorted_boxes`, which sorts by the
//! top-left corner and then lets each box pass earlier ones on the same row to their right).

use super::geometry::Point;

/// Tops closer than this are one row.
const SAME_ROW: f32 = 10.0;

/// Sorts `lines` in reading order by the top-left corner of each line's box.
pub fn sort_for_reading<T>(lines: &mut [T], top_left: impl Fn(&T) -> Point) {
    lines.sort_by(|a, b| {
        let (a, b) = (top_left(a), top_left(b));
        a.y.total_cmp(&b.y).then(a.x.total_cmp(&b.x))
    });
    for i in 0..lines.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            let (earlier, later) = (top_left(&lines[j]), top_left(&lines[j + 1]));
            if (later.y - earlier.y).abs() < SAME_ROW && later.x < earlier.x {
                lines.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocr::geometry::Quad;

    fn at(x: f32, y: f32) -> Quad {
        [Point::new(x, y); 4]
    }

    #[test]
    fn rows_go_down_and_each_row_goes_right_even_when_its_tops_differ_a_little() {
        let mut boxes = vec![
            at(300.0, 104.0),
            at(10.0, 200.0),
            at(20.0, 108.0),
            at(5.0, 10.0),
        ];
        sort_for_reading(&mut boxes, |b: &Quad| b[0]);
        let tops: Vec<(f32, f32)> = boxes.iter().map(|b| (b[0].x, b[0].y)).collect();
        assert_eq!(
            tops,
            [(5.0, 10.0), (20.0, 108.0), (300.0, 104.0), (10.0, 200.0)]
        );
    }
}
