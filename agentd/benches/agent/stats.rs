//! Medians and percentiles. These machines are noisy (two shared cores), so repeated figures
//! are reported as medians, which one slow or fast outlier cannot move.

/// The median of `values`: the middle one, or the mean of the two middle ones for an even
/// count. `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The `p`th percentile by nearest rank: the smallest value at least `p`% of the values are
/// at or below. `None` for no values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p / 100.0 * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Self-checks, run by `cargo test -p carapace-agentd --benches` (this target has no libtest
/// harness, so `#[test]` functions would never run).
pub const CHECKS: &[(&str, fn())] = &[
    ("median of no values is none", || {
        assert_eq!(median(&[]), None)
    }),
    (
        "median of an odd count is the middle value, whatever the order",
        || assert_eq!(median(&[9.0, 1.0, 5.0, 30.0, 2.0]), Some(5.0)),
    ),
    (
        "median of an even count is the mean of the middle two",
        || assert_eq!(median(&[4.0, 1.0, 3.0, 100.0]), Some(3.5)),
    ),
    ("p99 of a hundred values is the 99th smallest", || {
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 50.0), Some(50.0));
    }),
    ("p99 of few values is the largest", || {
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 99.0), None);
    }),
];
