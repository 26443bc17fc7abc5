//! Echo servers on the given TCP and UDP addresses, a thread each, until killed. `ready` on
//! standard output says every socket is bound, so a test never probes before it listens.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;

pub fn run(specs: &[&str]) -> Result<(), String> {
    let mut workers = Vec::new();
    for spec in specs {
        let (kind, address) = spec
            .split_once(':')
            .ok_or_else(|| format!("{spec:?} is not tcp:<addr:port> or udp:<addr:port>"))?;
        let address: SocketAddr = address
            .parse()
            .map_err(|_| format!("{address:?} is not an address with a port"))?;
        let bind_error = |err: std::io::Error| format!("cannot bind {kind} {address}: {err}");
        workers.push(match kind {
            "tcp" => {
                let listener = TcpListener::bind(address).map_err(bind_error)?;
                thread::spawn(move || serve_tcp(listener))
            }
            "udp" => {
                let socket = UdpSocket::bind(address).map_err(bind_error)?;
                thread::spawn(move || serve_udp(socket))
            }
            _ => return Err(format!("{kind:?} is not tcp or udp")),
        });
    }
    println!("ready");
    for worker in workers {
        let _ = worker.join();
    }
    Ok(())
}

fn serve_tcp(listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        thread::spawn(move || echo_line(stream));
    }
}

fn echo_line(stream: TcpStream) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut line = String::new();
    if BufReader::new(stream).read_line(&mut line).is_ok() {
        let _ = writer.write_all(line.as_bytes());
    }
}

fn serve_udp(socket: UdpSocket) {
    let mut buffer = [0u8; 1500];
    while let Ok((len, peer)) = socket.recv_from(&mut buffer) {
        if let Some(datagram) = buffer.get(..len) {
            let _ = socket.send_to(datagram, peer);
        }
    }
}
