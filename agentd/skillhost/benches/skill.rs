//! `make bench`: a skill's tool call in carapace-skillhost beside the same Python function run
//! by CPython on the host, side by side in one run. The skill is benches/wordcount (its
//! scripts/tools.py counts words), built with `carapace skill build`'s code (componentize-py).
//! For each, medians over several runs:
//! - to first instruction: from spawning the process to the moment the skill's code starts
//!   (the host's `running` message, before the component's start code; CPython's first line of
//!   the script, which prints a marker), cold (the skill host compiles the component first:
//!   the first call after an install) and warm (its compiled code kept);
//! - the whole call, to the answer;
//! - peak memory (the process's max RSS, from wait4; cold, the compile step's, a child of the
//!   host, is the larger).
//!
//! - and warm through the skill host service, as agentd calls a skill on the box: a connection
//!   to its socket with the component handed over open, the service starting the call's
//!   process (its peak memory is the service's child's, not measured here).
//!
//! Ratios are skill host / CPython. Every sample goes to out/bench/skills.json.
//! `CARAPACE_BENCH_RUNS` (default 7) sets the runs.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use carapace_skills::sandbox_protocol::{Call, FromHost, Limits, Outcome, ToHost};

#[derive(Default, serde::Serialize)]
struct Samples {
    first_instruction_ms: Vec<f64>,
    answer_ms: Vec<f64>,
    max_rss_kib: Vec<f64>,
}

fn main() -> ExitCode {
    if !std::env::args().any(|arg| arg == "--bench") {
        // `cargo test --benches`: nothing to check beyond that it builds.
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench skills: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let runs: usize = std::env::var("CARAPACE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let work = workspace.join("out/bench/skills");
    let _ = std::fs::remove_dir_all(&work);
    let skill = work.join("wordcount");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/wordcount"),
        &skill,
    )?;
    carapace_image::skill_build::build(&skill, &workspace).map_err(|err| err.to_string())?;
    let text = "The quick brown fox jumps over the lazy dog.\n".repeat(200);
    let scratch = work.join("scratch");
    std::fs::create_dir_all(&scratch).map_err(|err| err.to_string())?;
    let call = |compiled: &Path| Call {
        skill: "wordcount".into(),
        component: skill.join(carapace_skills::COMPONENT_FILE),
        compiled_dir: compiled.to_path_buf(),
        scratch: scratch.clone(),
        limits: Limits::default(),
        hosts: Vec::new(),
        tool: "count_words".into(),
        arguments: serde_json::json!({ "text": text }).to_string(),
    };

    // The interpreter itself, not a wrapper such as pyenv's shim, which costs a shell's start.
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map_err(|err| format!("python3: {err}"))?;
    let python = PathBuf::from(String::from_utf8_lossy(&python.stdout).trim());
    let (mut cold, mut warm, mut cpython) =
        (Samples::default(), Samples::default(), Samples::default());
    let mut served = Samples::default();
    let service = Service::start(&work.join("service"))?;
    let expected = r#"{"words": 1800, "lines": 201, "distinct": 8}"#;
    for run in 0..runs {
        let compiled = work.join(format!("compiled-{run}"));
        for samples in [&mut cold, &mut warm] {
            let (first, answer, rss, outcome) = skill_host(&call(&compiled))?;
            if outcome != Outcome::Answer(expected.into()) {
                return Err(format!("the skill answered {outcome:?}, not {expected}"));
            }
            samples.first_instruction_ms.push(ms(first));
            samples.answer_ms.push(ms(answer));
            samples.max_rss_kib.push(rss);
        }
        // The service compiles once (the first run) and keeps it: later runs are warm.
        let (first, answer, outcome) = service.call(&call(&compiled))?;
        if outcome != Outcome::Answer(expected.into()) {
            return Err(format!(
                "the service's call answered {outcome:?}, not {expected}"
            ));
        }
        if run > 0 {
            served.first_instruction_ms.push(ms(first));
            served.answer_ms.push(ms(answer));
        }
        let (first, answer, rss, printed) = run_python(&python, &skill.join("scripts"), &text)?;
        if printed.trim() != expected {
            return Err(format!("CPython printed {printed:?}, not {expected}"));
        }
        cpython.first_instruction_ms.push(ms(first));
        cpython.answer_ms.push(ms(answer));
        cpython.max_rss_kib.push(rss);
    }

    let python_version = Command::new(&python)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "\nskill call: wordcount (Python, componentize-py {}) in carapace-skillhost vs {python_version}; medians of {runs}",
        carapace_image::skill_build::COMPONENTIZE_PY_VERSION
    );
    println!(
        "{:<28} {:>14} {:>14} {:>14} {:>12} {:>14}",
        "", "skill host", "", "service", "CPython", "ratio (warm)"
    );
    println!(
        "{:<28} {:>14} {:>14} {:>14} {:>12} {:>14}",
        "", "cold", "warm", "warm", "", "service/CPy"
    );
    for (label, pick) in [
        (
            "to first instruction (ms)",
            (|s: &Samples| &s.first_instruction_ms) as fn(&Samples) -> &Vec<f64>,
        ),
        ("to the answer (ms)", |s: &Samples| &s.answer_ms),
        ("peak RSS (MiB)", |s: &Samples| &s.max_rss_kib),
    ] {
        let scale = if label.contains("MiB") {
            1.0 / 1024.0
        } else {
            1.0
        };
        let (c, w, p) = (
            median(pick(&cold)) * scale,
            median(pick(&warm)) * scale,
            median(pick(&cpython)) * scale,
        );
        // The service's row has no memory of its own (its call process is the same program).
        let (v, ratio) = match pick(&served).is_empty() {
            true => ("-".to_string(), w / p),
            false => {
                let v = median(pick(&served)) * scale;
                (format!("{v:.1}"), v / p)
            }
        };
        println!("{label:<28} {c:>14.1} {w:>14.1} {v:>14} {p:>12.1} {ratio:>13.2}x");
    }
    let report = serde_json::json!({
        "cold": cold, "warm": warm, "service_warm": served, "cpython": cpython
    });
    let out = workspace.join("out/bench/skills.json");
    std::fs::write(&out, serde_json::to_vec_pretty(&report).unwrap_or_default())
        .map_err(|err| format!("{}: {err}", out.display()))?;
    println!("samples: {}", out.display());
    Ok(())
}

/// One call through the release skill host: time to `running`, to the answer, max RSS (KiB).
fn skill_host(call: &Call) -> Result<(Duration, Duration, f64, Outcome), String> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_carapace-skillhost"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| err.to_string())?;
    let mut input = child.stdin.take().ok_or("no stdin")?;
    let mut line = serde_json::to_vec(&ToHost::Call(Box::new(call.clone()))).unwrap_or_default();
    line.push(b'\n');
    input.write_all(&line).map_err(|err| err.to_string())?;
    let mut output = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut first = None;
    loop {
        let mut line = String::new();
        if output.read_line(&mut line).map_err(|err| err.to_string())? == 0 {
            return Err("the skill host ended without an answer".into());
        }
        match serde_json::from_str::<FromHost>(&line).map_err(|err| err.to_string())? {
            FromHost::Running { .. } => first = Some(started.elapsed()),
            FromHost::Fetch(_) => return Err("the benchmark skill asked for HTTP".into()),
            FromHost::Finished(outcome) => {
                let answer = started.elapsed();
                let rss = max_rss_kib(&child)?;
                return Ok((first.unwrap_or(answer), answer, rss, outcome));
            }
            other => return Err(format!("the skill host answered a call with {other:?}")),
        }
    }
}

/// The release skill host as PID 1 runs it on the box (`serve --client <our uid>`), with state
/// and runtime directories of its own; killed when dropped.
struct Service {
    child: Child,
    socket: PathBuf,
}

impl Service {
    fn start(dir: &Path) -> Result<Service, String> {
        let (runtime, state) = (dir.join("run"), dir.join("state"));
        for folder in [&runtime, &state] {
            std::fs::create_dir_all(folder).map_err(|err| err.to_string())?;
        }
        // SAFETY: getuid cannot fail and touches no memory.
        #[allow(unsafe_code)]
        let uid = unsafe { libc::getuid() };
        let mut child = Command::new(env!("CARGO_BIN_EXE_carapace-skillhost"))
            .args(["serve", "--client", &uid.to_string()])
            .env("RUNTIME_DIRECTORY", &runtime)
            .env("STATE_DIRECTORY", &state)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|err| format!("the skill host service: {err}"))?;
        let mut first = String::new();
        let mut said = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        said.read_line(&mut first).map_err(|err| err.to_string())?;
        if !first.starts_with("listening on ") {
            return Err(format!("the skill host service said {first:?}"));
        }
        // Kept open: a closed pipe would fail its next line.
        std::thread::spawn(move || for _ in said.lines() {});
        Ok(Service {
            child,
            socket: runtime.join("calls.sock"),
        })
    }

    /// One call as agentd makes it: time to `running`, to the answer.
    fn call(&self, call: &Call) -> Result<(Duration, Duration, Outcome), String> {
        use std::os::fd::AsFd;
        let started = Instant::now();
        let component = std::fs::File::open(&call.component).map_err(|err| err.to_string())?;
        let stream = std::os::unix::net::UnixStream::connect(&self.socket)
            .map_err(|err| format!("the skill host service: {err}"))?;
        let mut line = serde_json::to_vec(&ToHost::Call(Box::new(call.clone())))
            .map_err(|err| err.to_string())?;
        line.push(b'\n');
        carapace_skills::handoff::send_call(stream.as_fd(), &line, component.as_fd())
            .map_err(|err| err.to_string())?;
        let mut output = BufReader::new(&stream);
        let mut first = None;
        loop {
            let mut line = String::new();
            if output.read_line(&mut line).map_err(|err| err.to_string())? == 0 {
                return Err("the service's call ended without an answer".into());
            }
            match serde_json::from_str::<FromHost>(&line).map_err(|err| err.to_string())? {
                FromHost::Running { .. } => first = Some(started.elapsed()),
                FromHost::Finished(outcome) => {
                    let answer = started.elapsed();
                    return Ok((first.unwrap_or(answer), answer, outcome));
                }
                other => return Err(format!("the service answered a call with {other:?}")),
            }
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same function in CPython: a marker when the script's first line runs, then the answer.
fn run_python(
    python: &Path,
    scripts: &Path,
    text: &str,
) -> Result<(Duration, Duration, f64, String), String> {
    const SCRIPT: &str = "import sys; sys.stdout.write('started\\n'); sys.stdout.flush()\n\
        import json; sys.path.insert(0, sys.argv[1]); import tools\n\
        print(json.dumps(tools.count_words(**json.loads(sys.argv[2]))))\n";
    let started = Instant::now();
    let mut child = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(scripts)
        .arg(serde_json::json!({ "text": text }).to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| format!("python3: {err}"))?;
    let mut output = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut marker = String::new();
    output
        .read_line(&mut marker)
        .map_err(|err| err.to_string())?;
    let first = started.elapsed();
    let mut printed = String::new();
    output
        .read_line(&mut printed)
        .map_err(|err| err.to_string())?;
    let answer = started.elapsed();
    let rss = max_rss_kib(&child)?;
    Ok((first, answer, rss, printed))
}

/// Waits for `child` and returns its peak resident memory in KiB.
fn max_rss_kib(child: &Child) -> Result<f64, String> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for the kernel to fill; the pid is our child,
    // which std has not waited for.
    #[allow(unsafe_code)]
    let (waited, usage) = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::wait4(pid, &mut status, 0, &mut usage), usage)
    };
    if waited != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    Ok(usage.ru_maxrss as f64)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    let mut pending = vec![PathBuf::new()];
    while let Some(inside) = pending.pop() {
        std::fs::create_dir_all(to.join(&inside)).map_err(|err| err.to_string())?;
        for entry in std::fs::read_dir(from.join(&inside)).map_err(|err| err.to_string())? {
            let entry = entry.map_err(|err| err.to_string())?;
            let path = inside.join(entry.file_name());
            if entry.file_type().map_err(|err| err.to_string())?.is_dir() {
                pending.push(path);
            } else {
                std::fs::copy(from.join(&path), to.join(&path)).map_err(|err| err.to_string())?;
            }
        }
    }
    Ok(())
}
