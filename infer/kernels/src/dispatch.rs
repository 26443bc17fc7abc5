//! Each public function is one loop over plain arithmetic (approx.rs, inlined), instantiated
//! with the x86-64 features that widen its vectors and chosen once per call by what the CPU
//! says it has.

use crate::approx::{bf16_to_f32, erf, exp, half_to_f32};

/// Lanes per partial sum: wide enough for AVX-512 and a reduction the vectoriser keeps in
/// registers (a float sum is not reassociated unless written so).
const LANES: usize = 16;

/// Calls `$lanes` with the best instruction set this CPU has: the function compiled again
/// with those features enabled, so that its loops are vectorised for them.
macro_rules! best_simd {
    ($lanes:ident($($arg:ident: $ty:ty),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            fn avx512($($arg: $ty),*) {
                $lanes($($arg),*)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) {
                $lanes($($arg),*)
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, the one feature `avx512` is compiled with.
                return unsafe { avx512($($arg),*) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has AVX2 and FMA, the features `avx2` is compiled with.
                return unsafe { avx2($($arg),*) };
            }
        }
        $lanes($($arg),*)
    }};
}

/// Softmax of each row of `row_len` values (the last `len % row_len` values, if any, form a
/// shorter row), in place: e^(x - max) / Σ. A row of −∞ only becomes NaN, as in candle.
pub fn softmax_rows(values: &mut [f32], row_len: usize) {
    if row_len == 0 {
        return;
    }
    best_simd!(softmax_lanes(values: &mut [f32], row_len: usize))
}

/// The exact GELU, x/2 · (1 + erf(x/√2)), in place.
pub fn gelu_erf(values: &mut [f32]) {
    best_simd!(gelu_lanes(values: &mut [f32]))
}

/// GELU's tanh approximation (gelu_pytorch_tanh), x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³))),
/// in place, computed as x / (1 + e^(−2u)) with u the tanh's argument: the same value, with
/// no tanh to call.
pub fn gelu_tanh(values: &mut [f32]) {
    best_simd!(gelu_tanh_lanes(values: &mut [f32]))
}

#[inline(always)]
fn gelu_tanh_lanes(values: &mut [f32]) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    for value in values.iter_mut() {
        let x = *value;
        let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
        *value = x / (1.0 + exp(-2.0 * u));
    }
}

#[inline(always)]
fn softmax_lanes(values: &mut [f32], row_len: usize) {
    for row in values.chunks_mut(row_len) {
        let max = lane_reduce(row, f32::NEG_INFINITY, f32::max);
        for value in row.iter_mut() {
            *value = exp(*value - max);
        }
        let sum = lane_reduce(row, 0.0, |a, b| a + b);
        let scale = 1.0 / sum;
        for value in row.iter_mut() {
            *value *= scale;
        }
    }
}

#[inline(always)]
fn gelu_lanes(values: &mut [f32]) {
    for value in values.iter_mut() {
        let x = *value;
        *value = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// The two 16-bit float formats checkpoints store weights in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    /// IEEE 754 half precision (Whisper's shipped weights).
    F16,
    /// bfloat16, f32's upper half (most transformers checkpoints, SmolVLM's among them).
    Bf16,
}

impl Half {
    /// The f32 `bits` stand for in this format, exactly.
    #[inline(always)]
    pub fn to_f32(self, bits: u16) -> f32 {
        match self {
            Half::F16 => half_to_f32(bits),
            Half::Bf16 => bf16_to_f32(bits),
        }
    }
}

/// `out[i]` = the f32 value of `bits[i]` in the format `half`, exactly.
pub fn widen(half: Half, bits: &[u16], out: &mut [f32]) {
    assert_eq!(
        bits.len(),
        out.len(),
        "widening into a slice of another length"
    );
    match half {
        Half::F16 => best_simd!(widen_f16_lanes(bits: &[u16], out: &mut [f32])),
        Half::Bf16 => best_simd!(widen_bf16_lanes(bits: &[u16], out: &mut [f32])),
    }
}

#[inline(always)]
fn widen_f16_lanes(bits: &[u16], out: &mut [f32]) {
    for (o, &b) in out.iter_mut().zip(bits) {
        *o = half_to_f32(b);
    }
}

#[inline(always)]
fn widen_bf16_lanes(bits: &[u16], out: &mut [f32]) {
    for (o, &b) in out.iter_mut().zip(bits) {
        *o = bf16_to_f32(b);
    }
}

/// The longest int8 dot product `i8_matvec` takes: at most 128 · 128 per term keeps the sum
/// within i32.
pub const I8_DOT_MAX_LEN: usize = (i32::MAX as usize) / (128 * 128);

/// `out[r]` = Σᵢ `rows[r · dim + i]` · `x[i]` exactly, dim being `x.len()` (at most
/// `I8_DOT_MAX_LEN`), for an int8 matrix of `out.len()` rows: half the bytes of a 16-bit
/// matrix to read, products the vectoriser sums pairwise in 32 bits (pmaddwd on x86).
pub fn i8_matvec(rows: &[i8], x: &[i8], out: &mut [i32]) {
    assert_eq!(rows.len(), out.len() * x.len(), "the matrix is not out × x");
    assert!(
        x.len() <= I8_DOT_MAX_LEN,
        "an int8 dot product of {} terms may overflow i32",
        x.len()
    );
    if x.is_empty() {
        out.fill(0);
        return;
    }
    best_simd!(i8_matvec_lanes(rows: &[i8], x: &[i8], out: &mut [i32]))
}

#[inline(always)]
fn i8_matvec_lanes(rows: &[i8], x: &[i8], out: &mut [i32]) {
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(x.len())) {
        *o = row
            .iter()
            .zip(x)
            .map(|(&w, &v)| i32::from(w) * i32::from(v))
            .sum();
    }
}

/// `out[r]` = Σᵢ `rows[r · dim + i]` · `x[i]`, dim being `x.len()`, for a matrix of 16-bit
/// floats in the format `half` (their bits) with `out.len()` rows.
pub fn half_matvec(half: Half, rows: &[u16], x: &[f32], out: &mut [f32]) {
    assert_eq!(rows.len(), out.len() * x.len(), "the matrix is not out × x");
    if x.is_empty() {
        out.fill(0.0);
        return;
    }
    match half {
        Half::F16 => best_simd!(f16_matvec_lanes(rows: &[u16], x: &[f32], out: &mut [f32])),
        Half::Bf16 => best_simd!(bf16_matvec_lanes(rows: &[u16], x: &[f32], out: &mut [f32])),
    }
}

/// `out[j]` += Σᵢ `x[i]` · W[i][j] for W of 16-bit floats in the format `half` (their bits),
/// `x.len()` rows of `out.len()` columns, `row_stride` values apart in `w`: a vector times a
/// row-major matrix, or times a block of its columns (a dense layer's weight kept [inputs,
/// outputs], as gemm takes it, for one token at a time).
pub fn half_vecmat(half: Half, w: &[u16], row_stride: usize, x: &[f32], out: &mut [f32]) {
    if x.is_empty() || out.is_empty() {
        return;
    }
    assert!(
        out.len() <= row_stride && (x.len() - 1) * row_stride + out.len() <= w.len(),
        "a {}x{} block with rows {row_stride} apart does not fit {} values",
        x.len(),
        out.len(),
        w.len()
    );
    match half {
        Half::F16 => {
            best_simd!(f16_vecmat_lanes(w: &[u16], row_stride: usize, x: &[f32], out: &mut [f32]))
        }
        Half::Bf16 => {
            best_simd!(bf16_vecmat_lanes(w: &[u16], row_stride: usize, x: &[f32], out: &mut [f32]))
        }
    }
}

#[inline(always)]
fn f16_vecmat_lanes(w: &[u16], row_stride: usize, x: &[f32], out: &mut [f32]) {
    vecmat_lanes(w, row_stride, x, out, half_to_f32)
}

#[inline(always)]
fn bf16_vecmat_lanes(w: &[u16], row_stride: usize, x: &[f32], out: &mut [f32]) {
    vecmat_lanes(w, row_stride, x, out, bf16_to_f32)
}

/// Columns summed at once: their partial sums stay in vector registers (8 of AVX2's 16, 4 of
/// AVX-512's 32) while W's rows stream past.
const VECMAT_COLUMNS: usize = 64;

#[inline(always)]
fn vecmat_lanes(
    w: &[u16],
    row_stride: usize,
    x: &[f32],
    out: &mut [f32],
    to_f32: impl Fn(u16) -> f32,
) {
    let mut out_blocks = out.chunks_exact_mut(VECMAT_COLUMNS);
    let mut first = 0;
    for out_block in &mut out_blocks {
        let mut sums = [0f32; VECMAT_COLUMNS];
        for (i, &xi) in x.iter().enumerate() {
            let row = &w[i * row_stride + first..][..VECMAT_COLUMNS];
            for (sum, &bits) in sums.iter_mut().zip(row) {
                *sum += xi * to_f32(bits);
            }
        }
        for (o, sum) in out_block.iter_mut().zip(sums) {
            *o += sum;
        }
        first += VECMAT_COLUMNS;
    }
    let tail = out_blocks.into_remainder();
    for (i, &xi) in x.iter().enumerate() {
        let row = &w[i * row_stride + first..][..tail.len()];
        for (o, &bits) in tail.iter_mut().zip(row) {
            *o += xi * to_f32(bits);
        }
    }
}

#[inline(always)]
fn f16_matvec_lanes(rows: &[u16], x: &[f32], out: &mut [f32]) {
    matvec_lanes(rows, x, out, half_to_f32)
}

#[inline(always)]
fn bf16_matvec_lanes(rows: &[u16], x: &[f32], out: &mut [f32]) {
    matvec_lanes(rows, x, out, bf16_to_f32)
}

#[inline(always)]
fn matvec_lanes(rows: &[u16], x: &[f32], out: &mut [f32], to_f32: impl Fn(u16) -> f32) {
    for (row, sum) in rows.chunks_exact(x.len()).zip(out.iter_mut()) {
        let mut partial = [0f32; LANES];
        let (row_lanes, x_lanes) = (row.chunks_exact(LANES), x.chunks_exact(LANES));
        let tail: f32 = row_lanes
            .remainder()
            .iter()
            .zip(x_lanes.remainder())
            .map(|(&h, &v)| to_f32(h) * v)
            .sum();
        for (r, v) in row_lanes.zip(x_lanes) {
            for ((p, &h), &v) in partial.iter_mut().zip(r).zip(v) {
                *p += to_f32(h) * v;
            }
        }
        *sum = partial.into_iter().fold(tail, |a, b| a + b);
    }
}

/// Folds `values` with `op` in LANES independent partial results, then folds those.
#[inline(always)]
fn lane_reduce(values: &[f32], start: f32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut partial = [start; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (p, &v) in partial.iter_mut().zip(chunk) {
            *p = op(*p, v);
        }
    }
    let tail = chunks.remainder().iter().fold(start, |a, &v| op(a, v));
    partial.into_iter().fold(tail, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approx::tests::erf_f64;

    /// Softmax the plain way, in f64.
    fn reference_softmax(row: &[f32]) -> Vec<f64> {
        let max = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        let exps: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        exps.iter().map(|e| e / sum).collect()
    }

    /// Reproducible values in [-scale, scale].
    fn values(count: usize, scale: f32, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    #[test]
    fn softmax_rows_match_a_plain_softmax_and_each_sums_to_one() {
        // Rows shorter than, equal to and longer than the lanes, and a short last row.
        for (len, row_len) in [
            (1500 * 3, 1500),
            (16 * 5, 16),
            (7 * 4, 7),
            (100, 30),
            (5, 9),
        ] {
            let input = values(len, 12.0, len as u64);
            let mut got = input.clone();
            softmax_rows(&mut got, row_len);
            for (row_in, row_out) in input.chunks(row_len).zip(got.chunks(row_len)) {
                let want = reference_softmax(row_in);
                for (g, w) in row_out.iter().zip(&want) {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-6 * w.max(1e-3),
                        "{g} against {w}"
                    );
                }
                let sum: f64 = row_out.iter().map(|&v| v as f64).sum();
                assert!((sum - 1.0).abs() < 1e-5, "a row sums to {sum}");
            }
        }
    }

    /// `weights` in the 16-bit format `half` (bfloat16 truncated: the tests need its values,
    /// not the nearest ones).
    fn stored_as(half: Half, weights: &[f32]) -> Vec<u16> {
        weights
            .iter()
            .map(|&w| match half {
                Half::F16 => crate::approx::tests::half_bits(w),
                Half::Bf16 => (w.to_bits() >> 16) as u16,
            })
            .collect()
    }

    #[test]
    fn a_half_or_bfloat16_matrix_times_a_vector_is_the_plain_product() {
        // Rows longer than the lanes with a tail, and rows shorter than them.
        for half in [Half::F16, Half::Bf16] {
            for (rows, dim) in [(37, 384 + 5), (5, 7), (3, 0)] {
                let weights = values(rows * dim, 3.0, dim as u64);
                let bits = stored_as(half, &weights);
                let x = values(dim, 1.0, 7);
                let mut out = vec![f32::NAN; rows];
                half_matvec(half, &bits, &x, &mut out);
                for (r, &got) in out.iter().enumerate() {
                    let want: f64 = bits[r * dim..(r + 1) * dim]
                        .iter()
                        .zip(&x)
                        .map(|(&h, &v)| f64::from(half.to_f32(h)) * f64::from(v))
                        .sum();
                    assert!(
                        (f64::from(got) - want).abs() < 1e-4,
                        "{half:?} row {r}: {got} against {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_int8_matrix_times_an_int8_vector_is_the_exact_product() {
        // The extremes (-128 · -128 in every term) and lengths around the lanes.
        for dim in [1, 15, 16, 17, 64, 384, 1000] {
            let rows = 9;
            let mut state = dim as u32;
            let mut next = || {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8 as i8
            };
            let mut matrix: Vec<i8> = (0..rows * dim).map(|_| next()).collect();
            let x: Vec<i8> = (0..dim).map(|_| next()).collect();
            matrix[..dim].fill(-128);
            let mut extremes = x.clone();
            extremes.fill(-128);
            for x in [&x, &extremes] {
                let mut out = vec![7i32; rows];
                i8_matvec(&matrix, x, &mut out);
                for (r, &got) in out.iter().enumerate() {
                    let want: i64 = matrix[r * dim..(r + 1) * dim]
                        .iter()
                        .zip(x.iter())
                        .map(|(&w, &v)| i64::from(w) * i64::from(v))
                        .sum();
                    assert_eq!(i64::from(got), want, "dim {dim} row {r}");
                }
            }
        }
        let mut out = [5i32; 2];
        i8_matvec(&[], &[], &mut out[..0]);
        i8_matvec(&[], &[], &mut []);
        assert_eq!(out, [5, 5]);
    }

    #[test]
    fn a_vector_times_a_block_of_half_or_bfloat16_columns_is_the_plain_product() {
        // A matrix 150 columns wide; blocks of whole and partial register widths, at offsets.
        let (rows, columns) = (37, 150);
        let weights = values(rows * columns, 2.0, 5);
        let x = values(rows, 1.0, 9);
        for half in [Half::F16, Half::Bf16] {
            let bits = stored_as(half, &weights);
            for (first, width) in [(0, 150), (0, 64), (64, 70), (149, 1), (10, 0)] {
                let mut out = vec![1.0f32; width];
                half_vecmat(half, &bits[first..], columns, &x, &mut out);
                for (j, &got) in out.iter().enumerate() {
                    let want: f64 = 1.0
                        + (0..rows)
                            .map(|i| {
                                f64::from(x[i])
                                    * f64::from(half.to_f32(bits[i * columns + first + j]))
                            })
                            .sum::<f64>();
                    assert!(
                        (f64::from(got) - want).abs() < 1e-4,
                        "{half:?} column {}: {got} against {want}",
                        first + j
                    );
                }
            }
        }
    }

    #[test]
    fn widening_gives_each_values_exact_f32() {
        // bfloat16: f32's upper half, so 1.5 is 0x3fc0 and -2^-126 (the smallest normal) 0x8080.
        let bits = [0x3fc0u16, 0x8080, 0x0000, 0x4049];
        let mut out = [f32::NAN; 4];
        widen(Half::Bf16, &bits, &mut out);
        assert_eq!(
            out,
            [1.5, -(2f32.powi(-126)), 0.0, f32::from_bits(0x4049_0000)]
        );
        // Longer than the lanes, both formats, against the one-value conversions.
        let bits: Vec<u16> = (0..1000u16).map(|i| i.wrapping_mul(37) & 0x7bff).collect();
        for half in [Half::F16, Half::Bf16] {
            let mut out = vec![f32::NAN; bits.len()];
            widen(half, &bits, &mut out);
            for (&b, &o) in bits.iter().zip(&out) {
                assert_eq!(o.to_bits(), half.to_f32(b).to_bits(), "{half:?} {b:#06x}");
            }
        }
    }

    #[test]
    fn masked_positions_get_no_weight() {
        let mut row = vec![1.0, f32::NEG_INFINITY, 2.0, f32::NEG_INFINITY];
        softmax_rows(&mut row, 4);
        assert_eq!(row[1], 0.0);
        assert_eq!(row[3], 0.0);
        assert!((row[0] + row[2] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn tanh_gelu_matches_its_definition() {
        let input = values(10_000, 8.0, 11);
        let mut got = input.clone();
        gelu_tanh(&mut got);
        for (x, g) in input.iter().zip(&got) {
            let x64 = *x as f64;
            let u = (2.0 / std::f64::consts::PI).sqrt() * (x64 + 0.044715 * x64.powi(3));
            let want = 0.5 * x64 * (1.0 + u.tanh());
            assert!(
                (*g as f64 - want).abs() <= 2e-6 * x64.abs().max(1.0),
                "gelu_tanh({x}) = {g}, want {want}"
            );
        }
    }

    #[test]
    fn gelu_matches_the_exact_definition() {
        let input = values(10_000, 8.0, 7);
        let mut got = input.clone();
        gelu_erf(&mut got);
        for (x, g) in input.iter().zip(&got) {
            let x64 = *x as f64;
            let want = 0.5 * x64 * (1.0 + erf_f64(x64 / std::f64::consts::SQRT_2));
            assert!(
                (*g as f64 - want).abs() <= 2e-6 * x64.abs().max(1.0),
                "gelu({x}) = {g}, want {want}"
            );
        }
    }
}
