//! The update repository over HTTPS: small signed documents (bounded), and chunks downloaded
//! into /data with resume and a bandwidth cap.
//!
//! A chunk is fetched into `<sha256>.part`; an interrupted download (a lost link, a power
//! cut, a restart) continues from the bytes already there with an HTTP range request. Only a
//! part that has exactly the chunk's length and hashes to its name is renamed to `<sha256>`,
//! which is what the installer reads; anything else is deleted and fetched again.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use board_support::update_config::UpdateConfig;
use carapace_http::Client;
use carapace_update::{ChunkRef, Sha256Digest, layout};

use crate::error::{Error, Result};

/// The largest signed document (pointer, manifest, key list) the box reads: a manifest of a
/// 1 GiB slot in 64 KiB chunks is about 2 MiB.
pub const MAX_DOCUMENT: usize = 8 * 1024 * 1024;
/// One request, from connect to the last byte of a chunk (256 KiB at most).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Repository {
    client: Client,
    config: UpdateConfig,
}

/// A document that may be absent (keys.json: a repository need not serve a newer list).
pub enum Fetched {
    Found(Vec<u8>),
    NotFound,
}

impl Repository {
    /// The board's repository, `config.server` (checked when update.toml was read).
    pub fn new(client: Client, config: UpdateConfig) -> Repository {
        Repository { client, config }
    }

    pub fn url(&self, path: &str) -> String {
        self.config.url(path)
    }

    /// The whole document at `path`, refused beyond [`MAX_DOCUMENT`] bytes.
    pub async fn document(&self, path: &str) -> Result<Vec<u8>> {
        match self.optional_document(path).await? {
            Fetched::Found(bytes) => Ok(bytes),
            Fetched::NotFound => Err(self.failed(path, "the server has no such file (404)")),
        }
    }

    pub async fn optional_document(&self, path: &str) -> Result<Fetched> {
        let url = self.url(path);
        let mut response = self
            .client
            .get(&url)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|err| self.failed(path, &describe(&err)))?;
        let status = response.status();
        if status == 404 {
            return Ok(Fetched::NotFound);
        }
        if !status.is_success() {
            return Err(self.failed(path, &format!("the server answered {status}")));
        }
        let mut bytes = Vec::new();
        while let Some(piece) = response
            .chunk()
            .await
            .map_err(|err| self.failed(path, &describe(&err)))?
        {
            if bytes.len() + piece.len() > MAX_DOCUMENT {
                return Err(self.failed(
                    path,
                    &format!("it is larger than {MAX_DOCUMENT} bytes; this is not a document the box reads"),
                ));
            }
            bytes.extend_from_slice(&piece);
        }
        Ok(Fetched::Found(bytes))
    }

    /// Makes `dir/<sha256>` hold exactly the chunk, continuing a `.part` left by an earlier
    /// attempt. Returns the bytes received over the network.
    pub async fn chunk(
        &self,
        chunk: &ChunkRef,
        dir: &Path,
        throttle: &mut Throttle,
    ) -> Result<u64> {
        let name = chunk.sha256.to_hex();
        let done = dir.join(&name);
        if std::fs::metadata(&done).is_ok_and(|meta| meta.len() == u64::from(chunk.length)) {
            return Ok(0);
        }
        let part = dir.join(format!("{name}.part"));
        let have = std::fs::metadata(&part).map_or(0, |meta| meta.len());
        let have = if have >= u64::from(chunk.length) {
            0
        } else {
            have
        };
        let path = layout::chunk(&chunk.sha256);
        let url = self.url(&path);
        let mut request = self.client.get(&url).timeout(REQUEST_TIMEOUT);
        if have > 0 {
            request = request.header("Range", format!("bytes={have}-"));
        }
        let mut response = request
            .send()
            .await
            .map_err(|err| self.failed(&path, &describe(&err)))?;
        let status = response.status();
        // 206: the rest from `have`; 200: the whole chunk (a server without ranges).
        let resumed = status == 206 && have > 0;
        if !(resumed || status == 200) {
            return Err(self.failed(&path, &format!("the server answered {status}")));
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(resumed)
            .write(true)
            .truncate(!resumed)
            .open(&part)
            .map_err(Error::io("open", &part))?;
        let mut length = if resumed { have } else { 0 };
        let mut received = 0;
        while let Some(piece) = response
            .chunk()
            .await
            .map_err(|err| self.failed(&path, &describe(&err)))?
        {
            length += piece.len() as u64;
            if length > u64::from(chunk.length) {
                drop(file);
                let _ = std::fs::remove_file(&part);
                return Err(Error::Update(carapace_update::Error::ChunkCorrupt {
                    sha256: chunk.sha256,
                    location: url,
                    problem: format!("the server sent more than its {} bytes", chunk.length),
                }));
            }
            file.write_all(&piece).map_err(Error::io("write", &part))?;
            received += piece.len() as u64;
            throttle.took(piece.len() as u64).await;
        }
        file.sync_all().map_err(Error::io("sync", &part))?;
        drop(file);
        finish_part(chunk, &part, &done)?;
        Ok(received)
    }

    fn failed(&self, path: &str, reason: &str) -> Error {
        Error::Fetch {
            url: self.url(path),
            reason: reason.to_owned(),
        }
    }
}

/// A whole, correct part becomes the chunk; a wrong one is deleted so the next try starts over.
fn finish_part(chunk: &ChunkRef, part: &Path, done: &Path) -> Result<()> {
    let bytes = std::fs::read(part).map_err(Error::io("read", part))?;
    if bytes.len() < chunk.length as usize {
        return Err(Error::Update(carapace_update::Error::ChunkTruncated {
            sha256: chunk.sha256,
            expected: u64::from(chunk.length),
            found: bytes.len() as u64,
        }));
    }
    let found = Sha256Digest::of(&bytes);
    if found != chunk.sha256 {
        let _ = std::fs::remove_file(part);
        return Err(Error::Update(carapace_update::Error::ChunkCorrupt {
            sha256: chunk.sha256,
            location: part.display().to_string(),
            problem: format!("its bytes hash to {found}"),
        }));
    }
    std::fs::rename(part, done).map_err(Error::io("rename", part))
}

/// reqwest's error with its causes (the TLS or connect failure is in the source chain).
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The bandwidth cap: after each piece, sleeps long enough that the bytes so far took at least
/// bytes / rate. A box on a metered or shared link must not take all of it.
pub struct Throttle {
    bytes_per_second: Option<u64>,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    pub fn new(bytes_per_second: Option<u64>) -> Throttle {
        Throttle {
            bytes_per_second: bytes_per_second.filter(|&rate| rate > 0),
            started: Instant::now(),
            bytes: 0,
        }
    }

    pub async fn took(&mut self, bytes: u64) {
        if let Some(wait) = self.wait_after(bytes, self.started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }

    /// How long to pause after `bytes` more, `elapsed` since the start.
    fn wait_after(&mut self, bytes: u64, elapsed: Duration) -> Option<Duration> {
        let rate = self.bytes_per_second?;
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        due.checked_sub(elapsed).filter(|wait| !wait.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_spreads_bytes_over_time() {
        let mut throttle = Throttle::new(Some(1000));
        assert_eq!(
            throttle.wait_after(500, Duration::ZERO),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            throttle.wait_after(500, Duration::from_millis(400)),
            Some(Duration::from_millis(600))
        );
        assert_eq!(throttle.wait_after(100, Duration::from_secs(5)), None);
        let mut unlimited = Throttle::new(None);
        assert_eq!(unlimited.wait_after(1 << 30, Duration::ZERO), None);
    }

    #[test]
    fn only_a_whole_correct_part_becomes_the_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = b"chunk bytes".to_vec();
        let chunk = ChunkRef {
            offset: 0,
            length: bytes.len() as u32,
            sha256: Sha256Digest::of(&bytes),
        };
        let part = dir.path().join("x.part");
        let done = dir.path().join("x");
        std::fs::write(&part, &bytes[..4]).unwrap();
        let err = finish_part(&chunk, &part, &done).unwrap_err();
        assert!(err.to_string().contains("truncated") || matches!(err, Error::Update(_)));
        assert!(part.exists(), "a short part is kept to resume from");
        std::fs::write(&part, b"chunk bytez").unwrap();
        assert!(finish_part(&chunk, &part, &done).is_err());
        assert!(!part.exists(), "a wrong part is deleted");
        std::fs::write(&part, &bytes).unwrap();
        finish_part(&chunk, &part, &done).unwrap();
        assert_eq!(std::fs::read(&done).unwrap(), bytes);
    }
}
