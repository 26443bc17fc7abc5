//! The stub's listeners: one UDP socket and one TCP listener that netd binds (127.0.0.53:53 in
//! the image) and hands over. Every query that must wait (upstream, nft) runs as its own task,
//! so it holds up only its own client; refusals and cache hits on UDP are answered by the
//! UDP reader thread. Both transports are bounded so a noisy service cannot make
//! the stub grow without limit.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use rustix::net::SendFlags;
use tokio::runtime::Handle;

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
/// The UDP reader's stack: it holds a few small frames; the datagram buffer is on the heap.
const UDP_READER_STACK: usize = 256 * 1024;
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

/// UDP is read by a thread of its own, blocked in `recv_from`: one system call per query in,
/// one out, where the async loop paid an extra `recv_from` (the one that says "nothing more")
/// and an `epoll_wait`, and a cache hit took about 2 µs longer than dnsmasq's. Refusals and
/// cache hits are answered on that thread; questions that must wait go to the runtime as tasks.
/// Every send is non-blocking (`MSG_DONTWAIT`): a full send buffer loses that reply, as UDP
/// may, rather than stall the reader or a task.
async fn serve_udp<P: NamePolicy, S: AllowSink>(socket: UdpSocket, stub: Arc<Stub<P, S>>) {
    let socket = match socket.into_std().and_then(|socket| {
        socket.set_nonblocking(false)?;
        Ok(socket)
    }) {
        Ok(socket) => Arc::new(socket),
        Err(error) => {
            eprintln!("dns: making the UDP socket blocking for its reader: {error}");
            return;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reader = UdpReader {
        socket: Arc::clone(&socket),
        stub,
        runtime: Handle::current(),
        stop: Arc::clone(&stop),
    };
    if let Err(error) = thread::Builder::new()
        .name("dns-udp".into())
        .stack_size(UDP_READER_STACK)
        .spawn(move || reader.run())
    {
        eprintln!("dns: starting the UDP reader thread: {error}; answering over TCP only");
        return;
    }
    // Dropping this future (netd never does; tests do) stops the reader.
    let _stop = StopReader { socket, stop };
    std::future::pending::<()>().await;
}

struct UdpReader<P, S> {
    socket: Arc<std::net::UdpSocket>,
    stub: Arc<Stub<P, S>>,
    runtime: Handle,
    stop: Arc<AtomicBool>,
}

impl<P: NamePolicy, S: AllowSink> UdpReader<P, S> {
    fn run(self) {
        let in_flight = Arc::new(Semaphore::new(UDP_IN_FLIGHT_MAX));
        let mut buffer = vec![0; UDP_DATAGRAM_MAX];
        while !self.stop.load(Ordering::Acquire) {
            let (length, client) = match self.socket.recv_from(&mut buffer) {
                Ok(received) => received,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                // The read shutdown that stops us can surface as an error.
                Err(_) if self.stop.load(Ordering::Acquire) => return,
                Err(error) => {
                    eprintln!("dns: receiving on the UDP socket: {error}");
                    thread::sleep(SOCKET_ERROR_PAUSE);
                    continue;
                }
            };
            let request = buffer.get(..length).unwrap_or_default();
            let question = match self.stub.step(request, Transport::Udp) {
                Step::Done(reply) => {
                    if let Some(reply) = reply {
                        send(&self.socket, &reply, client);
                    }
                    continue;
                }
                Step::Resolve(question) => question,
            };
            // The semaphore is never closed, so this waits and never fails.
            let Ok(permit) = self
                .runtime
                .block_on(Arc::clone(&in_flight).acquire_owned())
            else {
                return;
            };
            let socket = Arc::clone(&self.socket);
            let stub = Arc::clone(&self.stub);
            self.runtime.spawn(async move {
                let _permit = permit;
                if let Some(reply) = stub.resolve(question, Transport::Udp).await {
                    send(&socket, &reply, client);
                }
            });
        }
    }
}

/// Sends without waiting. A client that went away, or a full buffer, is nothing to log.
fn send(socket: &std::net::UdpSocket, reply: &[u8], client: SocketAddr) {
    let _ = rustix::net::sendto(socket, reply, SendFlags::DONTWAIT, &client);
}

/// Wakes the reader out of `recv_from` (a read shutdown does that on a UDP socket) and tells
/// it to end.
struct StopReader {
    socket: Arc<std::net::UdpSocket>,
    stop: Arc<AtomicBool>,
}

impl Drop for StopReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = rustix::net::shutdown(&*self.socket, rustix::net::Shutdown::Read);
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
