//! Rollout waves: a channel pointer offers its version to a fraction of the fleet, and each box
//! decides from its own identity whether it is in that fraction, with nobody keeping a list.
//! The draw is SHA-256(identity || version): fixed for a box and a version, so raising the
//! fraction only ever adds boxes, and a new version draws a new wave, so the same boxes are
//! not always first.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The pointer carries the fraction in thousandths: exact, with no float in the signed file.
pub const WHOLE_FLEET: u16 = 1000;

/// Whether the box whose identity (its ed25519 public key) is `identity` takes `version` when
/// the pointer offers it to `rollout_permille` thousandths of the fleet.
pub fn in_wave(identity: &[u8], version: &str, rollout_permille: u16) -> bool {
    let digest = Sha256::new()
        .chain_update(identity)
        .chain_update(version.as_bytes())
        .finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    // 2^64 is so much larger than 1000 that the remainder's bias is far below a per-mille.
    let draw = u64::from_be_bytes(head) % u64::from(WHOLE_FLEET);
    draw < u64::from(rollout_permille)
}

/// `--rollout 0.25` → 250 thousandths (rounded to the nearest).
pub fn permille_from_fraction(text: &str) -> Result<u16> {
    let invalid = || Error::InvalidRollout {
        value: text.to_owned(),
    };
    let fraction: f64 = text.trim().parse().map_err(|_| invalid())?;
    if !fraction.is_finite() || !(0.0..=1.0).contains(&fraction) {
        return Err(invalid());
    }
    Ok((fraction * f64::from(WHOLE_FLEET)).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identities(n: u32) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| Sha256::digest(i.to_be_bytes()).into())
            .collect()
    }

    #[test]
    fn the_wave_is_about_the_fraction_and_grows_monotonically() {
        let fleet = identities(10_000);
        let mut previous: Vec<bool> = vec![false; fleet.len()];
        for permille in [0u16, 100, 250, 500, 900, 1000] {
            let wave: Vec<bool> = fleet
                .iter()
                .map(|id| in_wave(id, "0.2.0", permille))
                .collect();
            let count = wave.iter().filter(|&&x| x).count();
            let expected = fleet.len() * permille as usize / 1000;
            assert!(
                count.abs_diff(expected) <= fleet.len() / 50,
                "{permille}‰: {count} of {}",
                fleet.len()
            );
            for (was, is) in previous.iter().zip(&wave) {
                assert!(!was || *is, "a box left the wave when it grew");
            }
            previous = wave;
        }
        assert!(previous.iter().all(|&x| x), "1000‰ is every box");
    }

    #[test]
    fn each_version_draws_its_own_wave() {
        let fleet = identities(2_000);
        let first: Vec<bool> = fleet.iter().map(|id| in_wave(id, "0.2.0", 100)).collect();
        let second: Vec<bool> = fleet.iter().map(|id| in_wave(id, "0.3.0", 100)).collect();
        let both = first
            .iter()
            .zip(&second)
            .filter(|(a, b)| **a && **b)
            .count();
        // Independent draws: about 1 % in both, not the 10 % of the same wave twice.
        assert!(both < 60, "{both}");
        assert_eq!(
            first,
            fleet
                .iter()
                .map(|id| in_wave(id, "0.2.0", 100))
                .collect::<Vec<_>>(),
            "the draw is deterministic"
        );
    }

    #[test]
    fn fractions_are_read_and_checked() {
        assert_eq!(permille_from_fraction("0.25").unwrap(), 250);
        assert_eq!(permille_from_fraction("1").unwrap(), 1000);
        assert_eq!(permille_from_fraction("0").unwrap(), 0);
        assert_eq!(permille_from_fraction("0.0004").unwrap(), 0);
        assert_eq!(permille_from_fraction("0.0125").unwrap(), 13);
        for bad in ["1.5", "-0.1", "NaN", "inf", "25%", ""] {
            let err = permille_from_fraction(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidRollout { .. }), "{bad}");
        }
    }
}
