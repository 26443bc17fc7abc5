//! sbom.json: every file in the image (root, initramfs, ESP), its sha256 and where it came
//! from: a Debian package and version, a workspace crate and git revision, or the builder.

use serde::Serialize;

use crate::rootfs::Origin;

#[derive(Serialize)]
pub struct Sbom {
    pub image: String,
    pub board: String,
    pub build_id: String,
    pub debian_suite: String,
    pub files: Vec<SbomFile>,
}

#[derive(Serialize)]
pub struct SbomFile {
    /// "root:/usr/sbin/mke2fs", "root:/zz-release/usr/bin/agentd" (where the bytes are; the
    /// usual path is a symlink to it), "initramfs:/init", "esp:/a/vmlinuz".
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub origin: Origin,
}
