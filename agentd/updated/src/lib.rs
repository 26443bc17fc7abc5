//! The box's update service (`updated`): its own uid, the only one that may write the other
//! slot's partition and the boot entries. agentd (the owner's chat, model-chosen tools) asks
//! it over a control socket and reports its health to it; it cannot write a slot itself, so a
//! compromised agent cannot make a slot of its own persist.
//!
//! ```text
//! schedule / owner ─▶ check (keys.json, pointer, manifest) ─▶ index running slot
//!   ─▶ download missing chunks (resume, cap) ─▶ retire other entry ─▶ write root, boot files
//!   ─▶ install trial entry ─▶ reboot (owner or quiet hour) ─▶ trial boot: agentd healthy? ─▶ commit
//!                                                                           └─ no ─▶ rollback, reboot
//! ```

pub mod boot;
pub mod check;
pub mod control;
pub mod error;
pub mod install;
pub mod repository;
pub mod state;
pub mod trial;
pub mod updater;
