//! Builds the workspace binaries that go into the image, with paths remapped so the bytes do
//! not depend on where the checkout lives. Statically linked (crt-static) by default, so PID 1
//! needs no loader in the initramfs and a service needs nothing from the root; a binary the
//! recipe links dynamically (the inference engine: a static glibc binary cannot dlopen ONNX
//! Runtime) is built apart, against the glibc the image then carries. Separate target
//! directories keep host builds, and each kind of run (`Run`), from rebuilding the others.

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

/// Every static binary of ours an image can carry. They are always built together, whichever
/// of them a recipe takes, so Cargo unifies their dependencies' features the same way for every
/// recipe: built per recipe's selection, tokio, rustls and the crates above them were compiled
/// again for each different set (two to three minutes of make test each time, and another copy
/// in target/image each time, until CI's disk ran out).
/// The update service is one of them: built apart for the images with `[update]`, its
/// dependencies were compiled a second time (two minutes of a cold make test).
const STATIC_SET: [(&str, &str); 7] = [
    ("carapace-init", "init"),
    ("carapace-agentd", "agentd"),
    ("carapace-disk", "carapace-disk"),
    ("carapace-logger", "carapace-logger"),
    ("carapace-netd", "netd"),
    ("carapace-skillhost", "carapace-skillhost"),
    ("carapace-updated", "updated"),
];

/// The cargo runs of an image's build: which binaries each builds, into which target folder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    /// STATIC_SET, whole, into target/image.
    Image,
    /// Any other static binary (the test images' test service), apart so that its
    /// dependencies' features never reach the image's own binaries: target/image-extra.
    Extra,
    /// Dynamically linked binaries (the inference engine), against the image's glibc:
    /// target/image-dynamic.
    Dynamic,
}

fn run_of(spec: &BinarySpec) -> Run {
    match spec.linkage {
        Linkage::Dynamic => Run::Dynamic,
        Linkage::Static if STATIC_SET.contains(&(spec.package.as_str(), spec.bin.as_str())) => {
            Run::Image
        }
        Linkage::Static => Run::Extra,
    }
}

/// Builds every binary of `specs`, one cargo run per kind of run; their paths, in `specs`' order.
pub fn build(
    workspace: &Path,
    architecture: Architecture,
    specs: &[BinarySpec],
) -> Result<Vec<PathBuf>> {
    let mut paths = vec![PathBuf::new(); specs.len()];
    for run in [Run::Image, Run::Extra, Run::Dynamic] {
        let chosen: Vec<usize> = (0..specs.len())
            .filter(|&i| run_of(&specs[i]) == run)
            .collect();
        if chosen.is_empty() {
            continue;
        }
        let built: Vec<(String, String)> = match run {
            Run::Image => STATIC_SET
                .iter()
                .map(|&(package, bin)| (package.to_string(), bin.to_string()))
                .collect(),
            Run::Extra | Run::Dynamic => chosen
                .iter()
                .map(|&i| (specs[i].package.clone(), specs[i].bin.clone()))
                .collect(),
        };
        let folder = cargo_build(workspace, architecture, run, &built)?;
        for i in chosen {
            paths[i] = folder.join(&specs[i].bin);
        }
    }
    Ok(paths)
}

fn cargo_build(
    workspace: &Path,
    architecture: Architecture,
    run: Run,
    binaries: &[(String, String)],
) -> Result<PathBuf> {
    let rust_target = architecture.rust_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // A static binary's getrandom crate takes glibc's getrandom(), linked in: by default it
    // looks the function up with dlsym, which finds nothing in a static binary, and falls back
    // to opening /dev/urandom, which the skill host's Landlock layer refuses (a skill's first
    // random number aborted the call; found by the agent test in QEMU).
    let static_flags = "-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"";
    let (target_dir, linkage_flags, described) = match run {
        Run::Image => (workspace.join("target/image"), static_flags, "static"),
        Run::Extra => (workspace.join("target/image-extra"), static_flags, "static"),
        Run::Dynamic => (
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
    for (package, bin) in binaries {
        cmd.args(["-p", package, "--bin", bin]);
    }
    eprintln!(
        "carapace: building {} ({described}, {rust_target})",
        binaries
            .iter()
            .map(|(_, bin)| bin.as_str())
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
    Ok(target_dir.join(rust_target).join("release"))
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
