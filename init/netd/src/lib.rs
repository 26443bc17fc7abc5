//! netd: the network service PID 1 starts before agentd. It brings the links up (DHCPv4,
//! IPv6 SLAAC, static addresses), keeps the clock (the last known time on /data, then SNTP),
//! runs the box's only resolver (the DNS stub, which alone fills the firewall's allow sets),
//! answers status queries on a Unix socket, and takes Wi-Fi trials from agentd on another.
//! PID 1 loads the firewall's base policy before netd exists; netd only adds and removes set
//! elements, so its crash leaves the policy whole.

pub mod clock;
pub mod control;
pub mod coordinator;
pub mod dhcp;
pub mod dns;
pub mod error;
pub mod firewall;
pub mod link_setup;
pub mod links;
pub mod policy;
pub mod settings;
pub mod slew;
pub mod state;
pub mod status;
pub mod time_sync;
pub mod trial;
pub mod wifi;

pub use error::Error;
