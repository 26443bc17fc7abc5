//! `carapace-skillhost`:
//! - `serve --client UID`: the service (service.rs), on its runtime directory's socket, for
//!   agentd's uid; calls keep their files in its state directory.
//! - no arguments: the one call it reads on stdin (a host started by hand, the tests, the bench).
//! - `call STATE_DIR`, `compile COMPILED`: the processes the two above start for a call and for
//!   compiling a component (on stdin).

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use carapace_skillhost::{COMPILE_ARG, Error, SERVED_CALL_ARG};

const USAGE: &str = "usage: carapace-skillhost serve --client UID   (the service; \
                     $RUNTIME_DIRECTORY and $STATE_DIRECTORY set)\n       carapace-skillhost \
                     (a call as JSON on stdin)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        [] => carapace_skillhost::serve_one(carapace_skillhost::Channel::new(
            BufReader::new(std::io::stdin()),
            std::io::stdout(),
        )),
        ["serve", "--client", uid] => match uid.parse::<u32>() {
            Ok(uid) => serve(uid),
            Err(_) => Err(Error::Usage(format!("--client {uid:?} is not a uid"))),
        },
        [step, state_dir] if *step == SERVED_CALL_ARG => {
            carapace_skillhost::serve_connection(Path::new(state_dir))
        }
        [step, compiled] if *step == COMPILE_ARG => {
            carapace_skillhost::compile_step(Path::new(compiled))
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("carapace-skillhost: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The service: its socket in $RUNTIME_DIRECTORY, its files in $STATE_DIRECTORY (PID 1 sets
/// both).
fn serve(client_uid: u32) -> Result<(), Error> {
    let dir = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .ok_or_else(|| Error::Usage(format!("{name} is not set; PID 1 sets it")))
    };
    let socket_name = Path::new(carapace_skills::SKILLHOST_SOCKET)
        .file_name()
        .unwrap_or_default();
    let socket = dir("RUNTIME_DIRECTORY")?.join(socket_name);
    carapace_skillhost::service::serve(&socket, client_uid, &dir("STATE_DIRECTORY")?)
}
