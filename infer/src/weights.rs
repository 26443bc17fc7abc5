//! model.safetensors read one tensor at a time. candle's `safetensors::load` reads the whole
//! file into memory and then copies every tensor out of it, so a load peaks at twice the
//! weights (2 GB for SmolVLM-256M in float32, on a box whose engine has little more than
//! that); reading each tensor's bytes from the file as it is built peaks at the weights plus
//! the largest tensor. (Mapping the file would be cheaper still, but needs `unsafe`, which
//! this crate does not allow.)

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

/// Every float tensor in the safetensors file `path`, converted to `dtype`.
pub fn read_safetensors(
    path: &Path,
    dtype: DType,
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
        let mut bytes = vec![0u8; expected as usize];
        file.seek(SeekFrom::Start(data_start + start))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(Error::io("reading", path))?;
        let tensor = Tensor::from_raw_buffer(&bytes, stored, &entry.shape, device)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(Error::tensor("reading model.safetensors"))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
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
        let saved = HashMap::from([("a".to_string(), a.clone()), ("b".to_string(), b)]);
        candle_core::safetensors::save(&saved, &path).unwrap();
        let read = read_safetensors(&path, DType::F32, &device).unwrap();
        assert_eq!(
            read["a"].to_vec2::<f32>().unwrap(),
            a.to_vec2::<f32>().unwrap()
        );
        assert_eq!(read["b"].to_vec1::<f32>().unwrap(), [1.5, -2.25]);
        std::fs::write(&path, b"\x10\0\0\0\0\0\0\0{}").unwrap();
        assert!(matches!(
            read_safetensors(&path, DType::F32, &device),
            Err(Error::BadWeights { .. })
        ));
    }
}
