//! `carapace build --owner-settings FILE`: the owner's settings (IM bot, LLM providers) go onto
//! the built image's boot partition as `carapace-owner.toml`, with a one-time pairing code
//! when the file has none, and the pairing link is printed as a QR code. The box moves the
//! file into /data at its first start (the service table's `owner_settings` service) and
//! agentd imports it while the box is unpaired.
//!
//! Only `carapace.img` is changed, after `carapace.img.zst` and `sbom.json` were written: those
//! stay the same for everyone (and reproducible); the personal image holds secrets.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use board_support::OWNER_SETTINGS_ESP_NAME;
use carapace_owner::{OwnerSettings, PairingCode, qr};

use crate::error::{Error, Result};
use crate::fat_partition::{self, Window};

/// What the owner needs to pair the box.
pub struct Pairing {
    pub link: Option<String>,
    pub code: String,
    pub qr_text: Option<String>,
    pub qr_png: Option<PathBuf>,
}

/// Reads and checks the owner's file for `recipe`, whose service table must have a service
/// that takes it; gives it a pairing code when it has none.
pub fn load(path: &Path, recipe: &Path) -> Result<OwnerSettings> {
    check_recipe_takes_settings(recipe)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::image(format!("reading owner settings {}: {e}", path.display())))?;
    let mut settings = OwnerSettings::parse(&text)
        .map_err(|e| Error::image(format!("{}: {e}", path.display())))?;
    if settings.pairing_code.is_none() {
        let code = PairingCode::generate().map_err(|e| Error::image(e.to_string()))?;
        settings.pairing_code = Some(code.as_str().to_string());
    }
    Ok(settings)
}

/// Fails unless a service of `recipe` reads the owner's settings at the first start.
pub fn check_recipe_takes_settings(recipe: &Path) -> Result<()> {
    let (recipe_data, _) = crate::recipe::Recipe::load(recipe)?;
    if !recipe_data.services.iter().any(|s| s.owner_settings) {
        return Err(Error::image(format!(
            "{}: no service has owner_settings = true, so nothing on the box would read the owner settings",
            recipe.display()
        )));
    }
    Ok(())
}

/// Writes the settings onto the ESP of `image`, and the QR code next to it as PNG.
pub fn personalise(image: &Path, settings: &OwnerSettings) -> Result<Pairing> {
    // The image is no longer what its inputs build: the next build must not reuse it.
    let stamp = crate::build_inputs::stamp_path(image.parent().unwrap_or(Path::new(".")));
    match std::fs::remove_file(&stamp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::image(format!("remove {}: {e}", stamp.display())));
        }
        _ => {}
    }
    let fail = |what: String| Error::image(format!("{}: {what}", image.display()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(|e| fail(format!("open: {e}")))?;
    let length = file.metadata().map_err(|e| fail(e.to_string()))?.len();
    write_settings(&file, length, settings).map_err(fail)?;
    pairing(settings, Some(&image.with_file_name("pairing-qr.png")))
}

/// What the owner scans, for `settings`; the QR code also goes to `png` when there is a link.
pub fn pairing(settings: &OwnerSettings, png: Option<&Path>) -> Result<Pairing> {
    let code_text = settings.pairing_code.clone().unwrap_or_default();
    let code = PairingCode::parse(&code_text).map_err(|e| Error::image(e.to_string()))?;
    let link = settings
        .telegram
        .as_ref()
        .map(|telegram| code.telegram_link(&telegram.bot));
    let (qr_text, qr_png) = match &link {
        Some(link) => {
            let text = qr::text(link).map_err(|e| Error::image(e.to_string()))?;
            let png = match png {
                Some(png) => {
                    let bytes = qr::png(link).map_err(|e| Error::image(e.to_string()))?;
                    std::fs::write(png, bytes)
                        .map_err(|e| Error::image(format!("writing {}: {e}", png.display())))?;
                    Some(png.to_path_buf())
                }
                None => None,
            };
            (Some(text), png)
        }
        None => (None, None),
    };
    Ok(Pairing {
        link,
        code: code_text,
        qr_text,
        qr_png,
    })
}

/// Puts the settings file in the root of the ESP of the image in `disk` (an image file or
/// the disk it was flashed to; `image_len` is the image's length, where its GPT ends).
pub fn write_settings(
    disk: &File,
    image_len: u64,
    settings: &OwnerSettings,
) -> std::result::Result<(), String> {
    let fs = esp_of(disk, image_len)?;
    {
        let mut out = fs
            .root_dir()
            .create_file(OWNER_SETTINGS_ESP_NAME)
            .map_err(|e| format!("creating {OWNER_SETTINGS_ESP_NAME} on the ESP: {e}"))?;
        out.truncate().map_err(|e| e.to_string())?;
        out.write_all(settings.to_toml().as_bytes())
            .map_err(|e| format!("writing {OWNER_SETTINGS_ESP_NAME} on the ESP: {e}"))?;
    }
    fs.unmount().map_err(|e| format!("closing the ESP: {e}"))
}

/// The settings file on the ESP of the image in `disk`, if there is one.
pub fn read_settings(disk: &File, image_len: u64) -> std::result::Result<Option<String>, String> {
    let fs = esp_of(disk, image_len)?;
    let mut file = match fs.root_dir().open_file(OWNER_SETTINGS_ESP_NAME) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("opening {OWNER_SETTINGS_ESP_NAME} on the ESP: {e}")),
    };
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| format!("reading {OWNER_SETTINGS_ESP_NAME} on the ESP: {e}"))?;
    Ok(Some(text))
}

/// The FAT file system of the image's first partition: the ESP, or a Pi's config partition.
fn esp_of(disk: &File, image_len: u64) -> std::result::Result<fatfs::FileSystem<Window>, String> {
    fat_partition::open(disk, image_len, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt_writer::{GptIds, write_gpt};
    use crate::layout::DiskPlan;
    use std::os::unix::fs::FileExt;

    #[test]
    fn the_file_lands_in_the_esp_root() {
        let plan = DiskPlan::new(&board_support::board::X86_64, 40, 20, 10).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(plan.total_size).unwrap();
        let ids = GptIds {
            disk: uuid::Uuid::from_u128(1),
            partitions: [2, 3, 4, 5].map(uuid::Uuid::from_u128).to_vec(),
        };
        write_gpt(&mut file.as_file(), &plan, &ids).unwrap();
        let esp = plan.first();
        let fat = crate::esp::build_esp(esp.size, 7, &[]).unwrap();
        file.as_file().write_all_at(&fat, esp.offset).unwrap();

        let length = plan.total_size;
        assert_eq!(read_settings(file.as_file(), length).unwrap(), None);
        let first = settings("first_version_longer_bot");
        write_settings(file.as_file(), length, &first).unwrap();
        let second = settings("second_bot");
        write_settings(file.as_file(), length, &second).unwrap();
        assert_eq!(
            read_settings(file.as_file(), length).unwrap(),
            Some(second.to_toml())
        );

        let mut bytes = vec![0; esp.size as usize];
        file.as_file()
            .read_exact_at(&mut bytes, esp.offset)
            .unwrap();
        let fs = fatfs::FileSystem::new(io::Cursor::new(bytes), fatfs::FsOptions::new()).unwrap();
        let mut text = String::new();
        fs.root_dir()
            .open_file(OWNER_SETTINGS_ESP_NAME)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, second.to_toml());
    }

    fn settings(bot: &str) -> OwnerSettings {
        OwnerSettings::parse(&format!(
            "[telegram]\nbot = \"{bot}\"\ntoken = \"1:AAEhBP0av28-not-a-real-token\"\n\n[[llm]]\napi = \"openai\"\n\
             base_url = \"https://llm.example/v1\"\nmodel = \"m\"\napi_key = \"k\"\n"
        ))
        .unwrap()
    }
}
