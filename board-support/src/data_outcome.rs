//! The one line the disk helper (`carapace-disk`) prints on stdout for PID 1: what it made of
//! /data. Defined here, writer and parser together, so the two programs cannot drift apart.
//!
//! ```text
//! ready device=/dev/vda4 first_boot=yes clean=no repaired=yes size_mib=3012
//! degraded reason=unrepairable detail=e2fsck -y found no usable superblock
//! ```
//! `detail` is free text and always last; it runs to the end of the line.

use std::fmt;

use crate::error::Error;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataOutcome {
    /// /data holds a checked ext4 on `device`, ready for PID 1 to mount.
    Ready {
        device: String,
        /// Formatted on this boot (the builder's mark or a factory reset).
        first_boot: bool,
        /// Found cleanly unmounted (always yes on a first boot).
        clean: bool,
        /// e2fsck changed something.
        repaired: bool,
        size_mib: u64,
    },
    /// /data cannot be used; the box comes up without the services that need it.
    Degraded {
        reason: DegradedReason,
        detail: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DegradedReason {
    /// No partition with the data PARTUUID on any disk.
    NotFound,
    /// Not marked new, and e2fsck (primary and backup superblocks) could not repair it.
    Unrepairable,
    /// mke2fs failed on a partition marked new (or a factory reset).
    FormatFailed,
    /// The helper failed, crashed, printed no result or ran past its deadline.
    HelperFailed,
    /// PID 1 could not mount what the helper declared ready.
    MountFailed,
    /// /data is encrypted and its key stays sealed on this boot (another TPM, no TPM, or a
    /// changed Secure Boot state).
    Locked,
}

const REASONS: [(DegradedReason, &str); 6] = [
    (DegradedReason::Locked, "locked"),
    (DegradedReason::NotFound, "not-found"),
    (DegradedReason::Unrepairable, "unrepairable"),
    (DegradedReason::FormatFailed, "format-failed"),
    (DegradedReason::HelperFailed, "helper-failed"),
    (DegradedReason::MountFailed, "mount-failed"),
];

impl DegradedReason {
    pub fn as_str(self) -> &'static str {
        REASONS
            .iter()
            .find(|(reason, _)| *reason == self)
            .map_or("helper-failed", |(_, word)| word)
    }
}

impl fmt::Display for DegradedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

impl fmt::Display for DataOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataOutcome::Ready {
                device,
                first_boot,
                clean,
                repaired,
                size_mib,
            } => write!(
                f,
                "ready device={device} first_boot={} clean={} repaired={} size_mib={size_mib}",
                yes_no(*first_boot),
                yes_no(*clean),
                yes_no(*repaired)
            ),
            DataOutcome::Degraded { reason, detail } => {
                let detail = detail.replace(['\n', '\r'], "; ");
                write!(f, "degraded reason={reason} detail={detail}")
            }
        }
    }
}

impl DataOutcome {
    pub fn parse(line: &str) -> Result<DataOutcome, Error> {
        let bad = |reason: &str| Error::BadDataOutcome {
            line: line.to_owned(),
            reason: reason.to_owned(),
        };
        let line = line.trim_end_matches(['\n', '\r']);
        if let Some(rest) = line.strip_prefix("degraded reason=") {
            let (word, detail) = rest.split_once(" detail=").unwrap_or((rest, ""));
            let reason = REASONS
                .iter()
                .find(|(_, w)| *w == word)
                .map(|(reason, _)| *reason)
                .ok_or_else(|| bad("unknown reason"))?;
            return Ok(DataOutcome::Degraded {
                reason,
                detail: detail.to_owned(),
            });
        }
        let rest = line
            .strip_prefix("ready ")
            .ok_or_else(|| bad("neither ready nor degraded"))?;
        let field = |key: &str| {
            rest.split(' ')
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                .ok_or_else(|| bad(&format!("no {key}=")))
        };
        let flag = |key: &str| match field(key)? {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err(bad(&format!("{key} is neither yes nor no"))),
        };
        let device = field("device")?;
        if !device.starts_with("/dev/") {
            return Err(bad("device is not under /dev"));
        }
        Ok(DataOutcome::Ready {
            device: device.to_owned(),
            first_boot: flag("first_boot")?,
            clean: flag("clean")?,
            repaired: flag("repaired")?,
            size_mib: field("size_mib")?
                .parse()
                .map_err(|_| bad("size_mib is not a number"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_reads_back_as_written() {
        let outcomes = [
            DataOutcome::Ready {
                device: "/dev/vda4".into(),
                first_boot: true,
                clean: false,
                repaired: true,
                size_mib: 3012,
            },
            DataOutcome::Degraded {
                reason: DegradedReason::Unrepairable,
                detail: "e2fsck: no superblock\nat all".into(),
            },
        ];
        for outcome in outcomes {
            let line = outcome.to_string();
            assert!(!line.contains('\n'), "{line}");
            let parsed = DataOutcome::parse(&line).expect("parse");
            match (&outcome, &parsed) {
                (DataOutcome::Degraded { .. }, DataOutcome::Degraded { detail, .. }) => {
                    assert_eq!(detail, "e2fsck: no superblock; at all");
                }
                _ => assert_eq!(parsed, outcome),
            }
        }
        for (reason, _) in REASONS {
            let line = format!("degraded reason={reason} detail=x y");
            assert!(DataOutcome::parse(&line).is_ok(), "{line}");
        }
    }

    #[test]
    fn garbage_is_an_error_that_quotes_the_line() {
        for line in [
            "",
            "ready",
            "ready device=/dev/vda4 first_boot=maybe clean=yes repaired=no size_mib=1",
            "ready device=vda4 first_boot=yes clean=yes repaired=no size_mib=1",
            "ready device=/dev/vda4 first_boot=yes clean=yes repaired=no size_mib=x",
            "degraded reason=sad",
        ] {
            let err = DataOutcome::parse(line).expect_err(line).to_string();
            assert!(err.contains(line), "{err}");
        }
    }
}
