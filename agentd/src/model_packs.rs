//! `/add_model LINK`: a signed model pack's tar (`carapace models add --tar`), downloaded in
//! the background and streamed into the local engine as it arrives, which checks it against
//! the image's update keys before it offers the model; `/remove_model NAME` takes one back.
//! The download's hosts join netd's allowlist for the download only.

use std::time::Duration;

use carapace_http::{Client, Url};
use futures_util::StreamExt;

use crate::local_inference::{AddedPack, LocalInference, describe};
use crate::netd_control::NetdControl;

/// Redirects followed (a release link on GitHub redirects once, to its file host).
const MAX_REDIRECTS: usize = 5;
/// A download that delivers nothing for this long has stalled.
const STALL: Duration = Duration::from_secs(60);
/// The exchange up to the response's headers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The link of `/add_model LINK`, or what to send instead.
pub fn parse_link(args: &[String]) -> Result<Url, String> {
    let usage = "Send /add_model LINK: an https link to a model pack's .tar, made with `carapace \
                 models add --tar` and signed with this box's update key.";
    let [link] = args else {
        return Err(usage.into());
    };
    carapace_http::checked_url(link).map_err(|error| format!("{error}. {usage}"))
}

/// What a finished `/add_model` tells the owner, and the hosts it let out.
pub struct Outcome {
    pub result: Result<AddedPack, String>,
    pub reached: Vec<(String, u16)>,
}

/// Downloads the pack at `url` and hands it to the engine as it arrives.
pub async fn add_from_link(
    url: Url,
    http: &Client,
    netd: &NetdControl,
    inference: &LocalInference,
) -> Outcome {
    let mut reached = Vec::new();
    let result = fetch_into(url, http, netd, inference, &mut reached).await;
    Outcome { result, reached }
}

async fn fetch_into(
    mut url: Url,
    http: &Client,
    netd: &NetdControl,
    inference: &LocalInference,
    reached: &mut Vec<(String, u16)>,
) -> Result<AddedPack, String> {
    let mut hops = 0;
    let response = loop {
        let shown = url.host_str().unwrap_or_default().to_string();
        if let Some((host, port)) = crate::reach::mcp_host(url.as_str()) {
            netd.allow(&host, port)
                .await
                .map_err(|error| format!("the box may not reach {host}: {error}"))?;
            reached.push((host, port));
        }
        let response = http
            .get(url.clone())
            .timeout(ANSWER_TIMEOUT)
            .send()
            .await
            .map_err(|error| format!("{shown} did not answer: {}", describe(&error)))?;
        if !response.status().is_redirection() {
            break response;
        }
        hops += 1;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| format!("{shown} redirected without saying where"))?;
        let next = url
            .join(location)
            .map_err(|error| format!("{shown} redirected to {location:?}: {error}"))?;
        if hops > MAX_REDIRECTS {
            return Err(format!(
                "the link redirected more than {MAX_REDIRECTS} times"
            ));
        }
        url = carapace_http::checked_url(next.as_str()).map_err(|error| error.to_string())?;
    };
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "{} answered {status}",
            url.host_str().unwrap_or_default()
        ));
    }
    let body = reqwest::Body::wrap_stream(stalls_end(response.bytes_stream()));
    inference
        .add_pack(body)
        .await
        .map_err(|error| error.to_string())
}

/// The download's chunks, ending in an error when none arrives for [`STALL`].
fn stalls_end(
    chunks: impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(Some(Box::pin(chunks)), |chunks| async move {
        let mut chunks = chunks?;
        match tokio::time::timeout(STALL, chunks.next()).await {
            Ok(None) => None,
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(chunks))),
            Ok(Some(Err(error))) => Some((
                Err(std::io::Error::other(format!(
                    "the download broke off: {}",
                    describe(&error)
                ))),
                None,
            )),
            Err(_) => Some((
                Err(std::io::Error::other(format!(
                    "the download stalled: nothing for {} s",
                    STALL.as_secs()
                ))),
                None,
            )),
        }
    })
}

/// What the owner is told of a pack the engine took.
pub fn added_text(added: &AddedPack) -> String {
    let replaced = match &added.replaced {
        Some(old) if *old == added.version => " (the same version again, checked anew)".into(),
        Some(old) => format!(", in place of {old}"),
        None => String::new(),
    };
    let what = added.capability.replace('_', " ");
    let use_it = match added.capability.as_str() {
        "image_description" => " Photos are described on the box from now on.",
        _ => "",
    };
    format!(
        "Added the model {} {}{replaced}: {what}, signed by key {}.{use_it} /models lists it; \
         /remove_model {} removes it.",
        added.id, added.version, added.signed_by, added.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_one_https_url() {
        let link = |text: &str| parse_link(&[text.to_string()]);
        assert_eq!(
            link("https://example.com/packs/tiny-1.0.0.tar")
                .unwrap()
                .as_str(),
            "https://example.com/packs/tiny-1.0.0.tar"
        );
        assert!(link("http://127.0.0.1:8000/tiny.tar").is_ok());
        let why = link("http://example.com/tiny.tar").unwrap_err();
        assert!(
            why.contains("plain http is allowed to this box itself only")
                && why.contains("Send /add_model LINK"),
            "{why}"
        );
        assert!(
            parse_link(&[])
                .unwrap_err()
                .starts_with("Send /add_model LINK")
        );
        let two = ["https://a.test/x.tar".to_string(), "more".to_string()];
        assert!(
            parse_link(&two)
                .unwrap_err()
                .starts_with("Send /add_model LINK")
        );
    }

    #[test]
    fn the_owner_is_told_what_was_added_and_what_it_replaced() {
        let mut added = AddedPack {
            id: "tiny-smolvlm".into(),
            version: "1.1.0".into(),
            capability: "image_description".into(),
            signed_by: "ab12".into(),
            replaced: None,
        };
        assert_eq!(
            added_text(&added),
            "Added the model tiny-smolvlm 1.1.0: image description, signed by key ab12. Photos \
             are described on the box from now on. /models lists it; /remove_model tiny-smolvlm \
             removes it."
        );
        added.replaced = Some("1.0.0".into());
        assert!(
            added_text(&added)
                .starts_with("Added the model tiny-smolvlm 1.1.0, in place of 1.0.0: ")
        );
    }
}
