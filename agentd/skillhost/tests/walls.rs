//! The walls themselves, below WebAssembly: a process confined as the skill host confines itself
//! before a skill's code runs can read only its compiled code (through the descriptor it opened
//! before) and its scratch directory, write only the scratch directory, open no socket and run
//! no program. The test runs itself again as that process (an escaped attacker would be native
//! code in it too).

use carapace_skills::sandbox_protocol::{Call, Limits};
use std::path::Path;
use std::process::Command;

const CHILD: &str = "CARAPACE_SKILLHOST_WALLS_CHILD";

fn probe_call(root: &Path) -> Call {
    Call {
        skill: "walls".into(),
        component: root.join("skill.wasm"),
        compiled_dir: root.join("compiled"),
        scratch: root.join("scratch"),
        limits: Limits {
            scratch_file_bytes: 4096,
            ..Limits::default()
        },
        hosts: Vec::new(),
        tool: "probe".into(),
        arguments: "{}".into(),
    }
}

#[test]
fn a_confined_process_reaches_only_its_scratch_directory_and_compiled_code() {
    if let Some(root) = std::env::var_os(CHILD) {
        return probe(Path::new(&root));
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("scratch")).unwrap();
    std::fs::create_dir_all(root.path().join("compiled")).unwrap();
    std::fs::write(root.path().join("compiled/x.cwasm"), "code").unwrap();
    std::fs::write(root.path().join("secret"), "secret").unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_confined_process_reaches_only_its_scratch_directory_and_compiled_code",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, root.path())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "compiled, opened before: read",
        "compiled by path: refused (EACCES)",
        "scratch: written and read",
        "big file: refused (EFBIG)",
        "secret beside it: refused (EACCES)",
        "/etc/passwd: refused (EACCES)",
        "compiled dir write: refused (EACCES)",
        "tcp socket: refused (EPERM)",
        "unix socket: refused (EPERM)",
        "exec /bin/true: refused",
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "missing {line:?} in:\n{printed}"
        );
    }
}

fn probe(root: &Path) {
    let call = probe_call(root);
    let mut opened_before = std::fs::File::open(root.join("compiled/x.cwasm")).unwrap();
    carapace_skillhost::sandbox::confine_for_running(&call).unwrap();
    // libtest printed "test ... " on this line.
    println!();
    let errno = |err: std::io::Error| match err.raw_os_error() {
        Some(libc::EACCES) => "EACCES".to_string(),
        Some(libc::EPERM) => "EPERM".to_string(),
        Some(libc::EFBIG) => "EFBIG".to_string(),
        _ => format!("{err}"),
    };
    let mut compiled = Vec::new();
    match std::io::Read::read_to_end(&mut opened_before, &mut compiled) {
        Ok(_) => println!("compiled, opened before: read"),
        Err(err) => println!("compiled, opened before: {}", errno(err)),
    }
    match std::fs::read(root.join("compiled/x.cwasm")) {
        Ok(_) => println!("compiled by path: read"),
        Err(err) => println!("compiled by path: refused ({})", errno(err)),
    }
    let note = root.join("scratch/note");
    match std::fs::write(&note, "hi").and_then(|()| std::fs::read(&note)) {
        Ok(_) => println!("scratch: written and read"),
        Err(err) => println!("scratch: {}", errno(err)),
    }
    match std::fs::write(root.join("scratch/big"), vec![0u8; 8192]) {
        Ok(()) => println!("big file: written"),
        Err(err) => println!("big file: refused ({})", errno(err)),
    }
    for (name, path) in [
        ("secret beside it", root.join("secret")),
        ("/etc/passwd", "/etc/passwd".into()),
    ] {
        match std::fs::read(&path) {
            Ok(_) => println!("{name}: read"),
            Err(err) => println!("{name}: refused ({})", errno(err)),
        }
    }
    match std::fs::write(root.join("compiled/evil.cwasm"), "x") {
        Ok(()) => println!("compiled dir write: written"),
        Err(err) => println!("compiled dir write: refused ({})", errno(err)),
    }
    match std::net::TcpStream::connect("127.0.0.1:9") {
        Ok(_) => println!("tcp socket: connected"),
        Err(err) => println!("tcp socket: refused ({})", errno(err)),
    }
    match std::os::unix::net::UnixStream::connect("/run/dbus/system_bus_socket") {
        Ok(_) => println!("unix socket: opened"),
        Err(err) => println!("unix socket: refused ({})", errno(err)),
    }
    match Command::new("/bin/true").status() {
        Ok(status) => println!("exec /bin/true: ran ({status})"),
        Err(_) => println!("exec /bin/true: refused"),
    }
}
