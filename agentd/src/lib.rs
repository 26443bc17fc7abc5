//! agentd as a library: the daemon in main.rs is a thin loop over these modules, and the
//! agent's parts to come (the IM channels, the LLM client, tools, memory, pairing, update
//! decisions) become modules here, testable without a box. The local inference engine will be
//! a package and supervised service of its own (own uid and memory limit), not a module.

pub mod agent;
pub mod approvals;
pub mod commands;
pub mod config;
pub mod device;
pub mod error;
pub mod health;
pub mod identity;
pub mod links;
pub mod local_inference;
pub mod logs;
pub mod mcp_servers;
pub mod memory;
pub mod model_packs;
pub mod netd_control;
pub mod notify;
pub mod owner_file;
pub mod pairing;
pub mod reach;
pub mod runtime;
pub mod screen;
pub mod self_test;
pub mod skill_code;
pub mod skill_fetch;
pub mod skill_install;
pub mod skill_secrets;
mod skill_tending;
pub mod skills;
pub mod store;
pub mod store_schema;
pub mod tools;
pub mod turn;
pub mod updates;
