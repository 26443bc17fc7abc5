//! The plane geometry text detection needs, written out rather than taken from an image
//! library (imageproc would bring nalgebra, rand and rayon for five small functions): convex
//! hulls, the smallest rotated rectangle around points (OpenCV's `minAreaRect`), the corner
//! orders rapidocr uses, a box pushed outwards as pyclipper does it, and whether a pixel lies
//! in a quadrilateral.

/// A point in pixels; x grows to the right, y downwards.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub fn new(x: f32, y: f32) -> Point {
        Point { x, y }
    }

    pub fn distance(self, other: Point) -> f32 {
        (self.x - other.x).hypot(self.y - other.y)
    }
}

/// Four corners; after `order_clockwise`, top-left, top-right, bottom-right, bottom-left.
pub type Quad = [Point; 4];

/// A rectangle at any angle: its centre, its side lengths, and the direction of its `width`
/// side (a unit vector).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotatedRect {
    pub center: Point,
    pub width: f32,
    pub height: f32,
    pub direction: Point,
}

impl RotatedRect {
    /// Its corners, going round.
    pub fn corners(&self) -> Quad {
        let (u, v) = (
            self.direction,
            Point::new(-self.direction.y, self.direction.x),
        );
        let (hw, hh) = (self.width / 2.0, self.height / 2.0);
        let at = |a: f32, b: f32| {
            Point::new(
                self.center.x + u.x * a + v.x * b,
                self.center.y + u.y * a + v.y * b,
            )
        };
        [at(-hw, -hh), at(hw, -hh), at(hw, hh), at(-hw, hh)]
    }

    pub fn short_side(&self) -> f32 {
        self.width.min(self.height)
    }
}

/// The convex hull of `points`, counter-clockwise in a y-down frame read as y-up (Andrew's
/// monotone chain); collinear points are dropped.
pub fn convex_hull(points: &[Point]) -> Vec<Point> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    sorted.dedup();
    if sorted.len() < 3 {
        return sorted;
    }
    let cross =
        |o: Point, a: Point, b: Point| (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
    let mut hull: Vec<Point> = Vec::with_capacity(2 * sorted.len());
    for pass in 0..2 {
        let start = hull.len();
        let ordered: Box<dyn Iterator<Item = &Point>> = if pass == 0 {
            Box::new(sorted.iter())
        } else {
            Box::new(sorted.iter().rev())
        };
        for &p in ordered {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        // The last point of each chain is the first of the other.
        hull.pop();
    }
    hull
}

/// The smallest-area rectangle around `points` (OpenCV's `minAreaRect`): one of its sides lies
/// along an edge of the convex hull, so each edge direction is tried.
pub fn min_area_rect(points: &[Point]) -> RotatedRect {
    let hull = convex_hull(points);
    let single = |center: Point| RotatedRect {
        center,
        width: 0.0,
        height: 0.0,
        direction: Point::new(1.0, 0.0),
    };
    match hull.len() {
        0 => return single(Point::default()),
        1 => return single(hull[0]),
        _ => {}
    }
    let mut best: Option<(f32, RotatedRect)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let length = a.distance(b);
        if length == 0.0 {
            continue;
        }
        let u = Point::new((b.x - a.x) / length, (b.y - a.y) / length);
        let v = Point::new(-u.y, u.x);
        let (mut u_min, mut u_max, mut v_min, mut v_max) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in &hull {
            let (pu, pv) = (p.x * u.x + p.y * u.y, p.x * v.x + p.y * v.y);
            u_min = u_min.min(pu);
            u_max = u_max.max(pu);
            v_min = v_min.min(pv);
            v_max = v_max.max(pv);
        }
        let area = (u_max - u_min) * (v_max - v_min);
        if best.is_none_or(|(smallest, _)| area < smallest) {
            let (cu, cv) = ((u_min + u_max) / 2.0, (v_min + v_max) / 2.0);
            best = Some((
                area,
                RotatedRect {
                    center: Point::new(u.x * cu + v.x * cv, u.y * cu + v.y * cv),
                    width: u_max - u_min,
                    height: v_max - v_min,
                    direction: u,
                },
            ));
        }
    }
    best.map_or_else(|| single(hull[0]), |(_, rect)| rect)
}

/// rapidocr's `get_mini_boxes` order of a rectangle's corners: the two leftmost (upper, then
/// lower) as first and last, the two rightmost (upper, then lower) as second and third.
pub fn mini_box_order(rect: &RotatedRect) -> Quad {
    let mut p = rect.corners();
    p.sort_by(|a, b| a.x.total_cmp(&b.x));
    let (first, fourth) = if p[1].y > p[0].y {
        (p[0], p[1])
    } else {
        (p[1], p[0])
    };
    let (second, third) = if p[3].y > p[2].y {
        (p[2], p[3])
    } else {
        (p[3], p[2])
    };
    [first, second, third, fourth]
}

/// Top-left, top-right, bottom-right, bottom-left: the two leftmost points by x are the left
/// side, each side split by y (rapidocr's `order_points_clockwise`).
pub fn order_clockwise(quad: &Quad) -> Quad {
    let mut p = *quad;
    p.sort_by(|a, b| a.x.total_cmp(&b.x));
    let by_y = |a: Point, b: Point| if b.y < a.y { (b, a) } else { (a, b) };
    let (top_left, bottom_left) = by_y(p[0], p[1]);
    let (top_right, bottom_right) = by_y(p[2], p[3]);
    [top_left, top_right, bottom_right, bottom_left]
}

/// The outline of `polygon` (convex) pushed out by `distance` with rounded corners, as
/// pyclipper's `PyclipperOffset` (round joins, arc tolerance 0.25) makes it for rapidocr's
/// unclip: on whole pixels, corners cut to whole pixels first, each arc in Clipper's steps.
pub fn rounded_offset(polygon: &[Point], distance: f32) -> Vec<Point> {
    let whole: Vec<(f64, f64)> = polygon
        .iter()
        .map(|p| (f64::from(p.x.trunc()), f64::from(p.y.trunc())))
        .collect();
    let n = whole.len();
    let delta = f64::from(distance);
    if n < 3 || delta <= 0.0 {
        return whole
            .iter()
            .map(|&(x, y)| Point::new(x as f32, y as f32))
            .collect();
    }
    let steps_per_turn =
        (std::f64::consts::PI / (1.0 - 0.25 / delta).acos()).min(delta * std::f64::consts::PI);
    let steps_per_radian = steps_per_turn / std::f64::consts::TAU;
    let (centre_x, centre_y) = whole.iter().fold((0.0, 0.0), |(sx, sy), &(x, y)| {
        (sx + x / n as f64, sy + y / n as f64)
    });
    // The outward unit normal of the edge from corner i to corner i + 1.
    let normal = |i: usize| {
        let ((ax, ay), (bx, by)) = (whole[i], whole[(i + 1) % n]);
        let length = (bx - ax).hypot(by - ay).max(f64::EPSILON);
        let (nx, ny) = ((by - ay) / length, -(bx - ax) / length);
        let (mx, my) = ((ax + bx) / 2.0 - centre_x, (ay + by) / 2.0 - centre_y);
        if nx * mx + ny * my < 0.0 {
            (-nx, -ny)
        } else {
            (nx, ny)
        }
    };
    let whole_point = |x: f64, y: f64| Point::new(x.round() as f32, y.round() as f32);
    let mut outline = Vec::new();
    for (i, &(x, y)) in whole.iter().enumerate() {
        let (from, to) = (normal((i + n - 1) % n), normal(i));
        let turn = (from.0 * to.1 - from.1 * to.0).atan2(from.0 * to.0 + from.1 * to.1);
        let steps = (steps_per_radian * turn.abs()).round().max(1.0) as usize;
        // Clipper's DoRound: fixed steps from the one edge's normal, then the other's.
        let step = (std::f64::consts::TAU / steps_per_turn).copysign(turn);
        let (sin, cos) = step.sin_cos();
        let (mut nx, mut ny) = from;
        for _ in 0..steps {
            outline.push(whole_point(x + nx * delta, y + ny * delta));
            (nx, ny) = (nx * cos - ny * sin, nx * sin + ny * cos);
        }
        outline.push(whole_point(x + to.0 * delta, y + to.1 * delta));
    }
    outline
}

/// The area and perimeter of a polygon (shoelace formula).
pub fn area_and_perimeter(polygon: &[Point]) -> (f32, f32) {
    let mut twice_area = 0.0;
    let mut perimeter = 0.0;
    for i in 0..polygon.len() {
        let (a, b) = (polygon[i], polygon[(i + 1) % polygon.len()]);
        twice_area += a.x * b.y - b.x * a.y;
        perimeter += a.distance(b);
    }
    ((twice_area / 2.0).abs(), perimeter)
}

/// Whether the pixel centre `p` is inside `polygon` or within half a pixel of its outline,
/// as OpenCV's `fillPoly` paints the outline's pixels too.
pub fn covers(polygon: &[Point], p: Point) -> bool {
    let mut inside = false;
    for i in 0..polygon.len() {
        let (a, b) = (polygon[i], polygon[(i + 1) % polygon.len()]);
        if distance_to_segment(p, a, b) <= 0.5 {
            return true;
        }
        if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
            inside = !inside;
        }
    }
    inside
}

fn distance_to_segment(p: Point, a: Point, b: Point) -> f32 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let length2 = dx * dx + dy * dy;
    let t = if length2 == 0.0 {
        0.0
    } else {
        (((p.x - a.x) * dx + (p.y - a.y) * dy) / length2).clamp(0.0, 1.0)
    };
    p.distance(Point::new(a.x + t * dx, a.y + t * dy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn the_hull_keeps_only_the_outer_corners() {
        let mut points = vec![];
        for x in 0..5 {
            for y in 0..3 {
                points.push(Point::new(x as f32, y as f32));
            }
        }
        let hull = convex_hull(&points);
        assert_eq!(hull.len(), 4, "{hull:?}");
        for corner in [(0.0, 0.0), (4.0, 0.0), (4.0, 2.0), (0.0, 2.0)] {
            assert!(hull.contains(&Point::new(corner.0, corner.1)), "{hull:?}");
        }
    }

    #[test]
    fn an_upright_block_of_pixels_gives_its_own_bounds() {
        // OpenCV measures between pixel centres: 10 columns are 9 wide.
        let points: Vec<Point> = (0..10)
            .flat_map(|x| (0..4).map(move |y| Point::new(x as f32 + 5.0, y as f32 + 7.0)))
            .collect();
        let rect = min_area_rect(&points);
        let (long, short) = (rect.width.max(rect.height), rect.short_side());
        assert!(close(long, 9.0) && close(short, 3.0), "{rect:?}");
        assert!(
            close(rect.center.x, 9.5) && close(rect.center.y, 8.5),
            "{rect:?}"
        );
    }

    #[test]
    fn a_tilted_rectangle_is_found_at_its_angle() {
        let angle = 0.3f32;
        let truth = RotatedRect {
            center: Point::new(50.0, 40.0),
            width: 60.0,
            height: 12.0,
            direction: Point::new(angle.cos(), angle.sin()),
        };
        let corners = truth.corners();
        // Its corners and points along its edges and inside.
        let mut points = corners.to_vec();
        for i in 0..4 {
            let (a, b) = (corners[i], corners[(i + 1) % 4]);
            for t in 1..10 {
                let t = t as f32 / 10.0;
                points.push(Point::new(a.x + t * (b.x - a.x), a.y + t * (b.y - a.y)));
            }
        }
        points.push(truth.center);
        let rect = min_area_rect(&points);
        assert!(close(rect.width * rect.height, 720.0), "{rect:?}");
        assert!(close(rect.width.max(rect.height), 60.0), "{rect:?}");
        assert!(
            close(rect.center.x, 50.0) && close(rect.center.y, 40.0),
            "{rect:?}"
        );
        // Along the long side, the direction is the rectangle's (up to sign and quarter turns).
        let long = if rect.width > rect.height {
            rect.direction
        } else {
            Point::new(-rect.direction.y, rect.direction.x)
        };
        assert!(close(
            (long.x * truth.direction.x + long.y * truth.direction.y).abs(),
            1.0
        ));
    }

    #[test]
    fn corners_are_ordered_as_rapidocr_orders_them() {
        let quad = [
            Point::new(90.0, 30.0),
            Point::new(10.0, 12.0),
            Point::new(12.0, 31.0),
            Point::new(88.0, 10.0),
        ];
        assert_eq!(order_clockwise(&quad), [quad[1], quad[3], quad[0], quad[2]]);
        let rect = RotatedRect {
            center: Point::new(50.0, 20.0),
            width: 80.0,
            height: 20.0,
            direction: Point::new(1.0, 0.0),
        };
        let ordered = mini_box_order(&rect);
        assert_eq!(ordered[0], Point::new(10.0, 10.0));
        assert_eq!(ordered[1], Point::new(90.0, 10.0));
        assert_eq!(ordered[2], Point::new(90.0, 30.0));
        assert_eq!(ordered[3], Point::new(10.0, 30.0));
    }

    #[test]
    fn area_and_perimeter_of_a_rectangle() {
        let rect = RotatedRect {
            center: Point::new(0.0, 0.0),
            width: 10.0,
            height: 4.0,
            direction: Point::new(1.0, 0.0),
        };
        let (area, perimeter) = area_and_perimeter(&rect.corners());
        assert!(close(area, 40.0) && close(perimeter, 28.0));
    }

    #[test]
    fn the_rounded_offset_of_a_rectangle_is_bounded_by_the_grown_rectangle() {
        let rect = RotatedRect {
            center: Point::new(50.0, 20.0),
            width: 80.0,
            height: 20.0,
            direction: Point::new(1.0, 0.0),
        };
        let outline = rounded_offset(&rect.corners(), 8.0);
        let bounds = min_area_rect(&outline);
        assert!(close(bounds.width.max(bounds.height), 96.0), "{bounds:?}");
        assert!(close(bounds.short_side(), 36.0), "{bounds:?}");
        // Rounded corners: nothing reaches the grown rectangle's corners.
        assert!(
            outline
                .iter()
                .all(|p| p.distance(Point::new(2.0, 2.0)) > 3.0)
        );
    }

    #[test]
    fn a_quad_covers_its_inside_and_outline_only() {
        let square = [
            Point::new(2.0, 2.0),
            Point::new(6.0, 2.0),
            Point::new(6.0, 6.0),
            Point::new(2.0, 6.0),
        ];
        assert!(covers(&square, Point::new(4.0, 4.0)));
        assert!(covers(&square, Point::new(2.0, 4.0)));
        assert!(covers(&square, Point::new(6.0, 6.0)));
        assert!(!covers(&square, Point::new(1.0, 4.0)));
        assert!(!covers(&square, Point::new(4.0, 7.0)));
    }
}
