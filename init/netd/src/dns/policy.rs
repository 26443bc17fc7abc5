//! The two things the stub asks of netd: which names may be resolved (and for which ports their
//! addresses open), and how to open the firewall. netd implements both over its allowlist and
//! nftables; the stub knows neither.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::rr::Name;

/// Which names may be resolved, and for which TCP ports their addresses are opened.
pub trait NamePolicy: Send + Sync + 'static {
    /// `None` refuses the name. `name` is lowercase ASCII (IDNs in their `xn--` form), labels of
    /// letters, digits, `-` and `_` only, joined by dots, without the trailing dot.
    fn ports(&self, name: &str) -> Option<Vec<u16>>;
}

/// Opens the firewall (the nftables allow sets) for addresses.
pub trait AllowSink: Send + Sync + 'static {
    /// Allows each `(address, port)` for `timeout`. The stub sends its answer only after this
    /// returns `Ok`: a client must never hold an address the firewall would drop.
    fn allow(
        &self,
        entries: Vec<(IpAddr, u16)>,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The form of `name` the policy sees, or `None` when the name cannot be judged by text.
///
/// A DNS label may hold any byte, dots included: the label `evil.allowed` under `test` prints as
/// `evil\.allowed.test`, which a suffix rule for `allowed.test` would wrongly accept although the
/// name lives in `test`. Only letters, digits, `-` and `_` pass, so the dotted text and the
/// labels always agree. The root name has nothing for a policy to match and is refused too.
pub(crate) fn policy_name(name: &Name) -> Option<String> {
    if name.is_root() {
        return None;
    }
    let mut text = String::with_capacity(name.len());
    for label in name.iter() {
        let plain = label
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-' || *byte == b'_');
        if !plain {
            return None;
        }
        if !text.is_empty() {
            text.push('.');
        }
        text.extend(
            label
                .iter()
                .map(|byte| char::from(byte.to_ascii_lowercase())),
        );
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of_labels(labels: &[&[u8]]) -> Name {
        match Name::from_labels(labels.iter().copied()) {
            Ok(name) => name,
            Err(error) => panic!("test labels {labels:?}: {error}"),
        }
    }

    #[test]
    fn names_reach_the_policy_lowercase_without_the_trailing_dot() {
        let name = name_of_labels(&[b"WWW", b"Allowed-1", b"_tcp", b"Test"]);
        assert_eq!(
            policy_name(&name).as_deref(),
            Some("www.allowed-1._tcp.test")
        );
    }

    #[test]
    fn a_label_holding_a_dot_is_refused_so_it_cannot_pose_as_a_subdomain() {
        let name = name_of_labels(&[b"evil.allowed", b"test"]);
        assert_eq!(policy_name(&name), None);
    }

    #[test]
    fn labels_with_spaces_stars_or_binary_bytes_are_refused() {
        for label in [&b"a b"[..], b"*", b"\x00", b"caf\xc3\xa9"] {
            let name = name_of_labels(&[label, b"test"]);
            assert_eq!(policy_name(&name), None, "label {label:?}");
        }
    }

    #[test]
    fn the_root_name_is_refused() {
        assert_eq!(policy_name(&Name::root()), None);
    }
}
