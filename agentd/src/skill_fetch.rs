//! `/install_skill LINK`: a skill the owner points to instead of sending it, fetched by the box
//! and then offered as a zip sent in the chat is (skill_install.rs). Two kinds of link:
//!
//! - a folder on GitHub, `https://github.com/OWNER/REPO/tree/REF/PATH` (how Anthropic's and
//!   OpenClaw's skill collections are shared): listed through GitHub's REST API (`GET
//!   /repos/OWNER/REPO/contents/PATH?ref=REF`, one request per folder) and each file fetched
//!   from the `download_url` the API gives (raw.githubusercontent.com);
//! - a skill's zip anywhere on the web over HTTPS (a release asset, `carapace skill pack`'s zip
//!   on the publisher's site).
//!
//! The box reaches nothing the owner did not allow: the hosts a link needs join netd's
//! allowlist for the fetch and leave it afterwards, unless a skill or MCP server needs them.
//! Everything fetched is bounded by what a skill may hold.

use std::time::Duration;

use carapace_http::{Client, Url};
use serde::Deserialize;

/// GitHub's REST API, where a folder link is listed (another only in tests: GITHUB_API_URL).
pub const GITHUB_API: &str = "https://api.github.com";
/// Where GitHub serves a file's bytes (the `download_url` of its contents API).
pub const GITHUB_RAW_HOST: &str = "raw.githubusercontent.com";
/// A skill's zip at most: a component and a folder's files, compressed or not.
const MAX_ZIP_BYTES: u64 = carapace_skills::archive::MAX_UNPACKED_BYTES;
/// Folders below a skill's, at most (GitHub lists each with one request).
const MAX_DEPTH: usize = 4;
const MAX_FOLDERS: usize = 32;
/// Each request, from connecting to its last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What a link points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    GitHubFolder {
        owner: String,
        repo: String,
        reference: String,
        path: String,
    },
    Zip(Url),
}

/// What was fetched: a zip's bytes, or a folder's files (path inside it, bytes).
pub enum Fetched {
    Zip(Vec<u8>),
    Folder(Vec<(String, Vec<u8>)>),
}

/// Reads the owner's link; Err says which links are taken.
pub fn parse(text: &str) -> Result<Link, String> {
    let usage = "send a GitHub folder link (https://github.com/OWNER/REPO/tree/BRANCH/FOLDER) or \
                 an https link to a skill's zip";
    let url = Url::parse(text.trim()).map_err(|_| format!("that is not a link: {usage}"))?;
    if url.scheme() != "https" {
        return Err(format!("the box fetches over HTTPS only: {usage}"));
    }
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    match (url.host_str(), segments.as_slice()) {
        (Some("github.com"), [owner, repo, "tree", reference, path @ ..]) if !path.is_empty() => {
            Ok(Link::GitHubFolder {
                owner: owner.to_string(),
                repo: repo.to_string(),
                reference: reference.to_string(),
                path: path.join("/"),
            })
        }
        (Some("github.com"), _) => {
            Err(format!("a GitHub link must name a skill's folder: {usage}"))
        }
        _ if url.path().to_ascii_lowercase().ends_with(".zip") => Ok(Link::Zip(url)),
        _ => Err(format!("that link is neither: {usage}")),
    }
}

impl Link {
    /// The hosts (and port) fetching it reaches, as netd's allowlist names them; `api` is
    /// GitHub's API base.
    pub fn hosts(&self, api: &Url) -> Vec<(String, u16)> {
        match self {
            Link::GitHubFolder { .. } => [api.as_str(), &format!("https://{GITHUB_RAW_HOST}/")]
                .iter()
                .filter_map(|url| crate::reach::mcp_host(url))
                .collect(),
            Link::Zip(url) => crate::reach::mcp_host(url.as_str()).into_iter().collect(),
        }
    }

    /// Fetches it with `http` (the hosts allowed already).
    pub async fn fetch(&self, http: &Client, api: &Url) -> Result<Fetched, String> {
        match self {
            Link::Zip(url) => Ok(Fetched::Zip(get(http, url, MAX_ZIP_BYTES).await?)),
            Link::GitHubFolder {
                owner,
                repo,
                reference,
                path,
            } => {
                let folder = GitHubFolder {
                    http,
                    api,
                    owner,
                    repo,
                    reference,
                };
                folder.fetch(path).await.map(Fetched::Folder)
            }
        }
    }
}

/// One entry of GitHub's contents API for a folder.
#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    size: u64,
    download_url: Option<String>,
}

struct GitHubFolder<'a> {
    http: &'a Client,
    api: &'a Url,
    owner: &'a str,
    repo: &'a str,
    reference: &'a str,
}

impl GitHubFolder<'_> {
    /// Every file below `top`, by its path inside `top`.
    async fn fetch(&self, top: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut files = Vec::new();
        let mut budget = MAX_ZIP_BYTES;
        let mut pending = vec![(top.to_string(), 0usize)];
        let mut folders = 0;
        while let Some((folder, depth)) = pending.pop() {
            folders += 1;
            if folders > MAX_FOLDERS || depth > MAX_DEPTH {
                return Err(format!(
                    "the folder has more than {MAX_FOLDERS} folders or deeper than {MAX_DEPTH}: \
                     more than a skill holds"
                ));
            }
            for entry in self.list(&folder).await? {
                let inside = entry
                    .path
                    .strip_prefix(&format!("{top}/"))
                    .ok_or_else(|| format!("GitHub listed {} outside {top}", entry.path))?
                    .to_string();
                match entry.kind.as_str() {
                    "dir" => pending.push((entry.path, depth + 1)),
                    "file" => {
                        if entry.size > budget {
                            return Err(format!(
                                "its files hold more than {MAX_ZIP_BYTES} bytes, more than a \
                                 skill may hold"
                            ));
                        }
                        let url = self.download_url(&entry)?;
                        let bytes = get(self.http, &url, entry.size).await?;
                        budget -= bytes.len() as u64;
                        files.push((inside, bytes));
                    }
                    other => {
                        return Err(format!("{inside} is a {other}; a skill holds plain files"));
                    }
                }
            }
        }
        Ok(files)
    }

    async fn list(&self, folder: &str) -> Result<Vec<Entry>, String> {
        let mut url = self.api.clone();
        url.path_segments_mut()
            .map_err(|()| format!("{} cannot be GitHub's API", self.api))?
            .pop_if_empty()
            .extend(["repos", self.owner, self.repo, "contents"])
            .extend(folder.split('/'));
        url.query_pairs_mut().append_pair("ref", self.reference);
        let body = get(self.http, &url, 1 << 20).await?;
        // A file's link lists one object, not an array.
        serde_json::from_slice(&body).map_err(|_| {
            format!(
                "GitHub did not list {folder} as a folder in {}/{} at {}",
                self.owner, self.repo, self.reference
            )
        })
    }

    /// A file's download link, which must be on GitHub's file host (or the API's own, in tests).
    fn download_url(&self, entry: &Entry) -> Result<Url, String> {
        let url = entry
            .download_url
            .as_deref()
            .and_then(|url| carapace_http::checked_url(url).ok())
            .ok_or_else(|| format!("GitHub gave no download link for {}", entry.path))?;
        let host = url.host_str().unwrap_or_default();
        match host == GITHUB_RAW_HOST || Some(host) == self.api.host_str() {
            true => Ok(url),
            false => Err(format!(
                "GitHub's download link for {} is on {host}, not {GITHUB_RAW_HOST}",
                entry.path
            )),
        }
    }
}

/// The body of a GET of `url`, at most `limit` bytes; Err says what went wrong.
async fn get(http: &Client, url: &Url, limit: u64) -> Result<Vec<u8>, String> {
    let fetching = async {
        let mut response = http
            .get(url.clone())
            .header(
                "accept",
                "application/vnd.github+json, application/zip, */*",
            )
            .header("user-agent", "carapace")
            .send()
            .await
            .map_err(|error| format!("fetching {url}: {error}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| format!("fetching {url}: {error}"))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > limit {
                return Err(format!(
                    "{url} is over {limit} bytes, more than a skill may hold"
                ));
            }
        }
        Ok(body)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fetching)
        .await
        .map_err(|_| format!("{url} did not answer within {REQUEST_TIMEOUT:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_links_and_zip_links_are_read_and_others_refused_with_what_to_send() {
        assert_eq!(
            parse("https://github.com/anthropics/skills/tree/main/skills/pdf").unwrap(),
            Link::GitHubFolder {
                owner: "anthropics".into(),
                repo: "skills".into(),
                reference: "main".into(),
                path: "skills/pdf".into(),
            }
        );
        let zip = parse(" https://example.com/packs/tea-1.0.zip ").unwrap();
        assert_eq!(
            zip,
            Link::Zip(Url::parse("https://example.com/packs/tea-1.0.zip").unwrap())
        );
        let api = Url::parse(GITHUB_API).unwrap();
        assert_eq!(zip.hosts(&api), [("example.com".to_string(), 443)]);
        let folder = parse("https://github.com/o/r/tree/v1/a").unwrap();
        assert_eq!(
            folder.hosts(&api),
            [
                ("api.github.com".to_string(), 443),
                (GITHUB_RAW_HOST.to_string(), 443)
            ]
        );
        for (link, why) in [
            ("http://example.com/x.zip", "over HTTPS only"),
            ("https://github.com/o/r", "must name a skill's folder"),
            (
                "https://github.com/o/r/tree/main",
                "must name a skill's folder",
            ),
            ("https://example.com/skill", "that link is neither"),
            ("tea.zip", "that is not a link"),
        ] {
            let err = parse(link).unwrap_err();
            assert!(
                err.contains(why) && err.contains("https://github.com/OWNER/REPO/tree/"),
                "{link}: {err}"
            );
        }
    }
}
