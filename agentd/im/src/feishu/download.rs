//! Files people sent: `GET /open-apis/im/v1/messages/{message_id}/resources/{file_key}`, with
//! `type=image` for an image key (`img_…`) and `type=file` for files and audio. The server
//! allows 100 MB; the box takes at most 20 MB (as from Telegram), checked against
//! Content-Length before reading and again while reading, so a server that says nothing, or
//! lies, cannot make the box hold more.

use super::call::{Attempt, read_reply, retry_after};
use super::{CHANNEL, Feishu, TRANSFER_TIMEOUT};
use crate::{Error, FileRef};

/// The most a download may hold.
pub const DOWNLOAD_LIMIT: u64 = 20 * 1024 * 1024;

impl Feishu {
    pub(super) async fn download_file(&self, file: &FileRef) -> Result<Vec<u8>, Error> {
        // Both go into the URL's path: keep them to the characters Feishu's ids are made of.
        let plain = |id: &str| {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !plain(&file.id) || !plain(&file.message_id) {
            return Err(rejected(&format!(
                "download: {:?} of message {:?} is not a Feishu resource",
                file.id, file.message_id
            )));
        }
        let kind = match file.id.starts_with("img_") {
            true => "image",
            false => "file",
        };
        let url = format!(
            "{}/open-apis/im/v1/messages/{}/resources/{}?type={kind}",
            self.base, file.message_id, file.id
        );
        self.with_token("download", |token| {
            let request = self
                .http
                .get(&url)
                .bearer_auth(token)
                .timeout(TRANSFER_TIMEOUT);
            async move {
                let mut response = request
                    .send()
                    .await
                    .map_err(|error| self.transport("download", error))?;
                let status = response.status();
                if !status.is_success() {
                    let wait = retry_after(response.headers());
                    let body = response
                        .bytes()
                        .await
                        .map_err(|error| self.transport("download", error))?;
                    return Err(match read_reply(status, wait, &body) {
                        Ok(Err(failure)) => self.attempt_failed("download", failure),
                        // A success code with an error status: trust the status.
                        _ => Attempt::Failed(Error::Unreachable {
                            channel: CHANNEL,
                            detail: format!("download: HTTP {}", status.as_u16()),
                        }),
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
        })
        .await
    }
}

fn check_size(size: u64) -> Result<(), Error> {
    match size > DOWNLOAD_LIMIT {
        true => Err(rejected(&format!(
            "download: the file has {size} bytes or more; the box takes at most {DOWNLOAD_LIMIT} (20 MB)"
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
