//! Splits a Piper voice's ONNX model (VITS, as piper's training code exports it) in two at
//! its decoder, the HiFi-GAN that turns the latent frames into samples and does three
//! quarters of the work:
//!
//! ```text
//!  input, input_lengths, scales                         latent [1, C, frames]
//!   │  text encoder, durations, flow        ──────────▶  │  Unsqueeze: [1, C, 1, frames]
//!   ▼  (voice-front.onnx)                                │  the decoder's 1-D convolutions as
//!  latent [1, C, frames]                                 ▼  2-D ones of height 1 (voice-decoder.onnx)
//!                                                       audio [1, 1, 1, frames × samples per frame]
//! ```
//!
//! Why: the decoder's output at a frame depends only on the latent frames within its receptive
//! field, so the engine decodes a sentence in pieces on all its cores at once, each piece with
//! that many frames of context on either side and cut back to its own samples (the same samples
//! as decoding it whole). And ONNX Runtime runs 2-D convolutions in its blocked (NCHWc)
//! kernels, which it has no 1-D form of: the same decoder took 16% less time on one thread.
//! The decoder's metadata carries its receptive field and its samples per frame, worked out
//! here from its convolutions, for the engine to cut the pieces by.
//!
//! The numbers are not touched: weights keep their bytes (a dimension of 1 is added to each
//! convolution's weight), so the two models compute what the one did.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Error, Result};
use crate::onnx_proto::{
    AttributeProto, Dim, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, ValueInfoProto,
};

/// The files the conversion writes in place of the voice's one `.onnx` (its `.onnx.json`
/// config stays).
pub const FRONT: &str = "voice-front.onnx";
pub const DECODER: &str = "voice-decoder.onnx";
pub const OUTPUTS: [&str; 2] = [FRONT, DECODER];
/// The tensors between the two models, and the decoder's output.
pub const LATENT: &str = "latent";
pub const AUDIO: &str = "audio";
/// The decoder's metadata: latent frames of context a piece needs on either side for its own
/// samples to be exact, and the samples each frame becomes.
pub const CONTEXT_FRAMES_KEY: &str = "carapace.context_frames";
pub const SAMPLES_PER_FRAME_KEY: &str = "carapace.samples_per_frame";

/// The prefix of the decoder's node names in piper's export.
const DECODER_NODES: &str = "/dec/";
/// Operators the decoder may hold: convolutions, and what works element by element (and so
/// the same on a 4-D tensor as on a 3-D one).
const ELEMENTWISE: [&str; 8] = [
    "Add",
    "Sub",
    "Mul",
    "Div",
    "LeakyRelu",
    "Relu",
    "Tanh",
    "Identity",
];
/// Operators that may come after the decoder, before the graph's output: they only reshape.
const RESHAPES: [&str; 4] = ["Unsqueeze", "Squeeze", "Reshape", "Identity"];
/// The name of the Unsqueeze's axes, a constant of the decoder.
const LATENT_AXES: &str = "latent.axes";
const LATENT_4D: &str = "latent.4d";

/// Splits the one `.onnx` model in `dir` into [`FRONT`] and [`DECODER`], each synced, then
/// removes it. A failure leaves `dir` for the caller to remove.
pub fn convert(dir: &Path) -> Result<()> {
    let fail = |reason: String| Error::Convert {
        dir: dir.to_path_buf(),
        reason,
    };
    let model_path = single_onnx(dir).map_err(fail)?;
    let bytes = std::fs::read(&model_path).map_err(Error::io("reading", &model_path))?;
    let (front, decoder) = split(&bytes).map_err(|reason| {
        fail(format!(
            "{}: {reason}",
            model_path.file_name().unwrap_or_default().to_string_lossy()
        ))
    })?;
    drop(bytes);
    crate::whisper_ct2::write_synced(&dir.join(FRONT), &front)?;
    crate::whisper_ct2::write_synced(&dir.join(DECODER), &decoder)?;
    std::fs::remove_file(&model_path).map_err(Error::io("removing", &model_path))
}

/// The one `.onnx` file in `dir`.
fn single_onnx(dir: &Path) -> std::result::Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("listing it: {e}"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "onnx"))
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(format!("a Piper voice has one .onnx model; found {n}")),
    }
}

/// The front and decoder models, encoded, of the Piper model `bytes`.
pub fn split(bytes: &[u8]) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    let mut model = ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model ({e})"))?;
    let graph = model.graph.take().ok_or("the model has no graph")?;
    if opset(&model) < 13 {
        return Err(format!(
            "opset {} is older than 13, whose Unsqueeze the decoder needs",
            opset(&model)
        ));
    }
    if let Some(node) = graph.node.iter().find(|n| n.has_subgraph()) {
        return Err(format!("node {} holds a subgraph", node.name()));
    }
    let parts = Parts::of(graph)?;
    let (decoder_graph, field) = parts.decoder.into_graph(parts.latent_channels)?;
    let mut decoder = model.clone();
    decoder.graph = Some(decoder_graph);
    decoder.metadata_props.extend([
        entry(CONTEXT_FRAMES_KEY, field.context_frames().to_string()),
        entry(SAMPLES_PER_FRAME_KEY, field.samples_per_frame.to_string()),
    ]);
    model.graph = Some(parts.front);
    Ok((model.encode_to_vec(), decoder.encode_to_vec()))
}

fn entry(key: &str, value: String) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.to_string()),
        value: Some(value),
    }
}

/// The version of the default (ai.onnx) operator set the model imports.
fn opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .filter_map(|bytes| OperatorSetIdProto::decode(bytes.as_slice()).ok())
        .filter(|set| matches!(set.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .filter_map(|set| set.version)
        .max()
        .unwrap_or(0)
}

/// The graph cut in two.
struct Parts {
    front: GraphProto,
    decoder: DecoderNodes,
    latent_channels: Option<i64>,
}

/// The decoder's nodes and the constants they read, still 1-D.
struct DecoderNodes {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    graph_name: Option<String>,
}

impl Parts {
    fn of(graph: GraphProto) -> std::result::Result<Parts, String> {
        let GraphProto {
            node: nodes,
            initializer,
            input,
            output,
            value_info,
            name,
            ..
        } = graph;
        let (mut decoder, rest): (Vec<NodeProto>, Vec<NodeProto>) = nodes
            .into_iter()
            .partition(|n| n.name().starts_with(DECODER_NODES));
        if decoder.is_empty() {
            return Err(format!(
                "no node is named {DECODER_NODES}…: not a VITS decoder as piper exports it"
            ));
        }
        // What comes after the decoder only reshapes its output to the graph's; dropped.
        let mut downstream: HashSet<String> =
            decoder.iter().flat_map(|n| n.output.clone()).collect();
        let mut front_nodes = Vec::new();
        let mut tail_reads = HashSet::new();
        for node in rest {
            if node.input.iter().any(|i| downstream.contains(i)) {
                if !RESHAPES.contains(&node.op_type()) {
                    return Err(format!(
                        "{} ({}) reads the decoder's output; only reshapes may",
                        node.name(),
                        node.op_type()
                    ));
                }
                tail_reads.extend(node.input.iter().cloned());
                downstream.extend(node.output.iter().cloned());
            } else {
                front_nodes.push(node);
            }
        }
        if let Some(out) = output
            .iter()
            .find(|o| !downstream.contains(o.name.as_deref().unwrap_or_default()))
        {
            return Err(format!(
                "the graph's output {:?} does not come from the decoder",
                out.name.as_deref().unwrap_or_default()
            ));
        }
        let constants: HashSet<&str> = initializer.iter().map(TensorProto::name).collect();
        let produced: HashSet<&String> = decoder.iter().flat_map(|n| &n.output).collect();
        let graph_outputs: HashSet<&str> =
            output.iter().filter_map(|o| o.name.as_deref()).collect();
        let latent: BTreeSet<String> = decoder
            .iter()
            .flat_map(|n| &n.input)
            .filter(|i| !i.is_empty() && !produced.contains(i) && !constants.contains(i.as_str()))
            .cloned()
            .collect();
        let latent = match Vec::from_iter(latent).as_slice() {
            [latent] => latent.clone(),
            _ => return Err("the decoder does not read exactly one tensor of the rest".into()),
        };
        let audio: Vec<String> = produced
            .iter()
            .filter(|t| tail_reads.contains(t.as_str()) || graph_outputs.contains(t.as_str()))
            .map(|t| t.to_string())
            .collect();
        let [audio] = &audio[..] else {
            return Err("the decoder does not give exactly one tensor to the rest".into());
        };
        // The interface's names: the front writes `latent`, the decoder reads it and writes
        // `audio`.
        rename(&mut front_nodes, &latent, LATENT);
        rename(&mut decoder, &latent, LATENT_4D);
        rename(&mut decoder, audio, AUDIO);
        let latent_channels = decoder
            .iter()
            .filter(|n| n.input.first().map(String::as_str) == Some(LATENT_4D))
            .filter_map(|n| n.input.get(1))
            .find_map(|w| initializer.iter().find(|t| t.name() == w))
            .and_then(|w| w.dims.get(1).copied());

        let front_reads: HashSet<&str> = front_nodes
            .iter()
            .flat_map(|n| n.input.iter().map(String::as_str))
            .collect();
        let decoder_reads: HashSet<String> = decoder.iter().flat_map(|n| n.input.clone()).collect();
        if let Some(shared) = initializer.iter().find(|t| {
            t.dims.len() > 1 && front_reads.contains(t.name()) && decoder_reads.contains(t.name())
        }) {
            return Err(format!(
                "the weight {} is read on both sides",
                shared.name()
            ));
        }
        let front_produces: HashSet<&String> = front_nodes.iter().flat_map(|n| &n.output).collect();
        let value_info = value_info
            .into_iter()
            .filter(|v| front_produces.contains(&v.name.clone().unwrap_or_default()))
            .collect();
        let (mut front_constants, mut decoder_constants) = (Vec::new(), Vec::new());
        for tensor in initializer {
            if decoder_reads.contains(tensor.name()) {
                if front_reads.contains(tensor.name()) {
                    front_constants.push(tensor.clone());
                }
                decoder_constants.push(tensor);
            } else if front_reads.contains(tensor.name()) {
                front_constants.push(tensor);
            }
        }
        let front = GraphProto {
            node: front_nodes,
            name: name.clone(),
            initializer: front_constants,
            input,
            output: vec![ValueInfoProto::float_tensor(LATENT, None)],
            value_info,
            ..GraphProto::default()
        };
        Ok(Parts {
            front,
            decoder: DecoderNodes {
                nodes: decoder,
                initializers: decoder_constants,
                graph_name: name,
            },
            latent_channels,
        })
    }
}

/// Renames tensor `from` to `to` wherever `nodes` read or write it.
fn rename(nodes: &mut [NodeProto], from: &str, to: &str) {
    for name in nodes
        .iter_mut()
        .flat_map(|n| n.input.iter_mut().chain(n.output.iter_mut()))
    {
        if name == from {
            *name = to.to_string();
        }
    }
}

/// The receptive field of the decoder's output, in latent frames either side, and how many
/// samples a frame becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Field {
    radius_frames: f64,
    samples_per_frame: i64,
}

impl Field {
    /// Whole frames of context: the radius rounded up.
    fn context_frames(&self) -> i64 {
        self.radius_frames.ceil() as i64
    }
}

impl DecoderNodes {
    /// The decoder as a graph of its own on 4-D tensors, and its receptive field.
    fn into_graph(
        mut self,
        latent_channels: Option<i64>,
    ) -> std::result::Result<(GraphProto, Field), String> {
        let mut weights: HashMap<String, usize> = HashMap::new();
        for (i, tensor) in self.initializers.iter().enumerate() {
            weights.insert(tensor.name().to_string(), i);
        }
        // Each tensor's samples per latent frame and receptive radius in latent frames.
        let mut fields: HashMap<String, (i64, f64)> = HashMap::new();
        fields.insert(LATENT_4D.to_string(), (1, 0.0));
        for node in &mut self.nodes {
            let read = |fields: &HashMap<String, (i64, f64)>| {
                let known: Vec<(i64, f64)> = node
                    .input
                    .iter()
                    .filter_map(|i| fields.get(i))
                    .copied()
                    .collect();
                let rate = known.first().map_or(1, |k| k.0);
                if known.iter().any(|k| k.0 != rate) {
                    return Err(format!("{} adds tensors of different rates", node.name()));
                }
                Ok((rate, known.iter().map(|k| k.1).fold(0.0, f64::max)))
            };
            let (rate, radius) = read(&fields)?;
            let out = match node.op_type() {
                "Conv" | "ConvTranspose" => {
                    let weight = node.input.get(1).and_then(|w| weights.get(w)).copied();
                    let Some(weight) = weight else {
                        return Err(format!("{}'s weight is not a constant", node.name()));
                    };
                    let dims = &mut self.initializers[weight].dims;
                    if dims.len() != 3 {
                        return Err(format!("{} is not a 1-D convolution", node.name()));
                    }
                    let kernel = dims[2];
                    dims.insert(2, 1);
                    let conv = to_2d(node)?;
                    if node.op_type() == "Conv" {
                        if conv.stride != 1 {
                            return Err(format!("{} has a stride", node.name()));
                        }
                        let reach = conv.dilation * (kernel - 1) / 2;
                        (rate, radius + reach as f64 / rate as f64)
                    } else {
                        // An output sample reads at most kernel / stride input samples.
                        let reach = kernel as f64 / conv.stride as f64;
                        (rate * conv.stride, radius + reach / rate as f64)
                    }
                }
                op if ELEMENTWISE.contains(&op) => {
                    if let Some(wide) = node.input.iter().find(|i| {
                        weights.get(*i).is_some_and(|&w| {
                            self.initializers[w].dims.iter().product::<i64>() != 1
                        })
                    }) {
                        return Err(format!(
                            "{} reads {wide}, a constant that is not a scalar",
                            node.name()
                        ));
                    }
                    (rate, radius)
                }
                op => {
                    return Err(format!(
                        "{} is a {op}, which the split does not lay out in 4-D",
                        node.name()
                    ));
                }
            };
            for output in &node.output {
                fields.insert(output.clone(), out);
            }
        }
        let &(samples_per_frame, radius_frames) = fields
            .get(AUDIO)
            .ok_or("the decoder's output was not reached")?;
        self.initializers
            .push(TensorProto::int64s(LATENT_AXES, &[2]));
        let unsqueeze = NodeProto {
            input: vec![LATENT.into(), LATENT_AXES.into()],
            output: vec![LATENT_4D.into()],
            name: Some("/split/latent_4d".into()),
            op_type: Some("Unsqueeze".into()),
            ..NodeProto::default()
        };
        let channels = latent_channels.map_or(Dim::Named("channels"), Dim::Size);
        let graph = GraphProto {
            node: std::iter::once(unsqueeze).chain(self.nodes).collect(),
            name: self.graph_name.map(|n| format!("{n} decoder")),
            initializer: self.initializers,
            input: vec![ValueInfoProto::float_tensor(
                LATENT,
                Some(&[Dim::Size(1), channels, Dim::Named("frames")]),
            )],
            output: vec![ValueInfoProto::float_tensor(
                AUDIO,
                Some(&[
                    Dim::Size(1),
                    Dim::Size(1),
                    Dim::Size(1),
                    Dim::Named("samples"),
                ]),
            )],
            ..GraphProto::default()
        };
        Ok((
            graph,
            Field {
                radius_frames,
                samples_per_frame,
            },
        ))
    }
}

/// A convolution's stride and dilation along time.
struct Conv1d {
    stride: i64,
    dilation: i64,
}

/// Makes `node`'s 1-D attributes 2-D with a height of 1; returns its stride and dilation.
fn to_2d(node: &mut NodeProto) -> std::result::Result<Conv1d, String> {
    let name = node.name().to_string();
    let single = |attribute: &AttributeProto| match attribute.ints[..] {
        [value] => Ok(value),
        _ => Err(format!("{name}: {:?} is not 1-D", attribute.name)),
    };
    let mut conv = Conv1d {
        stride: 1,
        dilation: 1,
    };
    for attribute in &mut node.attribute {
        match attribute.name.as_deref().unwrap_or_default() {
            "kernel_shape" | "output_padding" => {
                let value = single(attribute)?;
                attribute.ints = vec![
                    if attribute.name.as_deref() == Some("kernel_shape") {
                        1
                    } else {
                        0
                    },
                    value,
                ];
            }
            "strides" => {
                conv.stride = single(attribute)?;
                attribute.ints = vec![1, conv.stride];
            }
            "dilations" => {
                conv.dilation = single(attribute)?;
                attribute.ints = vec![1, conv.dilation];
            }
            "pads" => match attribute.ints[..] {
                [begin, end] => attribute.ints = vec![0, begin, 0, end],
                _ => return Err(format!("{name}: pads are not 1-D")),
            },
            "group" => {}
            "auto_pad" if matches!(attribute.s.as_deref(), None | Some(b"NOTSET")) => {}
            other => {
                return Err(format!(
                    "{name}: its attribute {other} is not laid out in 2-D"
                ));
            }
        }
    }
    Ok(conv)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            input: inputs.iter().map(|i| i.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(name.to_string()),
            op_type: Some(op.to_string()),
            ..NodeProto::default()
        }
    }

    fn ints(name: &str, values: &[i64]) -> AttributeProto {
        AttributeProto {
            name: Some(name.to_string()),
            ints: values.to_vec(),
            r#type: Some(7),
            ..AttributeProto::default()
        }
    }

    fn weight(name: &str, dims: &[i64]) -> TensorProto {
        let count: i64 = dims.iter().product();
        TensorProto {
            dims: dims.to_vec(),
            data_type: Some(crate::onnx_proto::FLOAT),
            name: Some(name.to_string()),
            raw_data: Some(vec![0; 4 * count as usize]),
            ..TensorProto::default()
        }
    }

    /// A VITS-shaped graph in miniature: a front that scales its input, and a decoder of a
    /// convolution, an upsampling by 2 and a dilated convolution, reshaped to the output.
    pub(crate) fn miniature(decoder_extra: Option<NodeProto>) -> Vec<u8> {
        let mut conv_pre = node(
            "/dec/conv_pre/Conv",
            "Conv",
            &["/Mul_output_0", "w_pre"],
            "pre",
        );
        conv_pre.attribute = vec![ints("kernel_shape", &[3]), ints("pads", &[1, 1])];
        let relu = node("/dec/LeakyRelu", "LeakyRelu", &["pre"], "relu");
        let mut up = node(
            "/dec/ups.0/ConvTranspose",
            "ConvTranspose",
            &["relu", "w_up", "b_up"],
            "up",
        );
        up.attribute = vec![
            ints("strides", &[2]),
            ints("pads", &[1, 1]),
            ints("kernel_shape", &[4]),
        ];
        let mut post = node("/dec/conv_post/Conv", "Conv", &["up", "w_post"], "post");
        post.attribute = vec![ints("dilations", &[2]), ints("pads", &[2, 2])];
        let tanh = node("/dec/Tanh", "Tanh", &["post"], "tanh");
        let mut nodes = vec![
            node("/Mul", "Mul", &["input", "two"], "/Mul_output_0"),
            conv_pre,
            relu,
            up,
            post,
            tanh,
            node("/Unsqueeze", "Unsqueeze", &["tanh", "axes"], "output"),
        ];
        nodes.extend(decoder_extra);
        let opset = OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(15),
        };
        ModelProto {
            ir_version: Some(8),
            opset_import: vec![opset.encode_to_vec()],
            graph: Some(GraphProto {
                node: nodes,
                name: Some("miniature".into()),
                initializer: vec![
                    weight("two", &[]),
                    weight("axes", &[1]),
                    weight("w_pre", &[8, 4, 3]),
                    weight("w_up", &[8, 2, 4]),
                    weight("b_up", &[2]),
                    weight("w_post", &[1, 2, 3]),
                ],
                input: vec![ValueInfoProto::float_tensor("input", None)],
                output: vec![ValueInfoProto::float_tensor("output", None)],
                ..GraphProto::default()
            }),
            ..ModelProto::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn the_decoder_becomes_a_2d_model_of_its_own_with_its_receptive_field() {
        let (front, decoder) = split(&miniature(None)).unwrap();
        let front = ModelProto::decode(front.as_slice()).unwrap();
        let graph = front.graph.unwrap();
        let ops: Vec<&str> = graph.node.iter().map(NodeProto::op_type).collect();
        assert_eq!(ops, ["Mul"]);
        assert_eq!(graph.node[0].output, [LATENT]);
        assert_eq!(graph.output.len(), 1);
        assert_eq!(graph.output[0].name(), LATENT);
        let kept: Vec<&str> = graph.initializer.iter().map(TensorProto::name).collect();
        assert_eq!(kept, ["two"]);

        let decoder = ModelProto::decode(decoder.as_slice()).unwrap();
        let metadata: Vec<(&str, &str)> = decoder
            .metadata_props
            .iter()
            .map(|e| (e.key(), e.value()))
            .collect();
        // conv_pre reaches 1 frame; the transposed convolution 4 / 2 samples of its input, 2
        // frames; conv_post 2 × (3 - 1) / 2 = 2 samples at 2 per frame, 1 frame.
        assert_eq!(
            metadata,
            [(CONTEXT_FRAMES_KEY, "4"), (SAMPLES_PER_FRAME_KEY, "2")]
        );
        let graph = decoder.graph.unwrap();
        let ops: Vec<&str> = graph.node.iter().map(NodeProto::op_type).collect();
        assert_eq!(
            ops,
            [
                "Unsqueeze",
                "Conv",
                "LeakyRelu",
                "ConvTranspose",
                "Conv",
                "Tanh"
            ]
        );
        assert_eq!(graph.node[0].input, [LATENT, LATENT_AXES]);
        assert_eq!(graph.node[1].input[0], LATENT_4D);
        assert_eq!(graph.node[5].output, [AUDIO]);
        let attribute = |node: usize, name: &str| {
            graph.node[node]
                .attribute
                .iter()
                .find(|a| a.name() == name)
                .unwrap()
                .ints
                .clone()
        };
        assert_eq!(attribute(1, "kernel_shape"), [1, 3]);
        assert_eq!(attribute(1, "pads"), [0, 1, 0, 1]);
        assert_eq!(attribute(3, "strides"), [1, 2]);
        assert_eq!(attribute(4, "dilations"), [1, 2]);
        let dims = |name: &str| {
            graph
                .initializer
                .iter()
                .find(|t| t.name() == name)
                .unwrap()
                .dims
                .clone()
        };
        assert_eq!(dims("w_pre"), [8, 4, 1, 3]);
        assert_eq!(dims("w_up"), [8, 2, 1, 4]);
        assert_eq!(dims("b_up"), [2]);
        assert_eq!(graph.input[0].name(), LATENT);
        assert_eq!(graph.output[0].name(), AUDIO);
    }

    #[test]
    fn what_the_split_cannot_lay_out_is_refused_by_name() {
        let reshape = node("/dec/Reshape", "Reshape", &["tanh", "axes"], "reshaped");
        let refused = split(&miniature(Some(reshape))).unwrap_err();
        assert_eq!(
            refused,
            "/dec/Reshape is a Reshape, which the split does not lay out in 4-D"
        );
        let mut whole = ModelProto::decode(miniature(None).as_slice()).unwrap();
        for node in &mut whole.graph.as_mut().unwrap().node {
            node.name = Some(node.name().replace("/dec/", "/decoder/"));
        }
        let refused = split(&whole.encode_to_vec()).unwrap_err();
        assert!(refused.starts_with("no node is named /dec/…"), "{refused}");
        assert!(
            split(b"not a model")
                .unwrap_err()
                .starts_with("not an ONNX model")
        );
    }
}
