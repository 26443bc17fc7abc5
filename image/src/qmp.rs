//! Just enough of QEMU's machine protocol (QMP, JSON lines on a Unix socket) to press the
//! power button and to quit (greeting, `qmp_capabilities`, one command, its reply), and to
//! record the machine's events (a watchdog firing, a reset) on a second socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Qmp> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(Error::Qemu(format!(
                        "cannot reach QMP at {}: {e}",
                        socket.display()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let io = |e: std::io::Error| Error::Qemu(format!("QMP: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        qmp.read_reply()?; // greeting
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    pub fn execute(&mut self, command: &str) -> Result<serde_json::Value> {
        let line = serde_json::json!({ "execute": command }).to_string();
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| Error::Qemu(format!("QMP send {command}: {e}")))?;
        loop {
            let reply = self.read_reply()?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(err) = reply.get("error") {
                return Err(Error::Qemu(format!("QMP {command}: {err}")));
            }
            return Ok(reply);
        }
    }

    /// The next asynchronous event's name (e.g. "WATCHDOG"), or `None` once QEMU is gone.
    pub fn next_event(&mut self) -> Option<serde_json::Value> {
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {
                    let value: serde_json::Value = serde_json::from_str(&line).ok()?;
                    if value.get("event").is_some() {
                        return Some(value);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    fn read_reply(&mut self) -> Result<serde_json::Value> {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| Error::Qemu(format!("QMP read: {e}")))?;
        serde_json::from_str(&line).map_err(|e| Error::Qemu(format!("QMP reply '{line}': {e}")))
    }
}
