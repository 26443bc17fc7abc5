//! Wi-Fi through iwd over the D-Bus system bus: netd registers an agent that hands iwd the
//! passphrase of a configured network (and nothing else), joins the configured networks in
//! the configuration's order, joins again when a station drops, reports each station's state
//! and signal, and runs DHCP on a wireless link once iwd says it is connected. iwd's own
//! network configuration stays off, so addresses and routes come from netd as on ethernet.

pub mod agent;
pub mod choice;
pub mod iwd;
pub mod station;
