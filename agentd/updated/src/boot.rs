//! The box's boot control, by its board's boot flow: systemd-boot's counting entries on the
//! ESP (UEFI boards), or a Raspberry Pi 5's autoboot.txt with a boot partition per slot, where
//! a trial also needs a particular reboot to start (the firmware's tryboot flag, or a kexec).

use board_support::boot_control::TrialReboot;
use board_support::boot_entry::ESP_MOUNT_POINT;
use board_support::notify::Message;
use board_support::slot_devices::SlotDevices;
use board_support::{BootControl, Error, PiTrialStart, PiTryboot, Slot, SystemdBoot};

#[derive(Clone, Debug)]
pub enum SlotBoot {
    Uefi(SystemdBoot),
    /// Opened at each use from the partitions the disk helper mounted for this boot.
    Pi {
        booted: Slot,
        start: PiTrialStart,
    },
}

impl SlotBoot {
    /// `pi_trial_start` is the image's (image.toml); `None` on a UEFI board.
    pub fn new(booted: Slot, pi_trial_start: Option<PiTrialStart>) -> SlotBoot {
        match pi_trial_start {
            None => SlotBoot::Uefi(SystemdBoot::new(ESP_MOUNT_POINT, booted)),
            Some(start) => SlotBoot::Pi { booted, start },
        }
    }

    fn pi(booted: Slot, start: PiTrialStart) -> Result<PiTryboot, Error> {
        let devices = SlotDevices::load()?;
        let (a, b) = devices
            .boot_partitions()
            .ok_or_else(|| Error::SlotDevices {
                message: "this image boots a partition per slot, but no boot partitions are listed"
                    .into(),
            })?;
        PiTryboot::new(ESP_MOUNT_POINT, a, b, booted, start)
    }

    /// What PID 1 is asked for to start the installed trial: a plain reboot on UEFI (the
    /// entry counts its tries), the tryboot flag or a kexec on a Pi (PID 1 has the disk
    /// helper load what autoboot.txt's `[tryboot]` names; the firmware keeps booting `[all]`).
    pub fn trial_reboot(&self) -> Result<Message, Error> {
        let SlotBoot::Pi { booted, start } = *self else {
            return Ok(Message::Reboot);
        };
        Ok(match SlotBoot::pi(booted, start)?.trial_reboot()? {
            None => Message::Reboot,
            Some(TrialReboot::Tryboot(_)) => Message::RebootTryboot,
            Some(TrialReboot::Kexec { .. }) => Message::RebootKexec,
        })
    }

    /// Runs `call` on the board's boot control.
    fn with<T>(
        &mut self,
        call: impl FnOnce(&mut dyn BootControl) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self {
            SlotBoot::Uefi(boot) => call(boot),
            SlotBoot::Pi { booted, start } => call(&mut SlotBoot::pi(*booted, *start)?),
        }
    }
}

impl BootControl for SlotBoot {
    fn current_slot(&self) -> Result<Slot, Error> {
        match self {
            SlotBoot::Uefi(boot) => boot.current_slot(),
            SlotBoot::Pi { booted, .. } => Ok(*booted),
        }
    }

    fn is_trial(&self) -> Result<bool, Error> {
        match self {
            SlotBoot::Uefi(boot) => boot.is_trial(),
            SlotBoot::Pi { booted, start } => SlotBoot::pi(*booted, *start)?.is_trial(),
        }
    }

    fn arm_trial(&mut self, slot: Slot) -> Result<(), Error> {
        self.with(|boot| boot.arm_trial(slot))
    }

    fn commit(&mut self) -> Result<(), Error> {
        self.with(|boot| boot.commit())
    }

    fn rollback(&mut self) -> Result<(), Error> {
        self.with(|boot| boot.rollback())
    }

    fn retire(&mut self, slot: Slot) -> Result<(), Error> {
        self.with(|boot| boot.retire(slot))
    }

    fn install_trial(
        &mut self,
        slot: Slot,
        software_version: &str,
        kernel_args: &str,
    ) -> Result<(), Error> {
        self.with(|boot| boot.install_trial(slot, software_version, kernel_args))
    }

    fn install_uki_trial(&mut self, slot: Slot, software_version: &str) -> Result<(), Error> {
        self.with(|boot| boot.install_uki_trial(slot, software_version))
    }
}
