//! An agent's process: started from a command, its output kept (the last lines, for error
//! messages; echoed with CARAPACE_BENCH_ECHO=1), stopped with SIGTERM, killed when dropped.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::error::{Context, Result};
use crate::procfs::{self, Memory};

/// Output lines kept for error messages.
const KEPT_LINES: usize = 60;
const STOP_WAIT: Duration = Duration::from_secs(15);

pub struct Process {
    name: &'static str,
    child: Child,
    /// When it was spawned (just before the fork).
    pub spawned: Instant,
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl Process {
    pub fn spawn(name: &'static str, mut command: Command) -> Result<Process> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .context(|| format!("start {name} ({command:?})"))?;
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        for pipe in pipes.into_iter().flatten() {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || keep_lines(name, pipe, &lines));
        }
        Ok(Process {
            name,
            child,
            spawned,
            lines,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn cpu_ms(&self) -> Result<f64> {
        procfs::cpu_ms(self.pid())
    }

    pub fn memory(&self) -> Result<Memory> {
        procfs::memory(self.pid())
    }

    /// Why it is no longer running, if it is not.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            Ok(None) => None,
            Err(error) => Some(format!("{}: {error}", self.name)),
        }
    }

    /// The last lines it printed, for an error message.
    pub fn tail(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = format!("the last lines {} printed:", self.name);
        for line in lines.iter() {
            text.push_str("\n  ");
            text.push_str(line);
        }
        text
    }

    /// SIGTERM, and SIGKILL if it has not exited after a while.
    pub fn stop(mut self) {
        let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
        let deadline = Instant::now() + STOP_WAIT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "bench: {} did not stop within {STOP_WAIT:?} of SIGTERM; killed",
            self.name
        );
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keep_lines(name: &str, pipe: Box<dyn Read + Send>, lines: &Mutex<VecDeque<String>>) {
    let echo = std::env::var_os("CARAPACE_BENCH_ECHO").is_some();
    for line in BufReader::new(pipe).lines().map_while(|l| l.ok()) {
        if echo {
            eprintln!("{name}: {line}");
        }
        let mut lines = lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == KEPT_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}
