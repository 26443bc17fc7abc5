//! Builds the workspace binaries that go into the image, with paths remapped so the bytes do
//! not depend on where the checkout lives. Statically linked (crt-static) by default, so PID 1
//! needs no loader in the initramfs and a service needs nothing from the root; a binary the
//! recipe links dynamically (the inference engine: a static glibc binary cannot dlopen ONNX
//! Runtime) is built apart, against the glibc the image then carries. Separate target
//! directories keep host builds, and each linkage, from rebuilding the others.

use std::path::{Path, PathBuf};
use std::process::Command;

use board_support::board::Architecture;

use crate::error::{Error, Result};
use crate::recipe::Linkage;

pub struct BinarySpec {
    pub package: String,
    pub bin: String,
    pub linkage: Linkage,
}

/// Builds every binary of `specs`, one cargo run per linkage; their paths, in `specs`' order.
pub fn build(
    workspace: &Path,
    architecture: Architecture,
    specs: &[BinarySpec],
) -> Result<Vec<PathBuf>> {
    let mut paths = vec![PathBuf::new(); specs.len()];
    for linkage in [Linkage::Static, Linkage::Dynamic] {
        let chosen: Vec<usize> = (0..specs.len())
            .filter(|&i| specs[i].linkage == linkage)
            .collect();
        if chosen.is_empty() {
            continue;
        }
        let chosen_specs: Vec<&BinarySpec> = chosen.iter().map(|&i| &specs[i]).collect();
        let built = cargo_build(workspace, architecture, linkage, &chosen_specs)?;
        for (i, path) in chosen.into_iter().zip(built) {
            paths[i] = path;
        }
    }
    Ok(paths)
}

fn cargo_build(
    workspace: &Path,
    architecture: Architecture,
    linkage: Linkage,
    specs: &[&BinarySpec],
) -> Result<Vec<PathBuf>> {
    let rust_target = architecture.rust_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // A static binary's getrandom crate takes glibc's getrandom(), linked in: by default it
    // looks the function up with dlsym, which finds nothing in a static binary, and falls back
    // to opening /dev/urandom, which the skill host's Landlock layer refuses (a skill's first
    // random number aborted the call; found by the agent test in QEMU).
    let (target_dir, linkage_flags, described) = match linkage {
        Linkage::Static => (
            workspace.join("target/image"),
            "-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"",
            "static",
        ),
        Linkage::Dynamic => (
            workspace.join("target/image-dynamic"),
            "-C target-feature=-crt-static",
            "dynamically linked",
        ),
    };
    let home = std::env::var("CARGO_HOME")
        .ok()
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.cargo")))
        .unwrap_or_default();
    let rustflags = format!(
        "{linkage_flags} --remap-path-prefix={}=/carapace --remap-path-prefix={home}=/cargo",
        workspace.display()
    );
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--target", rust_target])
        .env("RUSTFLAGS", rustflags)
        .env("CARGO_TARGET_DIR", &target_dir)
        // The image's bytes are rustc's alone: make test lints by wrapping rustc with
        // clippy-driver for the workspace's crates (see the Makefile), and that wrapper, or any
        // other, stays out of the image's build.
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS");
    // What cargo sets for a program it runs (`cargo run`, `cargo bench`: the benches build
    // images in-process). ring's build script declares it depends on CARGO_PKG_* from the
    // environment, so with them set ring, rustls and everything above them rebuilt on every
    // switch between a plain `carapace build` and one started by cargo. Cargo gives each
    // build script its own values anyway; the bytes are the same either way.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name.as_ref())
        {
            cmd.env_remove(name.as_ref());
        }
    }
    if architecture.rust_arch() != std::env::consts::ARCH {
        // A cross build: Debian's cross gcc links, against its static glibc (libc6-dev-<arch>-
        // cross), and the cc crate finds the same gcc by the target's name.
        let (gcc, package) = architecture.cross_gcc();
        crate::tools::require(gcc, package)?;
        let variable = format!(
            "CARGO_TARGET_{}_LINKER",
            rust_target.to_uppercase().replace('-', "_")
        );
        cmd.env(variable, gcc);
    }
    for spec in specs {
        cmd.args(["-p", &spec.package, "--bin", &spec.bin]);
    }
    eprintln!(
        "carapace: building {} ({described}, {rust_target})",
        specs
            .iter()
            .map(|s| s.bin.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let status = cmd.status().map_err(|e| Error::CommandFailed {
        command: cargo.clone(),
        detail: e.to_string(),
    })?;
    if !status.success() {
        return Err(Error::CommandFailed {
            command: format!("{cargo} build"),
            detail: status.to_string(),
        });
    }
    Ok(specs
        .iter()
        .map(|s| target_dir.join(rust_target).join("release").join(&s.bin))
        .collect())
}

/// The commit the binaries were built from, "+dirty" when the tree has changes.
pub fn git_revision(workspace: &Path) -> String {
    let run = |args: &[&str]| {
        Command::new("git")
            .current_dir(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = run(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{rev}+dirty") } else { rev }
}
