//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

use crate::slot::Slot;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "notification descriptor {fd} (NOTIFY_FD) cannot be used: {reason}; PID 1 passes an \
         open pipe as fd 3"
    )]
    NotifyFd { fd: String, reason: String },

    #[error("/etc/carapace/image.toml: {message}; the image was built wrongly, rebuild it")]
    ImageInfo { message: String },

    #[error("unknown slot '{value}': a slot is 'a' or 'b'")]
    BadSlot { value: String },

    #[error(
        "kernel command line has no {name}= parameter; the slot's boot loader entry must set it \
         (docs/boot-contract.md lists the parameters)"
    )]
    MissingParam { name: &'static str },

    #[error(
        "kernel command line parameter {name} appears more than once; the boot loader entry \
         must set it exactly once"
    )]
    DuplicateParam { name: &'static str },

    #[error(
        "kernel command line parameter {name}={value} is invalid: {reason}; fix the slot's \
         boot loader entry"
    )]
    BadParam {
        name: &'static str,
        value: String,
        reason: String,
    },

    #[error(
        "slot {slot} has no boot loader entry in {}; install the slot (kernel, initrd and \
         entry) before using it",
        .location.display()
    )]
    NoEntry { slot: Slot, location: PathBuf },

    #[error(
        "slot {slot} has more than one boot loader entry in {} ({}); delete all but the one \
         the slot should boot",
        .location.display(),
        .names.join(", ")
    )]
    DuplicateEntries {
        slot: Slot,
        location: PathBuf,
        names: Vec<String>,
    },

    #[error(
        "cannot roll back: the other slot {slot} is marked bad too ({name}), so the bad slot \
         would boot again; write a working image to slot {slot} and arm a trial of it instead"
    )]
    NoGoodSlot { slot: Slot, name: String },

    #[error(
        "cannot {action} slot {slot}: it is the slot this system booted from; an update \
         writes and installs the other slot"
    )]
    BootedSlot { slot: Slot, action: &'static str },

    #[error(
        "the boot loader entry's {field} {value:?} is not one line of printable text; it \
         would break the entry"
    )]
    BadEntryValue { field: &'static str, value: String },

    #[error(
        "this board's firmware starts no unified kernel image; its update must carry the kernel, \
         initramfs and command line as files"
    )]
    NoUki,

    #[error(
        "{} line {line}: {problem}; the firmware reads this file to choose the slot, so boot \
         control changes nothing until it is repaired (docs/boot-contract.md shows its layout)",
        .path.display()
    )]
    AutobootLine {
        path: PathBuf,
        line: usize,
        problem: &'static str,
    },

    #[error(
        "{}: {problem}; the firmware reads this file to choose the slot, so boot control \
         changes nothing until it is repaired (docs/boot-contract.md shows its layout)",
        .path.display()
    )]
    AutobootSetting {
        path: PathBuf,
        problem: &'static str,
    },

    #[error(
        "{}: [{section}] boot_partition={partition} is neither slot's boot partition (a is \
         {slot_a}, b is {slot_b}); boot control cannot tell which slot boots",
        .path.display()
    )]
    AutobootPartition {
        path: PathBuf,
        section: &'static str,
        partition: u32,
        slot_a: u32,
        slot_b: u32,
    },

    #[error(
        "{}: it names no kernel= and initramfs inside the partition, so the trial cannot be \
         started with kexec; rewrite the slot (its config.txt comes with the update)",
        .path.display()
    )]
    PiConfigTxt { path: PathBuf },

    #[error(
        "Raspberry Pi boot partitions a={slot_a} b={slot_b}: the slots need two different \
         partitions, neither 0 (the firmware's \"first bootable\") nor 1 (autoboot.txt's)"
    )]
    PiBootPartitions { slot_a: u32, slot_b: u32 },

    #[error("{}: {message}", crate::update_config::UPDATE_CONFIG_PATH)]
    UpdateConfigSyntax { message: String },

    #[error(
        "{}: field `{field}` = {value:?}: {problem}",
        crate::update_config::UPDATE_CONFIG_PATH
    )]
    UpdateConfigField {
        field: &'static str,
        value: String,
        problem: String,
    },

    #[error("service table: {message}")]
    ServiceTableSyntax { message: String },

    #[error("service table: service {service}: field `{field}`: {problem}")]
    ServiceField {
        service: String,
        field: &'static str,
        problem: String,
    },

    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "boot state file {} is corrupt: {reason}; recreate it with FileBootControl::create",
        .path.display()
    )]
    CorruptState { path: PathBuf, reason: String },

    #[error("GPT header at LBA {lba} is damaged: {reason}")]
    GptHeader { lba: u64, reason: &'static str },

    #[error("GPT header at LBA {lba}: checksum mismatch")]
    GptHeaderChecksum { lba: u64 },

    #[error("GPT entry array at LBA {lba}: checksum mismatch")]
    GptEntriesChecksum { lba: u64 },

    #[error("no readable GPT: primary: {primary}; backup: {backup}")]
    GptUnreadable {
        primary: Box<Error>,
        backup: Box<Error>,
    },

    #[error("a disk of {disk_lbas} blocks of {lba_size} bytes cannot hold a GPT")]
    GptGeometry { lba_size: u64, disk_lbas: u64 },

    #[error("cannot read the {what} at byte {offset}: {source}")]
    GptRead {
        what: &'static str,
        offset: u64,
        #[source]
        source: io::Error,
    },

    #[error("cannot write the {what} at byte {offset}: {source}")]
    GptWrite {
        what: &'static str,
        offset: u64,
        #[source]
        source: io::Error,
    },

    #[error("the partition layout does not fit a GPT: {reason}")]
    GptLayout { reason: String },

    #[error("partition {number} is not in the GPT")]
    GptNoSuchPartition { number: u32 },

    #[error("partition {number} is not the last partition on the disk, so it cannot grow")]
    GptNotLast { number: u32 },

    #[error("partition {number} lies outside the usable area of the disk")]
    GptBadPartition { number: u32 },

    #[error("the disk ({disk_lbas} blocks) is smaller than its GPT says ({needed} blocks)")]
    GptDiskTooSmall { disk_lbas: u64, needed: u64 },

    #[error("no partition with PARTUUID {partuuid} after {seconds} s (disks seen: {disks})")]
    PartitionNotFound {
        partuuid: String,
        seconds: u64,
        disks: String,
    },

    #[error("the ESP (PARTUUID {partuuid}) is on none of the disks present ({disks})")]
    EspNotFound { partuuid: String, disks: String },

    #[error("slot {slot}'s root partition ({name}) on /dev/{disk}: {problem}")]
    SlotPartition {
        slot: Slot,
        name: &'static str,
        disk: String,
        problem: &'static str,
    },

    #[error(
        "{}: {message}; the disk helper writes it before the boot_control service starts",
        crate::slot_devices::SLOT_DEVICES_PATH
    )]
    SlotDevices { message: String },

    #[error("{} is unreadable or not a number", .path.display())]
    Sysfs { path: PathBuf },

    #[error("the disk helper's result line '{line}' is invalid: {reason}")]
    BadDataOutcome { line: String, reason: String },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
