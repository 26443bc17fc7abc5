//! The firmware's Secure Boot state as the box reads it from efivarfs (which the disk helper
//! mounts read-only): whether Secure Boot is on, and the X.509 certificates in db, the keys
//! the firmware accepts what it starts with. The update service checks a signed UKI against
//! these before it writes anything.

use std::path::Path;

pub const EFIVARS: &str = "/sys/firmware/efi/efivars";
/// EFI_GLOBAL_VARIABLE's SecureBoot: 4 bytes of attributes, then 1 (on) or 0 (off).
pub const SECURE_BOOT_VAR: &str = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// EFI_IMAGE_SECURITY_DATABASE_GUID's db.
pub const DB_VAR: &str = "db-d719b2cb-3d3a-4596-a3bc-dad00e67656f";
/// EFI_CERT_X509_GUID, as its bytes are laid out in an EFI_SIGNATURE_LIST.
const CERT_X509: [u8; 16] = [
    0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72,
];

/// Secure Boot is on (the SecureBoot variable says 1). `None` when efivarfs is not there
/// (not a UEFI boot) or the variable cannot be read.
pub fn secure_boot_on(efivars: &Path) -> Option<bool> {
    let bytes = match std::fs::read(efivars.join(SECURE_BOOT_VAR)) {
        Ok(bytes) => bytes,
        // Firmware without Secure Boot has no such variable; without efivarfs there is no
        // folder to look in.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return efivars.is_dir().then_some(false);
        }
        Err(_) => return None,
    };
    match bytes.get(4) {
        Some(1) => Some(true),
        Some(0) => Some(false),
        _ => None,
    }
}

/// The X.509 certificates (DER) in db; empty when db is absent.
pub fn db_certificates(efivars: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    match std::fs::read(efivars.join(DB_VAR)) {
        // efivarfs puts the variable's 4 attribute bytes first.
        Ok(bytes) => Ok(x509_certificates(bytes.get(4..).unwrap_or_default())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// The X.509 entries of a run of EFI_SIGNATURE_LISTs: each list is a type GUID, its whole size,
/// its header's size and each signature's size (u32 each), the header, then signatures of that
/// size, each an owner GUID and the data. A list that does not add up ends the walk.
pub fn x509_certificates(mut lists: &[u8]) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    while lists.len() >= 28 {
        let u32_at = |at: usize| {
            u32::from_le_bytes([lists[at], lists[at + 1], lists[at + 2], lists[at + 3]]) as usize
        };
        let (list_size, header_size, signature_size) = (u32_at(16), u32_at(20), u32_at(24));
        let Some(list) = lists.get(..list_size).filter(|_| list_size >= 28) else {
            break;
        };
        if lists[..16] == CERT_X509 && signature_size > 16 {
            let entries = list.get(28 + header_size..).unwrap_or_default();
            for entry in entries.chunks_exact(signature_size) {
                found.push(entry[16..].to_vec());
            }
        }
        lists = &lists[list_size..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(kind: [u8; 16], certs: &[&[u8]]) -> Vec<u8> {
        let size = 16 + certs[0].len();
        let mut out = kind.to_vec();
        out.extend_from_slice(&((28 + size * certs.len()) as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(size as u32).to_le_bytes());
        for cert in certs {
            out.extend_from_slice(&[7u8; 16]);
            out.extend_from_slice(cert);
        }
        out
    }

    #[test]
    fn finds_the_x509_entries_and_skips_hashes() {
        let mut lists = list([1; 16], &[&[9u8; 32]]); // a SHA-256 list, say
        lists.extend(list(CERT_X509, &[b"cert-one", b"cert-two"]));
        assert_eq!(
            x509_certificates(&lists),
            vec![b"cert-one".to_vec(), b"cert-two".to_vec()]
        );
        // Cut anywhere, it finds what is whole and never panics.
        for len in 0..lists.len() {
            assert!(x509_certificates(&lists[..len]).len() <= 2);
        }
        let mut bad = list(CERT_X509, &[b"cert-one"]);
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(x509_certificates(&bad).is_empty());
    }

    #[test]
    fn reads_the_variables_from_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(secure_boot_on(dir.path()), Some(false));
        assert_eq!(secure_boot_on(&dir.path().join("absent")), None);
        std::fs::write(dir.path().join(SECURE_BOOT_VAR), [6, 0, 0, 0, 1]).unwrap();
        assert_eq!(secure_boot_on(dir.path()), Some(true));
        let mut db = vec![7, 0, 0, 0];
        db.extend(list(CERT_X509, &[b"our-db-cert"]));
        std::fs::write(dir.path().join(DB_VAR), db).unwrap();
        assert_eq!(
            db_certificates(dir.path()).unwrap(),
            vec![b"our-db-cert".to_vec()]
        );
    }
}
