//! Identifiers derived from the recipe name, so two builds of a recipe write the same bytes
//! and an update for a box keeps its partition UUIDs.

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub fn derived_bytes(recipe_name: &str, purpose: &str) -> [u8; 32] {
    Sha256::digest(format!("carapace/{recipe_name}/{purpose}").as_bytes()).into()
}

/// A version-4-shaped UUID (random-looking, but derived).
pub fn derived_uuid(recipe_name: &str, purpose: &str) -> Uuid {
    let bytes = derived_bytes(recipe_name, purpose);
    let mut b = [0u8; 16];
    b.copy_from_slice(&bytes[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

pub fn derived_u32(recipe_name: &str, purpose: &str) -> u32 {
    let b = derived_bytes(recipe_name, purpose);
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    #[test]
    fn stable_and_distinct() {
        let a = super::derived_uuid("x", "root-a");
        assert_eq!(a, super::derived_uuid("x", "root-a"));
        assert_ne!(a, super::derived_uuid("x", "root-b"));
        assert_ne!(a, super::derived_uuid("y", "root-a"));
        assert_eq!(a.get_version_num(), 4);
    }
}
