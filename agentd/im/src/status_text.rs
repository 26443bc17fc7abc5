//! An HTTP status as the channels put it in their errors: "HTTP 502 Bad Gateway".

use reqwest::StatusCode;

pub(crate) fn status_text(status: StatusCode) -> String {
    format!(
        "HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_string()
}
