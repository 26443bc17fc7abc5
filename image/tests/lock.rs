//! The lock keeps working as Debian's archive moves on: a pin that no source serves moves to
//! the archive's current version by default and stops a `--locked` build; a pin that the
//! download cache holds is served without the network. The first two read the real archive
//! (the builder's only remote service); the last runs with a mirror that refuses connections.

use std::path::Path;

use carapace_image::Error;
use carapace_image::apt::Sources;
use carapace_image::deb_cache::DebCache;
use carapace_image::fsutil::sha256_file;
use carapace_image::lock::{ChangeReason, Lock, LockedPackage};
use carapace_image::packages::{self, LockPolicy, Request, UpdateRequest};

const SMALL_PACKAGE: &str = "libcom-err2";
const DROPPED_VERSION: &str = "0.0-carapace-test";

fn request(requested: &str, sources: Sources) -> Request {
    Request {
        suite: "trixie".into(),
        arch: "amd64".into(),
        requested: vec![requested.into()],
        kernel: None,
        sources,
    }
}

fn lock_with(path: &Path, pin: LockedPackage) -> Lock {
    let mut lock = Lock::new("trixie", "amd64");
    lock.packages.push(pin);
    lock.write(path).expect("write lock");
    lock
}

fn dropped_pin() -> LockedPackage {
    LockedPackage {
        requested: SMALL_PACKAGE.into(),
        name: SMALL_PACKAGE.into(),
        version: DROPPED_VERSION.into(),
        architecture: "amd64".into(),
        suite: "trixie".into(),
        sha256: "0".repeat(64),
        seen: "20261121T000000Z".into(),
    }
}

#[test]
fn a_pin_no_source_serves_fails_when_locked_and_moves_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let lock_path = dir.path().join("recipe.lock");
    lock_with(&lock_path, dropped_pin());
    let before = std::fs::read(&lock_path).expect("lock");
    let request = request(SMALL_PACKAGE, Sources::configured());

    let refused = packages::resolve(
        &lock_path,
        &request,
        &cache,
        LockPolicy::Locked,
        &UpdateRequest::None,
    );
    match refused {
        Err(err @ Error::PinUnavailable { .. }) => {
            let message = err.to_string();
            for part in [
                &format!("{SMALL_PACKAGE} {DROPPED_VERSION}, pinned in"),
                "build without --locked",
                &format!("--update {SMALL_PACKAGE}`"),
            ] {
                assert!(message.contains(part), "'{part}' missing from: {message}");
            }
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("--locked accepted a pin that no source serves"),
    }
    assert_eq!(
        std::fs::read(&lock_path).expect("lock"),
        before,
        "--locked changed the lock"
    );

    let moved = packages::resolve(
        &lock_path,
        &request,
        &cache,
        LockPolicy::Update,
        &UpdateRequest::None,
    )
    .expect("a default build moves the pin");
    assert_eq!(moved.changes.len(), 1, "{:?}", moved.changes);
    let change = &moved.changes[0];
    assert_eq!(change.reason, ChangeReason::Dropped);
    let (_, new_version) = change.to.clone().expect("moved to a version");
    assert_ne!(new_version, DROPPED_VERSION);
    assert_eq!(
        change.to_string(),
        format!(
            "{SMALL_PACKAGE} {DROPPED_VERSION} -> {new_version} (the archive dropped the pinned version)"
        )
    );

    let written = Lock::read(&lock_path).expect("read").expect("lock");
    let pin = written.find(SMALL_PACKAGE).expect("pinned");
    assert_eq!(pin.version, new_version);
    assert!(pin.suite.starts_with("trixie"), "{pin:?}");
    assert_eq!(
        sha256_file(&moved.debs[0]).expect("hash"),
        pin.sha256,
        "the cached .deb is not the one the new pin names"
    );
}

/// A .deb with just the members the builder reads.
fn tiny_deb(path: &Path) {
    let mut data = tar::Builder::new(Vec::new());
    let body = b"served from the cache\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    data.append_data(&mut header, "usr/share/doc/tiny/README", &body[..])
        .expect("tar");
    let data = data.into_inner().expect("tar");
    let mut deb = ar::Builder::new(std::fs::File::create(path).expect("create deb"));
    let mut member = |name: &str, bytes: &[u8]| {
        let header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
        deb.append(&header, bytes).expect("ar");
    };
    member("debian-binary", b"2.0\n");
    member("data.tar", &data);
}

#[test]
fn the_cache_serves_a_pin_without_the_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache_dir = dir.path().join("cache");
    let deb = dir.path().join("tiny.deb");
    tiny_deb(&deb);
    let sha256 = sha256_file(&deb).expect("hash");
    DebCache::new(&cache_dir)
        .expect("cache")
        .put(&deb, &sha256, "tiny.deb")
        .expect("store");

    let lock_path = dir.path().join("recipe.lock");
    let lock = lock_with(
        &lock_path,
        LockedPackage {
            requested: "tiny".into(),
            name: "tiny".into(),
            version: "1.0-1".into(),
            architecture: "all".into(),
            suite: "trixie".into(),
            sha256: sha256.clone(),
            seen: "20261121T000000Z".into(),
        },
    );
    // Port 9 on loopback refuses connections: any attempt to reach a mirror fails the test.
    let offline = Sources::at("http://127.0.0.1:9/debian", "http://127.0.0.1:9/security");
    let resolved = packages::resolve(
        &lock_path,
        &request("tiny", offline),
        &cache_dir,
        LockPolicy::Locked,
        &UpdateRequest::None,
    )
    .expect("the cache serves the pin");
    assert!(resolved.changes.is_empty(), "{:?}", resolved.changes);
    assert_eq!(resolved.lock, lock);
    assert_eq!(sha256_file(&resolved.debs[0]).expect("hash"), sha256);
    assert!(
        !cache_dir.join("apt").exists(),
        "apt was started although the cache had the pin"
    );
}
