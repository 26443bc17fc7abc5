//! Files people sent: getFile for the path, then the bytes from `/file/bot<token>/<path>`.
//! Telegram serves bots files of at most 20 MB; the size is checked before the download (as
//! getFile reports it, and as Content-Length says) and again while reading, so a server that
//! says nothing, or lies, cannot make the box hold more.

use serde_json::json;

use super::api;
use super::call::Payload;
use super::{CALL_TIMEOUT, CHANNEL, TRANSFER_TIMEOUT, Telegram};
use crate::status_text::status_text;
use crate::{Error, FileRef};

/// Telegram's limit for files a bot downloads.
pub const DOWNLOAD_LIMIT: u64 = 20 * 1024 * 1024;

impl Telegram {
    pub(super) async fn download_file(&self, file: &FileRef) -> Result<Vec<u8>, Error> {
        let body = json!({"file_id": file.id});
        let info: api::File = self
            .call("getFile", Payload::Json(body), CALL_TIMEOUT)
            .await?;
        if let Some(size) = info.file_size {
            check_size(size)?;
        }
        let path = info
            .file_path
            .ok_or_else(|| rejected("getFile gave no file_path"))?;
        // The path goes into a URL that carries the token: it must stay a path below /file.
        let odd = path.is_empty()
            || path.starts_with('/')
            || path.split('/').any(|segment| segment == "..")
            || path.contains(['?', '#', '\\']);
        if odd {
            return Err(Error::Protocol {
                channel: CHANNEL,
                detail: self
                    .token
                    .redact(&format!("getFile gave an odd file_path {path:?}")),
            });
        }
        let url = format!("{}/file/bot{}/{path}", self.base, self.token.0);
        let mut response = self
            .http
            .get(url)
            .timeout(TRANSFER_TIMEOUT)
            .send()
            .await
            .map_err(|error| self.transport("download", error))?;
        let status = response.status();
        if !status.is_success() {
            return Err(match status.as_u16() {
                // The path expired or the file is gone; asking again will not bring it back.
                404 => rejected("download: the file is gone (HTTP 404)"),
                code => self.failure(
                    "download",
                    super::call::ApiFailure {
                        code,
                        description: status_text(status),
                        retry_after: None,
                    },
                ),
            });
        }
        if let Some(length) = response.content_length() {
            check_size(length)?;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport("download", error))?
        {
            check_size((bytes.len() + chunk.len()) as u64)?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

fn check_size(size: u64) -> Result<(), Error> {
    match size > DOWNLOAD_LIMIT {
        true => Err(rejected(&format!(
            "the file has {size} bytes or more; bots may download at most {DOWNLOAD_LIMIT} (20 MB)"
        ))),
        false => Ok(()),
    }
}

fn rejected(detail: &str) -> Error {
    Error::Rejected {
        channel: CHANNEL,
        detail: detail.to_string(),
    }
}
