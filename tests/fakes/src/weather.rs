//! A weather API that wants a key, as most paid web APIs do: `GET /v1/forecast?place=P` with
//! `Authorization: Bearer <key>` answers JSON; a wrong or missing key gets 401 with a body
//! that repeats what was sent (real APIs' errors often do), so a test can see that a value
//! echoed back never reaches the skill that asked. It records each request's Authorization.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::StatusCode;
use tokio_rustls::TlsAcceptor;

use crate::server::{self, Error, Handler};

pub struct FakeWeather {
    authorizations: Arc<Mutex<Vec<String>>>,
    address: SocketAddr,
}

impl FakeWeather {
    /// Serves on `address` (port 0 picks one) from a task of the current runtime, taking
    /// only `key`.
    pub async fn start(
        address: SocketAddr,
        tls: Option<TlsAcceptor>,
        key: &str,
    ) -> Result<FakeWeather, Error> {
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&authorizations);
        let wanted = format!("Bearer {key}");
        let handler: Handler = Arc::new(move |request| {
            let sent = request
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .unwrap_or_default();
            if let Ok(mut seen) = seen.lock() {
                seen.push(sent.clone());
            }
            let answer = if request.uri().path() != "/v1/forecast" {
                server::json(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({"error": "no such API"}),
                )
            } else if sent == wanted {
                server::json(
                    StatusCode::OK,
                    &serde_json::json!({"celsius": 4, "sky": "snow"}),
                )
            } else {
                server::response(
                    StatusCode::UNAUTHORIZED,
                    "text/plain",
                    format!("unknown key: {sent}"),
                )
            };
            Box::pin(async move { answer })
        });
        let address = server::start(address, tls, handler).await?;
        Ok(FakeWeather {
            authorizations,
            address,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The Authorization header of each request so far ("" where there was none).
    pub fn authorizations(&self) -> Vec<String> {
        self.authorizations
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }
}
