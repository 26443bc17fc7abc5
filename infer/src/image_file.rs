//! The images the engine reads (OCR, image description), from the bytes a client sent: PNG or
//! JPEG only, and never more pixels than MAX_IMAGE_PIXELS. The size is read from the header before any pixel is decoded, so a
//! small file that claims a huge image (a decompression bomb) is refused without the memory it
//! would take. Transparent pixels are shown over white, and a photo whose EXIF says the camera
//! was held sideways is turned upright, as a viewer shows them.

use std::io::Cursor;

use image::metadata::Orientation;
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
    let mut decoder = reader
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
    // A phone stores a photo as its sensor read it and says in the EXIF how to turn it; an
    // EXIF that does not parse turns nothing (the pixels are still good).
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| {
        bad(format!(
            "its pixels do not decode ({e}); the file is damaged"
        ))
    })?;
    image.apply_orientation(orientation);
    Ok(image)
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

    /// A JPEG of `image` whose EXIF says: turn me by `orientation` (EXIF's 1 to 8).
    fn jpeg_with_orientation(image: &RgbImage, orientation: u8) -> Vec<u8> {
        use image::ImageEncoder;
        // A little-endian TIFF header and one IFD entry: tag 0x0112 (Orientation), SHORT, 1.
        let mut exif = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
        exif.extend_from_slice(&[orientation, 0, 0, 0, 0, 0, 0, 0]);
        let mut bytes = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
        encoder.set_exif_metadata(exif).unwrap();
        encoder
            .write_image(
                image.as_raw(),
                image.width(),
                image.height(),
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        bytes
    }

    #[test]
    fn a_photo_taken_sideways_is_turned_as_its_exif_says() {
        // 32 x 16, its left half red: as a phone held sideways stores a picture.
        let stored = RgbImage::from_fn(32, 16, |x, _| {
            if x < 16 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let red = |pixel: &image::Rgb<u8>| pixel[0] > 200 && pixel[2] < 60;
        // 6: turn 90 degrees clockwise to view; the left half ends up on top.
        let upright = decode_image(&jpeg_with_orientation(&stored, 6)).unwrap();
        assert_eq!(upright.dimensions(), (16, 32));
        assert!(red(upright.get_pixel(8, 4)) && !red(upright.get_pixel(8, 28)));
        // 8: 90 degrees counter-clockwise; the left half ends up at the bottom.
        let upright = decode_image(&jpeg_with_orientation(&stored, 8)).unwrap();
        assert_eq!(upright.dimensions(), (16, 32));
        assert!(!red(upright.get_pixel(8, 4)) && red(upright.get_pixel(8, 28)));
        // 1, or an orientation EXIF does not define: as stored.
        for as_stored in [1, 0, 9] {
            let decoded = decode_image(&jpeg_with_orientation(&stored, as_stored)).unwrap();
            assert_eq!(decoded.dimensions(), (32, 16));
            assert!(red(decoded.get_pixel(4, 8)) && !red(decoded.get_pixel(28, 8)));
        }
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
