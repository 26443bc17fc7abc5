//! `carapace-disk --data <PARTUUID> --esp <PARTUUID>`: the one-shot disk helper PID 1 runs in
//! stage 2, before any service, with a deadline. Everything slow or risky about /data lives
//! here rather than in PID 1: growing the partition, e2fsck, mke2fs, resize2fs, the factory
//! reset. It prints exactly one line on stdout, a `board_support::DataOutcome`; progress goes
//! to stderr, which PID 1 puts on the console. PID 1 mounts /data itself.
//!
//! The rule it keeps: /data is formatted only while the builder's "new" mark is on the
//! partition (GPT attribute bit 48) or the owner put `carapace-factory-reset` on the ESP.
//! Anything else without a usable ext4 is repaired, never formatted.
//!
//! Before /data it says what the chain of trust verified for this boot (trust.rs). Where the
//! box has a TPM 2.0, a /data it formats is LUKS2 with a key sealed to the TPM against the
//! Secure Boot state (data_key.rs, cryptsetup.rs); a plain /data from before stays plain and
//! says so. Both facts go to /run/carapace/trust for `/status`.
//!
//! Three smaller jobs PID 1 runs it for, later in the boot: moving the owner settings off the
//! ESP and a new /data's recovery key out of /run (owner_settings.rs), preparing boot control for the update service (boot_control.rs),
//! and, at a shutdown that starts a Raspberry Pi's trial with kexec, loading it
//! (kexec_trial.rs).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

/// A progress line on stderr (PID 1 prefixes it with `carapace-disk: `).
macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!($($arg)*)
    };
}

#[allow(unsafe_code)] // the BLKPG ioctl
mod blkpg;
mod boot_control;
mod cryptsetup;
mod data_key;
mod e2fsprogs;
mod error;
mod ext4;
mod factory_reset;
mod grow;
mod kexec_trial;
mod new_mark;
mod owner_settings;
mod prepare;
mod recovery_key;
mod table_write;
mod trust;

use std::io::Write;

const USAGE: &str = "usage: carapace-disk --data <PARTUUID> --esp <PARTUUID>
       carapace-disk --move-owner-settings --esp <PARTUUID> --to <dir> --owner <uid>:<gid>
       carapace-disk --boot-control --esp <PARTUUID> --slot <a|b> --owner <uid>:<gid>";

pub struct Args {
    pub data_partuuid: String,
    pub esp_partuuid: String,
}

fn parse_args(args: &[String]) -> Option<Args> {
    match args {
        [data_flag, data, esp_flag, esp] if data_flag == "--data" && esp_flag == "--esp" => {
            Some(Args {
                data_partuuid: data.clone(),
                esp_partuuid: esp.clone(),
            })
        }
        _ => None,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(move_args) = owner_settings::parse_args(&args) {
        let mut failed = false;
        match owner_settings::move_recovery_key(&move_args) {
            Ok(true) => eprintln!(
                "/data's recovery key handed to {}",
                move_args.to_dir.display()
            ),
            Ok(false) => {}
            Err(error) => {
                eprintln!("/data's recovery key not handed over: {error}");
                failed = true;
            }
        }
        match owner_settings::move_to_state_dir(&move_args) {
            Ok(true) => eprintln!(
                "owner settings moved from the ESP to {}",
                move_args.to_dir.display()
            ),
            Ok(false) => {}
            Err(error) => {
                eprintln!("owner settings not moved: {error}");
                failed = true;
            }
        }
        if failed {
            std::process::exit(1);
        }
        return;
    }
    if args == [kexec_trial::FLAG] {
        match kexec_trial::load() {
            Ok(loaded) => eprintln!("{loaded}"),
            Err(error) => {
                eprintln!("{error}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Some(control_args) = boot_control::parse_args(&args) {
        match boot_control::prepare(&control_args) {
            Ok(devices) => eprintln!("{}", boot_control::summary(&devices, &control_args)),
            Err(error) => {
                eprintln!("boot control failed: {error}");
                std::process::exit(1);
            }
        }
        return;
    }
    let Some(args) = parse_args(&args) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    // What verified this boot, before /data (whose key depends on it) is opened.
    let verified = trust::verified();
    progress!("{verified}");
    let prepared = prepare::run(&args);
    trust::record(verified, prepared.tpm, prepared.protection);
    let outcome = prepared.outcome;
    let mut stdout = std::io::stdout().lock();
    // Nothing to do if PID 1 is gone; it then treats /data as degraded anyway.
    let _ = writeln!(stdout, "{outcome}").and_then(|()| stdout.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_exactly_data_then_esp() {
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let args = parse_args(&words("--data d --esp e")).expect("args");
        assert_eq!(
            (args.data_partuuid.as_str(), args.esp_partuuid.as_str()),
            ("d", "e")
        );
        assert!(parse_args(&words("--esp e --data d")).is_none());
        assert!(parse_args(&words("--data d")).is_none());
    }
}
