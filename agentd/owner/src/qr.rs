//! The pairing link as a QR code. The `qrcode` crate makes the modules; the two renderings
//! are ours: half-block text (two module rows per line, in characters the Linux console's
//! default font has: U+2580, U+2584, U+2588) and a grey-scale PNG.
//!
//! Text output draws the light modules, so on a dark terminal it reads as dark-on-light, the
//! way scanners expect (qrencode's UTF8 mode does the same).

use qrcode::{Color, EcLevel, QrCode};

use crate::Error;

/// Light modules around the code that scanners need to find its edge.
const QUIET_ZONE: usize = 2;
/// PNG pixels per module.
const PNG_SCALE: usize = 8;
const PNG_QUIET_ZONE: usize = 4;

/// The modules, `true` = dark, with the quiet zone around them.
struct Modules {
    width: usize,
    dark: Vec<bool>,
}

fn modules(text: &str, quiet: usize) -> Result<Modules, Error> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|error| Error::Qr(error.to_string()))?;
    let inner = code.width();
    let colors = code.to_colors();
    let width = inner + 2 * quiet;
    let mut dark = vec![false; width * width];
    for y in 0..inner {
        for x in 0..inner {
            dark[(y + quiet) * width + x + quiet] = colors[y * inner + x] == Color::Dark;
        }
    }
    Ok(Modules { width, dark })
}

/// The code as lines of half-block characters.
pub fn text(link: &str) -> Result<String, Error> {
    let modules = modules(link, QUIET_ZONE)?;
    let light = |x: usize, y: usize| y >= modules.width || !modules.dark[y * modules.width + x];
    let mut out = String::new();
    for y in (0..modules.width).step_by(2) {
        for x in 0..modules.width {
            out.push(match (light(x, y), light(x, y + 1)) {
                (true, true) => '\u{2588}',
                (true, false) => '\u{2580}',
                (false, true) => '\u{2584}',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

/// The code as a PNG (8-bit grey, black on white).
pub fn png(link: &str) -> Result<Vec<u8>, Error> {
    let modules = modules(link, PNG_QUIET_ZONE)?;
    let side = modules.width * PNG_SCALE;
    let mut pixels = vec![0u8; side * side];
    for (index, pixel) in pixels.iter_mut().enumerate() {
        let (x, y) = ((index % side) / PNG_SCALE, (index / side) / PNG_SCALE);
        *pixel = if modules.dark[y * modules.width + x] {
            0
        } else {
            255
        };
    }
    let mut bytes = Vec::new();
    let side = u32::try_from(side).map_err(|error| Error::Qr(error.to_string()))?;
    let mut encoder = png::Encoder::new(&mut bytes, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|error| Error::Qr(error.to_string()))?;
    writer
        .write_image_data(&pixels)
        .map_err(|error| Error::Qr(error.to_string()))?;
    writer
        .finish()
        .map_err(|error| Error::Qr(error.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "https://t.me/carapace_box_bot?start=AbCdEfGhIjKlMnOp";

    #[test]
    fn text_is_square_in_half_rows() {
        let modules = modules(LINK, QUIET_ZONE).unwrap();
        let drawn = text(LINK).unwrap();
        let lines: Vec<&str> = drawn.lines().collect();
        assert_eq!(lines.len(), modules.width.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == modules.width));
        // The quiet zone is light: the first line is all full blocks.
        assert!(lines[0].chars().all(|c| c == '\u{2588}'));
        // The finder pattern's dark corner shows up as a non-full block on the second line.
        assert!(lines[1].contains(' ') || lines[1].contains('\u{2584}'));
    }

    #[test]
    fn png_decodes_to_the_same_modules() {
        let bytes = png(LINK).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        let modules = modules(LINK, PNG_QUIET_ZONE).unwrap();
        assert_eq!(info.width as usize, modules.width * PNG_SCALE);
        for y in 0..modules.width {
            for x in 0..modules.width {
                let pixel = pixels[(y * PNG_SCALE + 3) * info.width as usize + x * PNG_SCALE + 3];
                assert_eq!(pixel == 0, modules.dark[y * modules.width + x], "({x},{y})");
            }
        }
    }
}
