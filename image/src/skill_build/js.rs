//! JavaScript skills: scripts/tools.js, an ES module exporting one function per tool that
//! skill.toml declares (each takes the model's arguments object and returns a string or any
//! JSON-able value, or a promise of one), becomes a component with Bytecode Alliance's
//! componentize-js. It splices the skill world's bindings into StarlingMonkey (SpiderMonkey
//! built for WASI 0.2), runs the module's top level and snapshots the engine with Wizer, so a
//! call starts with the code already parsed. Its imports resolve only inside one folder, so
//! the build works on a copy of scripts/ with our glue beside it:
//!
//! ```text
//! src/carapace_skill_app.js   the entry: exports the skill world's tool interface
//! src/scripts/...             the skill's scripts/ folder, copied
//! src/scripts/carapace.js     HTTP, `import { fetch } from "./carapace.js"` in tools.js
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use carapace_skills::{COMPONENT_FILE, Declaration, WIT_WORLD};

use super::Job;
use crate::error::{Error, Result};

/// componentize-js, pinned: `make deps` installs this version, with every package's integrity
/// hash from scripts/node-skills/package-lock.json, into out/node-skills.
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
/// The ES module holding a skill's tools, in its scripts/ folder.
pub const JS_TOOLS: &str = "scripts/tools.js";
/// Where `make deps` installs componentize-js, in the workspace.
const INSTALLED: &str = "out/node-skills/node_modules/@bytecodealliance/componentize-js";
/// Its dependencies (oxc-parser, rolldown) want Node.js 20 or newer.
const NODE_MAJOR_MIN: u32 = 20;

/// The entry module; `__DECLARED_TOOLS__` becomes the declared tools' names.
const APP_MODULE: &str = include_str!("carapace_skill_app.js");
/// The HTTP module, as scripts/carapace.js.
const HTTP_MODULE: &str = include_str!("carapace.js");
const HTTP_MODULE_FILE: &str = "carapace.js";
/// The node script that calls componentize-js's componentize().
const DRIVER: &str = include_str!("componentize.mjs");

/// scripts/ and our glue into `job.work`/skill.wasm.
pub(super) fn build(job: &Job) -> Result<()> {
    let componentize = componentize_js(job.workspace)?;
    let node = node()?;
    let scripts = job.dir.join("scripts");
    if scripts.join(HTTP_MODULE_FILE).exists() {
        return Err(Error::Image(format!(
            "{}: scripts/{HTTP_MODULE_FILE} is the name of the HTTP module `carapace skill build` \
             provides; rename your module",
            job.dir.display()
        )));
    }
    let src = job.work.join("src");
    copy_tree(&scripts, &src.join("scripts"))?;
    write(&src.join("scripts").join(HTTP_MODULE_FILE), HTTP_MODULE)?;
    let entry = src.join("carapace_skill_app.js");
    write(&entry, &app_module(job.declaration))?;
    let driver = job.work.join("componentize.mjs");
    write(&driver, DRIVER)?;

    eprintln!(
        "carapace: building skill {} with componentize-js {COMPONENTIZE_JS_VERSION}",
        job.skill
    );
    // In src/, componentize-js gives Wizer src/ as the guest's root, so messages name the
    // skill's files as scripts/tools.js. Its own temporary files go to our folder (TMPDIR),
    // which is removed even when node is killed.
    let output = Command::new(&node)
        .arg(&driver)
        .arg(&componentize)
        .arg(&entry)
        .arg(job.wit)
        .arg(WIT_WORLD)
        .arg(job.work.join(COMPONENT_FILE))
        .current_dir(&src)
        .env("TMPDIR", job.work)
        .output()
        .map_err(|e| Error::Image(format!("{}: {e}", node.display())))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.trim().lines().collect();
    Err(Error::Image(format!(
        "{}: componentize-js {COMPONENTIZE_JS_VERSION} could not build the skill ({}):\n{}",
        job.dir.display(),
        output.status,
        lines[lines.len().saturating_sub(40)..].join("\n")
    )))
}

/// componentize-js's package folder: $CARAPACE_COMPONENTIZE_JS or out/node-skills (make deps);
/// it must be the pinned version.
fn componentize_js(workspace: &Path) -> Result<PathBuf> {
    let (package, from_env) = match std::env::var_os("CARAPACE_COMPONENTIZE_JS") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (workspace.join(INSTALLED), false),
    };
    let manifest = package.join("package.json");
    let text = match std::fs::read_to_string(&manifest) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !from_env => {
            return Err(Error::Image(format!(
                "componentize-js {COMPONENTIZE_JS_VERSION} is not installed (no {}): run `make \
                 deps` (it installs it into out/node-skills)",
                manifest.display()
            )));
        }
        Err(err) => {
            return Err(Error::Image(format!(
                "{}: {err}; CARAPACE_COMPONENTIZE_JS names componentize-js's package folder (the \
                 one with its package.json), or leave it unset and run `make deps`",
                manifest.display()
            )));
        }
    };
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|json| {
            Some((
                json["name"].as_str()?.to_owned(),
                json["version"].as_str()?.to_owned(),
            ))
        });
    match version {
        Some((name, version))
            if name == "@bytecodealliance/componentize-js"
                && version == COMPONENTIZE_JS_VERSION =>
        {
            Ok(package)
        }
        Some((name, version)) => Err(Error::Image(format!(
            "{} is {name} {version}, not @bytecodealliance/componentize-js \
             {COMPONENTIZE_JS_VERSION}: run `make deps` (it installs the pinned one into \
             out/node-skills)",
            package.display()
        ))),
        None => Err(Error::Image(format!(
            "{}: not a package.json with a name and a version; run `make deps` to install \
             componentize-js {COMPONENTIZE_JS_VERSION} again",
            manifest.display()
        ))),
    }
}

/// Node.js from PATH, new enough for componentize-js.
fn node() -> Result<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("node"))
            .find(|candidate| candidate.is_file())
    });
    let Some(node) = found else {
        return Err(Error::Image(format!(
            "node not found: JavaScript skills are built with componentize-js, which runs on \
             Node.js {NODE_MAJOR_MIN} or newer; install it (nodejs.org), then run `make deps`"
        )));
    };
    let version = crate::tools::output(Command::new(&node).arg("--version"))?;
    let major = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok());
    match major {
        Some(major) if major >= NODE_MAJOR_MIN => Ok(node),
        _ => Err(Error::Image(format!(
            "{} is Node.js {}; componentize-js needs {NODE_MAJOR_MIN} or newer: install a newer \
             one (nodejs.org)",
            node.display(),
            version.trim()
        ))),
    }
}

/// The entry module with the declared tools' names (as JSON, a JavaScript array literal).
fn app_module(declaration: &Declaration) -> String {
    let names: Vec<&str> = declaration
        .tools
        .iter()
        .map(|tool| tool.name.as_str())
        .collect();
    let names = serde_json::to_string(&names).expect("a list of strings is JSON");
    APP_MODULE.replace("__DECLARED_TOOLS__", &names)
}

/// Copies the skill's scripts/ folder (files and folders; links are followed).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let failed = |path: &Path, e: std::io::Error| Error::Image(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(to).map_err(|e| failed(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| failed(from, e))? {
        let entry = entry.map_err(|e| failed(from, e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        if std::fs::metadata(&source)
            .map_err(|e| failed(&source, e))?
            .is_dir()
        {
            copy_tree(&source, &target)?;
        } else {
            std::fs::copy(&source, &target).map_err(|e| failed(&source, e))?;
        }
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::Image(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_module_names_the_declared_tools() {
        let declaration = Declaration::parse(
            "[[tool]]\nname = \"title_case\"\ndescription = \"d\"\n\n[[tool]]\nname = \"table\"\ndescription = \"d\"\n",
        )
        .unwrap();
        let module = app_module(&declaration);
        assert!(module.contains("const DECLARED = [\"title_case\",\"table\"];"));
        assert!(!module.contains("__DECLARED_TOOLS__"));
    }
}
