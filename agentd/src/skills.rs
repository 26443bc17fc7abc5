//! The skills on the box: the image's (read-only, carapace_skills::SKILLS_DIR) and those the
//! owner installed from the chat (skill_install.rs), kept on /data in the state directory's
//! skills/installed/. One catalog of both goes into the prompt and the tool registry; an
//! install or a removal loads it again and puts its tools back in the registry.
//!
//! ```text
//! /data/agentd/skills/        agentd's (0700 above it)
//!   installed/<name>/         the owner's skills (SKILL.md, skill.toml, skill.wasm, files)
//!   staging/<offer>/          a zip being offered to the owner, unpacked and checked
//! /data/skillhost/            the skill host service's (agentd/skillhost/src/service.rs)
//!   scratch/<name>/           each skill's scratch directory
//!   compiled/                 compiled components, named by their sha256, kept in step
//!                             with the catalog by skill_tending.rs
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use carapace_skills::{Catalog, Origin};
use tokio::sync::watch;

use crate::config::UpdateKeys;
use crate::skill_code::SkillHost;
use crate::tools::Registry;

pub const INSTALLED: &str = "installed";
pub const STAGING: &str = "staging";

pub struct Skills {
    pub catalog: Arc<Catalog>,
    image_dir: PathBuf,
    /// The state directory's skills/.
    dir: PathBuf,
    /// Runs skills' code; None where the image has no skill host.
    pub host: Option<Arc<SkillHost>>,
    /// Each new catalog, for the skill host's compiled code (skill_tending.rs).
    tending: Option<watch::Sender<Arc<Catalog>>>,
    /// What signed skill packs the owner sends are checked with.
    pub update_keys: UpdateKeys,
    /// GitHub's API, where `/install_skill` lists a folder link (skill_fetch.rs).
    pub github_api: carapace_http::Url,
}

impl Skills {
    /// The image's skills in `image_dir` and the owner's under `dir` (the state directory's
    /// skills/); what could not be loaded is said on the console. With a skill host, their
    /// code is compiled in the background (inside a Tokio runtime).
    pub fn load(
        image_dir: &Path,
        dir: &Path,
        host: Option<Arc<SkillHost>>,
        update_keys: UpdateKeys,
        github_api: carapace_http::Url,
    ) -> Skills {
        let mut skills = Skills {
            catalog: Arc::default(),
            image_dir: image_dir.to_path_buf(),
            dir: dir.to_path_buf(),
            host,
            tending: None,
            update_keys,
            github_api,
        };
        skills.catalog = Arc::new(skills.read());
        skills.tending = skills
            .host
            .as_ref()
            .map(|host| crate::skill_tending::start(Arc::clone(host), Arc::clone(&skills.catalog)));
        skills
    }

    pub fn installed_dir(&self) -> PathBuf {
        self.dir.join(INSTALLED)
    }

    pub fn staging_dir(&self) -> PathBuf {
        self.dir.join(STAGING)
    }

    /// The registry's skill tools: `read_skill` and the tools of skills with code.
    pub fn add_tools(&self, tools: &mut Registry) {
        tools.add_skills(&self.catalog, self.host.as_ref());
    }

    /// Loads the catalog again (after an install or a removal) and swaps the registry's skill
    /// tools for the new catalog's.
    pub fn reload(&mut self, tools: &mut Registry) {
        tools.remove_skills(&self.catalog);
        self.catalog = Arc::new(self.read());
        self.add_tools(tools);
        if let Some(tending) = &self.tending {
            tending.send_replace(Arc::clone(&self.catalog));
        }
    }

    fn read(&self) -> Catalog {
        let installed = self.installed_dir();
        let (catalog, problems) = Catalog::load_all(&[
            (&self.image_dir, Origin::Image),
            (&installed, Origin::Owner),
        ]);
        for problem in problems {
            eprintln!("skills: left out: {problem}");
        }
        let names: Vec<&str> = catalog.skills().iter().map(|s| s.name.as_str()).collect();
        if !names.is_empty() {
            println!("skills: {}", names.join(" "));
        }
        let with_code: Vec<&str> = catalog
            .skills()
            .iter()
            .filter(|skill| skill.code.is_some())
            .map(|skill| skill.name.as_str())
            .collect();
        if self.host.is_none() && !with_code.is_empty() {
            eprintln!(
                "skills: the tools of {} are left out: this image has no skill host",
                with_code.join(", ")
            );
        }
        catalog
    }
}
