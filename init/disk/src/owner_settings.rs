//! Moves the owner-settings file (`carapace build --owner-settings` put it on the ESP) into the
//! state directory of the service that reads it, so the secrets in it leave the FAT partition,
//! which any computer can read, at the first boot that sees them. PID 1 runs this after /data
//! is mounted, before that service starts:
//!
//! `carapace-disk --move-owner-settings --esp <PARTUUID> --to <dir> --owner <uid>:<gid>`
//!
//! The copy is written atomically (0600) and handed to the service's uid before the file on
//! the ESP is deleted; a power cut in between leaves the ESP file, and the next boot moves it
//! again over the same copy.
//!
//! The same step moves a new encrypted /data's recovery key, which the helper left in /run
//! (recovery_key.rs), into that directory as `DATA_RECOVERY_KEY_FILE`.

use std::os::unix::fs::{DirBuilderExt, chown};
use std::path::{Path, PathBuf};

use board_support::{
    DATA_RECOVERY_KEY_FILE, OWNER_SETTINGS_ESP_NAME, OWNER_SETTINGS_FILE, atomic_file,
};

use crate::error::Error;
use crate::factory_reset::with_esp_mounted;

/// An owner-settings file is a few hundred bytes; anything this big is not one.
const MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub struct MoveArgs {
    pub esp_partuuid: String,
    pub to_dir: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

/// Whether there was a file to move.
pub fn move_to_state_dir(args: &MoveArgs) -> Result<bool, Error> {
    with_esp_mounted(&args.esp_partuuid, |esp| {
        let source = esp.join(OWNER_SETTINGS_ESP_NAME);
        let size = match std::fs::metadata(&source) {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(Error::io("inspect", &source, error)),
        };
        if size > MAX_BYTES {
            return Err(Error::io(
                "refuse",
                &source,
                std::io::Error::other(format!("{size} bytes is too big for owner settings")),
            ));
        }
        let text = std::fs::read(&source).map_err(|e| Error::io("read", &source, e))?;
        install(&text, &args.to_dir, OWNER_SETTINGS_FILE, args.uid, args.gid)?;
        std::fs::remove_file(&source).map_err(|e| Error::io("delete", &source, e))?;
        atomic_file::sync_dir(esp).map_err(|e| Error::io("sync", esp, e))?;
        Ok(true)
    })
}

/// Moves the recovery key the helper left in /run, if there is one (whether there was).
pub fn move_recovery_key(args: &MoveArgs) -> Result<bool, Error> {
    let source = Path::new(crate::recovery_key::HANDED_OVER);
    let text = match std::fs::read(source) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(Error::io("read", source, error)),
    };
    install(
        &text,
        &args.to_dir,
        DATA_RECOVERY_KEY_FILE,
        args.uid,
        args.gid,
    )?;
    std::fs::remove_file(source).map_err(|e| Error::io("delete", source, e))?;
    Ok(true)
}

/// Writes `text` as the service's file `name`, owned by it.
fn install(text: &[u8], dir: &Path, name: &str, uid: u32, gid: u32) -> Result<(), Error> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => chown(dir, Some(uid), Some(gid)).map_err(|e| Error::io("chown", dir, e))?,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(Error::io("create", dir, error)),
    }
    let target = dir.join(name);
    atomic_file::write(&target, text, 0o600).map_err(|e| Error::io("write", &target, e))?;
    chown(&target, Some(uid), Some(gid)).map_err(|e| Error::io("chown", &target, e))?;
    atomic_file::sync_dir(dir).map_err(|e| Error::io("sync", dir, e))
}

/// `--move-owner-settings --esp <PARTUUID> --to <dir> --owner <uid>:<gid>`.
pub fn parse_args(args: &[String]) -> Option<MoveArgs> {
    match args {
        [mode, esp_flag, esp, to_flag, to, owner_flag, owner]
            if mode == "--move-owner-settings"
                && esp_flag == "--esp"
                && to_flag == "--to"
                && owner_flag == "--owner" =>
        {
            let (uid, gid) = owner.split_once(':')?;
            Some(MoveArgs {
                esp_partuuid: esp.clone(),
                to_dir: PathBuf::from(to),
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let args = parse_args(&words(
            "--move-owner-settings --esp e --to /data/agentd --owner 1000:1001",
        ))
        .expect("args");
        assert_eq!(
            args,
            MoveArgs {
                esp_partuuid: "e".into(),
                to_dir: "/data/agentd".into(),
                uid: 1000,
                gid: 1001
            }
        );
        assert!(parse_args(&words("--move-owner-settings --esp e --to d --owner 1000")).is_none());
    }

    #[test]
    fn the_copy_is_private_and_replaces_an_earlier_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("agentd");
        let me = rustix::process::getuid().as_raw();
        let group = rustix::process::getgid().as_raw();
        install(b"first", &target, OWNER_SETTINGS_FILE, me, group).expect("install");
        install(b"second", &target, OWNER_SETTINGS_FILE, me, group).expect("again");
        let file = target.join(OWNER_SETTINGS_FILE);
        assert_eq!(std::fs::read(&file).expect("read"), b"second");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = std::fs::metadata(&target)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
    }
}
