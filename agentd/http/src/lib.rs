//! agentd's one HTTPS client, shared by the IM channels and the LLM client.
//!
//! - TLS is rustls with the ring provider (no aws-lc, no OpenSSL on the box).
//! - The box has no /etc/ssl: it trusts the public roots pinned by the `webpki-root-certs`
//!   version in the workspace, plus the certificates in [`EXTRA_CA_PATH`] when the image has
//!   that file (only test images do: it is how they trust their fake servers).
//! - Plain `http://` is allowed to loopback only (the local inference engine on 127.0.0.1);
//!   anything else must be `https://`, so a typo in a setting cannot send a key in clear.
//! - [`loopback_client`] is the other client: plain http to the box's own services (the local
//!   inference engine), with no roots and no proxy.
//! - Redirects are not followed. reqwest drops `Authorization` on a redirect to another host
//!   but keeps every other header, so a redirect would carry keys sent as custom headers
//!   (Anthropic's `x-api-key`) to wherever it points, possibly over plain http. The APIs the
//!   box calls do not redirect; a 3xx reaches the caller, which names it.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use reqwest::{Client, Url};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Certificates the image adds to the public roots (PEM). Test images only.
pub const EXTRA_CA_PATH: &str = "/etc/carapace/extra-ca.pem";

/// How long a TCP + TLS connect may take before the next address (or a retry) is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the extra CA certificates in {path}: {reason}")]
    ExtraCa { path: String, reason: String },
    #[error("setting up TLS: {0}")]
    Tls(String),
    #[error("building the HTTP client: {0}")]
    Client(String),
    #[error(
        "{url:?} is not a usable address: {reason}; give a full https:// URL, e.g. https://api.openai.com/v1"
    )]
    BadUrl { url: String, reason: String },
}

/// The client for the box: public roots, plus [`EXTRA_CA_PATH`] when the image has it.
pub fn client() -> Result<Client, Error> {
    let extra = read_extra_ca()?;
    client_trusting(extra.as_deref(), Path::new(EXTRA_CA_PATH))
}

/// The image's extra CA certificates, or None when it has none (release images).
fn read_extra_ca() -> Result<Option<Vec<u8>>, Error> {
    match std::fs::read(EXTRA_CA_PATH) {
        Ok(pem) => Ok(Some(pem)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::ExtraCa {
            path: EXTRA_CA_PATH.into(),
            reason: error.to_string(),
        }),
    }
}

/// A client that trusts the public roots and the PEM certificates in `extra_ca_pem` (named
/// `source` in errors). Tests on the host use it with their throwaway CA.
pub fn client_trusting(extra_ca_pem: Option<&[u8]>, source: &Path) -> Result<Client, Error> {
    let config = tls_config_trusting(extra_ca_pem, source)?;
    client_with((*config).clone())
}

/// The TLS settings of [`client`], for the connections reqwest does not make (the Feishu/Lark
/// long connection is a WebSocket): public roots, plus [`EXTRA_CA_PATH`] when the image has it.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, Error> {
    let extra = read_extra_ca()?;
    tls_config_trusting(extra.as_deref(), Path::new(EXTRA_CA_PATH))
}

/// The TLS settings of [`client_trusting`]: the public roots and the PEM certificates in
/// `extra_ca_pem`. No ALPN is offered, so a WebSocket handshake is never steered to HTTP/2.
pub fn tls_config_trusting(
    extra_ca_pem: Option<&[u8]>,
    source: &Path,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    // A root the parser rejects is skipped (the pinned set is known to parse; this keeps one
    // odd certificate from leaving the box with no roots at all).
    let (_added, _skipped) =
        roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let extra_error = |reason: String| Error::ExtraCa {
            path: source.display().to_string(),
            reason,
        };
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|error| extra_error(error.to_string()))?;
        if certificates.is_empty() {
            return Err(extra_error("no PEM certificate in it".into()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| extra_error(error.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn client_with(config: rustls::ClientConfig) -> Result<Client, Error> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("carapace/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| Error::Client(error.to_string()))
}

/// A client for plain http to this box's own services (the local inference engine on
/// 127.0.0.1), with `timeout` for a whole exchange. reqwest always sets up TLS, and without a
/// backend of ours it would take the process-wide rustls provider, which nobody installs
/// (building would panic); so it gets ring with no trusted roots: an https URL given by
/// mistake fails to verify rather than reaching anything. No proxy: loopback is never proxied.
pub fn loopback_client(timeout: Duration) -> Result<Client, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Tls(error.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .user_agent(concat!("carapace/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| Error::Client(error.to_string()))
}

/// `text` as a URL the box may call: `https://` anywhere, `http://` to loopback only.
pub fn checked_url(text: &str) -> Result<Url, Error> {
    let bad = |reason: &str| Error::BadUrl {
        url: text.into(),
        reason: reason.into(),
    };
    let url = Url::parse(text).map_err(|error| bad(&error.to_string()))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(address)) => IpAddr::V4(address).is_loopback(),
        Some(url::Host::Ipv6(address)) => IpAddr::V6(address).is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => return Err(bad("it names no host")),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(bad(
            "plain http is allowed to this box itself only (127.0.0.1); the key would cross the network in clear",
        )),
        other => Err(bad(&format!("the scheme {other}: is not http(s)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_to_loopback_only() {
        assert!(checked_url("https://api.openai.com/v1").is_ok());
        assert!(checked_url("http://127.0.0.1:8080/v1").is_ok());
        assert!(checked_url("http://[::1]:8080/v1").is_ok());
        assert!(checked_url("http://localhost:8080/v1").is_ok());
        let error = checked_url("http://api.openai.com/v1").unwrap_err();
        assert!(error.to_string().contains("in clear"), "{error}");
        let error = checked_url("ftp://example.com").unwrap_err();
        assert!(error.to_string().contains("ftp"), "{error}");
        let error = checked_url("api.openai.com").unwrap_err();
        assert!(error.to_string().contains("https://"), "{error}");
    }

    #[test]
    fn the_public_roots_load() {
        assert!(client_trusting(None, Path::new("-")).is_ok());
        let config = tls_config_trusting(None, Path::new("-")).unwrap();
        assert!(config.alpn_protocols.is_empty());
    }

    #[test]
    fn the_loopback_client_builds_without_a_process_wide_tls_provider() {
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        assert!(loopback_client(Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn a_bad_extra_ca_is_named() {
        let error =
            client_trusting(Some(b"not a certificate"), Path::new("/x/ca.pem")).unwrap_err();
        assert!(error.to_string().contains("/x/ca.pem"), "{error}");
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
    }
}
