//! The `carapace.*` kernel command line parameters that tell PID 1 which slot it booted and how
//! to verify and find its partitions (docs/boot-contract.md, "Kernel command line").

use crate::error::Error;
use crate::slot::Slot;

const SLOT: &str = "carapace.slot";
const ROOT: &str = "carapace.root";
const DATA: &str = "carapace.data";
const ESP: &str = "carapace.esp";
const VERITY: &str = "carapace.verity";

/// sha256 root hash, in hex.
const ROOT_HASH_HEX_LEN: usize = 64;
/// dm-verity refuses salts longer than 256 bytes.
const MAX_SALT_HEX_LEN: usize = 512;

/// The dm-verity table of the root partition: format 1, sha256, 4096-byte blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityParams {
    /// Lower-case hex sha256 of the top of the hash tree.
    pub root_hash: String,
    /// Lower-case hex; empty means no salt.
    pub salt: String,
    /// Number of 4096-byte erofs blocks the tree covers.
    pub data_blocks: u64,
    /// First 4096-byte block of the hash tree on the same partition.
    pub hash_start_block: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootParams {
    pub slot: Slot,
    /// PARTUUIDs: lower-case hyphenated GUIDs, as the kernel prints them.
    pub root_partuuid: String,
    pub data_partuuid: String,
    pub esp_partuuid: String,
    pub verity: VerityParams,
}

impl BootParams {
    /// Reads the `carapace.*` parameters out of a whole command line (e.g. /proc/cmdline);
    /// every other word is left to the kernel.
    pub fn parse(cmdline: &str) -> Result<BootParams, Error> {
        let slot_value = param(cmdline, SLOT)?;
        let slot = slot_value.parse().map_err(|_| Error::BadParam {
            name: SLOT,
            value: slot_value.to_owned(),
            reason: "a slot is 'a' or 'b'".to_owned(),
        })?;
        Ok(BootParams {
            slot,
            root_partuuid: partuuid(ROOT, param(cmdline, ROOT)?)?,
            data_partuuid: partuuid(DATA, param(cmdline, DATA)?)?,
            esp_partuuid: partuuid(ESP, param(cmdline, ESP)?)?,
            verity: verity(param(cmdline, VERITY)?)?,
        })
    }

    /// The `carapace.*` words for a loader entry's `options` line; the builder adds the
    /// console and panic words around them.
    pub fn to_kernel_args(&self) -> String {
        let v = &self.verity;
        format!(
            "{SLOT}={} {ROOT}={} {DATA}={} {ESP}={} {VERITY}={},{},{},{}",
            self.slot,
            self.root_partuuid,
            self.data_partuuid,
            self.esp_partuuid,
            v.root_hash,
            v.salt,
            v.data_blocks,
            v.hash_start_block
        )
    }
}

/// A parameter given twice is refused rather than resolved: which copy wins would decide which
/// root the box trusts.
fn param<'a>(cmdline: &'a str, name: &'static str) -> Result<&'a str, Error> {
    let mut values = cmdline
        .split_whitespace()
        .filter_map(|word| word.strip_prefix(name)?.strip_prefix('='));
    let value = values.next().ok_or(Error::MissingParam { name })?;
    if values.next().is_some() {
        return Err(Error::DuplicateParam { name });
    }
    Ok(value)
}

fn bad(name: &'static str, value: &str, reason: impl Into<String>) -> Error {
    Error::BadParam {
        name,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn partuuid(name: &'static str, value: &str) -> Result<String, Error> {
    let groups: Vec<&str> = value.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lengths != [8, 4, 4, 4, 12] || !groups.iter().all(|g| is_lower_hex(g)) {
        return Err(bad(
            name,
            value,
            "expected a lower-case hyphenated GUID like 0fc63daf-8483-4772-8e79-3d69d8477de4",
        ));
    }
    Ok(value.to_owned())
}

fn verity(value: &str) -> Result<VerityParams, Error> {
    let fields: Vec<&str> = value.split(',').collect();
    let [root_hash, salt, data_blocks, hash_start_block] = fields[..] else {
        return Err(bad(
            VERITY,
            value,
            format!(
                "expected <root hash>,<salt>,<data blocks>,<hash start block>, found {} fields",
                fields.len()
            ),
        ));
    };
    if root_hash.len() != ROOT_HASH_HEX_LEN || !is_lower_hex(root_hash) {
        return Err(bad(
            VERITY,
            value,
            "the root hash must be 64 lower-case hex digits (sha256)",
        ));
    }
    if salt.len() % 2 != 0 || salt.len() > MAX_SALT_HEX_LEN || !is_lower_hex(salt) {
        return Err(bad(
            VERITY,
            value,
            "the salt must be an even number (at most 512) of lower-case hex digits",
        ));
    }
    let data_blocks = block_count(value, data_blocks, "data blocks")?;
    let hash_start_block = block_count(value, hash_start_block, "hash start block")?;
    if data_blocks == 0 {
        return Err(bad(VERITY, value, "data blocks must be at least 1"));
    }
    if hash_start_block < data_blocks {
        return Err(bad(
            VERITY,
            value,
            "the hash tree would overlap the data blocks",
        ));
    }
    Ok(VerityParams {
        root_hash: root_hash.to_owned(),
        salt: salt.to_owned(),
        data_blocks,
        hash_start_block,
    })
}

/// Plain decimal only: `str::parse` would also take "+5", which the contract does not allow.
fn block_count(value: &str, field: &str, what: &str) -> Result<u64, Error> {
    let number = field
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| field.parse::<u64>().ok())
        .flatten();
    number.ok_or_else(|| {
        bad(
            VERITY,
            value,
            format!("{what} '{field}' is not a decimal number"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_UUID: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";
    const DATA_UUID: &str = "11111111-2222-4333-8444-555555555555";
    const ESP_UUID: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    const HASH: &str = "4b5a52ad4b1fc3e0e0b1b7f3b1c1d2e3f405162738495a6b7c8d9eafb0c1d2e3";

    fn sample(slot: Slot, salt: &str) -> BootParams {
        BootParams {
            slot,
            root_partuuid: ROOT_UUID.to_owned(),
            data_partuuid: DATA_UUID.to_owned(),
            esp_partuuid: ESP_UUID.to_owned(),
            verity: VerityParams {
                root_hash: HASH.to_owned(),
                salt: salt.to_owned(),
                data_blocks: 12345,
                hash_start_block: 12345,
            },
        }
    }

    fn full_cmdline(verity: &str) -> String {
        format!(
            "console=tty0 console=ttyS0,115200 quiet panic=10 carapace.slot=b \
             carapace.root={ROOT_UUID} carapace.data={DATA_UUID} carapace.esp={ESP_UUID} \
             carapace.verity={verity}\n"
        )
    }

    #[test]
    fn kernel_args_format() {
        assert_eq!(
            sample(Slot::A, "00ff").to_kernel_args(),
            format!(
                "carapace.slot=a carapace.root={ROOT_UUID} carapace.data={DATA_UUID} \
                 carapace.esp={ESP_UUID} carapace.verity={HASH},00ff,12345,12345"
            )
        );
    }

    #[test]
    fn round_trips() {
        for slot in [Slot::A, Slot::B] {
            for salt in ["", "00", "deadbeef", &"ab".repeat(256)] {
                let params = sample(slot, salt);
                assert_eq!(BootParams::parse(&params.to_kernel_args()).unwrap(), params);
            }
        }
    }

    #[test]
    fn parses_a_whole_command_line_ignoring_other_words() {
        let params = BootParams::parse(&full_cmdline(&format!("{HASH},abcd,8,10"))).unwrap();
        assert_eq!(params.slot, Slot::B);
        assert_eq!(params.esp_partuuid, ESP_UUID);
        assert_eq!(params.verity.salt, "abcd");
        assert_eq!(params.verity.data_blocks, 8);
        assert_eq!(params.verity.hash_start_block, 10);
    }

    #[test]
    fn missing_parameter_is_named() {
        let args = sample(Slot::A, "").to_kernel_args();
        for name in [SLOT, ROOT, DATA, ESP, VERITY] {
            let without: Vec<&str> = args
                .split(' ')
                .filter(|w| !w.starts_with(&format!("{name}=")))
                .collect();
            let err = BootParams::parse(&without.join(" ")).unwrap_err();
            assert!(
                matches!(err, Error::MissingParam { name: n } if n == name),
                "{err}"
            );
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn duplicate_parameter_is_refused() {
        let args = format!("{} carapace.slot=a", sample(Slot::B, "").to_kernel_args());
        let err = BootParams::parse(&args).unwrap_err();
        assert!(matches!(err, Error::DuplicateParam { name: SLOT }), "{err}");
    }

    #[test]
    fn similar_names_are_not_taken_for_ours() {
        let args = format!("carapace.slotx=a {}", sample(Slot::B, "").to_kernel_args());
        assert_eq!(BootParams::parse(&args).unwrap().slot, Slot::B);
    }

    fn bad_param(cmdline: &str) -> (&'static str, String) {
        match BootParams::parse(cmdline) {
            Err(Error::BadParam { name, value, .. }) => (name, value),
            other => panic!("expected BadParam, got {other:?}"),
        }
    }

    #[test]
    fn bad_slot() {
        let args = sample(Slot::A, "")
            .to_kernel_args()
            .replace("slot=a", "slot=c");
        assert_eq!(bad_param(&args), (SLOT, "c".to_owned()));
    }

    #[test]
    fn bad_partuuids() {
        for bad in [
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            "0fc63daf84834772-8e79-3d69d8477de4",
            "0fc63daf-8483-4772-8e79-3d69d8477de",
            "0fc63daf-8483-4772-8e79-3d69d8477dez",
            "",
        ] {
            let args = sample(Slot::A, "").to_kernel_args().replace(ROOT_UUID, bad);
            assert_eq!(bad_param(&args), (ROOT, bad.to_owned()));
        }
    }

    #[test]
    fn bad_verity() {
        let upper = HASH.to_uppercase();
        let short = &HASH[..62];
        let long_salt = "ab".repeat(257);
        for verity in [
            format!("{HASH},00,8"),
            format!("{HASH},00,8,8,1"),
            format!("{upper},00,8,8"),
            format!("{short},00,8,8"),
            format!("{HASH},0,8,8"),
            format!("{HASH},zz,8,8"),
            format!("{HASH},{long_salt},8,8"),
            format!("{HASH},00,0,8"),
            format!("{HASH},00,8,7"),
            format!("{HASH},00,+8,8"),
            format!("{HASH},00,8,-1"),
            format!("{HASH},00,8,99999999999999999999"),
        ] {
            assert_eq!(bad_param(&full_cmdline(&verity)), (VERITY, verity.clone()));
        }
    }
}
