//! Reads CTranslate2's `model.bin`: the named tensors a CTranslate2 converter wrote, which the
//! Whisper conversion (whisper_ct2.rs) turns into safetensors. Hand-written: no Rust crate reads
//! this format, and it is small. Layout of binary version 6 (all integers little-endian):
//!
//! ```text
//! u32 version (6) | string spec name | u32 spec revision | u32 variable count
//! per variable:   string name | u8 rank | u32 dim × rank | u8 dtype | u32 byte count | bytes
//! u32 alias count | per alias: string alias | string variable name
//! string:         u16 length (with the trailing NUL) | UTF-8 bytes | NUL
//! ```

use std::collections::BTreeMap;

/// The only layout this reader knows; CTranslate2 3.x and 4.x write it.
pub const BINARY_VERSION: u32 = 6;

/// A tensor's element type, by CTranslate2's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl Ct2Dtype {
    fn from_id(id: u8) -> Option<Ct2Dtype> {
        Some(match id {
            0 => Ct2Dtype::F32,
            1 => Ct2Dtype::I8,
            2 => Ct2Dtype::I16,
            3 => Ct2Dtype::I32,
            4 => Ct2Dtype::F16,
            5 => Ct2Dtype::BF16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Ct2Dtype::I8 => 1,
            Ct2Dtype::I16 | Ct2Dtype::F16 | Ct2Dtype::BF16 => 2,
            Ct2Dtype::F32 | Ct2Dtype::I32 => 4,
        }
    }
}

/// One named tensor (a scalar has no dimensions).
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub dtype: Ct2Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Variable {
    /// A scalar flag or count as an integer (CTranslate2 writes them as int8 or int16).
    pub fn as_integer(&self) -> Option<i64> {
        if !self.shape.is_empty() {
            return None;
        }
        match (self.dtype, self.data.as_slice()) {
            (Ct2Dtype::I8, [b]) => Some(i64::from(*b as i8)),
            (Ct2Dtype::I16, [a, b]) => Some(i64::from(i16::from_le_bytes([*a, *b]))),
            (Ct2Dtype::I32, [a, b, c, d]) => Some(i64::from(i32::from_le_bytes([*a, *b, *c, *d]))),
            _ => None,
        }
    }
}

/// A whole model.bin.
#[derive(Debug, Clone, PartialEq)]
pub struct Ct2Model {
    /// The model specification, e.g. "WhisperSpec".
    pub spec: String,
    pub revision: u32,
    pub variables: BTreeMap<String, Variable>,
    /// Another name for a variable (a tied output projection), alias → variable.
    pub aliases: BTreeMap<String, String>,
}

impl Ct2Model {
    /// Parses model.bin's bytes; the error says what is wrong and at which byte.
    pub fn parse(bytes: &[u8]) -> Result<Ct2Model, String> {
        let mut reader = Reader { bytes, at: 0 };
        let version = reader.u32("the binary version")?;
        if version != BINARY_VERSION {
            return Err(format!(
                "binary version {version}; this reader knows version {BINARY_VERSION} \
                 (convert the model again with CTranslate2 3 or later)"
            ));
        }
        let spec = reader.string("the spec name")?;
        let revision = reader.u32("the spec revision")?;
        let count = reader.u32("the variable count")?;
        let mut variables = BTreeMap::new();
        for _ in 0..count {
            let name = reader.string("a variable name")?;
            let rank = reader.u8(&name)?;
            let shape = (0..rank)
                .map(|_| reader.u32(&name).map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let dtype_id = reader.u8(&name)?;
            let dtype = Ct2Dtype::from_id(dtype_id)
                .ok_or_else(|| format!("{name}: unknown element type {dtype_id}"))?;
            let byte_count = reader.u32(&name)? as usize;
            let expected = shape
                .iter()
                .try_fold(dtype.size(), |product, &d| product.checked_mul(d));
            if expected != Some(byte_count) {
                return Err(format!(
                    "{name}: {byte_count} bytes for shape {shape:?} of {dtype:?}"
                ));
            }
            let data = reader.take(byte_count, &name)?.to_vec();
            if variables
                .insert(name.clone(), Variable { dtype, shape, data })
                .is_some()
            {
                return Err(format!("{name} is written twice"));
            }
        }
        let alias_count = reader.u32("the alias count")?;
        let mut aliases = BTreeMap::new();
        for _ in 0..alias_count {
            let alias = reader.string("an alias")?;
            let target = reader.string(&alias)?;
            if !variables.contains_key(&target) {
                return Err(format!(
                    "alias {alias} names {target}, which is not in the file"
                ));
            }
            aliases.insert(alias, target);
        }
        if reader.at != bytes.len() {
            return Err(format!(
                "{} bytes follow the last alias at byte {}",
                bytes.len() - reader.at,
                reader.at
            ));
        }
        Ok(Ct2Model {
            spec,
            revision,
            variables,
            aliases,
        })
    }

    /// The variable `name`, or an error naming it.
    pub fn variable(&self, name: &str) -> Result<&Variable, String> {
        let target = self.aliases.get(name).map_or(name, String::as_str);
        self.variables
            .get(target)
            .ok_or_else(|| format!("{name} is missing"))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(count)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "the file ends at byte {} inside {what} ({count} bytes wanted at byte {})",
                self.bytes.len(),
                self.at
            ));
        };
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let b = self.take(2, what)?;
        let length = usize::from(u16::from_le_bytes([b[0], b[1]]));
        let at = self.at;
        let with_nul = self.take(length, what)?;
        match with_nul.split_last() {
            Some((0, text)) => String::from_utf8(text.to_vec())
                .map_err(|_| format!("{what} at byte {at} is not UTF-8")),
            _ => Err(format!("{what} at byte {at} does not end in NUL")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a model.bin the way CTranslate2's converter does.
    pub(crate) fn model_bin(
        spec: &str,
        variables: &[(&str, Vec<usize>, u8, Vec<u8>)],
        aliases: &[(&str, &str)],
    ) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, text: &str) {
            out.extend(((text.len() + 1) as u16).to_le_bytes());
            out.extend(text.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend(6u32.to_le_bytes());
        string(&mut out, spec);
        out.extend(3u32.to_le_bytes());
        out.extend((variables.len() as u32).to_le_bytes());
        for (name, shape, dtype, data) in variables {
            string(&mut out, name);
            out.push(shape.len() as u8);
            for d in shape {
                out.extend((*d as u32).to_le_bytes());
            }
            out.push(*dtype);
            out.extend((data.len() as u32).to_le_bytes());
            out.extend(data);
        }
        out.extend((aliases.len() as u32).to_le_bytes());
        for (alias, target) in aliases {
            string(&mut out, alias);
            string(&mut out, target);
        }
        out
    }

    fn small() -> Vec<u8> {
        model_bin(
            "WhisperSpec",
            &[
                ("decoder/embeddings/weight", vec![2, 2], 0, vec![0; 16]),
                ("decoder/num_heads", vec![], 2, 6i16.to_le_bytes().to_vec()),
                ("decoder/pre_norm", vec![], 1, vec![1]),
            ],
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        )
    }

    #[test]
    fn variables_scalars_and_aliases_are_read() {
        let model = Ct2Model::parse(&small()).unwrap();
        assert_eq!((model.spec.as_str(), model.revision), ("WhisperSpec", 3));
        let weight = model.variable("decoder/projection/weight").unwrap();
        assert_eq!(
            (weight.dtype, weight.shape.as_slice()),
            (Ct2Dtype::F32, &[2, 2][..])
        );
        assert_eq!(
            model.variable("decoder/num_heads").unwrap().as_integer(),
            Some(6)
        );
        assert_eq!(
            model.variable("decoder/pre_norm").unwrap().as_integer(),
            Some(1)
        );
        assert_eq!(weight.as_integer(), None);
        assert_eq!(
            model.variable("encoder/conv1/weight").unwrap_err(),
            "encoder/conv1/weight is missing"
        );
    }

    #[test]
    fn every_cut_of_the_file_is_an_error_not_a_panic() {
        let bytes = small();
        for end in 0..bytes.len() {
            assert!(Ct2Model::parse(&bytes[..end]).is_err(), "cut at {end}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            Ct2Model::parse(&longer)
                .unwrap_err()
                .contains("follow the last alias")
        );
    }

    #[test]
    fn a_wrong_version_size_or_dtype_says_what_is_wrong() {
        let mut old = small();
        old[0] = 5;
        assert!(
            Ct2Model::parse(&old)
                .unwrap_err()
                .starts_with("binary version 5")
        );
        let short = model_bin("S", &[("w", vec![3], 4, vec![0; 4])], &[]);
        assert_eq!(
            Ct2Model::parse(&short).unwrap_err(),
            "w: 4 bytes for shape [3] of F16"
        );
        let odd = model_bin("S", &[("w", vec![1], 9, vec![0])], &[]);
        assert_eq!(
            Ct2Model::parse(&odd).unwrap_err(),
            "w: unknown element type 9"
        );
        let dangling = model_bin("S", &[], &[("a", "b")]);
        assert!(
            Ct2Model::parse(&dangling)
                .unwrap_err()
                .contains("not in the file")
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic fuzz: mutate the valid file byte by byte.
        let bytes = small();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut mutated = bytes.clone();
            let at = (state as usize) % mutated.len();
            mutated[at] = (state >> 32) as u8;
            let _ = Ct2Model::parse(&mutated);
        }
    }
}
