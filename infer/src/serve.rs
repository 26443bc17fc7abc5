//! The local API's listener: HTTP/1.1 on a loopback address only (the firewall keeps the box
//! closed anyway; this keeps the engine closed on a developer's machine too), request bodies
//! bounded (a pack's tar streams, bounded by the room on disk), and a task that drops models
//! left idle.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::api::{self, ApiResponse};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// The largest request body: 25 MB, OpenAI's limit for audio uploads.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// Binds `address`, which must be a loopback address.
pub async fn bind(address: SocketAddr) -> Result<TcpListener> {
    if !address.ip().is_loopback() {
        return Err(Error::NotLoopback { address });
    }
    TcpListener::bind(address)
        .await
        .map_err(|source| Error::Listen { address, source })
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>) {
    tokio::spawn(unload_idle_models(Arc::clone(&engine)));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: wait instead of spinning on the error.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let engine = Arc::clone(&engine);
                async move { Ok::<_, Infallible>(answer(engine, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(engine: Arc<Engine>, request: Request<Incoming>) -> ApiResponse {
    let (parts, body) = request.into_parts();
    // A pack's tar streams to disk: packs are far larger than any other request.
    if parts.method == hyper::Method::POST && parts.uri.path().trim_end_matches('/') == "/v1/packs"
    {
        return api::add_pack(engine, body).await;
    }
    let body: Bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return api::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                format!(
                    "the request body is over {} MB; send less (shorter audio, a smaller \
                     image, fewer texts)",
                    MAX_BODY_BYTES / 1024 / 1024
                ),
            );
        }
        Err(error) => {
            return api::error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "unreadable_body",
                format!("the request body could not be read: {error}"),
            );
        }
    };
    api::handle(engine, Request::from_parts(parts, body)).await
}

/// Every tenth of the idle time (at least every second), drops the models left idle.
async fn unload_idle_models(engine: Arc<Engine>) {
    let period = (engine.config().idle_unload / 10).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(period).await;
        let engine = Arc::clone(&engine);
        if let Ok(dropped) = tokio::task::spawn_blocking(move || engine.unload_idle()).await {
            for model in dropped {
                eprintln!("carapace-infer: unloaded {model} (idle)");
            }
        }
    }
}
