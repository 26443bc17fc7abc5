//! GELU, exact and tanh-approximated, for the engine's own models (Whisper, the VLM), on
//! carapace-infer-kernels' vectorised loops when the tensor is f32 on the CPU; candle's own
//! ops otherwise (CUDA, other types). The work is spread over rayon's pool, the one candle's
//! CPU ops use. (Softmax runs inside attention.rs's fused attention.)

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// x/2 · (1 + erf(x/√2)), as Whisper and BERT-style models define GELU.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if fast(x) {
        x.contiguous()?.apply_op1_no_bwd(&Elementwise {
            name: "carapace-gelu-erf",
            kernel: carapace_infer_kernels::gelu_erf,
        })
    } else {
        x.gelu_erf()
    }
}

/// GELU's tanh approximation, as SigLIP (the VLM's encoder) defines it. candle's own op calls
/// libm's tanh once per value on one thread: 38 million values for one picture.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if fast(x) {
        x.contiguous()?.apply_op1_no_bwd(&Elementwise {
            name: "carapace-gelu-tanh",
            kernel: carapace_infer_kernels::gelu_tanh,
        })
    } else {
        x.gelu()
    }
}

fn fast(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// A kernel applied to every value, in place, in chunks spread over rayon's pool.
struct Elementwise {
    name: &'static str,
    kernel: fn(&mut [f32]),
}

/// Elements per rayon task, at least: below this, handing work to another thread costs more
/// than it saves.
const MIN_TASK: usize = 16 * 1024;

impl CustomOp1 for Elementwise {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut values = contiguous_copy(storage, layout)?;
        values.par_chunks_mut(MIN_TASK).for_each(self.kernel);
        Ok((CpuStorage::F32(values), layout.shape().clone()))
    }
}

/// The tensor's f32 values in row-major order, as a vector of their own.
fn contiguous_copy(storage: &CpuStorage, layout: &Layout) -> Result<Vec<f32>> {
    let all = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(all[start..end].to_vec()),
        None => candle_core::bail!("carapace's fast ops take contiguous tensors"),
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
            close(&gelu_erf(&x).unwrap(), &x.gelu_erf().unwrap(), 5e-6);
            close(&gelu_tanh(&x).unwrap(), &x.gelu().unwrap(), 5e-6);
        }
    }

    #[test]
    fn a_transposed_tensor_is_taken_as_its_values_not_its_storage() {
        let x = sample(&[4, 6]).t().unwrap();
        assert!(!x.is_contiguous());
        close(
            &gelu_erf(&x).unwrap(),
            &x.contiguous().unwrap().gelu_erf().unwrap(),
            5e-6,
        );
    }
}
