//! The box's recent log lines, from the logger's socket (it lets agentd's uid read them).

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;

pub const RECENT_SOCKET: &str = "/run/logger/recent.sock";
const TIMEOUT: Duration = Duration::from_secs(2);

/// The last `count` lines, at most `max_bytes` (the newest kept), or why there are none.
pub async fn recent(socket: &Path, count: usize, max_bytes: usize) -> Result<String, String> {
    let read = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        Ok::<_, std::io::Error>(text)
    };
    let text = match tokio::time::timeout(TIMEOUT, read).await {
        Ok(Ok(text)) => text,
        Ok(Err(error)) => return Err(format!("the logger's socket {}: {error}", socket.display())),
        Err(_) => {
            return Err(format!(
                "the logger did not answer within {} s",
                TIMEOUT.as_secs()
            ));
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut bytes = 0;
    for line in lines.iter().rev().take(count) {
        if bytes + line.len() + 1 > max_bytes {
            break;
        }
        bytes += line.len() + 1;
        kept.push(line);
    }
    kept.reverse();
    Ok(kept.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_lines_within_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::Write;
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().unwrap();
                stream.write_all(b"one\ntwo\nthree\nfour\n").unwrap();
            }
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(
            runtime.block_on(recent(&path, 2, 1000)).unwrap(),
            "three\nfour"
        );
        assert_eq!(
            runtime.block_on(recent(&path, 10, 11)).unwrap(),
            "three\nfour"
        );
        server.join().unwrap();
        let missing = runtime
            .block_on(recent(&dir.path().join("none"), 2, 100))
            .unwrap_err();
        assert!(missing.contains("logger's socket"), "{missing}");
    }
}
