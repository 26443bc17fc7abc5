//! Skills in the SKILL.md format that Anthropic's Agent Skills and OpenClaw share: a folder whose
//! SKILL.md starts with YAML front matter (`name`, `description`, and fields we keep but do not
//! act on: `license`, `metadata`, `allowed-tools`, ...) followed by the instructions, with other
//! files beside it that the instructions refer to.
//!
//! The builder checks each skill a recipe lists ([`check_folder`]) and copies it under
//! [`SKILLS_DIR`]; agentd loads them ([`Catalog`]), puts only names and descriptions in the
//! prompt, and hands the model a skill's instructions or one of its files when it asks. A
//! skill's code runs as a WebAssembly component (built against [`WIT`] by `carapace skill
//! build`) in carapace-skillhost, a process of its own; [`sandbox_protocol`] is what agentd and
//! that process say to each other.

pub mod archive;
mod catalog;
mod declaration;
mod error;
pub mod handoff;
pub mod pack;
pub mod sandbox_protocol;
pub mod secrets;
mod skill_md;

pub use catalog::{Catalog, Origin, Skill, check_folder};
pub use declaration::{
    COMPONENT_FILE, DECLARATION_FILE, Declaration, MAX_COMPONENT_BYTES, ToolDeclaration,
};
pub use error::Error;
pub use sandbox_protocol::{WIT, WIT_WORLD};
pub use skill_md::{SkillMd, parse};

/// Where skills are in the image: one folder per skill, named as the skill.
pub const SKILLS_DIR: &str = "/usr/share/carapace/skills";
/// The skill host in the image (agentd/skillhost), which runs skills' code: a service of its own
/// (uid, cgroup) that agentd asks through [`SKILLHOST_SOCKET`] ([`handoff`]).
pub const SKILLHOST_PROGRAM: &str = "/usr/bin/carapace-skillhost";
/// The skill host service's socket, in its runtime directory.
pub const SKILLHOST_SOCKET: &str = "/run/skillhost/calls.sock";
/// The skill's description and instructions, in each skill folder.
pub const SKILL_FILE: &str = "SKILL.md";
