//! Host tools the builder runs, with the Debian package to install when one is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

pub fn require(tool: &str, package: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file()
        || Path::new("/sbin").join(tool).is_file();
    if found {
        Ok(())
    } else {
        Err(Error::MissingTool {
            tool: tool.into(),
            package: package.into(),
        })
    }
}

/// Where a tool that `make deps` puts into a venv under out/ may be, in order: the file named
/// by `$env_var`, `workspace/in_workspace`, then `name` on PATH.
pub fn candidates(env_var: &str, workspace_path: PathBuf, name: &str) -> Vec<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    std::env::var_os(env_var)
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace_path])
        .chain(on_path)
        .collect()
}

/// Runs a command to completion; on failure the error carries the tail of its stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| Error::CommandFailed {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::CommandFailed {
        command: shown,
        detail: format!("{}\n{}", out.status, tail.join("\n")),
    })
}
