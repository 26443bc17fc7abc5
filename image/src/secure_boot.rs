//! Secure Boot with the owner's (or vendor's) own keys: `carapace keygen --secure-boot DIR`
//! makes them, `carapace build --secure-boot-keys DIR` signs systemd-boot and each slot's
//! unified kernel image with them and writes a firmware variable store with them enrolled,
//! which `carapace run --secure-boot` boots.
//!
//! ```text
//! DIR/PK.key  PK.crt     platform key: owns the key store (signs KEK updates)
//! DIR/KEK.key KEK.crt    key exchange key: signs db updates
//! DIR/db.key  db.crt     signature database: signs what the firmware starts
//! ```
//! RSA 2048 and SHA-256, what every UEFI firmware verifies. The private halves are written
//! 0600 and never printed; only db.key is needed to build, PK.key and KEK.key only to change
//! the enrolled keys later (keep them offline).
//!
//! The tools are Debian's: openssl makes the keys, sbsign (sbsigntool) signs, and virt-fw-vars
//! (PyPI's virt-firmware, pinned in `make deps`) writes the keys into a copy of the firmware's
//! variable store with Secure Boot turned on.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};
use crate::tools;

/// The three key pairs, in the order the firmware's hierarchy has them.
pub const KEY_NAMES: [&str; 3] = ["PK", "KEK", "db"];

/// The owner GUID the enrolled certificates carry (EFI_SIGNATURE_DATA.SignatureOwner): says
/// whose entry it is to tools that list the key store.
const OWNER_GUID: &str = "5f1a6c1e-3b0c-4c57-9d6a-2e8c0a7a1d3b";

/// The variable store a Secure Boot build writes beside its image, for `carapace run
/// --secure-boot` and the tests: OVMF's, with this build's keys enrolled.
pub const ENROLLED_VARS: &str = "secure-boot-vars.fd";

/// Certificates last 20 years: a box never checks their dates (UEFI ignores them), and an
/// expired one only confuses tools.
const CERT_DAYS: &str = "7300";

/// Makes the three key pairs in `dir`, which must not exist yet: keys are never overwritten.
pub fn generate(dir: &Path, common_name: &str) -> Result<()> {
    tools::require("openssl", "openssl")?;
    if dir.exists() {
        return Err(Error::image(format!(
            "{} exists; Secure Boot keys are never overwritten (an enrolled box would no \
             longer boot what they sign): choose a new folder",
            dir.display()
        )));
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let partial = tempfile::Builder::new()
        .prefix(".secure-boot-keys.")
        .tempdir_in(parent)
        .context(|| format!("create a folder in {}", parent.display()))?;
    for name in KEY_NAMES {
        let key = partial.path().join(format!("{name}.key"));
        let cert = partial.path().join(format!("{name}.crt"));
        tools::output(
            Command::new("openssl")
                .args([
                    "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                ])
                .args(["-days", CERT_DAYS, "-subj"])
                .arg(format!("/CN={common_name} Secure Boot {name}/"))
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        )?;
        set_mode(&key, 0o600)?;
    }
    let kept = partial.keep();
    std::fs::rename(&kept, dir)
        .context(|| format!("rename {} to {}", kept.display(), dir.display()))?;
    set_mode(dir, 0o700)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .context(|| format!("chmod {} {}", format_args!("{mode:o}"), path.display()))
}

/// A folder `generate` made.
#[derive(Debug, Clone)]
pub struct SecureBootKeys {
    dir: PathBuf,
}

impl SecureBootKeys {
    /// Checks that `dir` holds what a build needs: db's pair and the certificates of PK and
    /// KEK (for the variable store).
    pub fn open(dir: &Path) -> Result<SecureBootKeys> {
        SecureBootKeys::open_with(dir, &["PK.crt", "KEK.crt", "db.crt", "db.key"], "")
    }

    /// Checks that `dir` holds db's pair, all a Raspberry Pi 5's signed boot uses: db.key is
    /// the customer key whose public half the owner puts into the Pi's EEPROM and OTP. A Pi
    /// key made before (its hash may already be in OTP for good) works as db.key, with a
    /// certificate for it as db.crt.
    pub fn open_signing_key(dir: &Path) -> Result<SecureBootKeys> {
        SecureBootKeys::open_with(
            dir,
            &["db.crt", "db.key"],
            "; or, for a Raspberry Pi key made before, put it there as db.key (RSA 2048, PEM) \
             with a certificate for it as db.crt (`openssl req -new -x509 -key db.key -out \
             db.crt -subj /CN=Pi -days 7300`)",
        )
    }

    fn open_with(dir: &Path, needed: &[&str], otherwise: &str) -> Result<SecureBootKeys> {
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|name| !dir.join(name).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(Error::image(format!(
                "{} lacks {}: make Secure Boot keys with `carapace keygen --secure-boot {}`{otherwise}",
                dir.display(),
                missing.join(", "),
                dir.display()
            )));
        }
        Ok(SecureBootKeys {
            dir: dir.to_owned(),
        })
    }

    /// db.crt, whose public key verifies what db.key signs.
    pub fn db_certificate(&self) -> PathBuf {
        self.file("db.crt")
    }

    /// The RSA PKCS#1 v1.5 signature of SHA-256(`data`) with db.key (`openssl dgst -sha256
    /// -sign`), as the Pi 5's firmware verifies boot.img. Checked before it is returned: it
    /// must be RSA 2048 (the only kind that firmware verifies) and verify with db.crt's public
    /// key (the one the owner takes from db.crt for the EEPROM).
    pub fn sign_rsa2048_sha256(&self, data: &[u8], what: &str) -> Result<Vec<u8>> {
        tools::require("openssl", "openssl")?;
        let work = tempfile::tempdir().context(|| "create a temporary folder".into())?;
        let input = work.path().join(what);
        let signature = work.path().join(format!("{what}.rsa"));
        let public = work.path().join("db.pub.pem");
        std::fs::write(&input, data).context(|| format!("write {}", input.display()))?;
        tools::output(
            Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(self.file("db.key"))
                .arg("-out")
                .arg(&signature)
                .arg(&input),
        )?;
        let bytes =
            std::fs::read(&signature).context(|| format!("read {}", signature.display()))?;
        // An RSA signature is as long as the modulus; any other key gives another length.
        if bytes.len() != 256 {
            return Err(Error::image(format!(
                "{} is not an RSA 2048 key (its signature is {} bytes, not 256): the Raspberry \
                 Pi 5's firmware verifies only RSA 2048 signatures",
                self.file("db.key").display(),
                bytes.len()
            )));
        }
        tools::output(
            Command::new("openssl")
                .args(["x509", "-noout", "-pubkey", "-in"])
                .arg(self.file("db.crt"))
                .arg("-out")
                .arg(&public),
        )?;
        let verified = Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(&public)
            .arg("-signature")
            .arg(&signature)
            .arg(&input)
            .output()
            .context(|| "run openssl dgst -verify".into())?;
        if !verified.status.success() {
            return Err(Error::image(format!(
                "{} does not hold the public key of {}: a box given db.crt's key would refuse \
                 what db.key signs; keep the pair that `carapace keygen --secure-boot` made, or \
                 make db.crt from db.key",
                self.file("db.crt").display(),
                self.file("db.key").display()
            )));
        }
        Ok(bytes)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `image` (a PE file: systemd-boot, a UKI) signed with db's key, as Authenticode.
    pub fn sign(&self, image: &[u8], what: &str) -> Result<Vec<u8>> {
        tools::require("sbsign", "sbsigntool")?;
        let work = tempfile::tempdir().context(|| "create a temporary folder".into())?;
        let unsigned = work.path().join(format!("{what}.unsigned"));
        let signed = work.path().join(format!("{what}.signed"));
        std::fs::write(&unsigned, image).context(|| format!("write {}", unsigned.display()))?;
        tools::output(
            Command::new("sbsign")
                .arg("--key")
                .arg(self.file("db.key"))
                .arg("--cert")
                .arg(self.file("db.crt"))
                .arg("--output")
                .arg(&signed)
                .arg(&unsigned),
        )?;
        std::fs::read(&signed).context(|| format!("read {}", signed.display()))
    }

    /// Writes `out`: the firmware's variable store `template` with PK, KEK and db enrolled
    /// (replacing any keys it held, and its dbx) and Secure Boot on.
    pub fn enroll(&self, workspace: &Path, template: &Path, out: &Path) -> Result<()> {
        let tool = virt_fw_vars(workspace)?;
        let partial = out.with_extension("fd.partial");
        tools::output(
            Command::new(tool)
                .arg("--input")
                .arg(template)
                .args([
                    "--delete", "PK", "--delete", "KEK", "--delete", "db", "--delete", "dbx",
                ])
                .arg("--set-pk")
                .arg(OWNER_GUID)
                .arg(self.file("PK.crt"))
                .arg("--add-kek")
                .arg(OWNER_GUID)
                .arg(self.file("KEK.crt"))
                .arg("--add-db")
                .arg(OWNER_GUID)
                .arg(self.file("db.crt"))
                .arg("--secure-boot")
                .arg("--output")
                .arg(&partial),
        )?;
        crate::fsutil::rename_durably(&partial, out)
    }
}

/// virt-fw-vars: $CARAPACE_VIRT_FW_VARS, out/venv-secureboot (make deps), or PATH.
fn virt_fw_vars(workspace: &Path) -> Result<PathBuf> {
    tools::candidates(
        "CARAPACE_VIRT_FW_VARS",
        workspace.join("out/venv-secureboot/bin/virt-fw-vars"),
        "virt-fw-vars",
    )
    .into_iter()
    .find(|candidate| candidate.is_file())
    .ok_or_else(|| Error::MissingTool {
        tool: "virt-fw-vars".into(),
        package: "PyPI's virt-firmware; `make deps` installs it into out/venv-secureboot".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_once_private_and_complete() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("keys");
        generate(&dir, "Test").unwrap();
        use std::os::unix::fs::PermissionsExt;
        for name in KEY_NAMES {
            let key = std::fs::metadata(dir.join(format!("{name}.key"))).unwrap();
            assert_eq!(key.permissions().mode() & 0o777, 0o600, "{name}.key");
            let cert = std::fs::read_to_string(dir.join(format!("{name}.crt"))).unwrap();
            assert!(
                cert.starts_with("-----BEGIN CERTIFICATE-----"),
                "{name}.crt"
            );
        }
        let err = generate(&dir, "Test").unwrap_err().to_string();
        assert!(err.contains("never overwritten"), "{err}");
        SecureBootKeys::open(&dir).unwrap();
        std::fs::remove_file(dir.join("db.key")).unwrap();
        let err = SecureBootKeys::open(&dir).unwrap_err().to_string();
        assert!(err.contains("lacks db.key"), "{err}");
        // Nothing half-made is left beside it.
        let left: Vec<_> = std::fs::read_dir(base.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
