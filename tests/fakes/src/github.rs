//! GitHub, as far as a skill's folder link needs it: the REST API's contents endpoint (`GET
//! /repos/OWNER/REPO/contents/PATH?ref=REF`: a folder lists its entries as a JSON array, a file
//! is one object, anything else 404 with GitHub's error body) and the raw file host
//! (`GET /OWNER/REPO/REF/PATH`, the `download_url` of each file). One repository at one ref,
//! its files given by path. Serve it under both names (api.github.com and
//! raw.githubusercontent.com) or, on loopback, one address for both. It records each path asked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::StatusCode;
use tokio_rustls::TlsAcceptor;

use crate::server::{self, Error, Handler};

/// The repository the fake serves.
#[derive(Clone, Debug)]
pub struct Repository {
    pub owner: String,
    pub repo: String,
    pub reference: String,
    /// Each file's path in the repository and its bytes.
    pub files: BTreeMap<String, Vec<u8>>,
}

pub struct FakeGitHub {
    requests: Arc<Mutex<Vec<String>>>,
    address: SocketAddr,
}

impl FakeGitHub {
    /// Serves `repository` on `address` (port 0 picks one) from a task of the current runtime;
    /// each file's `download_url` starts with `raw_base` of the address served on
    /// (`https://raw.githubusercontent.com`, or this server's own URL).
    pub async fn start(
        address: SocketAddr,
        tls: Option<TlsAcceptor>,
        repository: Repository,
        raw_base: impl Fn(SocketAddr) -> String,
    ) -> Result<FakeGitHub, Error> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| Error::Setup(format!("bind {address}: {error}")))?;
        FakeGitHub::from_listener(listener, tls, repository, raw_base)
    }

    /// The same on a listener made already (one inside a test's network namespace).
    pub fn from_listener(
        listener: tokio::net::TcpListener,
        tls: Option<TlsAcceptor>,
        repository: Repository,
        raw_base: impl Fn(SocketAddr) -> String,
    ) -> Result<FakeGitHub, Error> {
        let address = listener
            .local_addr()
            .map_err(|error| Error::Setup(error.to_string()))?;
        let raw = raw_base(address);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let handler: Handler = Arc::new(move |request| {
            let path_and_query = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            if let Ok(mut seen) = seen.lock() {
                seen.push(path_and_query);
            }
            let answer = answer(&repository, &raw, request.uri());
            Box::pin(async move { answer })
        });
        tokio::spawn(server::serve(listener, tls, handler));
        Ok(FakeGitHub { requests, address })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Each request's path and query so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }
}

fn answer(repository: &Repository, raw: &str, uri: &hyper::Uri) -> hyper::Response<server::Body> {
    let path = uri.path();
    let api_prefix = format!("/repos/{}/{}/contents/", repository.owner, repository.repo);
    let raw_prefix = format!(
        "/{}/{}/{}/",
        repository.owner, repository.repo, repository.reference
    );
    if let Some(inside) = path.strip_prefix(&api_prefix) {
        let reference = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("ref="))
            .unwrap_or("main");
        if reference != repository.reference {
            return not_found();
        }
        return contents(repository, raw, inside.trim_end_matches('/'));
    }
    match path
        .strip_prefix(&raw_prefix)
        .and_then(|inside| repository.files.get(inside))
    {
        Some(bytes) => server::response(StatusCode::OK, "text/plain; charset=utf-8", bytes.clone()),
        None => server::response(StatusCode::NOT_FOUND, "text/plain", "404: Not Found"),
    }
}

/// The contents API's answer for `path`: a file's object, a folder's array, or 404.
fn contents(repository: &Repository, raw: &str, path: &str) -> hyper::Response<server::Body> {
    if let Some(bytes) = repository.files.get(path) {
        return server::json(StatusCode::OK, &entry(repository, raw, path, Some(bytes)));
    }
    let prefix = format!("{path}/");
    let mut children: BTreeMap<String, Option<&Vec<u8>>> = BTreeMap::new();
    for (file, bytes) in &repository.files {
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            Some((folder, _)) => children.insert(format!("{prefix}{folder}"), None),
            None => children.insert(file.clone(), Some(bytes)),
        };
    }
    if children.is_empty() {
        return not_found();
    }
    let listed: Vec<serde_json::Value> = children
        .iter()
        .map(|(child, bytes)| entry(repository, raw, child, *bytes))
        .collect();
    server::json(StatusCode::OK, &serde_json::Value::Array(listed))
}

/// One entry as GitHub writes it (`bytes` None: a folder).
fn entry(
    repository: &Repository,
    raw: &str,
    path: &str,
    bytes: Option<&Vec<u8>>,
) -> serde_json::Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    let (owner, repo, reference) = (&repository.owner, &repository.repo, &repository.reference);
    // GitHub's sha is the git object's (SHA-1, 40 hex digits); a stand-in of the same form.
    let sha = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        path.hash(&mut hasher);
        format!("{:040x}", hasher.finish())
    };
    let api =
        format!("https://api.github.com/repos/{owner}/{repo}/contents/{path}?ref={reference}");
    let html = format!(
        "https://github.com/{owner}/{repo}/{}/{reference}/{path}",
        match bytes {
            Some(_) => "blob",
            None => "tree",
        }
    );
    let git = format!(
        "https://api.github.com/repos/{owner}/{repo}/git/{}/{sha}",
        match bytes {
            Some(_) => "blobs",
            None => "trees",
        }
    );
    serde_json::json!({
        "name": name,
        "path": path,
        "sha": sha,
        "size": bytes.map_or(0, |b| b.len()),
        "url": api,
        "html_url": html,
        "git_url": git,
        "download_url": bytes.map(|_| format!("{raw}/{owner}/{repo}/{reference}/{path}")),
        "type": if bytes.is_some() { "file" } else { "dir" },
        "_links": {"self": api, "git": git, "html": html},
    })
}

fn not_found() -> hyper::Response<server::Body> {
    server::json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content",
            "status": "404"
        }),
    )
}
