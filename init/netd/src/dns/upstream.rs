//! Asking the upstream resolvers (from the DHCP lease): UDP first, TCP when the UDP answer is
//! truncated, the next upstream when one times out, errs or refuses.
//!
//! Each question goes out from a fresh socket (a new random source port) with a random id, and
//! only a response that echoes both the id and the question is taken: the rest is ignored, so
//! an off-path guess has to hit port, id and question at once.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use super::query::our_edns;
use super::stats::{Counter, Stats};
use crate::Error;

/// How long one upstream gets for one question, per transport.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Bigger than any UDP answer an upstream may send us (we advertise 1232 bytes).
const UDP_RECEIVE_BUFFER: usize = 4096;

/// The first good response to `query` from `upstreams`, tried in order. Each failed attempt
/// counts as an upstream failure; the error is the last attempt's.
pub(crate) async fn exchange(
    upstreams: &[SocketAddr],
    query: &Query,
    timeout: Duration,
    stats: &Stats,
) -> Result<Message, Error> {
    let mut last_error = Error::NoUpstream;
    for &upstream in upstreams {
        match ask(upstream, query, timeout).await {
            Ok(response) => return Ok(response),
            Err(error) => {
                stats.bump(Counter::UpstreamFailures);
                last_error = error;
            }
        }
    }
    Err(last_error)
}

async fn ask(upstream: SocketAddr, query: &Query, timeout: Duration) -> Result<Message, Error> {
    let mut response = over_udp(upstream, query, timeout).await?;
    if response.metadata.truncation {
        response = over_tcp(upstream, query, timeout).await?;
    }
    match response.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(response),
        rcode => Err(Error::UpstreamRefused { upstream, rcode }),
    }
}

async fn over_udp(
    upstream: SocketAddr,
    query: &Query,
    timeout: Duration,
) -> Result<Message, Error> {
    let deadline = Instant::now() + timeout;
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|source| Error::UpstreamBind { upstream, source })?;
    // Connected, so the kernel drops datagrams from any other address and reports ICMP errors.
    socket
        .connect(upstream)
        .await
        .map_err(|source| Error::UpstreamSend { upstream, source })?;
    let (id, request) = encode_query(upstream, query)?;
    socket
        .send(&request)
        .await
        .map_err(|source| Error::UpstreamSend { upstream, source })?;
    let mut buffer = vec![0; UDP_RECEIVE_BUFFER];
    loop {
        let length = timeout_at(deadline, socket.recv(&mut buffer))
            .await
            .map_err(|_| timed_out(upstream, timeout))?
            .map_err(|source| Error::UpstreamReceive { upstream, source })?;
        if let Some(response) = buffer
            .get(..length)
            .and_then(|bytes| matching(bytes, id, query))
        {
            return Ok(response);
        }
    }
}

async fn over_tcp(
    upstream: SocketAddr,
    query: &Query,
    timeout: Duration,
) -> Result<Message, Error> {
    let deadline = Instant::now() + timeout;
    let exchange = async {
        let mut stream = TcpStream::connect(upstream)
            .await
            .map_err(|source| Error::UpstreamSend { upstream, source })?;
        let (id, request) = encode_query(upstream, query)?;
        let length = u16::try_from(request.len())
            .map_err(|_| Error::UpstreamAnswerMalformed { upstream })?;
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(&request);
        stream
            .write_all(&framed)
            .await
            .map_err(|source| Error::UpstreamSend { upstream, source })?;
        let length = stream
            .read_u16()
            .await
            .map_err(|source| Error::UpstreamReceive { upstream, source })?;
        let mut response = vec![0; usize::from(length)];
        stream
            .read_exact(&mut response)
            .await
            .map_err(|source| Error::UpstreamReceive { upstream, source })?;
        matching(&response, id, query).ok_or(Error::UpstreamAnswerMalformed { upstream })
    };
    timeout_at(deadline, exchange)
        .await
        .map_err(|_| timed_out(upstream, timeout))?
}

fn encode_query(upstream: SocketAddr, query: &Query) -> Result<(u16, Vec<u8>), Error> {
    // Message::query() draws a random id.
    let mut request = Message::query();
    request.metadata.recursion_desired = true;
    request.add_query(query.clone());
    request.set_edns(our_edns());
    let bytes = request
        .to_vec()
        .map_err(|source| Error::UpstreamQueryEncode { upstream, source })?;
    Ok((request.metadata.id, bytes))
}

/// `bytes` read as the response to our question `query` sent with `id`, or `None`.
fn matching(bytes: &[u8], id: u16, query: &Query) -> Option<Message> {
    let response = Message::from_vec(bytes).ok()?;
    let echoes_question = match response.queries.as_slice() {
        [echoed] => {
            echoed.name() == query.name()
                && echoed.query_type() == query.query_type()
                && echoed.query_class() == query.query_class()
        }
        _ => false,
    };
    let is_ours = response.metadata.message_type == MessageType::Response
        && response.metadata.id == id
        && echoes_question;
    is_ours.then_some(response)
}

fn timed_out(upstream: SocketAddr, timeout: Duration) -> Error {
    Error::UpstreamTimeout {
        upstream,
        timeout_ms: timeout.as_millis(),
    }
}
