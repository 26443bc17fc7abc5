//! model.safetensors read one tensor at a time. candle's `safetensors::load` reads the whole
//! file into memory and then copies every tensor out of it, so a load peaks at twice the
//! weights (2 GB for SmolVLM-256M in float32, on a box whose engine has little more than
//! that); here each tensor is built from its values as they are read, in chunks, and converted
//! to the type it runs in at once, so a load peaks at the weights plus one tensor's conversion.
//! (Mapping the file would be cheaper still, but needs `unsafe`, which this module does without.)

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// The header says where each tensor's bytes are; it is JSON, and no real one is this large.
const MAX_HEADER_BYTES: u64 = 100 << 20;

#[derive(serde::Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// Every float tensor in the safetensors file `path`, each converted to the type `dtype_of`
/// gives its name as it is read.
pub fn read_safetensors(
    path: &Path,
    dtype_of: impl Fn(&str) -> DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let bad = |reason: String| Error::BadWeights {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(Error::io("opening", path))?;
    let size = file.metadata().map_err(Error::io("reading", path))?.len();
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|_| bad("it is shorter than a safetensors header".into()))?;
    let header_length = u64::from_le_bytes(length);
    if header_length > MAX_HEADER_BYTES || 8 + header_length > size {
        return Err(bad(format!(
            "its header says {header_length} bytes, which the file does not hold"
        )));
    }
    let mut header = vec![0u8; header_length as usize];
    file.read_exact(&mut header)
        .map_err(Error::io("reading", path))?;
    let mut entries: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("its header: {e}")))?;
    entries.remove("__metadata__");
    let data_start = 8 + header_length;
    let mut tensors = HashMap::with_capacity(entries.len());
    for (name, value) in entries {
        let entry: Entry =
            serde_json::from_value(value).map_err(|e| bad(format!("tensor {name}: {e}")))?;
        let stored = match entry.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F64" => DType::F64,
            // Integer buffers that transformers saves beside the weights (BERT's position_ids):
            // no model here reads them; a weight of such a type is reported missing by name.
            _ => continue,
        };
        let [start, end] = entry.data_offsets;
        let elements: usize = entry.shape.iter().product();
        let expected = (elements * stored.size_in_bytes()) as u64;
        if end < start || end - start != expected || data_start + end > size {
            return Err(bad(format!(
                "tensor {name}'s bytes {start}..{end} do not fit its shape {:?} or the file",
                entry.shape
            )));
        }
        file.seek(SeekFrom::Start(data_start + start))
            .map_err(Error::io("reading", path))?;
        let mut bytes = (&mut file).take(expected);
        let shape = entry.shape.as_slice();
        let read = match stored {
            DType::F32 => read_tensor(&mut bytes, shape, device, f32::from_le_bytes),
            DType::F16 => read_tensor(&mut bytes, shape, device, half::f16::from_le_bytes),
            DType::BF16 => read_tensor(&mut bytes, shape, device, half::bf16::from_le_bytes),
            // F64, the only other type the match above lets through.
            _ => read_tensor(&mut bytes, shape, device, f64::from_le_bytes),
        };
        let tensor = read
            .map_err(Error::io("reading", path))?
            .and_then(|t| t.to_dtype(dtype_of(&name)))
            .map_err(Error::tensor("reading model.safetensors"))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// Bytes read from the file at a time (a copy of each tensor's bytes doubled the largest
/// tensor's share of the peak).
const READ_CHUNK: usize = 1 << 16;

/// A tensor of `shape` from its little-endian values of `N` bytes each in `bytes`.
fn read_tensor<T: candle_core::WithDType, const N: usize>(
    bytes: &mut impl Read,
    shape: &[usize],
    device: &Device,
    from_le_bytes: impl Fn([u8; N]) -> T,
) -> std::io::Result<candle_core::Result<Tensor>> {
    let count: usize = shape.iter().product();
    let mut values = Vec::with_capacity(count);
    let mut chunk = vec![0u8; READ_CHUNK / N * N];
    while values.len() < count {
        let wanted = ((count - values.len()) * N).min(chunk.len());
        bytes.read_exact(&mut chunk[..wanted])?;
        values.extend(chunk[..wanted].chunks_exact(N).map(|b| {
            let mut value = [0u8; N];
            value.copy_from_slice(b);
            from_le_bytes(value)
        }));
    }
    Ok(Tensor::from_vec(values, shape, device))
}

/// Each linear layer's weight (a matrix named `…proj.weight`, `…fc1.weight` or `…fc2.weight`)
/// stored transposed, one at a time, and handed back as a transposed view of that: the same
/// [outputs, inputs] tensor to candle_nn's Linear, whose forward takes its transpose again and
/// so multiplies by a row-major [inputs, outputs] matrix. gemm takes that as it is; the
/// checkpoint's layout made it repack the whole weight on every product (measured on the VLM's
/// picture to first token: a fifth of the matrix products' time).
pub fn store_linear_weights_transposed(tensors: &mut HashMap<String, Tensor>) -> Result<()> {
    let linear = |name: &str| {
        ["proj.weight", "fc1.weight", "fc2.weight"]
            .iter()
            .any(|end| name.ends_with(end))
    };
    for (name, tensor) in tensors.iter_mut() {
        if linear(name) && tensor.rank() == 2 {
            *tensor = tensor
                .t()
                .and_then(|t| t.contiguous())
                .and_then(|t| t.t())
                .map_err(Error::tensor("transposing a linear layer's weight"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_read_one_at_a_time_are_candles_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let device = Device::Cpu;
        let a = Tensor::arange(0f32, 6.0, &device)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let b = Tensor::new(&[1.5f32, -2.25], &device)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        // Longer than one chunk read, kept in half precision by name.
        let long = Tensor::arange(0f32, 40_000.0, &device)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        let ids = Tensor::new(&[0i64, 1, 2], &device).unwrap();
        let saved = HashMap::from([
            ("a".to_string(), a.clone()),
            ("b".to_string(), b),
            ("long".to_string(), long.clone()),
            ("position_ids".to_string(), ids),
        ]);
        candle_core::safetensors::save(&saved, &path).unwrap();
        let dtype_of = |name: &str| {
            if name == "long" {
                DType::F16
            } else {
                DType::F32
            }
        };
        let read = read_safetensors(&path, dtype_of, &device).unwrap();
        assert_eq!(
            read["a"].to_vec2::<f32>().unwrap(),
            a.to_vec2::<f32>().unwrap()
        );
        assert_eq!(read["b"].to_vec1::<f32>().unwrap(), [1.5, -2.25]);
        assert_eq!(read["long"].dtype(), DType::F16);
        assert_eq!(
            read["long"].to_vec1::<half::f16>().unwrap(),
            long.to_vec1::<half::f16>().unwrap()
        );
        assert!(
            !read.contains_key("position_ids"),
            "an integer buffer was read"
        );
        std::fs::write(&path, b"\x10\0\0\0\0\0\0\0{}").unwrap();
        assert!(matches!(
            read_safetensors(&path, |_| DType::F32, &device),
            Err(Error::BadWeights { .. })
        ));
    }

    #[test]
    fn linear_weights_are_stored_transposed_and_read_as_before() {
        let device = Device::Cpu;
        let weight = Tensor::arange(0f32, 6.0, &device)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let mut tensors = HashMap::from([
            ("layers.0.q_proj.weight".to_string(), weight.clone()),
            ("layers.0.mlp.fc1.weight".to_string(), weight.clone()),
            ("embed_tokens.weight".to_string(), weight.clone()),
        ]);
        store_linear_weights_transposed(&mut tensors).unwrap();
        for name in ["layers.0.q_proj.weight", "layers.0.mlp.fc1.weight"] {
            let stored = &tensors[name];
            assert_eq!(
                stored.to_vec2::<f32>().unwrap(),
                weight.to_vec2::<f32>().unwrap()
            );
            assert!(!stored.is_contiguous(), "{name} is not a transposed view");
            assert!(
                stored.t().unwrap().is_contiguous(),
                "{name}ᵀ is not row-major"
            );
        }
        assert!(tensors["embed_tokens.weight"].is_contiguous());
    }
}
