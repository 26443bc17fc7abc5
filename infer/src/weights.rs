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
use candle_nn::VarBuilder;

use crate::dense::Dense;
use crate::error::{Error, Result};
use crate::token_table::TokenTable;

/// The header says where each tensor's bytes are; it is JSON, and no real one is this large.
const MAX_HEADER_BYTES: u64 = 100 << 20;

#[derive(serde::Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// Every float tensor in the safetensors file `path`, each converted as it is read to the
/// type `dtype_of` gives its name and stored type.
pub fn read_safetensors(
    path: &Path,
    dtype_of: impl Fn(&str, DType) -> DType,
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
            .and_then(|t| t.to_dtype(dtype_of(&name, stored)))
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

/// Whether `name` is a dense layer's weight as the VLM's and Whisper's checkpoints name them
/// (`…proj.weight`, `…fc1.weight`, `…fc2.weight`).
pub fn is_dense_weight(name: &str) -> bool {
    ["proj.weight", "fc1.weight", "fc2.weight"]
        .iter()
        .any(|end| name.ends_with(end))
}

/// A `dtype_of` for [`read_safetensors`]: the tensors `keep` names stay in the checkpoint's
/// 16-bit type when it has one (they are read through carapace-infer-kernels, widened exactly
/// as they are used: half the memory, the same results), every other tensor is float32.
pub fn float32_but_16_bit(keep: impl Fn(&str) -> bool) -> impl Fn(&str, DType) -> DType {
    move |name, stored| match stored {
        DType::F16 | DType::BF16 if keep(name) => stored,
        _ => DType::F32,
    }
}

/// The tensors a model uses in the checkpoint's own type, taken out of the map before it
/// becomes a VarBuilder (which hands every tensor out converted to its one type): dense
/// layers' weights, each transposed once here (see [`Dense`]), and token tables.
pub struct StoredWeights {
    tensors: HashMap<String, Tensor>,
}

impl StoredWeights {
    /// Takes every dense layer's weight and the tensors `tables` names out of `tensors`.
    pub fn take(
        tensors: &mut HashMap<String, Tensor>,
        tables: impl Fn(&str) -> bool,
    ) -> Result<StoredWeights> {
        let names: Vec<String> = tensors
            .iter()
            .filter(|(name, t)| (is_dense_weight(name) && t.rank() == 2) || tables(name))
            .map(|(name, _)| name.clone())
            .collect();
        let mut stored = HashMap::with_capacity(names.len());
        for name in names {
            let tensor = tensors.remove(&name).expect("listed from the map");
            let tensor = if is_dense_weight(&name) {
                // One at a time: the checkpoint's layout is dropped as soon as it is copied.
                tensor
                    .t()
                    .and_then(|t| t.contiguous())
                    .map_err(Error::tensor("transposing a dense layer's weight"))?
            } else {
                tensor
            };
            stored.insert(name, tensor);
        }
        Ok(StoredWeights { tensors: stored })
    }

    /// The dense layer `name` under `vb`'s prefix, of `inputs` and `outputs`: its weight from
    /// here, its bias (if `bias`) from `vb`.
    pub fn dense(
        &self,
        vb: &VarBuilder,
        name: &str,
        inputs: usize,
        outputs: usize,
        bias: bool,
    ) -> candle_core::Result<Dense> {
        let full = format!("{}.weight", vb.pp(name).prefix());
        let weight = self.tensors.get(&full).ok_or_else(|| {
            candle_core::Error::Msg(format!("the checkpoint has no tensor {full}"))
        })?;
        // Stored transposed: [inputs, outputs] here is the checkpoint's [outputs, inputs].
        if weight.dims() != [inputs, outputs] {
            candle_core::bail!(
                "{full} is {:?}, the config makes it [{outputs}, {inputs}]",
                weight.t()?.dims()
            );
        }
        let bias = bias
            .then(|| vb.pp(name).get(outputs, "bias")?.to_vec1::<f32>())
            .transpose()?;
        Dense::new(weight.clone(), bias)
    }

    /// The token table `name` (a full name), checked to be [vocabulary, width].
    pub fn table(
        &self,
        name: &str,
        vocabulary: usize,
        width: usize,
    ) -> candle_core::Result<TokenTable> {
        let table = self.tensors.get(name).ok_or_else(|| {
            candle_core::Error::Msg(format!("the checkpoint has no tensor {name}"))
        })?;
        if table.dims() != [vocabulary, width] {
            candle_core::bail!(
                "{name} is {:?}, the config makes it [{vocabulary}, {width}]",
                table.dims()
            );
        }
        TokenTable::new(table.clone())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
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
        let read =
            read_safetensors(&path, float32_but_16_bit(|name| name == "long"), &device).unwrap();
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
            read_safetensors(&path, |_, _| DType::F32, &device),
            Err(Error::BadWeights { .. })
        ));
    }

    #[test]
    fn dense_weights_and_tables_keep_their_type_and_the_rest_goes_to_the_var_builder() {
        let device = Device::Cpu;
        // [outputs 2, inputs 3] as a checkpoint stores it.
        let weight = Tensor::new(&[[1f32, 2.0, 3.0], [-1.0, 0.5, 0.0]], &device)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let mut tensors = HashMap::from([
            ("layer.q_proj.weight".to_string(), weight.clone()),
            (
                "layer.q_proj.bias".to_string(),
                Tensor::new(&[10f32, 20.0], &device).unwrap(),
            ),
            ("embed_tokens.weight".to_string(), weight),
            (
                "norm.weight".to_string(),
                Tensor::new(&[1f32, 1.0], &device).unwrap(),
            ),
        ]);
        let stored =
            StoredWeights::take(&mut tensors, |name| name == "embed_tokens.weight").unwrap();
        let mut left: Vec<&String> = tensors.keys().collect();
        left.sort();
        assert_eq!(left, ["layer.q_proj.bias", "norm.weight"]);
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let dense = stored.dense(&vb.pp("layer"), "q_proj", 3, 2, true).unwrap();
        assert_eq!(dense.apply(&[1.0, 1.0, 2.0]), [10.0 + 9.0, 20.0 - 0.5]);
        let error = stored
            .dense(&vb.pp("layer"), "q_proj", 2, 3, true)
            .err()
            .unwrap();
        assert!(
            error
                .to_string()
                .contains("layer.q_proj.weight is [2, 3], the config makes it [3, 2]"),
            "{error}"
        );
        let table = stored.table("embed_tokens.weight", 2, 3).unwrap();
        assert_eq!(
            table.rows(&[1], &device).unwrap().to_vec2::<f32>().unwrap(),
            [[-1.0, 0.5, 0.0]]
        );
        assert!(stored.dense(&vb, "missing", 3, 2, false).is_err());
    }
}
