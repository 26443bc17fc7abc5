//! Boots an image in QEMU as the board's machine (board-support's `QemuMachine`: emulator,
//! machine type, CPU, UEFI firmware with a per-image copy of its variables, watchdog), with the
//! disk on virtio, user-mode networking, reset on watchdog expiry and a QMP socket. The serial
//! console is captured line by line (and echoed) so callers can wait for console lines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use board_support::board::{Board, BootFlow, QemuMachine};

use crate::error::{Error, IoContext, Result};
use crate::pi_stand_in::{self, DirectKernel};
use crate::qmp::Qmp;
use crate::tools;

/// The machine's writable copy of its firmware's variable store, in its state directory.
pub const FIRMWARE_VARS_FILE: &str = "firmware-vars.fd";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// KVM when it really works, else TCG; CARAPACE_ACCEL=kvm|tcg overrides. /dev/kvm existing is
/// not enough (nested setups die on the first MSR write), so start a throw-away VM of the
/// board's machine.
pub fn detect_accel(machine: &QemuMachine) -> Accel {
    match std::env::var("CARAPACE_ACCEL").as_deref() {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        _ => {}
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Accel::Tcg;
    }
    // The probe runs the same firmware the machines boot: a nested KVM that cannot run it
    // does not exit but pauses with "KVM internal error", so read stderr, not just liveness.
    let probe = Command::new(machine.system_binary)
        .args([
            "-accel",
            "kvm",
            "-cpu",
            machine.kvm_cpu,
            "-machine",
            machine.machine_type,
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-drive",
            &format!(
                "if=pflash,format=raw,readonly=on,file={}",
                machine.firmware_code
            ),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = probe else {
        return Accel::Tcg;
    };
    std::thread::sleep(Duration::from_secs(3));
    let alive = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    let _ = child.wait();
    let failed = stderr.contains("KVM internal error") || stderr.contains("emulation failure");
    if alive && !failed {
        Accel::Kvm
    } else {
        Accel::Tcg
    }
}

/// How the machine's one network card is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// QEMU's user-mode network (DHCP and DNS from QEMU, NAT to the host's network): what
    /// `carapace run` gives a developer's box.
    User,
    /// User-mode networking with `restrict=on`: the guest reaches nothing beyond QEMU itself.
    /// Tests that need no network use this, so no test sends traffic off this machine.
    Isolated,
    /// A tap device made inside a network namespace, where the test's hosts (DHCP, DNS, NTP,
    /// HTTPS) live; QEMU itself runs in that namespace.
    Tap { netns: String, ifname: String },
}

pub struct VmConfig {
    /// The board's QEMU machine: emulator, machine type, CPU models, firmware, watchdog.
    pub machine: QemuMachine,
    pub disk: PathBuf,
    pub disk_format: &'static str,
    /// Writable copy of the firmware's variable store for this machine.
    pub vars: PathBuf,
    pub qmp_socket: PathBuf,
    /// A second QMP socket that only records events: QEMU serves one client per socket.
    pub events_socket: PathBuf,
    pub memory_mib: u32,
    /// Virtual CPUs: two under KVM; one under TCG, where a second one's thread competes with
    /// the first for the host's cores and the kernel's cross-CPU work waits on both (two boots
    /// side by side, as the test lanes run them on 2 cores: 15 s to ready with one each, 19 s
    /// with two).
    pub cpus: u32,
    pub accel: Accel,
    /// `-fw_cfg name=opt/<key>,string=<value>` pairs (test hooks).
    pub fw_cfg: Vec<(String, String)>,
    /// Echo console lines to our stderr.
    pub echo: bool,
    pub network: Network,
    /// A board without UEFI (the Pi 5): its firmware's choice of kernel, initramfs and
    /// command line, booted directly instead of through the UEFI firmware.
    pub direct_kernel: Option<DirectKernel>,
    /// Boot with the Secure Boot firmware, its variables copied from this store (a Secure Boot
    /// build's, with its keys enrolled: secure_boot::ENROLLED_VARS).
    pub secure_boot_vars: Option<PathBuf>,
    /// A software TPM 2.0 (swtpm) whose state lives in this directory: the same directory is
    /// the same TPM on every boot; another directory is another TPM.
    pub tpm_state: Option<PathBuf>,
}

impl VmConfig {
    /// A machine of `board`'s kind for `disk`, whose state files live in `dir`.
    pub fn new(board: &Board, disk: PathBuf, dir: &Path) -> VmConfig {
        let accel = detect_accel(&board.qemu);
        VmConfig {
            machine: board.qemu,
            disk_format: if disk.extension().is_some_and(|e| e == "qcow2") {
                "qcow2"
            } else {
                "raw"
            },
            disk,
            vars: dir.join(FIRMWARE_VARS_FILE),
            qmp_socket: dir.join("qmp.sock"),
            events_socket: dir.join("qmp-events.sock"),
            memory_mib: 1536,
            cpus: match accel {
                Accel::Kvm => 2,
                Accel::Tcg => 1,
            },
            accel,
            fw_cfg: Vec::new(),
            echo: false,
            network: Network::Isolated,
            direct_kernel: None,
            secure_boot_vars: None,
            tpm_state: None,
        }
    }

    /// Boots the Secure Boot firmware with a copy of `enrolled_vars` (made by a Secure Boot
    /// build) as its variable store.
    pub fn secure_boot(&mut self, enrolled_vars: &Path) -> Result<()> {
        if self.machine.secure_boot.is_none() || self.direct_kernel.is_some() {
            return Err(Error::Qemu(format!(
                "{} has no Secure Boot firmware set up here",
                self.machine.system_binary
            )));
        }
        if !enrolled_vars.is_file() {
            return Err(Error::Qemu(format!(
                "{} is missing: the image is not signed for Secure Boot; build it with \
                 `carapace build --recipe <recipe> --secure-boot-keys <dir>` (keys from \
                 `carapace keygen --secure-boot <dir>`)",
                enrolled_vars.display()
            )));
        }
        self.secure_boot_vars = Some(enrolled_vars.to_owned());
        Ok(())
    }

    /// Gives the machine a TPM 2.0: swtpm with its state in `state_dir` (made if missing).
    pub fn tpm(&mut self, state_dir: &Path) {
        self.tpm_state = Some(state_dir.to_owned());
    }

    fn tpm_socket(&self) -> Option<PathBuf> {
        Some(self.tpm_state.as_ref()?.join("swtpm.sock"))
    }

    fn firmware_code(&self) -> &'static str {
        match (&self.secure_boot_vars, self.machine.secure_boot) {
            (Some(_), Some(secure_boot)) => secure_boot.firmware_code,
            _ => self.machine.firmware_code,
        }
    }

    /// A machine of `board`'s kind for `disk` (an overlay of `image`), whose state files live
    /// in `dir`. For a board whose firmware QEMU lacks (the Pi 5), the kernel, initramfs and
    /// command line are read from `image` as that firmware would (pi_stand_in.rs).
    /// A raw `disk` is read itself, so a box that changed its boot partitions boots what it
    /// wrote; an overlay's changes are not seen.
    pub fn for_image(board: &Board, image: &Path, disk: PathBuf, dir: &Path) -> Result<VmConfig> {
        let mut config = VmConfig::new(board, disk, dir);
        if let BootFlow::PiTryboot(_) = board.boot_flow {
            let read = match config.disk_format {
                "raw" => config.disk.clone(),
                _ => image.to_owned(),
            };
            config.direct_kernel = Some(pi_stand_in::boot_files(&read, dir, false)?);
        }
        Ok(config)
    }

    pub fn command(&self) -> Command {
        let mut cmd = self.machine_command();
        if let Some(direct) = &self.direct_kernel {
            cmd.arg("-dtb").arg(&direct.device_tree).arg("-no-reboot");
        }
        cmd
    }

    fn machine_command(&self) -> Command {
        let machine = &self.machine;
        let mut cmd = match &self.network {
            Network::Tap { netns, .. } => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", netns, machine.system_binary]);
                cmd
            }
            Network::User | Network::Isolated => Command::new(machine.system_binary),
        };
        let accel = match self.accel {
            Accel::Kvm => ["-accel", "kvm", "-cpu", machine.kvm_cpu],
            Accel::Tcg => ["-accel", "tcg", "-cpu", machine.tcg_cpu],
        };
        // OVMF's Secure Boot build keeps its variables where only SMM code may write them.
        let smm = self.secure_boot_vars.is_some() && machine.secure_boot.is_some_and(|s| s.smm);
        let machine_type = match smm {
            true => format!("{},smm=on", machine.machine_type),
            false => machine.machine_type.to_owned(),
        };
        cmd.arg("-machine")
            .arg(machine_type)
            .arg("-smp")
            .arg(self.cpus.to_string())
            .arg("-m")
            .arg(self.memory_mib.to_string())
            .args(accel);
        if smm {
            cmd.args(["-global", "driver=cfi.pflash01,property=secure,value=on"]);
        }
        cmd.args([
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-nodefaults",
        ]);
        match &self.direct_kernel {
            Some(direct) => {
                cmd.arg("-kernel").arg(&direct.kernel);
                cmd.arg("-initrd").arg(&direct.initrd);
                cmd.arg("-append").arg(&direct.append);
            }
            None => {
                cmd.arg("-drive").arg(format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    self.firmware_code()
                ));
                cmd.arg("-drive").arg(format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    self.vars.display()
                ));
            }
        }
        cmd.arg("-drive").arg(format!(
            "if=virtio,format={},file={}",
            self.disk_format,
            self.disk.display()
        ));
        match &self.network {
            Network::User => cmd.args(["-nic", "user,model=virtio-net-pci"]),
            Network::Isolated => cmd.args(["-nic", "user,model=virtio-net-pci,restrict=on"]),
            Network::Tap { ifname, .. } => cmd
                .arg("-netdev")
                .arg(format!("tap,id=n0,ifname={ifname},script=no,downscript=no"))
                .args(["-device", "virtio-net-pci,netdev=n0"]),
        };
        if let Some(socket) = self.tpm_socket() {
            cmd.arg("-chardev")
                .arg(format!("socket,id=tpm-chr,path={}", socket.display()))
                .args(["-tpmdev", "emulator,id=tpm0,chardev=tpm-chr", "-device"])
                .arg(format!("{},tpmdev=tpm0", machine.tpm_device));
        }
        cmd.args([
            "-device",
            machine.watchdog_device,
            "-action",
            "watchdog=reset",
        ]);
        cmd.arg("-qmp").arg(format!(
            "unix:{},server=on,wait=off",
            self.qmp_socket.display()
        ));
        cmd.arg("-qmp").arg(format!(
            "unix:{},server=on,wait=off",
            self.events_socket.display()
        ));
        for (key, value) in &self.fw_cfg {
            cmd.arg("-fw_cfg")
                .arg(format!("name=opt/{key},string={value}"));
        }
        cmd
    }

    /// Makes sure the emulator and the firmware are installed and this machine's copy of the
    /// firmware variables exists.
    pub fn prepare(&self) -> Result<()> {
        let machine = &self.machine;
        tools::require(machine.system_binary, machine.system_package)?;
        if let Some(direct) = &self.direct_kernel {
            return pi_stand_in::device_tree(self.machine_command(), &direct.device_tree);
        }
        if !Path::new(self.firmware_code()).exists() {
            return Err(Error::MissingTool {
                tool: self.firmware_code().into(),
                package: machine.firmware_package.into(),
            });
        }
        if !self.vars.exists() {
            let template = match &self.secure_boot_vars {
                Some(enrolled) => enrolled.clone(),
                None => PathBuf::from(machine.firmware_vars),
            };
            std::fs::copy(&template, &self.vars)
                .context(|| format!("copy {} to {}", template.display(), self.vars.display()))?;
        }
        Ok(())
    }
}

/// A qcow2 overlay on the image, so a run never changes carapace.img and the virtual disk can
/// be larger than the image (init grows /data into the difference).
pub fn create_overlay(image: &Path, overlay: &Path, size_gib: u32) -> Result<()> {
    tools::require("qemu-img", "qemu-utils")?;
    let image = std::fs::canonicalize(image).context(|| format!("find {}", image.display()))?;
    let _ = std::fs::remove_file(overlay);
    tools::output(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&image)
            .arg(overlay)
            .arg(format!("{size_gib}G")),
    )?;
    Ok(())
}

pub struct Vm {
    child: Child,
    /// The machine's software TPM, ended with it.
    swtpm: Option<Child>,
    /// Each console line with the moment it arrived.
    lines: Arc<Mutex<Vec<(String, Instant)>>>,
    /// The thread that reads the console pipe into `lines`; done at the pipe's end.
    console_reader: std::thread::JoinHandle<()>,
    events: Arc<Mutex<Vec<String>>>,
    qmp_socket: PathBuf,
    pub started: Instant,
}

impl Vm {
    pub fn start(config: &VmConfig) -> Result<Vm> {
        config.prepare()?;
        let _ = std::fs::remove_file(&config.qmp_socket);
        let _ = std::fs::remove_file(&config.events_socket);
        let swtpm = match (&config.tpm_state, config.tpm_socket()) {
            (Some(state), Some(socket)) => Some(start_swtpm(state, &socket)?),
            _ => None,
        };
        let started = Instant::now();
        let mut child = config
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Qemu(format!("start {}: {e}", config.machine.system_binary)))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Qemu("no console pipe".into()))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let echo = config.echo;
        let console_reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut raw = Vec::new();
            while let Ok(n) = reader.read_until(b'\n', &mut raw) {
                if n == 0 {
                    break;
                }
                let line = String::from_utf8_lossy(&raw)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                // Firmware draws with escape sequences; keep the text.
                let line = strip_ansi(&line);
                if echo {
                    eprintln!("{line}");
                }
                if let Ok(mut v) = sink.lock() {
                    v.push((line, Instant::now()));
                }
                raw.clear();
            }
        });
        let events = Arc::new(Mutex::new(Vec::new()));
        let event_sink = Arc::clone(&events);
        let events_socket = config.events_socket.clone();
        std::thread::spawn(move || {
            let Ok(mut qmp) = Qmp::connect(&events_socket, Duration::from_secs(30)) else {
                return;
            };
            while let Some(event) = qmp.next_event() {
                let name = event["event"].as_str().unwrap_or_default().to_string();
                if let Ok(mut v) = event_sink.lock() {
                    v.push(name);
                }
            }
        });
        Ok(Vm {
            child,
            swtpm,
            lines,
            console_reader,
            events,
            qmp_socket: config.qmp_socket.clone(),
            started,
        })
    }

    /// The names of the QMP events the machine sent so far ("WATCHDOG", "RESET", ...).
    pub fn events(&self) -> Vec<String> {
        self.events.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn console(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|v| v.iter().map(|(line, _)| line.clone()).collect())
            .unwrap_or_default()
    }

    /// How long after QEMU started console line `index` arrived.
    pub fn arrived_after(&self, index: usize) -> Option<Duration> {
        let lines = self.lines.lock().ok()?;
        lines
            .get(index)
            .map(|(_, at)| at.duration_since(self.started))
    }

    /// How long ago console line `index` arrived.
    pub fn arrived_ago(&self, index: usize) -> Option<Duration> {
        let lines = self.lines.lock().ok()?;
        lines.get(index).map(|(_, at)| at.elapsed())
    }

    /// Waits for a console line that starts with `needle` at index >= `from`; returns (index,
    /// line). Anchored at the start, so a line that merely mentions `needle` never matches.
    pub fn wait_for(
        &mut self,
        needle: &str,
        from: usize,
        timeout: Duration,
    ) -> Result<(usize, String)> {
        self.wait_until(needle, from, timeout, |line| line.starts_with(needle))
    }

    /// Like `wait_for`, but `needle` may stand anywhere in the line: for systems whose lines
    /// come through the kernel log with a timestamp before them (the bench's Debian baseline).
    pub fn wait_for_containing(
        &mut self,
        needle: &str,
        from: usize,
        timeout: Duration,
    ) -> Result<(usize, String)> {
        self.wait_until(needle, from, timeout, |line| line.contains(needle))
    }

    fn wait_until(
        &mut self,
        needle: &str,
        from: usize,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<(usize, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            // Asked before the console is read: once QEMU has exited, its last lines may still
            // sit in the pipe behind a busy host's reader, so the reader reaches the pipe's
            // end before a line is called missing.
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() {
                let drained = Instant::now() + Duration::from_secs(5);
                while !self.console_reader.is_finished() && Instant::now() < drained {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if let Some(hit) = self
                .console()
                .into_iter()
                .enumerate()
                .skip(from)
                .find(|(_, l)| matches(l))
            {
                return Ok(hit);
            }
            if let Some(status) = exited {
                return Err(Error::Qemu(format!(
                    "QEMU exited ({status}) before '{needle}'"
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Qemu(format!(
                    "no '{needle}' on the console within {}s",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn qmp(&self) -> Result<Qmp> {
        Qmp::connect(&self.qmp_socket, Duration::from_secs(10))
    }

    /// Presses the ACPI power button.
    pub fn power_button(&self) -> Result<()> {
        self.qmp()?.execute("system_powerdown").map(|_| ())
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(|e| Error::Qemu(e.to_string()))?
            {
                // Let the reader thread drain the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(Error::Qemu(format!(
                    "QEMU still running after {}s",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(mut swtpm) = self.swtpm.take() {
            let _ = swtpm.kill();
            let _ = swtpm.wait();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// swtpm serving one QEMU on its control socket (QEMU passes it the data channel there); it
/// ends when QEMU disconnects, and keeps its state (the TPM's seeds, NV) in `state`.
fn start_swtpm(state: &Path, socket: &Path) -> Result<Child> {
    tools::require("swtpm", "swtpm")?;
    std::fs::create_dir_all(state).map_err(|e| Error::Qemu(format!("{}: {e}", state.display())))?;
    let _ = std::fs::remove_file(socket);
    let child = Command::new("swtpm")
        .args(["socket", "--tpm2", "--terminate"])
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .arg("--ctrl")
        .arg(format!("type=unixio,path={}", socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| Error::Qemu(format!("start swtpm: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if Instant::now() > deadline {
            return Err(Error::Qemu(format!(
                "swtpm made no socket at {} in 10 s",
                socket.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_escape_sequences() {
        assert_eq!(
            super::strip_ansi("\u{1b}[2J\u{1b}[01;01Hcarapace: ready"),
            "carapace: ready"
        );
    }
}
