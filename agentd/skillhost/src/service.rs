//! The skill host as a service of its own: PID 1 starts `carapace-skillhost serve --client UID`
//! under the skill host's uid, in a cgroup with memory and pids limits and without network
//! (the recipe's service table). It listens on [`carapace_skills::SKILLHOST_SOCKET`] (its
//! runtime directory), takes connections only from the client uid (agentd's), and runs each
//! call in a new process of its own (`carapace-skillhost call STATE_DIR`) whose stdin and
//! stdout are the connection. Calls keep their compiled code and scratch directories in the
//! service's state directory, which agentd cannot touch, as the service cannot touch agentd's.
//!
//! This loop parses nothing but the peer's uid: the call itself is read by the call's own
//! process, confined before the skill's code runs.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Error, SERVED_CALL_ARG};

/// Calls running at once; more wait in the listen queue. Compiling a Python skill's component
/// peaks near 400 MiB, and a running call may hold 128 MiB of linear memory besides its code:
/// two fit the service's cgroup (memory_max in the recipes) side by side.
const MAX_CALLS: usize = 2;
/// A call process older than this is killed: compiling a component may take ten minutes on a
/// slow board and the longest deadline is minutes; past both, something is stuck.
const MAX_CALL_AGE: Duration = Duration::from_secs(20 * 60);

/// Serves calls on `socket` for `client_uid` until the process is stopped.
pub fn serve(socket: &Path, client_uid: u32, state_dir: &Path) -> Result<(), Error> {
    let listener = listen(socket)?;
    println!("listening on {} for uid {client_uid}", socket.display());
    let program = std::env::current_exe().map_err(Error::io("find", "/proc/self/exe"))?;
    let running: Arc<Mutex<Vec<(Child, Instant)>>> = Arc::default();
    std::thread::spawn({
        let running = Arc::clone(&running);
        move || loop {
            std::thread::sleep(Duration::from_secs(1));
            reap(&running);
        }
    });
    for connection in listener.incoming() {
        let connection = match connection {
            Ok(connection) => connection,
            Err(err) => {
                eprintln!("accepting a call: {err}");
                continue;
            }
        };
        match carapace_skills::handoff::peer_uid(&connection) {
            Ok(uid) if uid == client_uid => {}
            Ok(uid) => {
                eprintln!("refused a connection from uid {uid}: only uid {client_uid} may call");
                continue;
            }
            Err(err) => {
                eprintln!("refused a connection whose peer is unknown: {err}");
                continue;
            }
        }
        while lock(&running).len() >= MAX_CALLS {
            std::thread::sleep(Duration::from_millis(50));
            reap(&running);
        }
        let spawned = connection.try_clone().and_then(|input| {
            Command::new(&program)
                .arg(SERVED_CALL_ARG)
                .arg(state_dir)
                .stdin(Stdio::from(std::os::fd::OwnedFd::from(input)))
                .stdout(Stdio::from(std::os::fd::OwnedFd::from(connection)))
                .stderr(Stdio::inherit())
                .spawn()
        });
        match spawned {
            Ok(child) => lock(&running).push((child, Instant::now())),
            Err(err) => eprintln!("starting a call's process: {err}"),
        }
    }
    Ok(())
}

/// Binds `socket` afresh (a stale one from the last run is removed), 0666: its directory and
/// the peer's uid decide who calls.
fn listen(socket: &Path) -> Result<UnixListener, Error> {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(Error::io("remove the stale", socket)(err)),
    }
    let listener = UnixListener::bind(socket).map_err(Error::io("listen on", socket))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))
        .map_err(Error::io("open up", socket))?;
    Ok(listener)
}

/// Waits for calls that ended; kills those older than [`MAX_CALL_AGE`].
fn reap(running: &Mutex<Vec<(Child, Instant)>>) {
    lock(running).retain_mut(|(child, started)| {
        if started.elapsed() > MAX_CALL_AGE {
            eprintln!(
                "killed call process {}: it ran past {MAX_CALL_AGE:?}",
                child.id()
            );
            let _ = child.kill();
        }
        !matches!(child.try_wait(), Ok(Some(_)) | Err(_))
    });
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
