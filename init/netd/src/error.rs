//! The one error type of netd: each variant names the step that failed and with whom.

use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no upstream resolver is configured")]
    NoUpstream,
    #[error("binding a socket to query upstream {upstream}: {source}")]
    UpstreamBind {
        upstream: SocketAddr,
        source: std::io::Error,
    },
    #[error("sending a query to upstream {upstream}: {source}")]
    UpstreamSend {
        upstream: SocketAddr,
        source: std::io::Error,
    },
    #[error("receiving an answer from upstream {upstream}: {source}")]
    UpstreamReceive {
        upstream: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream {upstream} did not answer within {timeout_ms} ms")]
    UpstreamTimeout {
        upstream: SocketAddr,
        timeout_ms: u128,
    },
    #[error("upstream {upstream} sent an answer that is not a DNS response to our question")]
    UpstreamAnswerMalformed { upstream: SocketAddr },
    #[error("upstream {upstream} answered {rcode}")]
    UpstreamRefused {
        upstream: SocketAddr,
        rcode: ResponseCode,
    },
    #[error("encoding the query for upstream {upstream}: {source}")]
    UpstreamQueryEncode {
        upstream: SocketAddr,
        source: hickory_proto::ProtoError,
    },
    #[error("opening the firewall for {name}: {reason}")]
    AllowSink { name: String, reason: String },
}
