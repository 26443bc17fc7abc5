//! A static update repository over HTTPS, as any web server or CDN would serve what
//! `carapace publish` wrote: GET of files under a directory, with `Range: bytes=N-` answered
//! 206 (how a box resumes a chunk). It counts the bytes it sent, so a test can say how much an
//! update downloaded, and can be told to cut responses short (a link that drops mid-chunk).

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::{Request, StatusCode};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::server::{self, Error, Handler, response};

#[derive(Default)]
struct Shared {
    bytes_sent: AtomicU64,
    requests: Mutex<Vec<String>>,
    /// Responses to chunk requests stop after this many bytes (0: whole).
    cut_chunks_at: AtomicU64,
}

pub struct UpdateServer {
    shared: Arc<Shared>,
    address: SocketAddr,
}

impl UpdateServer {
    /// Serves `root` on `listener` (made inside the test's network namespace).
    pub fn serve(
        listener: std::net::TcpListener,
        tls: Option<TlsAcceptor>,
        root: PathBuf,
    ) -> Result<UpdateServer, Error> {
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Setup(e.to_string()))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::Setup(e.to_string()))?;
        let listener = TcpListener::from_std(listener).map_err(|e| Error::Setup(e.to_string()))?;
        let shared = Arc::new(Shared::default());
        let handler_shared = Arc::clone(&shared);
        let handler: Handler = Arc::new(move |request| {
            let shared = Arc::clone(&handler_shared);
            let root = root.clone();
            Box::pin(async move { answer(&root, &shared, &request) })
        });
        tokio::spawn(server::serve(listener, tls, handler));
        Ok(UpdateServer { shared, address })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Body bytes sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.shared.bytes_sent.load(Ordering::Relaxed)
    }

    /// Paths asked for so far, with a `range=` note for range requests.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// From now on, chunk responses carry at most `bytes` of their body (0: all of it).
    pub fn cut_chunks_at(&self, bytes: u64) {
        self.shared.cut_chunks_at.store(bytes, Ordering::Relaxed);
    }
}

fn answer(root: &Path, shared: &Shared, request: &Request<Bytes>) -> hyper::Response<server::Body> {
    let path = request.uri().path().trim_start_matches('/').to_owned();
    let range = request
        .headers()
        .get(hyper::header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("bytes="))
        .and_then(|value| value.strip_suffix('-'))
        .and_then(|start| start.parse::<u64>().ok());
    shared.requests.lock().unwrap().push(match range {
        Some(start) => format!("{path} range={start}-"),
        None => path.clone(),
    });
    if request.method() != hyper::Method::GET {
        return response(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    let Some(file) = safe_join(root, &path) else {
        return response(StatusCode::NOT_FOUND, "text/plain", "not found\n");
    };
    let Ok(bytes) = std::fs::read(&file) else {
        return response(StatusCode::NOT_FOUND, "text/plain", "not found\n");
    };
    let total = bytes.len() as u64;
    let start = range.unwrap_or(0).min(total);
    let mut body = bytes[start as usize..].to_vec();
    let cut = shared.cut_chunks_at.load(Ordering::Relaxed);
    // Chunks live in `chunks/` of a board's repository, wherever the site puts that.
    let is_chunk = path.rsplit('/').nth(1) == Some("chunks");
    if cut > 0 && is_chunk {
        body.truncate(cut as usize);
    }
    shared
        .bytes_sent
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let status = match range {
        Some(_) => StatusCode::PARTIAL_CONTENT,
        None => StatusCode::OK,
    };
    let mut reply = response(status, "application/octet-stream", body);
    if range.is_some()
        && let Ok(value) = format!("bytes {start}-{}/{total}", total.saturating_sub(1)).parse()
    {
        reply
            .headers_mut()
            .insert(hyper::header::CONTENT_RANGE, value);
    }
    reply
}

/// `root/path`, refused when the path would leave `root`.
fn safe_join(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    relative
        .components()
        .all(|part| matches!(part, Component::Normal(_)))
        .then(|| root.join(relative))
}
