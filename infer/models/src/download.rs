//! Downloads one file over agentd's HTTPS client (rustls with ring, no second TLS stack),
//! hashing the bytes as they arrive so that a wheel is never read twice to be checked.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// The client model downloads go through. On the box it is agentd's: the pinned public roots,
/// plus the test image's extra CA. On a build machine that names a trust store in
/// SSL_CERT_FILE (CI behind a TLS-inspecting proxy), those certificates are trusted as well.
pub fn download_client() -> Result<reqwest::Client> {
    match std::env::var_os("SSL_CERT_FILE").filter(|value| !value.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            let pem = std::fs::read(&path).map_err(Error::io("reading", &path))?;
            carapace_http::client_trusting(Some(pem.as_slice()), &path).map_err(Error::HttpClient)
        }
        None => carapace_http::client().map_err(Error::HttpClient),
    }
}

/// Streams `url` into `target` (created or truncated) and returns the sha256 of what was
/// written, as lowercase hex. The file is synced before this returns.
pub async fn download_hashing(
    client: &reqwest::Client,
    url: &str,
    target: &Path,
) -> Result<String> {
    let failed = |reason: String| Error::Download {
        url: url.to_string(),
        reason,
    };
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|error| failed(error.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("the server answered {}", response.status())));
    }
    let mut file = tokio::fs::File::create(target)
        .await
        .map_err(Error::io("creating", target))?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| failed(error.to_string()))?
    {
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|error| Error::io("writing", target)(error))?;
    }
    file.flush().await.map_err(Error::io("writing", target))?;
    file.sync_all()
        .await
        .map_err(Error::io("syncing", target))?;
    Ok(hex::encode(hasher.finalize()))
}
