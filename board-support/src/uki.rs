//! Reading a unified kernel image on the box, before an update writes it: the command line it
//! will boot with (its `.cmdline` section) and the certificates its Authenticode signature
//! carries (the PE certificate table), checked against the firmware's db. Built by
//! image/src/uki.rs; this side only reads, with every offset bounds-checked, since the bytes
//! come from a download.

/// The name each slot's UKI has in an update bundle; on the ESP it is `<slot>/`[`UKI_FILE`].
///
/// [`UKI_FILE`]: crate::boot_entry::UKI_FILE
pub fn bundle_name(slot: crate::Slot) -> String {
    format!("carapace-{slot}.efi")
}

/// One section's bytes (its virtual size: the data without the file alignment's padding).
pub fn section<'a>(image: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let pe = Pe::read(image)?;
    (0..pe.sections).find_map(|i| {
        let header = pe.table + i * SECTION_HEADER;
        let raw_name = image.get(header..header + 8)?;
        let end = raw_name.iter().position(|&b| b == 0).unwrap_or(8);
        if &raw_name[..end] != name.as_bytes() {
            return None;
        }
        let size = u32_at(image, header + 8)? as usize;
        let at = u32_at(image, header + 20)? as usize;
        image.get(at..at.checked_add(size)?)
    })
}

/// The Authenticode certificate table (WIN_CERTIFICATE entries), if the image is signed.
pub fn certificate_table(image: &[u8]) -> Option<&[u8]> {
    let pe = Pe::read(image)?;
    let directory = pe.optional.checked_add(SECURITY_DIRECTORY)?;
    if pe.directories <= 4 {
        return None;
    }
    let at = u32_at(image, directory)? as usize;
    let size = u32_at(image, directory + 4)? as usize;
    if at == 0 || size == 0 {
        return None;
    }
    image.get(at..at.checked_add(size)?)
}

/// Whether the image's signature carries one of `certificates` (DER) exactly: the db entry the
/// firmware will check it against. The firmware verifies the signature itself at boot; this
/// refuses, before anything is written, an update signed with a key this box does not trust.
pub fn carries_certificate(image: &[u8], certificates: &[Vec<u8>]) -> bool {
    let Some(table) = certificate_table(image) else {
        return false;
    };
    certificates
        .iter()
        .filter(|cert| cert.len() >= 64)
        .any(|cert| {
            table
                .windows(cert.len())
                .any(|window| window == cert.as_slice())
        })
}

const SECTION_HEADER: usize = 40;
/// In a PE32+ optional header: the data directories start at 112; the certificate table is
/// the fifth (index 4).
const PE32_PLUS: u16 = 0x20b;
const DIRECTORIES: usize = 112;
const SECURITY_DIRECTORY: usize = DIRECTORIES + 4 * 8;

struct Pe {
    optional: usize,
    directories: u32,
    table: usize,
    sections: usize,
}

impl Pe {
    fn read(image: &[u8]) -> Option<Pe> {
        if image.get(0..2)? != b"MZ" {
            return None;
        }
        let pe = u32_at(image, 0x3c)? as usize;
        if image.get(pe..pe.checked_add(4)?)? != b"PE\0\0" {
            return None;
        }
        let sections = usize::from(u16_at(image, pe + 6)?);
        let optional_size = usize::from(u16_at(image, pe + 20)?);
        let optional = pe + 24;
        if u16_at(image, optional)? != PE32_PLUS || optional_size < DIRECTORIES {
            return None;
        }
        Some(Pe {
            optional,
            directories: u32_at(image, optional + 108)?,
            table: optional + optional_size,
            sections,
        })
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// A minimal signed-looking PE32+ file with one `.cmdline` section and, when given, a
/// certificate table holding `certificate`: for tests here and in the update service.
#[doc(hidden)]
pub fn fixture(cmdline: &[u8], certificate: Option<&[u8]>) -> Vec<u8> {
    let mut image = vec![0u8; 0x200];
    image[0..2].copy_from_slice(b"MZ");
    image[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    image[0x80..0x84].copy_from_slice(b"PE\0\0");
    image[0x86..0x88].copy_from_slice(&1u16.to_le_bytes());
    image[0x94..0x96].copy_from_slice(&240u16.to_le_bytes());
    let optional = 0x98;
    image[optional..optional + 2].copy_from_slice(&PE32_PLUS.to_le_bytes());
    image[optional + 108..optional + 112].copy_from_slice(&16u32.to_le_bytes());
    let table = optional + 240;
    image[table..table + 8].copy_from_slice(b".cmdline");
    image[table + 8..table + 12].copy_from_slice(&(cmdline.len() as u32).to_le_bytes());
    image[table + 20..table + 24].copy_from_slice(&0x200u32.to_le_bytes());
    image.extend_from_slice(cmdline);
    if let Some(cert) = certificate {
        let at = image.len() as u32;
        image.extend_from_slice(&[0u8; 8]); // WIN_CERTIFICATE's header
        image.extend_from_slice(cert);
        let directory = optional + SECURITY_DIRECTORY;
        image[directory..directory + 4].copy_from_slice(&at.to_le_bytes());
        image[directory + 4..directory + 8].copy_from_slice(&(8 + cert.len() as u32).to_le_bytes());
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(cert: Option<&[u8]>) -> Vec<u8> {
        fixture(b"quiet", cert)
    }

    #[test]
    fn reads_a_section_and_the_signers_certificate() {
        let ours = vec![0x30u8; 100];
        let theirs = vec![0x31u8; 100];
        let signed = image(Some(&ours));
        assert_eq!(section(&signed, ".cmdline"), Some(&b"quiet"[..]));
        assert_eq!(section(&signed, ".linux"), None);
        assert!(carries_certificate(
            &signed,
            &[theirs.clone(), ours.clone()]
        ));
        assert!(!carries_certificate(&signed, std::slice::from_ref(&theirs)));
        assert!(!carries_certificate(&image(None), &[ours]));
        assert_eq!(bundle_name(crate::Slot::B), "carapace-b.efi");
    }

    #[test]
    fn garbage_and_truncations_read_as_nothing() {
        let signed = image(Some(&[0x30u8; 100]));
        for len in 0..signed.len() {
            let cut = &signed[..len];
            let _ = section(cut, ".cmdline");
            let _ = certificate_table(cut);
        }
        let mut state = 0x9e37_79b9_u32;
        for _ in 0..2000 {
            let mut bytes = signed.clone();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let at = state as usize % bytes.len();
                bytes[at] = (state >> 8) as u8;
            }
            let _ = section(&bytes, ".cmdline");
            let _ = carries_certificate(&bytes, &[vec![0x30; 100]]);
        }
        assert_eq!(section(b"MZ", ".cmdline"), None);
    }
}
