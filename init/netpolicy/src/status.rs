//! What the firewall has done so far, read from `nft -j list table inet carapace`: how much
//! each chain's final rule dropped, and how many elements each set holds. For netd's status
//! report and the tests; the listing is parsed loosely (only the fields read here), so newer
//! nft versions that add fields still parse.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::Error;
use crate::names::{COMMENT_FORWARD_DROP, COMMENT_INPUT_DROP, COMMENT_OUTPUT_DROP, SETS, TABLE};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DropCounter {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FirewallStatus {
    pub input_drop: DropCounter,
    pub output_drop: DropCounter,
    pub forward_drop: DropCounter,
    /// Set name → number of elements (expired ones are not listed by nft).
    pub set_elements: BTreeMap<String, usize>,
}

/// Reads the JSON that `nft -j list table inet carapace` prints.
pub fn status(list_json: &str) -> Result<FirewallStatus, Error> {
    let root: Value =
        serde_json::from_str(list_json).map_err(|source| Error::StatusJson { source })?;
    let objects = root
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| missing("top-level \"nftables\" array"))?;
    let ours = |object: &Value| object.get("table").and_then(Value::as_str) == Some(TABLE);
    let mut drops: BTreeMap<&str, DropCounter> = BTreeMap::new();
    let mut set_elements = BTreeMap::new();
    for object in objects {
        if let Some(set) = object.get("set").filter(|s| ours(s)) {
            if let Some(name) = set.get("name").and_then(Value::as_str) {
                let count = set
                    .get("elem")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                set_elements.insert(name.to_owned(), count);
            }
        } else if let Some(rule) = object.get("rule").filter(|r| ours(r))
            && let Some(comment) = rule.get("comment").and_then(Value::as_str)
            && let Some(counter) = rule_counter(rule)
        {
            drops.insert(
                match comment {
                    COMMENT_INPUT_DROP => COMMENT_INPUT_DROP,
                    COMMENT_OUTPUT_DROP => COMMENT_OUTPUT_DROP,
                    COMMENT_FORWARD_DROP => COMMENT_FORWARD_DROP,
                    _ => continue,
                },
                counter,
            );
        }
    }
    for set in SETS {
        if !set_elements.contains_key(set) {
            return Err(missing(&format!("set {set}")));
        }
    }
    let drop_counter = |comment: &str| {
        drops
            .get(comment)
            .copied()
            .ok_or_else(|| missing(&format!("counted rule \"{comment}\"")))
    };
    Ok(FirewallStatus {
        input_drop: drop_counter(COMMENT_INPUT_DROP)?,
        output_drop: drop_counter(COMMENT_OUTPUT_DROP)?,
        forward_drop: drop_counter(COMMENT_FORWARD_DROP)?,
        set_elements,
    })
}

/// The anonymous counter statement of a listed rule: `{"counter": {"packets": n, "bytes": m}}`.
fn rule_counter(rule: &Value) -> Option<DropCounter> {
    rule.get("expr")?
        .as_array()?
        .iter()
        .find_map(|statement| statement.get("counter"))
        .and_then(|counter| {
            Some(DropCounter {
                packets: counter.get("packets")?.as_u64()?,
                bytes: counter.get("bytes")?.as_u64()?,
            })
        })
}

fn missing(what: &str) -> Error {
    Error::StatusMissing {
        what: what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from nft 1.0.6 (Debian bookworm) after loading the base ruleset, adding
    /// allow and netd elements, deleting one, and one dropped packet each way.
    const LISTED: &str = include_str!("../testdata/nft-1.0.6-list-table.json");

    #[test]
    fn a_real_listing_gives_the_drop_counters_and_set_sizes() {
        let status = status(LISTED).unwrap();
        assert_eq!(
            status.input_drop,
            DropCounter {
                packets: 1,
                bytes: 31
            }
        );
        assert_eq!(
            status.output_drop,
            DropCounter {
                packets: 1,
                bytes: 31
            }
        );
        assert_eq!(status.forward_drop, DropCounter::default());
        let sizes: Vec<(&str, usize)> = status
            .set_elements
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            sizes,
            [("allow4", 1), ("allow6", 1), ("netd4", 0), ("netd6", 1)]
        );
    }

    #[test]
    fn a_listing_without_our_table_says_what_is_missing() {
        let err = status(r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}]}"#).unwrap_err();
        assert!(err.to_string().contains("set allow4"), "{err}");
        let without_drop = LISTED.replace("\"input drop\"", "\"something else\"");
        let err = status(&without_drop).unwrap_err();
        assert!(err.to_string().contains("\"input drop\""), "{err}");
        let err = status("nft: command not found").unwrap_err();
        assert!(matches!(err, Error::StatusJson { .. }), "{err}");
    }
}
