//! The image as SmolVLM's processor (transformers' Idefics3ImageProcessor, Pillow backend)
//! hands it to the model, in its simplest mode, one image without splitting
//! (`do_image_splitting=False`): the longest side resized to `size.longest_edge` keeping the
//! aspect (the other side rounded up to even), then resized to the encoder's square
//! `max_image_size.longest_edge` (the aspect is not kept: the encoder takes one square), both
//! with Pillow's LANCZOS, then scaled to 0..1 and normalized per channel. Splitting a large
//! image into tiles (more image tokens, finer detail) is the processor's other mode, not
//! done here: one square is what a small box can afford per picture.

use std::path::Path;

use serde::Deserialize;

use super::resample::{Rgb8, resize_lanczos};
use crate::error::{Error, Result};

/// The processor's settings (preprocessor_config.json, or processor_config.json's
/// `image_processor`, as transformers 5 saves it).
#[derive(Debug, Clone, Deserialize)]
pub struct ImageProcessorConfig {
    #[serde(default = "yes")]
    pub do_resize: bool,
    #[serde(default = "default_size")]
    pub size: LongestEdge,
    #[serde(default = "default_max_image_size")]
    pub max_image_size: LongestEdge,
    /// Pillow's resampling filter number; 1 is LANCZOS, the only one done here.
    #[serde(default = "lanczos")]
    pub resample: u32,
    #[serde(default = "yes")]
    pub do_rescale: bool,
    #[serde(default = "default_rescale")]
    pub rescale_factor: f64,
    #[serde(default = "yes")]
    pub do_normalize: bool,
    #[serde(default = "half")]
    pub image_mean: Vec<f32>,
    #[serde(default = "half")]
    pub image_std: Vec<f32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LongestEdge {
    pub longest_edge: usize,
}

/// transformers' MAX_IMAGE_SIZE: no side grows past 4096.
const MAX_IMAGE_SIDE: usize = 4096;

impl ImageProcessorConfig {
    /// From `dir`'s preprocessor_config.json, else its processor_config.json.
    pub fn read(dir: &Path) -> Result<ImageProcessorConfig> {
        let legacy = dir.join("preprocessor_config.json");
        let (path, nested) = if legacy.is_file() {
            (legacy, false)
        } else {
            (
                crate::embedder::model_file(dir, "processor_config.json")?,
                true,
            )
        };
        let text = std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?;
        let bad = |reason: String| Error::BadConfig {
            path: path.clone(),
            reason,
        };
        let mut value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if nested {
            value = value
                .get_mut("image_processor")
                .map(serde_json::Value::take)
                .ok_or_else(|| bad("it has no image_processor".into()))?;
        }
        let config: ImageProcessorConfig =
            serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        if config.resample != 1 {
            return Err(bad(format!(
                "resample {} is not LANCZOS (1), the only filter this engine has",
                config.resample
            )));
        }
        if config.image_mean.len() != 3 || config.image_std.len() != 3 {
            return Err(bad(
                "image_mean and image_std need three values (RGB)".into()
            ));
        }
        Ok(config)
    }

    /// The normalized pixels of `image` for an encoder of `side` × `side`:
    /// [3, side, side], channel-first, float32.
    pub fn pixel_values(&self, image: &Rgb8, side: usize) -> Vec<f32> {
        let mut image = image.clone();
        if self.do_resize {
            let (height, width) =
                longest_edge_size(image.height, image.width, self.size.longest_edge);
            image = resize_lanczos(&image, width, height);
            image = resize_lanczos(&image, side, side);
        }
        let plane = image.width * image.height;
        let mut values = vec![0f32; 3 * plane];
        for (i, rgb) in image.pixels.chunks_exact(3).enumerate() {
            for channel in 0..3 {
                // numpy: float64 × the factor, stored as float32; then float32 arithmetic.
                let mut value = f32::from(rgb[channel]);
                if self.do_rescale {
                    value = (f64::from(rgb[channel]) * self.rescale_factor) as f32;
                }
                if self.do_normalize {
                    value = (value - self.image_mean[channel]) / self.image_std[channel];
                }
                values[channel * plane + i] = value;
            }
        }
        values
    }
}

/// transformers' get_resize_output_image_size: the longer side becomes `longest`, the other
/// keeps the aspect (truncated, then rounded up to even), and neither passes 4096.
fn longest_edge_size(height: usize, width: usize, longest: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let (mut height, mut width) = if width >= height {
        let mut h = (longest as f64 / aspect) as usize;
        if !h.is_multiple_of(2) {
            h += 1;
        }
        (h, longest)
    } else {
        let mut w = (longest as f64 * aspect) as usize;
        if !w.is_multiple_of(2) {
            w += 1;
        }
        (longest, w)
    };
    height = height.max(1);
    width = width.max(1);
    let aspect = width as f64 / height as f64;
    if width >= height && width > MAX_IMAGE_SIDE {
        width = MAX_IMAGE_SIDE;
        height = ((width as f64 / aspect) as usize).max(1);
    } else if height > width && height > MAX_IMAGE_SIDE {
        height = MAX_IMAGE_SIDE;
        width = ((height as f64 * aspect) as usize).max(1);
    }
    (height, width)
}

/// A PNG or JPEG file's pixels as 8-bit RGB (an alpha channel dropped, as Pillow's
/// convert("RGB") does; grey spread to three channels).
pub fn decode_picture(bytes: &[u8]) -> Result<Rgb8> {
    let rgb = crate::image_file::open_image(bytes)?.to_rgb8();
    Ok(Rgb8 {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        pixels: rgb.into_raw(),
    })
}

fn yes() -> bool {
    true
}
fn default_size() -> LongestEdge {
    LongestEdge {
        longest_edge: 4 * 364,
    }
}
fn default_max_image_size() -> LongestEdge {
    LongestEdge { longest_edge: 364 }
}
fn lanczos() -> u32 {
    1
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}
fn half() -> Vec<f32> {
    vec![0.5; 3]
}

#[cfg(test)]
mod tests {
    use super::longest_edge_size;

    #[test]
    fn the_longest_side_is_set_and_the_other_rounded_up_to_even() {
        assert_eq!(longest_edge_size(30, 45, 128), (86, 128));
        assert_eq!(longest_edge_size(45, 30, 2048), (2048, 1366));
        assert_eq!(longest_edge_size(512, 512, 2048), (2048, 2048));
    }
}
