//! Running a skill's code: each tool call is a connection to the skill host service
//! (agentd/skillhost: its own uid and cgroup, and per call a process with wasmtime inside
//! Landlock and seccomp). agentd sends the call with the component's open descriptor
//! (carapace_skills::handoff), makes the HTTP requests the skill asks for (after checking the
//! host against the skill's declared, approved hosts: the host checks too; with the secrets the
//! owner gave it filled in, and scrubbed out of the answer: skill_secrets.rs) and takes its
//! answer. A call that outlives its deadline (blocked outside WebAssembly, where wasmtime's
//! deadline cannot reach) is hung up on, which ends its process.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use carapace_http::Client;
use carapace_skills::Skill;
use carapace_skills::sandbox_protocol::{
    self, Call, FromHost, HttpRequest, HttpResponse, Limits, Outcome, Stop, ToHost,
};
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::time::Instant;

use crate::skill_secrets::Given;

/// The most of an HTTP answer a skill gets.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// How long past the deadline a host may take to say it stopped the skill.
const GRACE: Duration = Duration::from_secs(5);
/// How long compiling a component may take (once per component): seconds on a board, but under
/// QEMU's TCG a JavaScript skill's took 7 minutes beside a busy second VM. The skill host
/// service kills a call's process after 20 minutes.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(19 * 60);

pub struct SkillHost {
    /// The service's socket: carapace_skills::SKILLHOST_SOCKET, another only in tests.
    pub socket: PathBuf,
    pub http: Client,
    pub limits: Limits,
}

impl SkillHost {
    /// Runs `tool` of `skill` with the model's `arguments`, its requests carrying the
    /// `secrets` the owner gave it; the answer, or what the model is told went wrong.
    pub async fn call(
        &self,
        skill: &Skill,
        tool: &str,
        arguments: &serde_json::Value,
        secrets: &Given,
    ) -> Result<String, String> {
        let (Some(code), Some(component)) = (&skill.code, skill.component()) else {
            return Err(format!("skill {} has no code", skill.name));
        };
        // The service keeps compiled code and scratch directories in its own state directory.
        let call = Call {
            skill: skill.name.clone(),
            component,
            compiled_dir: PathBuf::new(),
            scratch: PathBuf::new(),
            limits: self.limits,
            hosts: code.hosts.clone(),
            tool: tool.to_string(),
            arguments: arguments.to_string(),
        };
        match self.converse(&call, secrets).await {
            Ok(Outcome::Answer(answer)) => Ok(answer),
            Ok(Outcome::ToolError(message)) => Err(message),
            Ok(Outcome::Stopped(stop)) => Err(format!("skill {} {stop}", skill.name)),
            Err(problem) => Err(format!("skill {} {problem}", skill.name)),
        }
    }

    /// Has the service remove skill `skill`'s scratch directory (the skill left the box).
    pub async fn forget(&self, skill: &str) -> Result<(), String> {
        let forget = ToHost::Forget {
            skill: skill.to_string(),
        };
        match self.ask(&forget, None, GRACE).await? {
            FromHost::Finished(Outcome::Answer(_)) => Ok(()),
            _ => Err("the skill host service could not remove its files".into()),
        }
    }

    /// Has the service compile `skill`'s component now, ahead of its first call; whether it
    /// had to (false: it was compiled already).
    pub async fn prepare(&self, skill: &Skill) -> Result<bool, String> {
        let Some(component) = skill.component() else {
            return Err(format!("skill {} has no code", skill.name));
        };
        let file = std::fs::File::open(&component)
            .map_err(|err| format!("{}: {err}", component.display()))?;
        let prepare = ToHost::Prepare {
            skill: skill.name.clone(),
        };
        match self.ask(&prepare, Some(&file), COMPILE_TIMEOUT).await? {
            FromHost::Prepared { compiled } => Ok(compiled),
            FromHost::Finished(Outcome::Stopped(stop)) => Err(stop.to_string()),
            other => Err(format!("the skill host service answered {other:?}")),
        }
    }

    /// Has the service remove the compiled code of every component but `keep`'s (sha256, hex);
    /// how many files went.
    pub async fn prune(&self, keep: Vec<String>) -> Result<u64, String> {
        match self.ask(&ToHost::Prune { keep }, None, GRACE).await? {
            FromHost::Pruned { removed } => Ok(removed),
            FromHost::Finished(Outcome::Stopped(stop)) => Err(stop.to_string()),
            other => Err(format!("the skill host service answered {other:?}")),
        }
    }

    /// One request outside a call, with a component handed over or not, and its one answer.
    async fn ask(
        &self,
        request: &ToHost,
        component: Option<&std::fs::File>,
        timeout: Duration,
    ) -> Result<FromHost, String> {
        let (output, _input) = self.connect(request, component)?.into_split();
        let mut lines = BufReader::new(output).lines();
        let answer = tokio::time::timeout(timeout, lines.next_line())
            .await
            .map_err(|_| "the skill host service did not answer in time".to_string())?
            .map_err(|err| err.to_string())?
            .ok_or("the skill host service ended without an answer")?;
        serde_json::from_str(&answer)
            .map_err(|err| format!("the skill host service said something unreadable: {err}"))
    }

    /// The connection to the skill host service with `request` sent on it, and the component
    /// handed over with it where there is one: agentd can read the component, the service
    /// (another uid) cannot.
    fn connect(
        &self,
        request: &ToHost,
        component: Option<&std::fs::File>,
    ) -> Result<tokio::net::UnixStream, String> {
        let unreachable = |err: std::io::Error| {
            format!(
                "the skill host service at {} does not answer: {err}",
                self.socket.display()
            )
        };
        // A local socket: connecting and sending the line do not wait on anything slow.
        let stream = std::os::unix::net::UnixStream::connect(&self.socket).map_err(unreachable)?;
        let mut line = serde_json::to_vec(request).map_err(|err| err.to_string())?;
        line.push(b'\n');
        match component {
            Some(file) => carapace_skills::handoff::send_call(stream.as_fd(), &line, file.as_fd())
                .map_err(unreachable)?,
            None => std::io::Write::write_all(&mut &stream, &line).map_err(unreachable)?,
        }
        stream.set_nonblocking(true).map_err(unreachable)?;
        tokio::net::UnixStream::from_std(stream).map_err(unreachable)
    }

    /// The conversation with the skill host; Err says what went wrong outside the skill.
    async fn converse(&self, call: &Call, secrets: &Given) -> Result<Outcome, String> {
        let component = std::fs::File::open(&call.component)
            .map_err(|err| format!("could not be run: {}: {err}", call.component.display()))?;
        let request = ToHost::Call(Box::new(call.clone()));
        let (output, mut input) = self
            .connect(&request, Some(&component))
            .map_err(|err| format!("could not be run: {err}"))?
            .into_split();
        let mut lines = BufReader::new(output).lines();
        // Until the code runs, the compile timeout; from then on, the call's deadline.
        let mut until = Instant::now() + COMPILE_TIMEOUT;
        let mut running = false;
        loop {
            let line = match tokio::time::timeout_at(until, lines.next_line()).await {
                Ok(line) => line
                    .map_err(|err| err.to_string())?
                    .ok_or("could not be run: the skill host ended without an answer")?,
                // Blocked where wasmtime's deadline does not reach; hanging up ends it.
                Err(_) if running => {
                    return Ok(Outcome::Stopped(Stop::Deadline {
                        ms: call.limits.deadline_ms,
                    }));
                }
                Err(_) => return Err("could not be run: compiling it took too long".into()),
            };
            let message: FromHost = serde_json::from_str(&line).map_err(|err| {
                format!("could not be run: the skill host said something unreadable: {err}")
            })?;
            match message {
                FromHost::Running { .. } => {
                    running = true;
                    until = Instant::now() + Duration::from_millis(call.limits.deadline_ms) + GRACE;
                }
                FromHost::Fetch(request) => {
                    let answer = self.fetch(request, &call.hosts, secrets, until).await;
                    send(&mut input, &ToHost::Fetched(answer)).await?;
                }
                FromHost::Finished(outcome) => return Ok(outcome),
                FromHost::Prepared { .. } | FromHost::Pruned { .. } => {
                    return Err("could not be run: the skill host answered another request".into());
                }
            }
        }
    }

    /// Makes a skill's HTTP request, if its host is one the skill may reach and it names only
    /// secrets the owner gave; neither the answer nor an error carries a secret's value.
    async fn fetch(
        &self,
        request: HttpRequest,
        hosts: &[String],
        secrets: &Given,
        deadline: Instant,
    ) -> Result<HttpResponse, String> {
        sandbox_protocol::url_allowed(&request.url, hosts)?;
        let filled = secrets.fill(&request)?;
        sandbox_protocol::url_allowed(&filled.url, hosts)?;
        let mut response = self
            .send(filled, deadline)
            .await
            .map_err(|error| secrets.scrub_text(&error))?;
        secrets.scrub(&mut response);
        Ok(response)
    }

    async fn send(&self, request: HttpRequest, deadline: Instant) -> Result<HttpResponse, String> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| format!("{:?} is not an HTTP method", request.method))?;
        let mut builder = self
            .http
            .request(method, &request.url)
            .timeout(deadline.saturating_duration_since(Instant::now()))
            .body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let mut response = builder.send().await.map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| err.to_string())? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(format!(
                    "the answer from {} is larger than {MAX_RESPONSE_BYTES} bytes",
                    request.url
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

async fn send(input: &mut (impl AsyncWrite + Unpin), message: &ToHost) -> Result<(), String> {
    let mut line = serde_json::to_vec(message).map_err(|err| err.to_string())?;
    line.push(b'\n');
    input
        .write_all(&line)
        .await
        .map_err(|err| format!("the skill host stopped listening: {err}"))
}
