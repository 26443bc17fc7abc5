//! Pages of text drawn with the DejaVu typefaces (Debian's fonts-dejavu-core), black on white
//! unless asked otherwise, for the OCR tests, the bench and the photos the fake IM servers
//! send: text known to the letter.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{GrayImage, Luma, Rgb, RgbImage};

/// The typefaces fonts-dejavu-core installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typeface {
    Sans,
    SansBold,
    Serif,
    Mono,
}

impl Typeface {
    fn path(self) -> &'static str {
        match self {
            Typeface::Sans => "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            Typeface::SansBold => "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
            Typeface::Serif => "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
            Typeface::Mono => "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
        }
    }
}

/// One line to draw: its text, its size in pixels, and where its top-left is.
pub struct Drawn {
    pub text: &'static str,
    pub size: f32,
    pub x: f32,
    pub y: f32,
}

/// A white page of `width` x `height` with `lines` in black DejaVu Sans.
pub fn page(width: u32, height: u32, lines: &[Drawn]) -> RgbImage {
    page_in(Typeface::Sans, width, height, lines)
}

/// A white page of `width` x `height` with `lines` in black, in `typeface`.
pub fn page_in(typeface: Typeface, width: u32, height: u32, lines: &[Drawn]) -> RgbImage {
    let ink = ink(typeface, width, height, lines);
    RgbImage::from_fn(width, height, |x, y| {
        let v = 255 - ink.get_pixel(x, y)[0];
        Rgb([v, v, v])
    })
}

/// How much ink each pixel of the page gets: 0 none, 255 full.
fn ink(typeface: Typeface, width: u32, height: u32, lines: &[Drawn]) -> GrayImage {
    let path = typeface.path();
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (make deps installs fonts-dejavu-core)"));
    let font = FontRef::try_from_slice(&bytes).unwrap();
    let mut ink = GrayImage::from_pixel(width, height, Luma([0]));
    for line in lines {
        let scaled = font.as_scaled(PxScale::from(line.size));
        let mut caret = line.x;
        let mut previous = None;
        for c in line.text.chars() {
            let mut glyph = scaled.scaled_glyph(c);
            if let Some(previous) = previous {
                caret += scaled.kern(previous, glyph.id);
            }
            previous = Some(glyph.id);
            glyph.position = point(caret, line.y + scaled.ascent());
            caret += scaled.h_advance(glyph.id);
            if let Some(outline) = font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    let (x, y) = (
                        bounds.min.x as i64 + i64::from(gx),
                        bounds.min.y as i64 + i64::from(gy),
                    );
                    if (0..i64::from(width)).contains(&x) && (0..i64::from(height)).contains(&y) {
                        let pixel = ink.get_pixel_mut(x as u32, y as u32);
                        pixel[0] = pixel[0].max((coverage.clamp(0.0, 1.0) * 255.0) as u8);
                    }
                });
            }
        }
    }
    ink
}

/// The sample page's lines (on 900 x 360 pixels): a heading, a row of two columns, and lines
/// of words and digits, 22 to 44 pixels high.
pub fn sample_lines() -> Vec<Drawn> {
    let at = |text, size, x, y| Drawn { text, size, x, y };
    vec![
        at("Invoice 2024-0117", 44.0, 40.0, 30.0),
        at("Customer: Ada Lovelace", 26.0, 40.0, 110.0),
        at("Room 42", 26.0, 620.0, 112.0),
        at("Total due 348.50 EUR", 34.0, 40.0, 170.0),
        at("Call 0176 5512 9043 before 6 pm", 28.0, 40.0, 240.0),
        at(
            "The quick brown fox jumps over the lazy dog",
            22.0,
            40.0,
            300.0,
        ),
    ]
}

/// `image` as a JPEG, as a phone sends a photo.
pub fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Jpeg)
        .expect("a JPEG of the page");
    bytes.into_inner()
}

/// A photo of a receipt as a phone sends it (JPEG, upright): "Corner Bakery", "Total 348.50
/// EUR". Upright matters under TCG: PP-OCR's detector scales the shorter side up to 736 pixels,
/// so a strip 700 x 200 was read at 2560 x 736, this at 736 x 981 (2.6 times fewer pixels).
pub fn receipt_photo() -> Vec<u8> {
    let line = |text, y| Drawn {
        text,
        size: 34.0,
        x: 40.0,
        y,
    };
    jpeg(&page(
        480,
        640,
        &[line("Corner Bakery", 30.0), line("Total 348.50 EUR", 110.0)],
    ))
}

/// A real 1 x 1 PNG whose header claims `width` x `height` pixels and carries none of them (a
/// decompression bomb's shape): its header checksum holds, so only the size is unusual.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(GrayImage::new(1, 1))
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("a 1 x 1 PNG");
    let mut bytes = bytes.into_inner();
    // IHDR: its length (8..12), type (12..16), width, height, ..., and CRC-32 of type + data.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// PNG's CRC-32 (ISO 3309), bit by bit: a few bytes of header.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
