//! The names of the firewall's table, sets and chains: the one place they are spelt, for the
//! ruleset PID 1 loads, the elements netd adds, and the status read back.

/// `table inet carapace`: one table for IPv4 and IPv6.
pub const TABLE: &str = "carapace";

/// `ipv4_addr . inet_service`: addresses the DNS stub answered for allowlisted names, with
/// the entry's TCP ports; egress services may connect to them.
pub const SET_ALLOW4: &str = "allow4";
/// `ipv6_addr . inet_service`: as [`SET_ALLOW4`].
pub const SET_ALLOW6: &str = "allow6";
/// `ipv4_addr . inet_proto . inet_service`: netd's own peers (DNS resolvers on udp/tcp 53,
/// NTP servers on udp 123).
pub const SET_NETD4: &str = "netd4";
/// `ipv6_addr . inet_proto . inet_service`: as [`SET_NETD4`].
pub const SET_NETD6: &str = "netd6";
/// Every set, in the order the ruleset declares them.
pub const SETS: [&str; 4] = [SET_ALLOW4, SET_ALLOW6, SET_NETD4, SET_NETD6];

pub const CHAIN_INPUT: &str = "input";
pub const CHAIN_OUTPUT: &str = "output";
pub const CHAIN_FORWARD: &str = "forward";

/// The comments of each chain's final counted drop rule, by which the status finds them.
pub const COMMENT_INPUT_DROP: &str = "input drop";
pub const COMMENT_OUTPUT_DROP: &str = "output drop";
pub const COMMENT_FORWARD_DROP: &str = "forward drop";
