//! The helper's decisions, in order: find the partition, grow it, then format it (only with
//! the builder's mark or the owner's factory reset; encrypted where the box has a TPM) or
//! open it (unsealing its key, if it is encrypted) and check and repair it. Any failure
//! becomes a `degraded` outcome naming the reason; nothing here formats a partition that
//! merely looks empty or broken.

use std::path::Path;

use board_support::DataOutcome;
use board_support::block_devices::{self, Partition, WAIT_FOR_DEVICES};
use board_support::trust_state::DataProtection;
use carapace_tpm::{Device, Tpm};

use crate::e2fsprogs::{self, BACKUP_SUPERBLOCKS};
use crate::error::Error;
use crate::recovery_key::{self, RecoveryKey};
use crate::{Args, cryptsetup, data_key, ext4, factory_reset, grow, new_mark};

/// What the helper made of /data, and what `/status` says of its protection.
pub struct Prepared {
    pub outcome: DataOutcome,
    pub tpm: bool,
    pub protection: DataProtection,
}

pub fn run(args: &Args) -> Prepared {
    let mut tpm = data_key::open_tpm().unwrap_or_else(|err| {
        progress!("the TPM is not usable: {err}");
        None
    });
    let tpm_present = tpm.is_some();
    let mut protection = DataProtection::Unknown;
    let outcome = match prepare(args, tpm.as_mut(), &mut protection) {
        Ok(outcome) => outcome,
        Err(err) => DataOutcome::Degraded {
            reason: err.reason(),
            detail: err.to_string(),
        },
    };
    Prepared {
        outcome,
        tpm: tpm_present,
        protection,
    }
}

fn prepare(
    args: &Args,
    mut tpm: Option<&mut Tpm<Device>>,
    protection: &mut DataProtection,
) -> Result<DataOutcome, Error> {
    let partition = block_devices::wait_for_partition(&args.data_partuuid, WAIT_FOR_DEVICES)
        .map_err(Error::NotFound)?;
    let table = block_devices::read_disk_table(&partition.disk).map_err(|source| Error::Table {
        disk: partition.disk.clone(),
        source,
    })?;
    if table.from_backup {
        progress!(
            "the primary GPT of {} is damaged; using the backup",
            partition.disk
        );
    }
    let marked_new = new_mark::is_marked_new(&table, partition.number);
    let reset = factory_reset::requested(&args.esp_partuuid).unwrap_or_else(|err| {
        progress!("factory reset not checked: {err}");
        false
    });
    // A partition of the image's size still works: growing is worth trying, not failing for.
    let grew = grow::grow_to_disk_end(&partition, &table).unwrap_or_else(|err| {
        progress!("data partition not grown: {err}");
        false
    });

    if marked_new || reset {
        let why = if reset {
            format!("factory-reset (the ESP holds {})", factory_reset::FILE_NAME)
        } else {
            "new (GPT attribute bit 48 set by the builder)".to_owned()
        };
        let request = FormatRequest {
            why: &why,
            marked_new,
            reset,
        };
        return format(&partition, &request, args, tpm, protection);
    }
    let device = partition.dev_path.as_path();
    let volume = if cryptsetup::is_luks(device)? {
        *protection = DataProtection::Locked;
        if !cryptsetup::available() {
            return Err(Error::Locked {
                why: "this image has no cryptsetup to open it".to_owned(),
            });
        }
        let unsealed = cryptsetup::export_token(device)
            .map_err(|err| Error::Locked {
                why: format!("its LUKS2 header has no readable token 0 ({err})"),
            })
            .and_then(|token| data_key::recover(tpm.as_deref_mut(), &token));
        // A key that opens nothing is a recovery cut short (the key slot was given a new key
        // before the token), which the recovery key finishes.
        let opened = unsealed.and_then(|key| {
            cryptsetup::open(device, cryptsetup::SEALED_KEY_SLOT, &key).map_err(|err| {
                Error::Locked {
                    why: format!("the key the TPM unsealed does not open key slot 0 ({err})"),
                }
            })
        });
        let mapped = match opened {
            Ok(mapped) => {
                progress!("data unlocked: the TPM unsealed its key (Secure Boot state unchanged)");
                mapped
            }
            Err(Error::Locked { why }) => open_with_recovery_key(device, tpm, args, why)?,
            Err(error) => return Err(error),
        };
        *protection = DataProtection::Encrypted;
        mapped
    } else {
        *protection = match (tpm.is_some(), cryptsetup::available()) {
            (false, _) => DataProtection::PlainNoTpm,
            (true, false) => DataProtection::PlainImageWithout,
            (true, true) => DataProtection::PlainFromBefore,
        };
        progress!("data {}", protection.describe());
        device.to_owned()
    };
    check_and_repair(&volume, grew)
}

/// A /data whose sealed key the TPM refused (`why`), opened with the recovery key the owner
/// put on the ESP; where the box has a TPM, a new key sealed to it and to this Secure Boot
/// state replaces the old one, and the file is deleted. Without the file, or with a key that
/// does not open it, /data stays locked, saying how to open it.
fn open_with_recovery_key(
    device: &Path,
    tpm: Option<&mut Tpm<Device>>,
    args: &Args,
    why: String,
) -> Result<std::path::PathBuf, Error> {
    let locked = |more: String| Error::Locked {
        why: format!("{why}; {more}"),
    };
    let key = factory_reset::with_esp_mounted(&args.esp_partuuid, |esp| {
        recovery_key::from_esp(esp)
    })
    .map_err(|err| match err {
        Error::Locked { why: bad_file } => locked(bad_file),
        other => locked(format!("the ESP was not read for a recovery key ({other})")),
    })?
    .ok_or_else(|| {
        locked(format!(
            "to open it with its recovery key (/recovery_key showed it), put the key in a file \
             named {} in the ESP's root and restart",
            recovery_key::ESP_FILE
        ))
    })?;
    let mapped = cryptsetup::open(device, recovery_key::KEY_SLOT, key.secret()).map_err(|err| {
        locked(format!(
            "the recovery key in {} does not open it ({err})",
            recovery_key::ESP_FILE
        ))
    })?;
    let Some(tpm) = tpm else {
        progress!(
            "data unlocked with the recovery key; this box has no TPM to seal a new key to, so \
             {} stays on the ESP for the next boot",
            recovery_key::ESP_FILE
        );
        return Ok(mapped);
    };
    // Slot 0 is emptied before it gets the new key: a power cut at any step leaves the
    // recovery slot and the file on the ESP, and the next boot comes here again (and finds
    // slot 0 empty already, or holding a key its token does not unseal).
    let (new_key, token) = data_key::create(tpm)?;
    let sealed_slot = cryptsetup::SEALED_KEY_SLOT.to_owned();
    if cryptsetup::active_slots(device)?.contains(&sealed_slot) {
        cryptsetup::kill_slot(device, cryptsetup::SEALED_KEY_SLOT, key.secret())?;
    }
    cryptsetup::add_key(device, cryptsetup::SEALED_KEY_SLOT, key.secret(), &new_key)?;
    cryptsetup::replace_token(device, &token)?;
    factory_reset::with_esp_mounted(&args.esp_partuuid, |esp| {
        let file = esp.join(recovery_key::ESP_FILE);
        std::fs::remove_file(&file).map_err(|e| Error::io("delete", &file, e))?;
        board_support::atomic_file::sync_dir(esp).map_err(|e| Error::io("sync", esp, e))
    })?;
    progress!(
        "data unlocked with the recovery key; its key is sealed again to this TPM and Secure \
         Boot state, and {} is deleted from the ESP",
        recovery_key::ESP_FILE
    );
    Ok(mapped)
}

struct FormatRequest<'a> {
    why: &'a str,
    marked_new: bool,
    reset: bool,
}

/// A new /data: LUKS2 with a TPM-sealed key where the box has a TPM, plain ext4 where not.
fn format(
    partition: &Partition,
    request: &FormatRequest<'_>,
    args: &Args,
    tpm: Option<&mut Tpm<Device>>,
    protection: &mut DataProtection,
) -> Result<DataOutcome, Error> {
    let device = &partition.dev_path;
    let tpm_present = tpm.is_some();
    progress!(
        "format start device={} reason={}",
        device.display(),
        request.why
    );
    let volume = match tpm.filter(|_| cryptsetup::available()) {
        Some(tpm) => {
            progress!(
                "format: /data is encrypted (LUKS2, aes-xts-plain64); its key is sealed to the \
                 TPM against the Secure Boot state (PCR 7)"
            );
            let (key, token) = data_key::create(tpm)?;
            cryptsetup::format(device, &key)?;
            cryptsetup::import_token(device, &token)?;
            let recovery = RecoveryKey::generate()?;
            cryptsetup::add_key(device, recovery_key::KEY_SLOT, &key, recovery.secret())?;
            recovery.hand_over()?;
            progress!(
                "format: /data also opens with a recovery key, which the owner's service is \
                 given (/recovery_key)"
            );
            *protection = DataProtection::Encrypted;
            cryptsetup::open(device, cryptsetup::SEALED_KEY_SLOT, &key)?
        }
        None if tpm_present => {
            *protection = DataProtection::PlainImageWithout;
            progress!("format: /data is {}", protection.describe());
            device.clone()
        }
        None => {
            *protection = DataProtection::PlainNoTpm;
            progress!("format: /data is not encrypted: this box has no TPM 2.0");
            device.clone()
        }
    };
    e2fsprogs::make_filesystem(&volume)?;
    sync_device(&volume)?;
    if request.marked_new {
        new_mark::clear(partition)?;
    }
    progress!("format done device={}; new mark cleared", volume.display());
    if request.reset {
        factory_reset::done(&args.esp_partuuid)?;
        progress!(
            "factory reset done; {} deleted from the ESP",
            factory_reset::FILE_NAME
        );
    }
    ready(&volume, true, true, false)
}

/// A file system that was not unmounted cleanly is checked (`e2fsck -p`, then `-f -y`); one
/// without a primary superblock, or that those cannot fix, is repaired from each backup
/// superblock in turn. What none of them repairs is reported, never formatted.
fn check_and_repair(device: &Path, grew: bool) -> Result<DataOutcome, Error> {
    let found = ext4::read_superblock(device)?;
    let clean = found.is_some_and(|sb| sb.clean());
    let mut repaired = false;
    if !clean {
        let mut fixed = false;
        if found.is_some() {
            progress!(
                "check start device={} (not unmounted cleanly)",
                device.display()
            );
            let preen = e2fsprogs::preen(device)?;
            (fixed, repaired) = (preen.fixed(), preen.changed());
            if !fixed {
                let full = e2fsprogs::repair(device)?;
                (fixed, repaired) = (full.fixed(), full.changed());
            }
        } else {
            progress!(
                "repair start device={} (no ext4 superblock at byte 1024)",
                device.display()
            );
        }
        let mut tried = Vec::new();
        for block in BACKUP_SUPERBLOCKS {
            if fixed {
                break;
            }
            progress!("repair with the backup superblock at block {block}");
            let fsck = e2fsprogs::repair_from_backup(device, block)?;
            // A primary superblock rewritten from a backup is a repair whatever the code.
            (fixed, repaired) = (fsck.fixed(), true);
            tried.push(format!("{block}: exit {}", fsck.0));
        }
        let now = ext4::read_superblock(device)?;
        if !fixed || !now.is_some_and(|sb| sb.clean()) {
            return Err(Error::Unrepairable {
                device: device.to_owned(),
                detail: format!(
                    "e2fsck found no usable superblock (primary and backups at blocks {})",
                    tried.join(", ")
                ),
            });
        }
        progress!(
            "checked device={} repaired={}",
            device.display(),
            board_support::data_outcome::yes_no(repaired)
        );
    }
    if grew && let Err(err) = e2fsprogs::grow_filesystem(device) {
        progress!("file system not grown (it still works at its old size): {err}");
    }
    ready(device, false, clean, repaired)
}

fn ready(
    device: &Path,
    first_boot: bool,
    clean: bool,
    repaired: bool,
) -> Result<DataOutcome, Error> {
    let size = device_size(device)?;
    Ok(DataOutcome::Ready {
        device: device.display().to_string(),
        first_boot,
        clean,
        repaired,
        size_mib: size >> 20,
    })
}

/// A block device's size: where a seek to its end lands.
fn device_size(device: &Path) -> Result<u64, Error> {
    use std::io::Seek;
    let mut file = std::fs::File::open(device).map_err(|e| Error::io("open", device, e))?;
    file.seek(std::io::SeekFrom::End(0))
        .map_err(|e| Error::io("find the size of", device, e))
}

/// mke2fs syncs what it wrote; this makes sure before the mark that allowed it goes away.
fn sync_device(device: &Path) -> Result<(), Error> {
    let file = std::fs::File::open(device).map_err(|e| Error::io("open", device, e))?;
    file.sync_all().map_err(|e| Error::io("sync", device, e))
}
