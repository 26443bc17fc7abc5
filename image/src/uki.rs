//! A unified kernel image: systemd's EFI stub (Debian's systemd-boot-efi) with the kernel, the
//! initramfs, the command line (carrying the verity root hash) and os-release added as PE
//! sections, which the stub finds by name at boot. Signed as one file, it is what Secure Boot
//! verifies: nobody can change the command line or the initramfs without breaking the
//! signature, and under Secure Boot the stub ignores a command line handed to it.
//!
//! ukify does the same in Python; Debian's is newer than these build hosts' (bookworm has
//! none). What it takes is small: one more header per section in the room the stub leaves
//! before its first section, the data appended at the file alignment, each section mapped at
//! the next section-aligned address, and SizeOfImage grown to cover them. Nothing else in the
//! stub changes, so the output is a function of the inputs alone.
//!
//! ```text
//!  stub as shipped                      UKI
//!  ┌────────────────────┐               ┌────────────────────┐
//!  │ DOS + PE headers   │               │ headers: +5 section │  NumberOfSections, SizeOfImage
//!  │ 6 section headers  │               │ headers             │  updated; checksum stays 0
//!  ├────────────────────┤               ├────────────────────┤
//!  │ .text … .reloc     │               │ .text … .reloc     │  unchanged bytes
//!  └────────────────────┘               │ .osrel .cmdline    │  each at FileAlignment in the
//!                                       │ .uname .initrd     │  file, SectionAlignment in
//!                                       │ .linux             │  memory, in this order
//!                                       └────────────────────┘
//! ```

use object::LittleEndian as LE;
use object::pe::{
    IMAGE_DIRECTORY_ENTRY_SECURITY, IMAGE_SCN_CNT_INITIALIZED_DATA, IMAGE_SCN_MEM_READ,
    ImageDosHeader, ImageNtHeaders64, ImageSectionHeader,
};
use object::read::pe::ImageNtHeaders;

use crate::error::{Error, Result};

/// What goes into the image, besides the stub.
pub struct UkiParts<'a> {
    pub os_release: &'a [u8],
    pub cmdline: &'a str,
    pub kernel_release: &'a str,
    pub initrd: &'a [u8],
    pub linux: &'a [u8],
}

/// The stub with `parts` added; unsigned (`sbsign` signs it, see secure_boot.rs).
pub fn assemble(stub: &[u8], parts: &UkiParts<'_>) -> Result<Vec<u8>> {
    // The stub reads the command line up to its end; a trailing newline would be one more
    // (harmless) word to the kernel, so it is left off.
    let cmdline = parts.cmdline.trim_end();
    add_sections(
        stub,
        &[
            (".osrel", parts.os_release),
            (".cmdline", cmdline.as_bytes()),
            (".uname", parts.kernel_release.as_bytes()),
            (".initrd", parts.initrd),
            (".linux", parts.linux),
        ],
    )
}

/// Offsets, in the file, of the header fields this module changes.
const FILE_HEADER: usize = 4; // after "PE\0\0"
const NUMBER_OF_SECTIONS: usize = FILE_HEADER + 2;
const SIZE_OF_OPTIONAL_HEADER: usize = FILE_HEADER + 16;
const OPTIONAL_HEADER: usize = FILE_HEADER + 20;
const SIZE_OF_INITIALIZED_DATA: usize = OPTIONAL_HEADER + 8;
const SIZE_OF_IMAGE: usize = OPTIONAL_HEADER + 56;
const SECTION_HEADER_LEN: usize = std::mem::size_of::<ImageSectionHeader>();

fn bad_stub(why: impl std::fmt::Display) -> Error {
    Error::image(format!(
        "the EFI stub (systemd-boot-efi's linux*.efi.stub) cannot take the UKI's sections: {why}"
    ))
}

/// `stub` with each (name, data) appended as a read-only initialised-data section.
pub fn add_sections(stub: &[u8], sections: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let dos = ImageDosHeader::parse(stub).map_err(bad_stub)?;
    let mut offset = dos.nt_headers_offset().into();
    let (nt, directories) = ImageNtHeaders64::parse(stub, &mut offset).map_err(bad_stub)?;
    let optional = nt.optional_header();
    if directories
        .get(IMAGE_DIRECTORY_ENTRY_SECURITY)
        .is_some_and(|d| d.size.get(LE) != 0)
    {
        return Err(bad_stub(
            "it is signed already; sign the assembled image instead",
        ));
    }
    let existing = nt
        .sections(stub, offset)
        .map_err(bad_stub)?
        .iter()
        .copied()
        .collect::<Vec<ImageSectionHeader>>();
    let file_align = u64::from(optional.file_alignment.get(LE));
    let section_align = u64::from(optional.section_alignment.get(LE));
    if !file_align.is_power_of_two() || !section_align.is_power_of_two() {
        return Err(bad_stub("its alignments are not powers of two"));
    }
    let headers_len = u64::from(optional.size_of_headers.get(LE));
    let nt_start = dos.nt_headers_offset() as usize;
    let table_start =
        nt_start + OPTIONAL_HEADER + usize::from(nt.file_header().size_of_optional_header.get(LE));
    let table_end = table_start + (existing.len() + sections.len()) * SECTION_HEADER_LEN;
    if table_end as u64 > headers_len {
        return Err(bad_stub(format!(
            "no room for {} more section headers in its {headers_len} bytes of headers",
            sections.len()
        )));
    }
    // The new headers go where the table ends; that space must be unused.
    let old_table_end = table_start + existing.len() * SECTION_HEADER_LEN;
    if stub[old_table_end..table_end].iter().any(|&b| b != 0) {
        return Err(bad_stub("the space after its section table is not empty"));
    }

    let mut virtual_end = 0u64;
    let mut raw_end = headers_len;
    for header in &existing {
        let va = u64::from(header.virtual_address.get(LE));
        let virtual_size = u64::from(header.virtual_size.get(LE));
        let raw = u64::from(header.pointer_to_raw_data.get(LE));
        let raw_size = u64::from(header.size_of_raw_data.get(LE));
        virtual_end = virtual_end.max(va + virtual_size.max(raw_size));
        raw_end = raw_end.max(raw + raw_size);
    }
    if raw_end > stub.len() as u64 {
        return Err(bad_stub("a section's data runs past the end of the file"));
    }

    let mut out = stub.to_vec();
    out.resize(align(stub.len() as u64, file_align) as usize, 0);
    let mut next_va = align(virtual_end, section_align);
    let mut added_raw = 0u64;
    for (i, (name, data)) in sections.iter().enumerate() {
        let raw_size = align(data.len() as u64, file_align);
        let fits = |v: u64| u32::try_from(v).ok();
        let (Some(va), Some(len), Some(raw_at), Some(raw_len)) = (
            fits(next_va),
            fits(data.len() as u64),
            fits(out.len() as u64),
            fits(raw_size),
        ) else {
            return Err(Error::image(format!(
                "the UKI's {name} section puts it past 4 GiB, which PE cannot describe"
            )));
        };
        let mut header = ImageSectionHeader::default();
        let name = name.as_bytes();
        if name.len() > header.name.len() {
            return Err(Error::image(format!(
                "section name {name:?} is over 8 bytes"
            )));
        }
        header.name[..name.len()].copy_from_slice(name);
        header.virtual_size.set(LE, len);
        header.virtual_address.set(LE, va);
        header.size_of_raw_data.set(LE, raw_len);
        header.pointer_to_raw_data.set(LE, raw_at);
        header
            .characteristics
            .set(LE, IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ);
        let at = old_table_end + i * SECTION_HEADER_LEN;
        out[at..at + SECTION_HEADER_LEN].copy_from_slice(object::pod::bytes_of(&header));
        out.extend_from_slice(data);
        out.resize(out.len() + (raw_size as usize - data.len()), 0);
        next_va = align(next_va + data.len() as u64, section_align);
        added_raw += raw_size;
    }

    let count = u16::try_from(existing.len() + sections.len())
        .map_err(|_| bad_stub("too many sections"))?;
    put_u16(&mut out, nt_start + NUMBER_OF_SECTIONS, count);
    let image_size =
        u32::try_from(next_va).map_err(|_| bad_stub("the image would be over 4 GiB"))?;
    put_u32(&mut out, nt_start + SIZE_OF_IMAGE, image_size);
    let initialized = u64::from(optional.size_of_initialized_data.get(LE)) + added_raw;
    put_u32(
        &mut out,
        nt_start + SIZE_OF_INITIALIZED_DATA,
        u32::try_from(initialized).unwrap_or(u32::MAX),
    );
    // The checksum stays as the stub has it (0): UEFI does not check it, and a signature
    // covers the file without it.
    debug_assert_eq!(
        usize::from(u16::from_le_bytes([
            out[nt_start + SIZE_OF_OPTIONAL_HEADER],
            out[nt_start + SIZE_OF_OPTIONAL_HEADER + 1]
        ])),
        table_start - nt_start - OPTIONAL_HEADER
    );
    Ok(out)
}

fn align(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}

fn put_u16(out: &mut [u8], at: usize, value: u16) {
    out[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(out: &mut [u8], at: usize, value: u32) {
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// The data of section `name` in a PE file (a UKI's `.cmdline`, say), with the file offset it
/// starts at; for tests and for checking what a build signed.
pub fn section<'a>(image: &'a [u8], name: &str) -> Option<(usize, &'a [u8])> {
    let dos = ImageDosHeader::parse(image).ok()?;
    let mut offset = dos.nt_headers_offset().into();
    let (nt, _) = ImageNtHeaders64::parse(image, &mut offset).ok()?;
    let table = nt.sections(image, offset).ok()?;
    let header = table.iter().find(|header| {
        let raw = &header.name;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        &raw[..end] == name.as_bytes()
    })?;
    let start = header.pointer_to_raw_data.get(LE) as usize;
    let len = header.virtual_size.get(LE) as usize;
    Some((start, image.get(start..start + len)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ EFI application: headers (0x400 bytes) and one .text section.
    fn tiny_stub() -> Vec<u8> {
        let mut image = vec![0u8; 0x600];
        image[0..2].copy_from_slice(b"MZ");
        put_u32(&mut image, 0x3c, 0x80);
        let nt = 0x80;
        image[nt..nt + 4].copy_from_slice(b"PE\0\0");
        put_u16(&mut image, nt + 4, 0x8664); // machine
        put_u16(&mut image, nt + NUMBER_OF_SECTIONS, 1);
        put_u16(&mut image, nt + SIZE_OF_OPTIONAL_HEADER, 240);
        put_u16(&mut image, nt + 22, 0x22e);
        let opt = nt + OPTIONAL_HEADER;
        put_u16(&mut image, opt, 0x20b);
        put_u32(&mut image, opt + 32, 0x1000); // section alignment
        put_u32(&mut image, opt + 36, 0x200); // file alignment
        put_u32(&mut image, opt + 56, 0x2000); // size of image
        put_u32(&mut image, opt + 60, 0x400); // size of headers
        put_u16(&mut image, opt + 68, 10); // EFI application
        put_u32(&mut image, opt + 108, 16); // data directories
        let table = opt + 240;
        image[table..table + 5].copy_from_slice(b".text");
        put_u32(&mut image, table + 8, 0x10); // virtual size
        put_u32(&mut image, table + 12, 0x1000); // virtual address
        put_u32(&mut image, table + 16, 0x200); // raw size
        put_u32(&mut image, table + 20, 0x400); // raw pointer
        image[0x400..0x410].copy_from_slice(&[0xc3; 16]);
        image
    }

    #[test]
    fn sections_are_added_aligned_and_read_back() {
        let stub = tiny_stub();
        let initrd = vec![7u8; 5000];
        let uki = assemble(
            &stub,
            &UkiParts {
                os_release: b"ID=carapace\n",
                cmdline: "quiet carapace.slot=a\n",
                kernel_release: "6.12.0-1-amd64",
                initrd: &initrd,
                linux: b"kernel",
            },
        )
        .unwrap();
        assert_eq!(&uki[..0x80], &stub[..0x80], "the DOS header is unchanged");
        assert_eq!(
            &uki[0x400..0x600],
            &stub[0x400..0x600],
            "the stub's code is unchanged"
        );
        let (at, cmdline) = section(&uki, ".cmdline").unwrap();
        assert_eq!(cmdline, b"quiet carapace.slot=a");
        assert_eq!(at % 0x200, 0);
        assert_eq!(section(&uki, ".initrd").unwrap().1, &initrd[..]);
        assert_eq!(section(&uki, ".linux").unwrap().1, b"kernel");
        assert_eq!(section(&uki, ".uname").unwrap().1, b"6.12.0-1-amd64");
        assert_eq!(uki.len() % 0x200, 0);

        let dos = ImageDosHeader::parse(&uki[..]).unwrap();
        let mut offset = dos.nt_headers_offset().into();
        let (nt, _) = ImageNtHeaders64::parse(&uki[..], &mut offset).unwrap();
        let table = nt.sections(&uki[..], offset).unwrap();
        assert_eq!(table.len(), 6);
        let mut previous_end = 0;
        for header in table.iter() {
            let va = header.virtual_address.get(LE);
            assert_eq!(va % 0x1000, 0);
            assert!(va >= previous_end, "sections overlap in memory");
            previous_end = va + header.virtual_size.get(LE);
        }
        let size_of_image = nt.optional_header().size_of_image.get(LE);
        assert_eq!(size_of_image, align(previous_end.into(), 0x1000) as u32);
        // The same inputs give the same bytes.
        let again = assemble(
            &stub,
            &UkiParts {
                os_release: b"ID=carapace\n",
                cmdline: "quiet carapace.slot=a",
                kernel_release: "6.12.0-1-amd64",
                initrd: &initrd,
                linux: b"kernel",
            },
        )
        .unwrap();
        assert_eq!(again, uki);
    }

    #[test]
    fn a_stub_without_room_or_already_signed_is_refused() {
        let mut stub = tiny_stub();
        let nt = 0x80;
        put_u32(&mut stub, nt + OPTIONAL_HEADER + 60, 0x1c0); // headers end inside the table
        let err = add_sections(&stub, &[(".cmdline", b"x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no room for 1 more section headers"), "{err}");

        let mut stub = tiny_stub();
        // Data directory 4 (security): the certificate table of a signed image.
        let security = nt + OPTIONAL_HEADER + 112 + 4 * 8;
        put_u32(&mut stub, security, 0x600);
        put_u32(&mut stub, security + 4, 0x10);
        let err = add_sections(&stub, &[(".cmdline", b"x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("signed already"), "{err}");

        let err = add_sections(b"not a PE file", &[(".cmdline", b"x")]).unwrap_err();
        assert!(
            err.to_string().contains("cannot take the UKI's sections"),
            "{err}"
        );
    }
}
