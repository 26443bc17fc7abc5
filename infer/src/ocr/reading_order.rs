//! Lines in the order a person reads them: top to bottom, and left to right among lines whose
//! tops lie within 10 pixels of each other (rapidocr's `sorted_boxes`, which sorts by the
//! top-left corner and then lets each box pass earlier ones on the same row to their right).

use super::geometry::Quad;

/// Tops closer than this are one row.
const SAME_ROW: f32 = 10.0;

pub fn sort_for_reading(boxes: &mut [Quad]) {
    boxes.sort_by(|a, b| a[0].y.total_cmp(&b[0].y).then(a[0].x.total_cmp(&b[0].x)));
    for i in 0..boxes.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            let (earlier, later) = (boxes[j][0], boxes[j + 1][0]);
            if (later.y - earlier.y).abs() < SAME_ROW && later.x < earlier.x {
                boxes.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocr::geometry::Point;

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
        sort_for_reading(&mut boxes);
        let tops: Vec<(f32, f32)> = boxes.iter().map(|b| (b[0].x, b[0].y)).collect();
        assert_eq!(
            tops,
            [(5.0, 10.0), (20.0, 108.0), (300.0, 104.0), (10.0, 200.0)]
        );
    }
}
