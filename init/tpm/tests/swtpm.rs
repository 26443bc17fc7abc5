//! Sealing and unsealing against a real TPM 2.0: swtpm (libtpms, Debian's swtpm package), on a
//! socket in a temporary directory. Its state directory is the TPM's identity: a restart on
//! the same directory is the same TPM after a reboot (PCRs reset, storage seed kept); another
//! directory is another TPM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use carapace_tpm::{PCR_SECURE_BOOT, Refusal, SealedSecret, Socket, Tpm, Transport, seal, unseal};

struct Swtpm {
    child: Child,
    socket: PathBuf,
}

impl Swtpm {
    /// swtpm on `state`, started (TPM2_Startup(CLEAR)) and listening.
    fn start(state: &Path) -> Swtpm {
        std::fs::create_dir_all(state).expect("state dir");
        let socket = state.join("command.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=unixio,path={}", socket.display()))
            .arg("--ctrl")
            .arg(format!(
                "type=unixio,path={}",
                state.join("ctrl.sock").display()
            ))
            .stdout(Stdio::null())
            .spawn()
            .expect("swtpm runs (make deps installs Debian's swtpm)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "swtpm made no socket in 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Swtpm { child, socket }
    }

    fn tpm(&self) -> Tpm<Socket> {
        Tpm::new(Socket::connect(&self.socket).expect("connect to swtpm"))
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[test]
fn a_secret_sealed_to_pcr_7_unseals_after_a_restart_of_the_same_tpm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("tpm");
    let sealed = {
        let swtpm = Swtpm::start(&state);
        let mut tpm = swtpm.tpm();
        let sealed = seal(&mut tpm, SECRET, &[PCR_SECURE_BOOT]).expect("seal");
        // Unseals at once, too.
        let now = unseal(&mut tpm, &sealed, &[PCR_SECURE_BOOT]).expect("unseal");
        assert_eq!(now, SECRET);
        sealed.to_bytes()
    };
    assert!(
        !sealed.windows(SECRET.len()).any(|w| w == SECRET),
        "the stored blob holds the secret in the clear"
    );
    let swtpm = Swtpm::start(&state);
    let sealed = SealedSecret::from_bytes(&sealed).expect("blob reads back");
    let secret = unseal(&mut swtpm.tpm(), &sealed, &[PCR_SECURE_BOOT]).expect("unseal");
    assert_eq!(secret, SECRET);
}

#[test]
fn a_changed_pcr_7_is_refused_as_a_policy_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let swtpm = Swtpm::start(&dir.path().join("tpm"));
    let mut tpm = swtpm.tpm();
    let before = tpm.pcr_read(PCR_SECURE_BOOT).expect("PCR 7");
    let sealed = seal(&mut tpm, SECRET, &[PCR_SECURE_BOOT]).expect("seal");
    // What firmware does when the Secure Boot state it measures differs.
    tpm.pcr_extend(PCR_SECURE_BOOT, &[0x5B; 32])
        .expect("extend PCR 7");
    assert_ne!(tpm.pcr_read(PCR_SECURE_BOOT).expect("PCR 7"), before);
    let err = unseal(&mut tpm, &sealed, &[PCR_SECURE_BOOT]).expect_err("PCR 7 changed");
    assert_eq!(err.refusal(), Some(Refusal::PcrsChanged), "{err}");
    // Another PCR is not part of the policy: extending it changes nothing.
    let other = seal(&mut tpm, SECRET, &[PCR_SECURE_BOOT]).expect("seal again");
    tpm.pcr_extend(8, &[0x11; 32]).expect("extend PCR 8");
    assert_eq!(
        unseal(&mut tpm, &other, &[PCR_SECURE_BOOT]).expect("unseal"),
        SECRET
    );
}

#[test]
fn another_tpm_cannot_load_the_sealed_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sealed = {
        let swtpm = Swtpm::start(&dir.path().join("first"));
        seal(&mut swtpm.tpm(), SECRET, &[PCR_SECURE_BOOT]).expect("seal")
    };
    let other = Swtpm::start(&dir.path().join("second"));
    let err = unseal(&mut other.tpm(), &sealed, &[PCR_SECURE_BOOT]).expect_err("other TPM");
    assert_eq!(err.refusal(), Some(Refusal::OtherTpm), "{err}");
}

/// What a probe on the TPM's bus would record: every command and response, as bytes.
struct Recorded {
    inner: Socket,
    bus: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Transport for Recorded {
    fn transact(&mut self, command: &[u8]) -> std::io::Result<Vec<u8>> {
        let response = self.inner.transact(command)?;
        let mut bus = self.bus.lock().expect("bus");
        bus.extend_from_slice(command);
        bus.extend_from_slice(&response);
        Ok(response)
    }
}

/// Sealing and unsealing run in salted sessions that mask the secret: it seals and comes back,
/// but nowhere on the bus (a discrete TPM's SPI or LPC wires) are its bytes, nor any 8 of
/// them in a row.
#[test]
fn the_secret_never_crosses_the_bus_in_the_clear() {
    let dir = tempfile::tempdir().expect("tempdir");
    let swtpm = Swtpm::start(&dir.path().join("tpm"));
    let bus = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tpm = Tpm::new(Recorded {
        inner: Socket::connect(&swtpm.socket).expect("connect to swtpm"),
        bus: bus.clone(),
    });
    let sealed = seal(&mut tpm, SECRET, &[PCR_SECURE_BOOT]).expect("seal");
    for _ in 0..3 {
        let secret = unseal(&mut tpm, &sealed, &[PCR_SECURE_BOOT]).expect("unseal");
        assert_eq!(secret, SECRET);
    }
    drop(tpm);
    let bus = bus.lock().expect("bus");
    assert!(bus.len() > 1000, "the bus recorded {} bytes", bus.len());
    for piece in SECRET.windows(8) {
        assert!(
            !bus.windows(piece.len()).any(|w| w == piece),
            "{:?} of the secret crossed the bus in the clear",
            String::from_utf8_lossy(piece)
        );
    }
}

/// Flips the first byte of the unsealed data in Unseal's answer, as an active probe would.
struct Tampering(Socket);

impl Transport for Tampering {
    fn transact(&mut self, command: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut response = self.0.transact(command)?;
        let unseal = command.get(6..10) == Some(&[0, 0, 0x01, 0x5E][..]);
        // Header (10), parameter size (4), the data's size (2): the first data byte.
        if unseal && let Some(byte) = response.get_mut(16) {
            *byte ^= 1;
        }
        Ok(response)
    }
}

#[test]
fn an_unseal_answer_changed_on_the_way_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let swtpm = Swtpm::start(&dir.path().join("tpm"));
    let sealed = seal(&mut swtpm.tpm(), SECRET, &[PCR_SECURE_BOOT]).expect("seal");
    let mut tpm = Tpm::new(Tampering(
        Socket::connect(&swtpm.socket).expect("connect to swtpm"),
    ));
    let err = unseal(&mut tpm, &sealed, &[PCR_SECURE_BOOT]).expect_err("a changed answer");
    assert!(
        err.to_string()
            .contains("does not carry the session's HMAC"),
        "{err}"
    );
}
