//! The images the engine reads (OCR, image description), from the bytes a client sent: PNG or
//! JPEG only, and never more pixels than MAX_IMAGE_PIXELS. The size is read from the header before any pixel is decoded, so a
//! small file that claims a huge image (a decompression bomb) is refused without the memory it
//! would take. Transparent pixels are shown over white, as a viewer shows them.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// The most pixels an image may have: 40 megapixels, more than a phone camera's photo. The
/// detector scales every image to at most 2000 pixels a side anyway.
pub const MAX_IMAGE_PIXELS: u64 = 40_000_000;

/// Decodes a PNG or JPEG file into RGB, transparency shown over white (what OCR reads).
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage> {
    let image = open_image(bytes)?;
    Ok(if image.color().has_alpha() {
        over_white(&image)
    } else {
        image.into_rgb8()
    })
}

/// Decodes a PNG or JPEG file as it is, after the checks on its format and size.
pub fn open_image(bytes: &[u8]) -> Result<DynamicImage> {
    let bad = |reason: String| Error::BadImage { reason };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(format!("reading it: {e}")))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        Some(other) => {
            return Err(bad(format!(
                "it is {other:?}, which is not read here; send a PNG or a JPEG"
            )));
        }
        None => {
            return Err(bad(
                "it is neither a PNG nor a JPEG (its first bytes are neither's signature)".into(),
            ));
        }
    }
    // The decoders' own allocation bound too, for what the header check cannot see.
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 8);
    reader.limits(limits);
    let decoder = reader
        .into_decoder()
        .map_err(|e| bad(format!("its header does not parse ({e})")))?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
        return Err(Error::ImageTooLarge {
            width,
            height,
            max_pixels: MAX_IMAGE_PIXELS,
        });
    }
    if width == 0 || height == 0 {
        return Err(bad(format!("it is {width} x {height} pixels: empty")));
    }
    DynamicImage::from_decoder(decoder).map_err(|e| {
        bad(format!(
            "its pixels do not decode ({e}); the file is damaged"
        ))
    })
}

/// An image with transparency as it looks on a white page.
fn over_white(image: &DynamicImage) -> RgbImage {
    let rgba = image.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let alpha = u16::from(a);
        let blend = |c: u8| ((u16::from(c) * alpha + 255 * (255 - alpha) + 127) / 255) as u8;
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(image: &DynamicImage) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, ImageFormat::Png).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn a_png_decodes_to_its_pixels_and_transparency_shows_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([10, 20, 30, 255]));
        rgba.put_pixel(1, 0, image::Rgba([0, 0, 0, 0]));
        let decoded = decode_image(&png(&DynamicImage::ImageRgba8(rgba))).unwrap();
        assert_eq!(decoded.get_pixel(0, 0).0, [10, 20, 30]);
        assert_eq!(decoded.get_pixel(1, 0).0, [255, 255, 255]);
    }

    #[test]
    fn what_is_not_a_png_or_jpeg_is_refused_saying_so() {
        let message = decode_image(b"GIF89a not really").unwrap_err().to_string();
        assert!(message.contains("send a PNG or a JPEG"), "{message}");
        let message = decode_image(b"hello").unwrap_err().to_string();
        assert!(message.contains("neither a PNG nor a JPEG"), "{message}");
    }

    #[test]
    fn a_cut_off_png_is_refused_as_damaged() {
        let bytes = png(&DynamicImage::ImageRgb8(RgbImage::from_fn(
            64,
            64,
            |x, y| image::Rgb([(x * y) as u8, x as u8, y as u8]),
        )));
        let cut = &bytes[..bytes.len() / 2];
        assert!(matches!(decode_image(cut), Err(Error::BadImage { .. })));
    }

    #[test]
    fn a_header_claiming_too_many_pixels_is_refused_before_decoding() {
        let bytes = carapace_fakes::page::png_claiming(100_000, 100_000);
        match decode_image(&bytes) {
            Err(Error::ImageTooLarge { width, height, .. }) => {
                assert_eq!((width, height), (100_000, 100_000));
            }
            other => panic!("expected ImageTooLarge, got {other:?}"),
        }
    }
}
