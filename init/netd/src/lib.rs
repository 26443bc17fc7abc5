//! netd, the network service of Carapace. This library holds the parts the `netd` binary glues
//! together; today that is the DNS stub, the box's only resolver and the only writer of the
//! firewall's allow sets.

pub mod dns;
mod error;

pub use error::Error;
