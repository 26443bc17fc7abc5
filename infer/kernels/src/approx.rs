//! exp and erf for f32 as straight-line arithmetic (no calls, no branches the vectoriser cannot
//! turn into selects), accurate to what f32 math needs: exp within 2 ulp, erf within 3e-7.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two (Cody and Waite): the first part has few bits, so n · LN2_HIGH is exact.
const LN2_HIGH: f32 = 0.693_359_4;
const LN2_LOW: f32 = -2.121_944_4e-4;
/// Below this exp(x) is under f32's smallest normal: taken as 0. The upper bound keeps 2ⁿ
/// finite (e^88 is 1.7e38); the engine's inputs never get there (softmax subtracts the max).
const EXP_LOWEST: f32 = -87.336_55;
const EXP_HIGHEST: f32 = 88.0;
/// 1.5 · 2²³: adding it rounds an f32 of magnitude below 2²² to an integer, held in the low
/// mantissa bits (round to nearest without a call to roundf).
const ROUNDER: f32 = 12_582_912.0;

/// e^x. Exact at 0, within 2 ulp of the true value for x in [-87.3, 88]; 0 below, e^88
/// above; NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let clamped = x.clamp(EXP_LOWEST, EXP_HIGHEST);
    // x = n ln 2 + r, |r| ≤ ln 2 / 2; e^x = 2ⁿ e^r.
    let shifted = clamped * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = clamped - n * LN2_HIGH - n * LN2_LOW;
    // e^r - 1 - r on [-ln2/2, ln2/2]: Cephes' expf polynomial.
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2ⁿ from n's bits: shifted's low mantissa bits hold n + 2²² (two's complement).
    let n_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits());
    let two_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let value = e_r * two_n;
    if x < EXP_LOWEST {
        0.0
    } else if x.is_nan() {
        x
    } else {
        value
    }
}

/// 2¹¹², the distance between f32's exponent bias (127) and half precision's (15).
const HALF_TO_F32_SCALE: f32 = 5.192_297e33;

/// The f32 an IEEE 754 half-precision value (its bits) stands for, exactly, for every finite
/// one, subnormals included: its exponent and mantissa moved into f32's fields and scaled by
/// the difference of the biases, then its sign. (Infinities and NaNs come out as large finite
/// values; the weights this reads have none.)
#[inline(always)]
pub fn half_to_f32(bits: u16) -> f32 {
    let bits = u32::from(bits);
    let magnitude = f32::from_bits((bits & 0x7fff) << 13) * HALF_TO_F32_SCALE;
    f32::from_bits(magnitude.to_bits() | ((bits & 0x8000) << 16))
}

/// The f32 a bfloat16 value (its bits) stands for, exactly: bfloat16 is f32's upper half.
#[inline(always)]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// erf(x), within 3e-7 of the true value. Below 0.5 in magnitude, its Taylor series to x¹³
/// (1e-8); above, Abramowitz and Stegun's 7.1.26 (1.5e-7 in exact arithmetic, plus f32's
/// rounding of its terms: a few ulp near ±1), exactly ±1 far out. Both are computed and one is
/// selected, which keeps the loop branch-free.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let a2 = a * a;
    let series = ((((((1.0 / 9360.0 * a2 - 1.0 / 1320.0) * a2 + 1.0 / 216.0) * a2 - 1.0 / 42.0)
        * a2
        + 0.1)
        * a2
        - 1.0 / 3.0)
        * a2
        + 1.0)
        * a
        * std::f32::consts::FRAC_2_SQRT_PI;
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152) * t + 1.421_413_8) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    let tail = 1.0 - poly * exp(-a2);
    let magnitude = if a < 0.5 { series } else { tail };
    magnitude.copysign(x)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The half-precision bits nearest `value` (round to nearest even), for normal values:
    /// the reference the conversion is checked against, written the long way.
    pub(crate) fn half_bits(value: f32) -> u16 {
        let bits = value.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let exponent = ((bits >> 23) & 0xff) as i32 - 127 + 15;
        let mantissa = bits & 0x7f_ffff;
        if exponent <= 0 {
            return sign; // Below half's normals: zero is near enough for the tests' values.
        }
        let rounded =
            (mantissa >> 13) + u32::from((mantissa >> 12) & 1 == 1 && (mantissa & 0x2fff) != 0);
        sign | (((exponent as u32) << 10) + rounded) as u16
    }

    #[test]
    fn half_precision_values_convert_exactly() {
        // Zero, ±1, the largest finite (65504), the smallest normal (2⁻¹⁴) and subnormal
        // (2⁻²⁴), and a value with every mantissa bit set.
        for (bits, want) in [
            (0x0000u16, 0.0f32),
            (0x8000, -0.0),
            (0x3c00, 1.0),
            (0xbc00, -1.0),
            (0x7bff, 65504.0),
            (0x0400, 2f32.powi(-14)),
            (0x0001, 2f32.powi(-24)),
            (0x3fff, 1.999_023_4),
        ] {
            let got = half_to_f32(bits);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{bits:#06x}: {got} against {want}"
            );
        }
        for value in [0.1f32, -3.75, 1234.5, 7.5e-5] {
            assert!((half_to_f32(half_bits(value)) - value).abs() <= value.abs() / 1024.0);
        }
    }

    /// Distance in units in the last place between two finite f32 of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_standard_librarys_over_its_range() {
        let mut worst = 0;
        let mut x = EXP_LOWEST;
        while x <= EXP_HIGHEST {
            let want = (x as f64).exp() as f32;
            let got = exp(x);
            worst = worst.max(ulps(got, want));
            assert!(ulps(got, want) <= 2, "exp({x}) = {got}, want {want}");
            x += 0.000_73;
        }
        assert!(worst >= 1, "compared nothing");
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn exp_of_the_edges_and_of_nan() {
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
    }

    #[test]
    fn erf_is_within_3e7_of_the_true_value_and_odd() {
        let mut worst = 0f64;
        let mut x = -6.0f32;
        while x <= 6.0 {
            let want = erf_f64(x as f64);
            let got = erf(x);
            assert!(
                (got as f64 - want).abs() <= 3e-7,
                "erf({x}) = {got}, want {want}"
            );
            assert_eq!(erf(-x), -got);
            worst = worst.max((got as f64 - want).abs());
            x += 0.000_37;
        }
        eprintln!("erf: worst error {worst:e}");
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
    }

    /// erf in f64 by its Taylor series (|x| ≤ 3) and its continued fraction beyond: 1e-15 here.
    pub(crate) fn erf_f64(x: f64) -> f64 {
        let a = x.abs();
        let value = if a <= 3.0 {
            let mut term = a;
            let mut sum = a;
            let mut n = 0.0;
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = e^(-a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + 2/(a + …))))).
            let mut fraction = a;
            for k in (1..60).rev() {
                fraction = a + (k as f64 / 2.0) / fraction;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / fraction
        };
        value.copysign(x)
    }
}
