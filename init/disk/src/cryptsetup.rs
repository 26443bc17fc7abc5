//! Running Debian's cryptsetup (in the image's /usr/sbin with its libraries) on /data's
//! partition: LUKS2 with aes-xts-plain64 and 4 KiB sectors, one key slot opened by a
//! 256-bit random key, and one token that holds that key sealed by the TPM (data_key.rs).
//!
//! Key slot 1 opens with the owner's recovery key (recovery_key.rs).
//!
//! Both keys are random, not passphrases, so the key slots' PBKDF is PBKDF2 at cryptsetup's
//! minimum: stretching adds nothing to 256 (or the recovery key's 125) bits of entropy, and
//! Argon2 would cost the boot seconds and hundreds of MiB on a small board. A key reaches
//! cryptsetup on stdin; the one a slot gets besides it, in a file on tmpfs removed right after.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::Error;

pub const CRYPTSETUP: &str = "/usr/sbin/cryptsetup";
/// The opened volume: /dev/mapper/carapace-data.
pub const MAPPED_NAME: &str = "carapace-data";
pub const TOKEN_ID: &str = "0";
/// The key slot the sealed key opens (token 0 names it).
pub const SEALED_KEY_SLOT: &str = "0";
const LUKS_MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
/// cryptsetup's lock files; without udev on the box it also makes the /dev/mapper node.
const LOCK_DIR: &str = "/run/cryptsetup";
const TAIL_LINES: usize = 6;

/// Whether this image can encrypt /data: its recipe put cryptsetup in (with dm-crypt among
/// the root modules). A board whose recipe leaves it out keeps /data plain even with a TPM.
pub fn available() -> bool {
    Path::new(CRYPTSETUP).is_file()
}

/// Whether `device` starts with a LUKS header.
pub fn is_luks(device: &Path) -> Result<bool, Error> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(device).map_err(|e| Error::io("open", device, e))?;
    let mut magic = [0u8; 6];
    match file.read_exact_at(&mut magic, 0) {
        Ok(()) => Ok(&magic == LUKS_MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::io("read", device, e)),
    }
}

/// A new LUKS2 volume on `device` whose key slot 0 opens with `key`.
pub fn format(device: &Path, key: &[u8]) -> Result<(), Error> {
    let args = [
        "luksFormat",
        "--batch-mode",
        "--type",
        "luks2",
        "--cipher",
        "aes-xts-plain64",
        "--key-size",
        "512",
        "--hash",
        "sha256",
        "--sector-size",
        "4096",
        "--pbkdf",
        "pbkdf2",
        "--pbkdf-force-iterations",
        "1000",
        "--label",
        "carapace-data",
        "--key-slot",
        "0",
        "--key-file",
        "-",
    ];
    run(&args, device, key, &[]).map(drop)
}

/// Stores `json` as token 0 (cryptsetup checks its "type" and "keyslots").
pub fn import_token(device: &Path, json: &str) -> Result<(), Error> {
    let args = [
        "token",
        "import",
        "--token-id",
        TOKEN_ID,
        "--json-file",
        "-",
    ];
    run(&args, device, json.as_bytes(), &[]).map(drop)
}

pub fn export_token(device: &Path) -> Result<String, Error> {
    let args = ["token", "export", "--token-id", TOKEN_ID];
    run(&args, device, &[], &[]).map(|out| String::from_utf8_lossy(&out).into_owned())
}

/// Stores `json` as token 0 in place of the one there.
pub fn replace_token(device: &Path, json: &str) -> Result<(), Error> {
    let args = [
        "token",
        "import",
        "--token-id",
        TOKEN_ID,
        "--token-replace",
        "--json-file",
        "-",
    ];
    run(&args, device, json.as_bytes(), &[]).map(drop)
}

/// Opens the volume as /dev/mapper/carapace-data with the key of `slot`.
pub fn open(device: &Path, slot: &str, key: &[u8]) -> Result<PathBuf, Error> {
    let args = [
        "open",
        "--type",
        "luks2",
        "--key-slot",
        slot,
        "--key-file",
        "-",
    ];
    run(&args, device, key, &[MAPPED_NAME])?;
    Ok(Path::new("/dev/mapper").join(MAPPED_NAME))
}

/// Gives key slot `slot` the key `new`, with `key` (which opens another slot) to allow it.
pub fn add_key(device: &Path, slot: &str, key: &[u8], new: &[u8]) -> Result<(), Error> {
    let new_file = Path::new(LOCK_DIR).join("new-key");
    std::fs::create_dir_all(LOCK_DIR).map_err(|e| Error::io("create", Path::new(LOCK_DIR), e))?;
    board_support::atomic_file::write(&new_file, new, 0o600)
        .map_err(|e| Error::io("write", &new_file, e))?;
    let args = [
        "luksAddKey",
        "--batch-mode",
        "--pbkdf",
        "pbkdf2",
        "--pbkdf-force-iterations",
        "1000",
        "--key-slot",
        slot,
        "--key-file",
        "-",
    ];
    let new_path = new_file.to_string_lossy().into_owned();
    let added = run(&args, device, key, &[&new_path]).map(drop);
    let _ = std::fs::remove_file(&new_file);
    added
}

/// The key slots in use, by number (from the header's JSON metadata).
pub fn active_slots(device: &Path) -> Result<Vec<String>, Error> {
    let out = run(&["luksDump", "--dump-json-metadata"], device, &[], &[])?;
    let metadata: serde_json::Value = serde_json::from_slice(&out).map_err(|e| Error::Tool {
        program: "cryptsetup",
        device: device.to_owned(),
        code: 0,
        says: format!("luksDump printed no JSON metadata ({e})"),
    })?;
    Ok(metadata
        .get("keyslots")
        .and_then(serde_json::Value::as_object)
        .map(|slots| slots.keys().cloned().collect())
        .unwrap_or_default())
}

/// Empties key slot `slot`, with `key` (which opens another slot) to allow it.
pub fn kill_slot(device: &Path, slot: &str, key: &[u8]) -> Result<(), Error> {
    let args = ["luksKillSlot", "--batch-mode", "--key-file", "-"];
    run(&args, device, key, &[slot]).map(drop)
}

/// Runs `cryptsetup args device after` with `input` on stdin; returns its stdout, or an error
/// with the last lines it wrote.
fn run(args: &[&str], device: &Path, input: &[u8], after: &[&str]) -> Result<Vec<u8>, Error> {
    progress!(
        "cryptsetup {} {} {}",
        args.join(" "),
        device.display(),
        after.join(" ")
    );
    // Best effort: without the directory cryptsetup warns and runs unlocked.
    let _ = std::fs::create_dir_all(LOCK_DIR);
    let mut child = Command::new(CRYPTSETUP)
        .args(args)
        .arg(device)
        .args(after)
        .env_clear()
        .env("PATH", "/usr/bin:/usr/sbin")
        .env("DM_DISABLE_UDEV", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            program: "cryptsetup",
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A failure to write shows as cryptsetup's own error below.
        let _ = stdin.write_all(input);
    }
    let output = child.wait_with_output().map_err(|source| Error::Spawn {
        program: "cryptsetup",
        source,
    })?;
    let code = output.status.code().unwrap_or(-1);
    if code == 0 {
        return Ok(output.stdout);
    }
    let says = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = says.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(Error::Tool {
        program: "cryptsetup",
        device: device.to_owned(),
        code,
        says: lines
            .iter()
            .skip(lines.len().saturating_sub(TAIL_LINES))
            .copied()
            .collect::<Vec<_>>()
            .join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real cryptsetup on a file: a LUKS2 header we recognise, and a token that reads back.
    #[test]
    fn a_formatted_volume_is_luks_and_keeps_its_token() {
        assert!(
            Path::new(CRYPTSETUP).exists(),
            "{CRYPTSETUP} is missing; `make deps` installs cryptsetup-bin, which this test needs"
        );
        let image = tempfile::NamedTempFile::new().expect("temp");
        image.as_file().set_len(32 * 1024 * 1024).expect("size");
        assert!(!is_luks(image.path()).expect("read"));
        format(
            image.path(),
            b"a key of sixty-four hex digits would be here",
        )
        .expect("format");
        assert!(is_luks(image.path()).expect("read"));
        let json = r#"{"type":"carapace-tpm2","keyslots":["0"],"sealed":"00ff"}"#;
        import_token(image.path(), json).expect("import");
        let back: serde_json::Value =
            serde_json::from_str(&export_token(image.path()).expect("export")).expect("json");
        assert_eq!(back["sealed"], "00ff");
        assert_eq!(back["type"], "carapace-tpm2");
    }

    /// Whether `key` opens `slot` (`cryptsetup open --test-passphrase`: no device mapper).
    fn opens(device: &Path, slot: &str, key: &[u8]) -> bool {
        let args = [
            "open",
            "--test-passphrase",
            "--key-slot",
            slot,
            "--key-file",
            "-",
        ];
        run(&args, device, key, &[]).is_ok()
    }

    /// What the recovery needs of the real cryptsetup: a second slot for the recovery key,
    /// then with only that key, slot 0 emptied and given a new key, and token 0 replaced.
    #[test]
    fn the_recovery_key_replaces_the_sealed_key_and_its_token() {
        let image = tempfile::NamedTempFile::new().expect("temp");
        image.as_file().set_len(32 * 1024 * 1024).expect("size");
        let device = image.path();
        format(device, b"sealed key one").expect("format");
        import_token(
            device,
            r#"{"type":"carapace-tpm2","keyslots":["0"],"sealed":"01"}"#,
        )
        .expect("import");
        add_key(device, "1", b"sealed key one", b"RECOVERY").expect("add the recovery key");
        assert!(opens(device, "1", b"RECOVERY"));
        assert!(!opens(device, "1", b"sealed key one"));

        assert_eq!(active_slots(device).expect("dump"), ["0", "1"]);
        kill_slot(device, SEALED_KEY_SLOT, b"RECOVERY").expect("kill slot 0");
        assert!(!opens(device, SEALED_KEY_SLOT, b"sealed key one"));
        assert_eq!(active_slots(device).expect("dump"), ["1"]);
        add_key(device, SEALED_KEY_SLOT, b"RECOVERY", b"sealed key two").expect("new slot 0");
        replace_token(
            device,
            r#"{"type":"carapace-tpm2","keyslots":["0"],"sealed":"02"}"#,
        )
        .expect("replace the token");
        assert!(opens(device, SEALED_KEY_SLOT, b"sealed key two"));
        assert!(opens(device, "1", b"RECOVERY"));
        let back: serde_json::Value =
            serde_json::from_str(&export_token(device).expect("export")).expect("json");
        assert_eq!(back["sealed"], "02");
        assert_eq!(back["keyslots"], serde_json::json!(["0"]));
        // A wrong key changes nothing.
        assert!(kill_slot(device, "1", b"wrong").is_err());
        assert!(opens(device, "1", b"RECOVERY"));
    }
}
