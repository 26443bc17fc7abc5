//! Stage 2 refuses to run on a root that is not the verity device stage 1 made: booting the
//! root partition directly (init=/sbin/init without the initramfs, or a changed loader entry)
//! would skip every integrity check, so / must be device-mapper's "root" device.

use std::os::unix::fs::MetadataExt;

use crate::dm_verity::ROOT_DM_NAME;
use crate::error::{Context, Error, Result};

pub fn require_verified_root() -> Result<()> {
    let dev = std::fs::metadata("/")
        .context(|| "stat /".to_owned())?
        .dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let name = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/dm/name"));
    let name = name.unwrap_or_default();
    if name.trim_end() == ROOT_DM_NAME {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "/ is on device {major}:{minor}, not the dm-verity device '{ROOT_DM_NAME}': the root was \
         mounted without stage 1's verification; boot through the slot's loader entry"
    )))
}
