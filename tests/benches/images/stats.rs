//! Medians. The build machines are noisy (QEMU under TCG on two shared cores), so the table
//! reports the middle boot, which a single slow or fast outlier cannot move.

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

/// Self-checks, run by `cargo test -p carapace-tests --benches` (see `main`: this target has
/// no libtest harness, so `#[test]` functions would never run).
pub const CHECKS: &[(&str, fn())] = &[
    ("median of no values is none", || {
        assert_eq!(median(&[]), None)
    }),
    ("median of one value is that value", || {
        assert_eq!(median(&[4.0]), Some(4.0))
    }),
    (
        "median of an odd count is the middle value, whatever the order",
        || assert_eq!(median(&[9.0, 1.0, 5.0, 30.0, 2.0]), Some(5.0)),
    ),
    (
        "median of an even count is the mean of the middle two",
        || assert_eq!(median(&[4.0, 1.0, 3.0, 100.0]), Some(3.5)),
    ),
    ("one outlier does not move the median", || {
        assert_eq!(median(&[20.0, 21.0, 22.0, 23.0, 900.0]), Some(22.0))
    }),
];
