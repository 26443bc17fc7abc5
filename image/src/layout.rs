//! The disk layout. Sizes are frozen once boxes ship: the partitions are adjacent, so a slot
//! can never grow into its neighbour. Hence generous defaults:
//! - ESP 256 MiB: two slots of kernel (~12 MiB) + initramfs (~4 MiB) today; room for bigger
//!   kernels, unified kernel images and board firmware later.
//! - root-a/root-b 1 GiB each: today's root is tens of MiB; the ONNX Runtime, espeak-ng and
//!   the perception models that later issues ship in the verified root need a few hundred MiB.
//! - data: the image carries a small, unformatted partition with GPT attribute bit 48 set
//!   (board_support::gpt::ATTR_DATA_NEW, "never formatted"); the disk helper grows it to fill
//!   the disk and makes ext4 on it on first boot, then clears the bit, so one image fits any
//!   disk size and a later boot never formats /data by accident.
//!
//! UEFI boards (x86-64, arm64, Jetson Orin):
//! ```text
//!  byte 0      +---------------------------------------------+
//!              | protective MBR (LBA 0)                      |
//!              | GPT header (LBA 1), 128 entries (LBA 2..33) |
//!  1 MiB       +---------------------------------------------+
//!              | p1  ESP      FAT32  systemd-boot, a/ b/     |  esp_mib
//!              +---------------------------------------------+
//!              | p2  root-a   erofs | dm-verity hash tree    |  root_mib
//!              +---------------------------------------------+
//!              | p3  root-b   (empty until the first update) |  root_mib
//!              +---------------------------------------------+
//!              | p4  data     ext4, made on 1st boot (bit 48) |  data_mib, grown to the disk
//!              +---------------------------------------------+
//!  end         | backup entries (33 LBAs), backup header     |
//!              +---------------------------------------------+
//! ```
//!
//! Raspberry Pi 5: the same GPT (its EEPROM reads GPT; the entries must stay at LBA 2, as
//! here, rpi-eeprom issue 585), with a boot partition per slot in front of the roots:
//! ```text
//!  1 MiB       +---------------------------------------------+
//!              | p1  config   FAT32  autoboot.txt, settings  |  esp_mib (64)
//!              +---------------------------------------------+
//!              | p2  boot-a   FAT32  config.txt, cmdline.txt, |  slot_boot_mib (256)
//!              |              vmlinuz, initrd, device trees  |
//!              +---------------------------------------------+
//!              | p3  boot-b   FAT32  empty until an update   |  slot_boot_mib
//!              +---------------------------------------------+
//!              | p4  root-a, p5 root-b, p6 data: as above    |
//!              +---------------------------------------------+
//! ```
//! p1 never holds a config.txt, or the firmware could boot it. On every board p1 is the
//! partition `carapace.esp=` names: boot control's state and the owner's first-boot settings.

use board_support::Slot;
use board_support::board::BootFlow;

use crate::board::Board;
use crate::error::{Error, Result};

pub const SECTOR: u64 = 512;
pub const MIB: u64 = 1024 * 1024;
/// First partition starts at 1 MiB: aligned for SD cards and SSD erase blocks.
pub const FIRST_PARTITION_OFFSET: u64 = MIB;
/// 128 entries of 128 bytes = 32 sectors, plus the header sector.
pub const GPT_TRAILER_SECTORS: u64 = 33;

pub const ESP_NAME: &str = "ESP";
/// The Pi's first partition (autoboot.txt) and its slots' boot partitions.
pub const PI_CONFIG_NAME: &str = "config";
pub const PI_BOOT_A_NAME: &str = "boot-a";
pub const PI_BOOT_B_NAME: &str = "boot-b";
/// The names the box finds its slots by (board_support::block_devices::slot_partition).
pub const ROOT_A_NAME: &str = Slot::A.partition_name();
pub const ROOT_B_NAME: &str = Slot::B.partition_name();
pub const DATA_NAME: &str = "data";

/// Partition type GUIDs that are the same on every board (UEFI spec; Discoverable Partitions
/// Spec). The root slots' type depends on the architecture: `Architecture::root_partition_type`.
pub const ESP_TYPE: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
pub const LINUX_DATA_TYPE: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";
/// Microsoft basic data: the FAT partitions the Pi firmware reads.
pub const BASIC_DATA_TYPE: &str = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPlan {
    pub name: &'static str,
    pub type_guid: &'static str,
    pub offset: u64,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct DiskPlan {
    /// In disk order; the first is the ESP (or the Pi's config partition).
    pub partitions: Vec<PartitionPlan>,
    pub total_size: u64,
}

impl DiskPlan {
    /// The layout of an image for `board`, whose root slots carry its architecture's type.
    pub fn new(board: &Board, esp_mib: u64, root_mib: u64, data_mib: u64) -> Result<DiskPlan> {
        if esp_mib < 33 {
            return Err(Error::DoesNotFit(format!(
                "esp_mib = {esp_mib} is too small: FAT32 needs at least 33 MiB"
            )));
        }
        // Bounded so the byte arithmetic below cannot overflow: 1 TiB a partition.
        const MAX_MIB: u64 = 1 << 20;
        if esp_mib > MAX_MIB || root_mib > MAX_MIB || data_mib > MAX_MIB {
            return Err(Error::DoesNotFit(format!(
                "esp_mib = {esp_mib}, root_mib = {root_mib}, data_mib = {data_mib}: no \
                 partition may be larger than {MAX_MIB} MiB (1 TiB)"
            )));
        }
        if root_mib < 16 || data_mib < 8 {
            return Err(Error::DoesNotFit(format!(
                "root_mib = {root_mib} / data_mib = {data_mib}: a root slot needs at least \
                 16 MiB and data at least 8 MiB"
            )));
        }
        let root_type = board.architecture.root_partition_type();
        let mut layout = match &board.boot_flow {
            BootFlow::UefiSystemdBoot(_) => vec![(ESP_NAME, ESP_TYPE, esp_mib)],
            BootFlow::PiTryboot(firmware) => vec![
                (PI_CONFIG_NAME, BASIC_DATA_TYPE, esp_mib),
                (PI_BOOT_A_NAME, BASIC_DATA_TYPE, firmware.slot_boot_mib),
                (PI_BOOT_B_NAME, BASIC_DATA_TYPE, firmware.slot_boot_mib),
            ],
        };
        layout.extend([
            (ROOT_A_NAME, root_type, root_mib),
            (ROOT_B_NAME, root_type, root_mib),
            (DATA_NAME, LINUX_DATA_TYPE, data_mib),
        ]);
        let mut offset = FIRST_PARTITION_OFFSET;
        let partitions = layout
            .into_iter()
            .map(|(name, type_guid, mib)| {
                let plan = PartitionPlan {
                    name,
                    type_guid,
                    offset,
                    size: mib * MIB,
                };
                offset += plan.size;
                plan
            })
            .collect();
        // The backup GPT needs its 33 sectors; round the image up to a whole MiB.
        let total_size = (offset + GPT_TRAILER_SECTORS * SECTOR).div_ceil(MIB) * MIB;
        Ok(DiskPlan {
            partitions,
            total_size,
        })
    }

    /// p1: the ESP, or the Pi's config partition; what `carapace.esp=` names.
    pub fn first(&self) -> &PartitionPlan {
        &self.partitions[0]
    }

    pub fn partition(&self, name: &str) -> &PartitionPlan {
        self.partitions
            .iter()
            .find(|p| p.name == name)
            .unwrap_or(&self.partitions[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use board_support::board::{Architecture, X86_64};

    #[test]
    fn partitions_are_adjacent_aligned_and_fit() {
        let plan = DiskPlan::new(&X86_64, 256, 1024, 64).unwrap();
        let mut end = FIRST_PARTITION_OFFSET;
        for p in &plan.partitions {
            assert_eq!(p.offset, end);
            assert_eq!(p.offset % MIB, 0);
            end = p.offset + p.size;
        }
        assert!(plan.total_size >= end + GPT_TRAILER_SECTORS * SECTOR);
        assert_eq!(plan.partition(DATA_NAME).size, 64 * MIB);
    }

    #[test]
    fn too_small_esp_is_refused() {
        assert!(
            DiskPlan::new(&X86_64, 16, 1024, 64)
                .unwrap_err()
                .to_string()
                .contains("esp_mib")
        );
    }

    #[test]
    fn root_slots_carry_the_boards_root_type() {
        let plan = DiskPlan::new(&X86_64, 256, 1024, 64).unwrap();
        let x86_64_root = Architecture::X86_64.root_partition_type();
        assert_eq!(plan.partition(ROOT_A_NAME).type_guid, x86_64_root);
        assert_eq!(plan.partition(ROOT_B_NAME).type_guid, x86_64_root);
        assert_eq!(plan.partition(ESP_NAME).type_guid, ESP_TYPE);
        assert_eq!(plan.partition(DATA_NAME).type_guid, LINUX_DATA_TYPE);
    }

    #[test]
    fn a_pi_has_a_config_partition_and_a_boot_partition_per_slot() {
        let board = &board_support::board::PI5;
        let plan = DiskPlan::new(board, 64, 1024, 64).unwrap();
        let names: Vec<&str> = plan.partitions.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            ["config", "boot-a", "boot-b", "root-a", "root-b", "data"]
        );
        assert_eq!(plan.first().size, 64 * MIB);
        assert_eq!(plan.partition(PI_BOOT_B_NAME).size, 256 * MIB);
        for fat in &plan.partitions[..3] {
            assert_eq!(fat.type_guid, BASIC_DATA_TYPE, "{}", fat.name);
        }
        let mut end = FIRST_PARTITION_OFFSET;
        for p in &plan.partitions {
            assert_eq!(p.offset, end, "{}", p.name);
            end = p.offset + p.size;
        }
    }
}
