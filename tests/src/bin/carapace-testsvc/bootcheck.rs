//! `bootcheck`: what the update service (`boot_control = true`) is handed before it starts,
//! checked as an unprivileged service with that flag: the ESP mounted at /boot/efi and writable
//! by it, the slot devices file, the inactive slot's device writable, the booted slot's
//! readable only, and the whole disk (GPT, /data) still out of reach.

use std::fs::{self, OpenOptions};
use std::io::Read;

use board_support::{ENTRIES_DIR, ESP_MOUNT_POINT, SLOT_DEVICES_PATH, SlotDevices};

use crate::mountinfo::parse_line;
use crate::rootcheck::errno_name;

pub fn run() {
    esp();
    let text = fs::read_to_string(SLOT_DEVICES_PATH).unwrap_or_default();
    match SlotDevices::parse(&text) {
        Ok(devices) => slots(&devices),
        Err(err) => println!("bootcheck slots error={err}"),
    }
}

fn esp() {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let Some(mount) = mountinfo
        .lines()
        .filter_map(parse_line)
        .rfind(|m| m.mount_point == ESP_MOUNT_POINT)
    else {
        println!("bootcheck esp missing");
        return;
    };
    let dir = format!("{ESP_MOUNT_POINT}/{ENTRIES_DIR}");
    let mut entries: Vec<String> = fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    let generations: Vec<String> = entries
        .iter()
        .map(|name| {
            fs::read_to_string(format!("{dir}/{name}"))
                .ok()
                .and_then(|body| board_support::entry_generation(&body))
                .map_or_else(|| "none".to_owned(), |g| g.to_string())
        })
        .collect();
    let probe = format!("{ESP_MOUNT_POINT}/bootcheck.probe");
    let write = match fs::write(&probe, b"probe") {
        Ok(()) => fs::remove_file(&probe).map_or_else(|e| errno_name(&e), |()| "ok".to_owned()),
        Err(err) => errno_name(&err),
    };
    println!(
        "bootcheck esp fs={} options={} super={} entries={} generations={} write={write}",
        mount.fs_type,
        mount.options,
        mount.super_options,
        entries.join(","),
        generations.join(",")
    );
}

fn slots(devices: &SlotDevices) {
    let (booted, inactive) = (&devices.booted, &devices.inactive);
    let disk = booted.device.trim_end_matches(|c: char| c.is_ascii_digit());
    println!(
        "bootcheck slots booted={}:{} inactive={}:{} inactive_rw={} booted_read={} booted_rw={} \
         disk_read={}",
        booted.slot,
        booted.device,
        inactive.slot,
        inactive.device,
        open_and_read(&inactive.device, true),
        open_and_read(&booted.device, false),
        open_and_read(&booted.device, true),
        open_and_read(disk, false),
    );
}

/// Opens `path` (read-only, or read-write without writing) and reads its first block.
fn open_and_read(path: &str, write: bool) -> String {
    let mut block = [0u8; 4096];
    match OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .and_then(|mut f| f.read_exact(&mut block))
    {
        Ok(()) => "ok".to_owned(),
        Err(err) => errno_name(&err),
    }
}
