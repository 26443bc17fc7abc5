//! Boot control for Carapace's A/B slots.
//!
//! The image builder uses it to write the initial boot state, PID 1 to learn which slot it
//! booted, and the update service to install a trial of a freshly written slot, commit it or
//! roll back. It also holds the per-board descriptions (architecture, boot flow, QEMU
//! machine), the GPT reader and writer, partition lookup, the disk helper's result line, the
//! image info, the update settings, which partition holds which slot (for the update
//! service), the notify protocol, the modules.dep format, the unready-boot count, the
//! row type of PID 1's service table with the one check of it that the builder and PID 1
//! both run, and what netd and agentd share: a Wi-Fi network and its rules, and netd's
//! control protocol. `docs/boot-contract.md` is the contract these types implement.

pub mod atomic_file;
pub mod block_devices;
pub mod board;
pub mod boot_control;
pub mod boot_entry;
pub mod box_health;
pub mod cache_dir;
pub mod capability;
pub mod cmdline;
pub mod data_outcome;
pub mod error;
pub mod gpt;
pub mod image_info;
pub mod local_inference;
pub mod modules_dep;
pub mod netd_control;
pub mod notify;
pub mod notify_fd;
pub mod power_key;
#[allow(unsafe_code)]
pub mod restart2;
pub mod secure_boot_db;
pub mod service_entry;
pub mod service_table;
pub mod slot;
pub mod slot_devices;
pub mod trust_state;
pub mod uki;
pub mod unready_boots;
pub mod update_config;
pub mod update_control;
pub mod wifi;

pub use board::Board;
pub use boot_control::{
    BootControl, FileBootControl, PiBootPartition, PiTrialStart, PiTryboot, SystemdBoot,
    TrialReboot,
};
pub use boot_entry::{
    DEFAULT_TRIES, ENTRIES_DIR, ESP_MOUNT_POINT, EntryName, FIRST_GENERATION, entry_generation,
    render_entry, render_loader_conf, render_uki_entry, slot_boot_dir,
};
pub use cmdline::{BootParams, VerityParams};
pub use data_outcome::{DataOutcome, DegradedReason};
pub use error::Error;
pub use image_info::{IMAGE_INFO_PATH, ImageInfo, SERVICE_TABLE_PATH};
pub use service_entry::{
    DATA_RECOVERY_KEY_FILE, NetworkRole, OWNER_SETTINGS_ESP_NAME, OWNER_SETTINGS_FILE, ServiceEntry,
};
pub use service_table::ServiceTable;
pub use slot::Slot;
pub use slot_devices::{SLOT_DEVICES_PATH, SlotDevice, SlotDevices};
pub use update_config::{UPDATE_CONFIG_PATH, UpdateConfig};
