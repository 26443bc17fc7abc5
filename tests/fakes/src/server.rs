//! The HTTP/1.1 listener every fake runs on: plain TCP, or TLS with a certificate the test
//! made (the test CA's, so the box under test trusts it). A handler gets the whole request
//! (body read) and returns a response whose body may stream (SSE, long polls), or a 101 that
//! takes the connection over (`hyper::upgrade::on` on the request: WebSockets).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

pub type Body = BoxBody<Bytes, Infallible>;
pub type Handler = Arc<
    dyn Fn(Request<Bytes>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("fake server: {0}")]
    Setup(String),
    #[error("fake server: waited {waited_ms} ms for {wanted} requests, {got} came")]
    Waited {
        waited_ms: u128,
        wanted: usize,
        got: usize,
    },
}

/// When a request's head arrived (before its body was read): every request a handler gets
/// carries it in its extensions, so fakes can time what the client under test did.
#[derive(Clone, Copy, Debug)]
pub struct Arrival(pub Instant);

/// A TLS acceptor for the PEM certificate chain and key in these files.
pub fn tls_acceptor(cert_pem: &Path, key_pem: &Path) -> Result<TlsAcceptor, Error> {
    let setup = |what: &str, error: String| Error::Setup(format!("{what}: {error}"));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
        .map_err(|e| setup(&cert_pem.display().to_string(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| setup(&cert_pem.display().to_string(), e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(key_pem)
        .map_err(|e| setup(&key_pem.display().to_string(), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup("TLS versions", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| setup("certificate", e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `handler` on `listener` until the task is dropped; one task per connection.
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, handler: Handler) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // As the real services' front ends do: without it, the second write of a streamed
        // answer waits for the client's delayed ACK of the first (Nagle), 40 ms on Linux.
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let handler = Arc::clone(&handler);
                let arrival = Arrival(Instant::now());
                async move {
                    let (mut parts, body) = request.into_parts();
                    parts.extensions.insert(arrival);
                    let body = match body.collect().await {
                        Ok(collected) => collected.to_bytes(),
                        Err(_) => Bytes::new(),
                    };
                    Ok::<_, Infallible>(handler(Request::from_parts(parts, body)).await)
                }
            });
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await;
                    }
                }
                None => {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                }
            }
        });
    }
}

/// Binds `address` and serves `handler` there on a task of the current runtime; returns the
/// bound address (port 0 picks one).
pub async fn start(
    address: SocketAddr,
    tls: Option<TlsAcceptor>,
    handler: Handler,
) -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| Error::Setup(format!("bind {address}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Setup(e.to_string()))?;
    tokio::spawn(serve(listener, tls, handler));
    Ok(bound)
}

/// A complete response with this status, content type and body.
pub fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// An empty body (a 101 Switching Protocols).
pub fn empty() -> Body {
    Full::new(Bytes::new()).boxed()
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    response(status, "application/json", value.to_string())
}

/// A response whose body is whatever is sent into the returned channel, chunk by chunk, until
/// the sender is dropped (SSE streams).
pub fn streaming(status: StatusCode, content_type: &str) -> (mpsc::Sender<Bytes>, Response<Body>) {
    let (sender, mut receiver) = mpsc::channel::<Bytes>(64);
    let stream = futures_util::stream::poll_fn(move |context| {
        receiver
            .poll_recv(context)
            .map(|chunk| chunk.map(|bytes| Ok::<_, Infallible>(Frame::data(bytes))))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    (sender, response)
}
