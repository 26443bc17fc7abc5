//! Keeps the skill host service's compiled code in step with the skills on the box, in the
//! background: whenever the catalog changes (agentd's start, an install, a removal) the service
//! drops compiled code no skill on the box needs (a removed or replaced skill's, and all of it
//! after an update brought another wasmtime) and compiles each skill's component that is not
//! compiled yet, so no first call, and no owner's chat, waits for Cranelift (seconds on a
//! board, minutes under QEMU's TCG). One catalog at a time, always the latest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use carapace_skills::{Catalog, Skill};
use tokio::sync::watch;

use crate::skill_code::SkillHost;

/// A pass that could not reach the service is tried again after 1, 2, 4, ... seconds, this
/// many times (about two minutes in all): at agentd's start the service may not be listening
/// yet, and PID 1 restarts one that crashed.
const RETRIES: u32 = 7;

/// Starts tending for `host` with `catalog`; send each new catalog on the returned sender.
pub fn start(host: Arc<SkillHost>, catalog: Arc<Catalog>) -> watch::Sender<Arc<Catalog>> {
    let (sender, mut catalogs) = watch::channel(catalog);
    tokio::spawn(async move {
        let mut failed = 0;
        loop {
            let catalog = Arc::clone(&catalogs.borrow_and_update());
            failed = match tend(&host, &catalog).await {
                true => 0,
                false => failed + 1,
            };
            if failed > 0 && failed <= RETRIES {
                let wait = Duration::from_secs(1 << (failed - 1));
                println!("skills: trying the skill host service again in {wait:?}");
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    changed = catalogs.changed() => if changed.is_err() { return },
                }
            } else if catalogs.changed().await.is_err() {
                return;
            }
        }
    });
    sender
}

/// One pass; false when the service could not be asked to prune (then nothing was done).
async fn tend(host: &SkillHost, catalog: &Catalog) -> bool {
    let with_code: Vec<Skill> = catalog
        .skills()
        .iter()
        .filter(|skill| skill.code.is_some())
        .cloned()
        .collect();
    let keep = {
        let skills = with_code.clone();
        tokio::task::spawn_blocking(move || skills.iter().map(component_sha256).collect())
            .await
            .unwrap_or_else(|err| Err(err.to_string()))
    };
    // Only with every component known: what is not in the list is removed.
    match keep {
        Ok(keep) => match host.prune(keep).await {
            Ok(0) => {}
            Ok(removed) => println!("skills: removed {removed} compiled files no skill needs"),
            Err(error) => {
                eprintln!("skills: compiled code was not pruned: {error}");
                return false;
            }
        },
        Err(error) => eprintln!("skills: compiled code was not pruned: {error}"),
    }
    for skill in &with_code {
        let started = Instant::now();
        match host.prepare(skill).await {
            Ok(true) => println!(
                "skills: {}'s code was compiled for this box in {:.1} s",
                skill.name,
                started.elapsed().as_secs_f64()
            ),
            Ok(false) => {}
            Err(error) => eprintln!(
                "skills: {}'s code was not compiled ahead of its first call: {error}",
                skill.name
            ),
        }
    }
    true
}

/// The sha256 (hex) of `skill`'s component, as the service names its compiled code.
fn component_sha256(skill: &Skill) -> Result<String, String> {
    let path = skill
        .component()
        .ok_or_else(|| format!("skill {} has no code", skill.name))?;
    let bytes = std::fs::read(&path).map_err(|err| format!("{}: {err}", path.display()))?;
    Ok(carapace_skills::sandbox_protocol::component_digest(&bytes))
}
