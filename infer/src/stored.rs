//! A weight tensor's values read in place, in the type the checkpoint stores them (float32 or
//! one of the 16-bit formats), for the engine's own kernels: dense layers and token tables.

use candle_core::{CpuStorage, DType, Storage, Tensor};
use carapace_infer_kernels::Half;
use half::slice::HalfFloatSliceExt;

/// A tensor's values as stored.
#[derive(Clone, Copy)]
pub(crate) enum Stored<'a> {
    F32(&'a [f32]),
    Half(Half, &'a [u16]),
}

/// `tensor` contiguous, refused unless float32 or 16-bit: what [`with_stored`] reads. `what`
/// names it in the error.
pub(crate) fn storable(tensor: Tensor, what: &str) -> candle_core::Result<Tensor> {
    if !matches!(tensor.dtype(), DType::F32 | DType::F16 | DType::BF16) {
        candle_core::bail!(
            "{what} in {:?}: only float32 and 16-bit ones are read",
            tensor.dtype()
        );
    }
    tensor.contiguous()
}

/// `f` on the values of `tensor` (one that [`storable`] answered), read in place.
pub(crate) fn with_stored<R>(
    tensor: &Tensor,
    f: impl FnOnce(Stored<'_>) -> R,
) -> candle_core::Result<R> {
    let (storage, layout) = tensor.storage_and_layout();
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("a weight that is not contiguous");
    };
    Ok(match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => f(Stored::F32(&v[start..end])),
        Storage::Cpu(CpuStorage::F16(v)) => {
            f(Stored::Half(Half::F16, v[start..end].reinterpret_cast()))
        }
        Storage::Cpu(CpuStorage::BF16(v)) => {
            f(Stored::Half(Half::Bf16, v[start..end].reinterpret_cast()))
        }
        _ => candle_core::bail!("a weight that is not float32 or 16-bit on the CPU"),
    })
}
