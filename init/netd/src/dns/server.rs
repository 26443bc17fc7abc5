//! The stub's listeners: one UDP socket and one TCP listener that netd binds (127.0.0.53:53 in
//! the image) and hands over. Every query that must wait (upstream, nft) runs as its own task,
//! so it holds up only its own client; refusals and cache hits on UDP are answered in the
//! receive loop. Both transports are bounded so a noisy service cannot make
//! the stub grow without limit.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::{sleep, timeout};

use super::reply::Transport;
use super::resolve::Step;
use super::{AllowSink, NamePolicy, Stub};

/// TCP connections served at once; one more is closed as soon as it is accepted.
pub const TCP_CONNECTIONS_MAX: usize = 64;
/// A TCP connection with no complete query (or an unread reply) for this long is closed.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// UDP queries being answered at once; beyond it the stub stops reading and the socket's
/// buffer (then the kernel) absorbs the rest.
const UDP_IN_FLIGHT_MAX: usize = 512;
/// The largest UDP datagram.
const UDP_DATAGRAM_MAX: usize = 65_535;
/// The pause after a socket error, so a persistent one does not spin the CPU or flood the log.
const SOCKET_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Answers queries on `udp` and `tcp` until the returned future is dropped. Socket errors are
/// logged and the listener carries on.
pub async fn serve<P: NamePolicy, S: AllowSink>(
    udp: UdpSocket,
    tcp: TcpListener,
    stub: Arc<Stub<P, S>>,
) {
    tokio::join!(serve_udp(udp, Arc::clone(&stub)), serve_tcp(tcp, stub));
}

async fn serve_udp<P: NamePolicy, S: AllowSink>(socket: UdpSocket, stub: Arc<Stub<P, S>>) {
    let socket = Arc::new(socket);
    let in_flight = Arc::new(Semaphore::new(UDP_IN_FLIGHT_MAX));
    let mut buffer = vec![0; UDP_DATAGRAM_MAX];
    loop {
        // The semaphore is never closed, so this waits and never fails.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let (length, client) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(error) => {
                eprintln!("dns: receiving on the UDP socket: {error}");
                sleep(SOCKET_ERROR_PAUSE).await;
                continue;
            }
        };
        let request = buffer.get(..length).unwrap_or_default();
        // Refusals and cache hits are answered here, without a task: spawning one (and
        // receiving again before it runs) was a good part of a cache hit's round trip.
        let question = match stub.step(request, Transport::Udp) {
            Step::Done(reply) => {
                if let Some(reply) = reply {
                    // A client that went away is its own business; nothing to log.
                    let _ = socket.send_to(&reply, client).await;
                }
                continue;
            }
            Step::Resolve(question) => question,
        };
        let socket = Arc::clone(&socket);
        let stub = Arc::clone(&stub);
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(reply) = stub.resolve(question, Transport::Udp).await {
                let _ = socket.send_to(&reply, client).await;
            }
        });
    }
}

async fn serve_tcp<P: NamePolicy, S: AllowSink>(listener: TcpListener, stub: Arc<Stub<P, S>>) {
    let connections = Arc::new(Semaphore::new(TCP_CONNECTIONS_MAX));
    loop {
        let (stream, _client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("dns: accepting a TCP connection: {error}");
                sleep(SOCKET_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            // Closing at once tells the client to retry later, and costs us nothing.
            drop(stream);
            continue;
        };
        let stub = Arc::clone(&stub);
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(stream, &stub).await;
        });
    }
}

/// Answers the length-prefixed queries of one connection in order, until the client closes it,
/// idles, or sends something that gets no reply (after which the framing cannot be trusted).
async fn serve_connection<P: NamePolicy, S: AllowSink>(mut stream: TcpStream, stub: &Stub<P, S>) {
    loop {
        let Ok(Ok(length)) = timeout(TCP_IDLE_TIMEOUT, stream.read_u16()).await else {
            return;
        };
        let mut request = vec![0; usize::from(length)];
        let Ok(Ok(_)) = timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut request)).await else {
            return;
        };
        let Some(reply) = stub.handle(&request, Transport::Tcp).await else {
            return;
        };
        // reply::encode keeps TCP replies within 65535 bytes.
        let Ok(length) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(&reply);
        let Ok(Ok(())) = timeout(TCP_IDLE_TIMEOUT, stream.write_all(&framed)).await else {
            return;
        };
    }
}
