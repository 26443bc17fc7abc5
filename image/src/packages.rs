//! Resolves, downloads, verifies and unpacks the Debian packages an image takes files from.
//! Downloads and unpacked trees are cached by sha256 (deb_cache.rs); lock.rs says what is pinned.

use std::io::Read;
use std::path::{Path, PathBuf};

use board_support::board::DebianKernel;

use crate::apt::{Apt, IndexEntry, Sources};
use crate::board::Board;
use crate::deb_cache::DebCache;
use crate::error::{Error, IoContext, Result};
use crate::lock::{ChangeReason, Lock, LockedPackage, PinChange, now_timestamp};
use crate::recipe::Recipe;
use crate::rootfs::Origin;

#[derive(Debug, Clone)]
pub struct Package {
    /// What the recipe or board asked for (lock.rs).
    pub requested: String,
    pub name: String,
    pub version: String,
    /// The suite whose index served it, e.g. "trixie-security".
    pub suite: String,
    /// The unpacked data.tar of the .deb.
    pub root: PathBuf,
}

impl Package {
    pub fn origin(&self) -> Origin {
        Origin::Debian {
            package: self.name.clone(),
            version: self.version.clone(),
            suite: self.suite.clone(),
        }
    }
}

#[derive(Debug)]
pub struct PackageSet {
    pub packages: Vec<Package>,
    pub lock: Lock,
}

impl PackageSet {
    /// The package whose tree has `rel` (e.g. "usr/sbin/mke2fs"), first match wins.
    pub fn find(&self, rel: &str) -> Option<(PathBuf, &Package)> {
        self.packages.iter().find_map(|p| {
            let path = p.root.join(rel);
            path.symlink_metadata().ok().map(|_| (path, p))
        })
    }

    pub fn named_prefix(&self, prefix: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name.starts_with(prefix))
    }

    /// The packages pinned for Debian's `kernel`: its versioned linux-image-* and its parts.
    pub fn kernel_packages(&self, kernel: &DebianKernel) -> Vec<&Package> {
        self.packages
            .iter()
            .filter(|p| kernel_pin(kernel, &p.requested).is_some())
            .collect()
    }
}

/// What a requested name means for the kernel: the versioned image behind the metapackage
/// (`linux-image-arm64`), or one of its parts (`linux-image-arm64/linux-binary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KernelPin<'a> {
    Image,
    Part(&'a str),
}

fn kernel_pin<'a>(kernel: &DebianKernel, requested: &'a str) -> Option<KernelPin<'a>> {
    if requested == kernel.metapackage {
        return Some(KernelPin::Image);
    }
    let (meta, part) = requested.split_once('/')?;
    (meta == kernel.metapackage && kernel.parts.contains(&part)).then_some(KernelPin::Part(part))
}

/// The board's Debian kernel, unless the recipe brings Raspberry Pi's.
fn debian_kernel(board: &Board, recipe: &Recipe) -> Option<DebianKernel> {
    board.kernel.debian().filter(|_| recipe.pi_kernel.is_none())
}

pub fn requested_packages(board: &Board, recipe: &Recipe) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if let Some(kernel) = debian_kernel(board, recipe) {
        names.push(kernel.metapackage.into());
        for part in kernel.parts {
            names.push(format!("{}/{part}", kernel.metapackage));
        }
    }
    names.extend(board.boot_flow.package().map(String::from));
    for name in &recipe.debian.packages {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// What a build does with a pin that no source serves any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockPolicy {
    /// Move it to the archive's current version and say so, as `cargo build` updates
    /// Cargo.lock.
    Update,
    /// Stop with an error, as `cargo build --locked` does: release builds and the
    /// reproducibility bench.
    Locked,
}

/// Which pins `carapace lock --update` moves to the archive's current versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateRequest {
    None,
    All,
    /// By requested name or package name.
    Only(Vec<String>),
}

impl UpdateRequest {
    fn wants(&self, pin: &LockedPackage) -> bool {
        match self {
            UpdateRequest::None => false,
            UpdateRequest::All => true,
            // A kernel's parts move with its metapackage.
            UpdateRequest::Only(names) => names.iter().any(|n| {
                *n == pin.requested
                    || *n == pin.name
                    || pin
                        .requested
                        .strip_prefix(n.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            }),
        }
    }
}

/// What to pin: a release, an architecture, and the packages asked for.
pub struct Request {
    pub suite: String,
    pub arch: String,
    pub requested: Vec<String>,
    /// The board's Debian kernel: its metapackage is pinned as the versioned linux-image-* it
    /// depends on, and each part as that image's dependency of the same version.
    pub kernel: Option<DebianKernel>,
    /// The mirror to read the archive from.
    pub sources: Sources,
}

impl Request {
    pub fn for_recipe(board: &Board, recipe: &Recipe) -> Request {
        Request {
            suite: recipe.debian.suite.clone(),
            arch: board.architecture.debian_arch().into(),
            requested: requested_packages(board, recipe),
            kernel: debian_kernel(board, recipe),
            sources: Sources::configured(),
        }
    }
}

/// The lock after a build or `carapace lock` looked at it, and a cached .deb for every pin.
pub struct Resolved {
    pub lock: Lock,
    pub changes: Vec<PinChange>,
    /// In the lock's order.
    pub debs: Vec<PathBuf>,
}

/// Builds: fetch every pinned package (moving dropped pins under `LockPolicy::Update`), print
/// one line per change, write the lock if it changed, and unpack.
pub fn fetch(
    recipe_path: &Path,
    recipe: &Recipe,
    board: &Board,
    cache: &Path,
    policy: LockPolicy,
) -> Result<PackageSet> {
    let lock_path = Recipe::lock_path(recipe_path);
    let request = Request::for_recipe(board, recipe);
    let resolved = resolve(&lock_path, &request, cache, policy, &UpdateRequest::None)?;
    report(&lock_path, &resolved.changes);
    let mut packages = Vec::new();
    for (pinned, deb) in resolved.lock.packages.iter().zip(&resolved.debs) {
        let root = unpack(deb, &cache.join("unpacked").join(&pinned.sha256))?;
        packages.push(Package {
            requested: pinned.requested.clone(),
            name: pinned.name.clone(),
            version: pinned.version.clone(),
            suite: pinned.suite.clone(),
            root,
        });
    }
    Ok(PackageSet {
        packages,
        lock: resolved.lock,
    })
}

/// Prints the table of moved pins, one line each.
pub fn report(lock_path: &Path, changes: &[PinChange]) {
    if changes.is_empty() {
        return;
    }
    eprintln!("carapace: updating {}", lock_path.display());
    for change in changes {
        eprintln!("    {change}");
    }
}

/// Reads the lock at `lock_path`, makes it pin exactly `request.requested`, moves the pins
/// `update` names, fetches every pin into the cache (cache, then mirror, then the snapshot
/// archive), and writes the lock back if anything changed.
pub fn resolve(
    lock_path: &Path,
    request: &Request,
    cache: &Path,
    policy: LockPolicy,
    update: &UpdateRequest,
) -> Result<Resolved> {
    let previous = Lock::read(lock_path)?;
    let mut sources = PackageSources::new(cache, request)?;
    let mut changes = Vec::new();
    let mut lock = Lock::new(&request.suite, &request.arch);
    let usable = previous
        .as_ref()
        .filter(|l| l.suite == request.suite && l.architecture == request.arch);

    for wanted in &request.requested {
        match usable.and_then(|l| l.find(wanted)) {
            Some(pin) if update.wants(pin) => {
                let current = sources.current(wanted)?;
                if current.pin() == pin.pin() {
                    lock.packages.push(pin.clone());
                    continue;
                }
                changes.push(PinChange {
                    requested: wanted.clone(),
                    from: Some(pin.pin()),
                    to: Some(current.pin()),
                    reason: ChangeReason::Updated,
                });
                lock.packages.push(current);
            }
            Some(pin) => lock.packages.push(pin.clone()),
            None => {
                refuse_if_locked(policy, lock_path, || {
                    format!("it does not pin '{wanted}', which the recipe asks for")
                })?;
                let current = sources.current(wanted)?;
                changes.push(PinChange {
                    requested: wanted.clone(),
                    from: None,
                    to: Some(current.pin()),
                    reason: ChangeReason::Added,
                });
                lock.packages.push(current);
            }
        }
    }
    if let Some(previous) = usable {
        for gone in previous
            .packages
            .iter()
            .filter(|p| !request.requested.contains(&p.requested))
        {
            refuse_if_locked(policy, lock_path, || {
                format!(
                    "it pins '{}', which the recipe no longer asks for",
                    gone.requested
                )
            })?;
            changes.push(PinChange {
                requested: gone.requested.clone(),
                from: Some(gone.pin()),
                to: None,
                reason: ChangeReason::Removed,
            });
        }
    }
    if let Some(previous) = previous.as_ref().filter(|_| usable.is_none()) {
        refuse_if_locked(policy, lock_path, || {
            format!(
                "it pins {} for {}, but the recipe asks for {} for {}",
                previous.suite, previous.architecture, request.suite, request.arch
            )
        })?;
    }

    let mut debs = Vec::new();
    for pin in &mut lock.packages {
        if let Some(deb) = sources.fetch_pinned(pin)? {
            if pin.suite.is_empty() {
                // A lock from before suites were recorded: the mirror serves it now.
                let apt = sources.mirror()?;
                pin.suite = apt.suite_of(&pin.name, &pin.version)?;
                pin.seen = now_timestamp();
            }
            debs.push(deb);
            continue;
        }
        if policy == LockPolicy::Locked {
            return Err(Error::PinUnavailable {
                package: pin.name.clone(),
                version: pin.version.clone(),
                lock: lock_path.into(),
                requested: pin.requested.clone(),
            });
        }
        let current = sources.current(&pin.requested)?;
        changes.push(PinChange {
            requested: pin.requested.clone(),
            from: Some(pin.pin()),
            to: Some(current.pin()),
            reason: ChangeReason::Dropped,
        });
        *pin = current;
        let deb = sources.fetch_pinned(pin)?.ok_or_else(|| {
            Error::Package(format!(
                "{}={} was just read from the index but cannot be downloaded",
                pin.name, pin.version
            ))
        })?;
        debs.push(deb);
    }

    if let Some(kernel) = &request.kernel {
        check_kernel_parts(&lock, kernel, lock_path)?;
    }
    if previous.as_ref() != Some(&lock) {
        lock.write(lock_path)?;
    }
    Ok(Resolved {
        lock,
        changes,
        debs,
    })
}

fn refuse_if_locked(
    policy: LockPolicy,
    lock_path: &Path,
    why: impl FnOnce() -> String,
) -> Result<()> {
    if policy == LockPolicy::Locked {
        return Err(Error::Lock {
            path: lock_path.into(),
            message: format!(
                "{} and --locked forbids changing it; run `carapace lock` to bring the lock in \
                 line with the recipe, or build without --locked",
                why()
            ),
        });
    }
    Ok(())
}

/// Where pinned packages come from, in order: the content-addressed cache, the configured
/// mirror, the Debian snapshot archive. apt is only started when the cache cannot serve.
struct PackageSources<'a> {
    cache_dir: &'a Path,
    cache: DebCache,
    request: &'a Request,
    mirror: Option<Apt>,
    /// The release's -backports suite, for a kernel from there.
    backports: Option<Apt>,
    /// Set once the snapshot archive failed: one line says so, and no pin asks it again.
    snapshot_unreachable: bool,
}

impl<'a> PackageSources<'a> {
    fn new(cache_dir: &'a Path, request: &'a Request) -> Result<PackageSources<'a>> {
        Ok(PackageSources {
            cache_dir,
            cache: DebCache::new(cache_dir)?,
            request,
            mirror: None,
            backports: None,
            snapshot_unreachable: false,
        })
    }

    fn mirror(&mut self) -> Result<&mut Apt> {
        self.apt(false)
    }

    /// The release's apt, or its -backports suite's.
    fn apt(&mut self, backports: bool) -> Result<&mut Apt> {
        let suite = suite_of_pins(&self.request.suite, backports);
        let slot = if backports {
            &mut self.backports
        } else {
            &mut self.mirror
        };
        if slot.is_none() {
            *slot = Some(Apt::new(
                self.cache_dir,
                &suite,
                &suite,
                &self.request.arch,
                self.request.sources.clone(),
            )?);
        }
        slot.as_mut()
            .ok_or_else(|| Error::Package("apt was not set up".into()))
    }

    /// The archive's current version of `requested`, as a pin seen now.
    fn current(&mut self, requested: &str) -> Result<LockedPackage> {
        let kernel = self.request.kernel;
        let pin = kernel.and_then(|k| kernel_pin(&k, requested));
        let backports = pin.is_some() && kernel.is_some_and(|k| k.backports);
        let apt = self.apt(backports)?;
        let entry = match (kernel, pin) {
            (Some(kernel), Some(pin)) => {
                let meta = apt.require(kernel.metapackage)?;
                let image = kernel_behind_metapackage(apt, &meta)?;
                match pin {
                    KernelPin::Image => image,
                    KernelPin::Part(part) => kernel_part(apt, &image, part)?,
                }
            }
            _ => apt.require(requested)?,
        };
        let suite = apt.suite_of(&entry.name, &entry.version)?;
        Ok(LockedPackage {
            requested: requested.into(),
            name: entry.name,
            version: entry.version,
            architecture: entry.architecture,
            suite,
            sha256: entry.sha256,
            seen: now_timestamp(),
        })
    }

    /// The pinned bytes from the first source that has them; `None` when none does.
    fn fetch_pinned(&mut self, pin: &LockedPackage) -> Result<Option<PathBuf>> {
        if let Some(deb) = self.cache.get(&pin.sha256)? {
            return Ok(Some(deb));
        }
        let spool = self.cache_dir.join("downloads");
        let backports = pin.suite.ends_with(BACKPORTS);
        let mirror = self.apt(backports)?;
        if let Some(deb) = download_from(mirror, pin, &spool)? {
            return self.cache.put(&deb, &pin.sha256, &describe(pin)).map(Some);
        }
        if self.snapshot_unreachable || pin.seen.is_empty() {
            return Ok(None);
        }
        let suite = suite_of_pins(&self.request.suite, backports);
        let snapshot = Apt::new(
            self.cache_dir,
            &format!("snapshot-{}-{suite}", pin.seen),
            &suite,
            &self.request.arch,
            Sources::snapshot(&pin.seen),
        )
        .and_then(|mut apt| {
            apt.update()?;
            Ok(apt)
        });
        match snapshot {
            Ok(mut apt) => match download_from(&mut apt, pin, &spool)? {
                Some(deb) => self.cache.put(&deb, &pin.sha256, &describe(pin)).map(Some),
                None => Ok(None),
            },
            Err(err) => {
                eprintln!(
                    "carapace: the Debian snapshot archive cannot be reached ({}); going on \
                     without it",
                    apt_failure_reason(&err)
                );
                self.snapshot_unreachable = true;
                Ok(None)
            }
        }
    }
}

/// The line of apt's output that says why it failed ("Could not resolve ..."), not the
/// whole command line.
fn apt_failure_reason(err: &Error) -> String {
    let text = err.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| l.contains("Could not resolve") || l.contains("Failed to fetch"))
        .or(lines.last())
        .map(|l| {
            l.trim_start_matches("W: ")
                .trim_start_matches("E: ")
                .to_string()
        })
        .unwrap_or_default()
}

fn describe(pin: &LockedPackage) -> String {
    format!("{}={}", pin.name, pin.version)
}

/// Downloads the pinned version if `apt`'s index lists it with the pinned sha256.
fn download_from(apt: &mut Apt, pin: &LockedPackage, spool: &Path) -> Result<Option<PathBuf>> {
    let Some(entry) = apt.lookup(&pin.name, Some(&pin.version))? else {
        return Ok(None);
    };
    if entry.sha256 != pin.sha256 {
        return Err(Error::Package(format!(
            "{} from {} has sha256 {}, but the lock pins {}; the lock and the archive disagree \
             about the same version: check the lock file's history",
            describe(pin),
            apt.sources().describe(),
            entry.sha256,
            pin.sha256
        )));
    }
    apt.download(&entry, spool).map(Some)
}

const BACKPORTS: &str = "-backports";

/// The suite a pin comes from: the release, or its -backports suite.
fn suite_of_pins(release: &str, backports: bool) -> String {
    if backports {
        format!("{release}{BACKPORTS}")
    } else {
        release.to_string()
    }
}

/// `image`'s dependency named `<part>-*`, at the image's version (a split kernel's part).
fn kernel_part(apt: &mut Apt, image: &IndexEntry, part: &str) -> Result<IndexEntry> {
    let prefix = format!("{part}-");
    let name = image
        .depends
        .split(',')
        .map(|d| d.trim().split([' ', '(']).next().unwrap_or(""))
        .find(|d| d.starts_with(&prefix))
        .ok_or_else(|| {
            Error::Package(format!(
                "{} {} depends on no {prefix}* package: is the board's kernel split into parts \
                 in this suite?",
                image.name, image.version
            ))
        })?;
    apt.lookup(name, Some(&image.version))?.ok_or_else(|| {
        Error::Package(format!(
            "{name} {} (a part of {}) is not in the index",
            image.version, image.name
        ))
    })
}

/// A kernel's parts must be the versioned image's own: a lock edited by hand or moved in part
/// would put one kernel's modules beside another's vmlinuz.
fn check_kernel_parts(lock: &Lock, kernel: &DebianKernel, lock_path: &Path) -> Result<()> {
    let pins: Vec<&LockedPackage> = lock
        .packages
        .iter()
        .filter(|p| kernel_pin(kernel, &p.requested).is_some())
        .collect();
    let Some(image) = pins.iter().find(|p| p.requested == kernel.metapackage) else {
        return Ok(());
    };
    let odd: Vec<String> = pins
        .iter()
        .filter(|p| p.version != image.version)
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    if odd.is_empty() {
        return Ok(());
    }
    Err(Error::Package(format!(
        "{} pins {} {} but {}: the parts of one kernel must have its version; run `carapace \
         lock --update {}` to move them together",
        lock_path.display(),
        image.name,
        image.version,
        odd.join(", "),
        kernel.metapackage
    )))
}

fn kernel_behind_metapackage(apt: &mut Apt, meta: &IndexEntry) -> Result<IndexEntry> {
    let image = meta
        .depends
        .split(',')
        .map(|d| d.trim().split([' ', '(']).next().unwrap_or(""))
        .find(|d| d.starts_with("linux-image-"))
        .ok_or_else(|| {
            Error::Package(format!("{} depends on no linux-image package", meta.name))
        })?;
    apt.require(image)
}

/// Unpacks the data.tar.* member of a .deb into `dest` (once; a marker says it is complete).
pub(crate) fn unpack(deb: &Path, dest: &Path) -> Result<PathBuf> {
    let marker = dest.join(".carapace-unpacked");
    if marker.exists() {
        return Ok(dest.to_path_buf());
    }
    let tmp = dest.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).context(|| format!("create {}", tmp.display()))?;

    let file = std::fs::File::open(deb).context(|| format!("open {}", deb.display()))?;
    let mut archive = ar::Archive::new(file);
    let mut found = false;
    while let Some(entry) = archive.next_entry() {
        let entry = entry.context(|| format!("read {}", deb.display()))?;
        let member = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        let reader: Box<dyn Read> = match member.as_str() {
            "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new(entry)),
            "data.tar.zst" => Box::new(
                zstd::stream::read::Decoder::new(entry)
                    .context(|| format!("zstd in {}", deb.display()))?,
            ),
            "data.tar" => Box::new(entry),
            _ => continue,
        };
        let mut tar = tar::Archive::new(reader);
        tar.set_preserve_permissions(true);
        tar.unpack(&tmp)
            .context(|| format!("unpack {}", deb.display()))?;
        found = true;
        break;
    }
    if !found {
        return Err(Error::Package(format!(
            "{} has no data.tar.{{xz,zst}} member",
            deb.display()
        )));
    }
    std::fs::write(tmp.join(".carapace-unpacked"), b"").context(|| "write unpack marker".into())?;
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&tmp, dest).context(|| format!("rename to {}", dest.display()))?;
    Ok(dest.to_path_buf())
}
