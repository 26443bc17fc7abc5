//! The element-wise work of the engine's transformers besides their matrix products (exp for
//! softmax and erf for the exact GELU, over f32 slices), and the products that read stored
//! weights a vector at a time (16-bit floats, int8). candle calls libm once per element (a call
//! the compiler cannot vectorise): in Whisper tiny those calls were a fifth of a window's time.
//! Here each function is one branch-free loop, compiled three times on x86-64 (AVX-512, AVX2
//! with FMA, the baseline) and picked by what the CPU has; on arm64 NEON is the baseline. Own
//! crate so that it is optimised for speed in every profile (the engine's crate is built for
//! size), and small enough to test against the standard library everywhere.

mod approx;
// `#[target_feature]` functions are unsafe to call from code without those features.
#[allow(unsafe_code)]
mod dispatch;

pub use approx::{bf16_to_f32, erf, exp, half_to_f32};
pub use dispatch::{
    Half, I8_DOT_MAX_LEN, gelu_erf, gelu_tanh, half_matvec, half_vecmat, i8_matvec, softmax_rows,
    widen,
};
