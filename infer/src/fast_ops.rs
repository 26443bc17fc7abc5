//! GELU, exact and tanh-approximated, for the engine's own models (Whisper, the VLM), on
//! carapace-infer-kernels' vectorised loops, in place, when the tensor is f32 on the CPU;
//! candle's own ops otherwise (CUDA, other types). The work is spread over rayon's pool, the one candle's
//! CPU ops use. (Softmax runs inside attention.rs's fused attention.)

use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Result, Tensor};
use rayon::prelude::*;

/// x/2 · (1 + erf(x/√2)), as Whisper and BERT-style models define GELU. `x` is consumed: on
/// the CPU in f32 its own storage is overwritten, so pass the fresh output of an op that no
/// other tensor shares (a layer's product, a convolution's result).
pub fn gelu_erf(x: Tensor) -> Result<Tensor> {
    in_place(
        x,
        Tensor::gelu_erf,
        Elementwise {
            name: "carapace-gelu-erf",
            kernel: carapace_infer_kernels::gelu_erf,
        },
    )
}

/// GELU's tanh approximation, as SigLIP (the VLM's encoder) defines it, consuming `x` as
/// [`gelu_erf`] does. candle's own op calls libm's tanh once per value on one thread: 38
/// million values for one picture.
pub fn gelu_tanh(x: Tensor) -> Result<Tensor> {
    in_place(
        x,
        Tensor::gelu,
        Elementwise {
            name: "carapace-gelu-tanh",
            kernel: carapace_infer_kernels::gelu_tanh,
        },
    )
}

/// `op` over `x`'s own values when it is f32 on the CPU (made contiguous first, a copy only if
/// it was not): no second tensor of the same size beside it, which for Whisper's and SigLIP's
/// feed-forward layers is the largest of their working tensors. Elsewhere `fallback`.
fn in_place(x: Tensor, fallback: fn(&Tensor) -> Result<Tensor>, op: Elementwise) -> Result<Tensor> {
    if !(x.device().is_cpu() && x.dtype() == DType::F32) {
        return fallback(&x);
    }
    let x = x.contiguous()?;
    x.inplace_op1(&op)?;
    Ok(x)
}

/// A kernel applied to every value, in place, in chunks spread over rayon's pool.
struct Elementwise {
    name: &'static str,
    kernel: fn(&mut [f32]),
}

/// Elements per rayon task, at least: below this, handing work to another thread costs more
/// than it saves.
pub(crate) const MIN_TASK: usize = 16 * 1024;

impl InplaceOp1 for Elementwise {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(values), Some((start, end))) => {
                values[start..end]
                    .par_chunks_mut(MIN_TASK)
                    .for_each(self.kernel);
                Ok(())
            }
            _ => candle_core::bail!("carapace's fast ops take contiguous f32 tensors"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::Device;

    /// The largest difference between two f32 tensors of the same shape, value by value.
    pub(crate) fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn close(a: &Tensor, b: &Tensor, tolerance: f32) {
        let difference = max_difference(a, b);
        assert!(difference <= tolerance, "differ by {difference}");
    }

    fn sample(shape: &[usize]) -> Tensor {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 16.0)
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn gelus_match_candles_own_ops() {
        // Longer than a task, shorter than one.
        for shape in [&[2usize, 3, 15000][..], &[5, 7, 9], &[1, 1]] {
            let x = sample(shape);
            close(
                &gelu_erf(x.copy().unwrap()).unwrap(),
                &x.gelu_erf().unwrap(),
                5e-6,
            );
            close(
                &gelu_tanh(x.copy().unwrap()).unwrap(),
                &x.gelu().unwrap(),
                5e-6,
            );
        }
    }

    #[test]
    fn a_transposed_tensor_is_taken_as_its_values_not_its_storage() {
        let x = sample(&[4, 6]).t().unwrap();
        assert!(!x.is_contiguous());
        let before = x.to_vec2::<f32>().unwrap();
        close(
            &gelu_erf(x.clone()).unwrap(),
            &x.contiguous().unwrap().gelu_erf().unwrap(),
            5e-6,
        );
        // Made contiguous by a copy, so the transposed tensor's own values are unchanged.
        assert_eq!(x.to_vec2::<f32>().unwrap(), before);
    }
}
