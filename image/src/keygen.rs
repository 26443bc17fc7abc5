//! `carapace keygen` and `carapace keys sign`: the vendor's update keys. The root key (made
//! once, kept offline) signs key lists; signing keys sign bundles and channel pointers while a
//! key list names them. Secrets are written 0600 and never printed.

use std::path::{Path, PathBuf};

use carapace_update::{KeyId, KeyKind, KeyList, ListedKey, PublicKey, SecretKey, SignedKeyList};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Makes a key pair: the secret at `out`, the public key at `out.pub`.
pub fn keygen(out: &Path, kind: KeyKind) -> Result<PublicKey> {
    let key = SecretKey::generate(kind)?;
    key.write_new(out)?;
    Ok(key.public())
}

pub struct KeyListRequest {
    pub root_secret: PathBuf,
    /// Public key files of the signing keys to trust.
    pub keys: Vec<PathBuf>,
    pub revoke: Vec<KeyId>,
    /// Key ids and the last second (since 1970) their signatures are accepted.
    pub not_after: Vec<(KeyId, u64)>,
    pub serial: u64,
    pub out: PathBuf,
}

/// Signs a key list with the root key and writes it to `out`.
pub fn sign_key_list(request: &KeyListRequest) -> Result<SignedKeyList> {
    let root = SecretKey::load(&request.root_secret, KeyKind::Root)?;
    let mut keys = Vec::new();
    for path in &request.keys {
        let key = PublicKey::load(path)?;
        if key.kind() != KeyKind::Signing {
            return Err(Error::image(format!(
                "{} is the public half of a {} key; a key list names signing keys (made by \
                 `carapace keygen`), and the root key is built into the image from the \
                 recipe's [update] root_key",
                path.display(),
                key.kind()
            )));
        }
        keys.push(ListedKey {
            id: key.id(),
            public_key: key.to_hex(),
            not_after: None,
        });
    }
    for (id, not_after) in &request.not_after {
        let key = keys.iter_mut().find(|key| key.id == *id).ok_or_else(|| {
            Error::image(format!(
                "--not-after names key {id}, which is not among the --key files"
            ))
        })?;
        key.not_after = Some(*not_after);
    }
    let list = KeyList {
        serial: request.serial,
        keys,
        revoked: request.revoke.clone(),
    };
    let signed = SignedKeyList::sign(list, &root)?;
    write_atomic(&request.out, signed.to_file_text().as_bytes())?;
    Ok(signed)
}

/// `ID=YYYY-MM-DD`: the key's signatures are accepted until the end of that day (UTC).
pub fn parse_not_after(text: &str) -> std::result::Result<(KeyId, u64), String> {
    let bad = || format!("{text:?} is not ID=YYYY-MM-DD (a key id and a date, UTC)");
    let (id, date) = text.split_once('=').ok_or_else(bad)?;
    let id: KeyId = id.parse()?;
    let parts: Vec<&str> = date.split('-').collect();
    let [year, month, day] = parts[..] else {
        return Err(bad());
    };
    let number = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(day)) = (number(year, 4), number(month, 2), number(day, 2))
    else {
        return Err(bad());
    };
    let days = days_since_1970(year, month, day).ok_or_else(bad)?;
    Ok((id, (days + 1) * 86_400 - 1))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (1970 or later), or
/// `None` for a date that does not exist.
fn days_since_1970(year: u32, month: u32, day: u32) -> Option<u64> {
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let month_days = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1970 || !(1..=12).contains(&month) || day == 0 {
        return None;
    }
    if day > *month_days.get(month as usize - 1)? {
        return None;
    }
    let years: u64 = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
    let months: u64 = month_days[..month as usize - 1]
        .iter()
        .map(|&d| d as u64)
        .sum();
    Some(years + months + u64::from(day) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_become_the_last_second_of_the_day() {
        let id = "0123456789abcdef";
        let (parsed, t) = parse_not_after(&format!("{id}=1970-01-01")).unwrap();
        assert_eq!(parsed.to_string(), id);
        assert_eq!(t, 86_399);
        // 2026-12-31T23:59:59Z
        assert_eq!(
            parse_not_after(&format!("{id}=2026-12-31")).unwrap().1,
            1_798_761_599
        );
        assert_eq!(
            parse_not_after(&format!("{id}=2024-02-29")).unwrap().1,
            1_709_251_199
        );
        for bad in [
            format!("{id}=2025-02-29"),
            format!("{id}=2026-13-01"),
            format!("{id}=2026-1-01"),
            format!("{id}2026-01-01"),
            "nothex=2026-01-01".to_owned(),
        ] {
            assert!(parse_not_after(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keygen_then_a_signed_list_of_the_signing_keys() {
        let dir = tempfile::tempdir().unwrap();
        let root = keygen(&dir.path().join("root.key"), KeyKind::Root).unwrap();
        let one = keygen(&dir.path().join("one.key"), KeyKind::Signing).unwrap();
        let two = keygen(&dir.path().join("two.key"), KeyKind::Signing).unwrap();
        let request = KeyListRequest {
            root_secret: dir.path().join("root.key"),
            keys: vec![dir.path().join("one.key.pub")],
            revoke: vec![two.id()],
            not_after: vec![(one.id(), 1_798_761_599)],
            serial: 3,
            out: dir.path().join("keys.json"),
        };
        sign_key_list(&request).unwrap();
        let text = std::fs::read(&request.out).unwrap();
        let list = SignedKeyList::parse(&text).unwrap();
        let verified = list.verify(&root).unwrap();
        assert_eq!(verified.serial, 3);
        assert_eq!(verified.keys[0].id, one.id());
        assert_eq!(verified.keys[0].not_after, Some(1_798_761_599));
        assert_eq!(verified.revoked, [two.id()]);

        // The root key's public half is not a signing key; a signing key does not sign lists.
        let err = sign_key_list(&KeyListRequest {
            keys: vec![dir.path().join("root.key.pub")],
            ..request_clone(&request)
        })
        .unwrap_err();
        assert!(err.to_string().contains("names signing keys"), "{err}");
        let err = sign_key_list(&KeyListRequest {
            root_secret: dir.path().join("one.key"),
            ..request_clone(&request)
        })
        .unwrap_err();
        assert!(err.to_string().contains("keygen --root"), "{err}");
    }

    fn request_clone(r: &KeyListRequest) -> KeyListRequest {
        KeyListRequest {
            root_secret: r.root_secret.clone(),
            keys: r.keys.clone(),
            revoke: r.revoke.clone(),
            not_after: r.not_after.clone(),
            serial: r.serial,
            out: r.out.clone(),
        }
    }
}
