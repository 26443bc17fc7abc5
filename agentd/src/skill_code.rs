//! Running a skill's code: each tool call starts one carapace-skillhost process (the sandbox:
//! wasmtime inside Landlock and seccomp, agentd/skillhost), sends it the call, makes the HTTP
//! requests it asks for (after checking the host against the skill's declared, approved
//! hosts: the host checks too; with the secrets the owner gave it filled in, and scrubbed out
//! of the answer: skill_secrets.rs) and takes its answer. A host that outlives the call's
//! deadline (blocked outside WebAssembly, where wasmtime's deadline cannot reach) is killed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use carapace_http::Client;
use carapace_skills::Skill;
use carapace_skills::sandbox_protocol::{
    self, Call, FromHost, HttpRequest, HttpResponse, Limits, Outcome, Stop, ToHost,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::time::Instant;

use crate::skill_secrets::Given;

/// The most of an HTTP answer a skill gets.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// How long past the deadline a host may take to say it stopped the skill.
const GRACE: Duration = Duration::from_secs(5);
/// How long compiling a component may take (once per component; minutes for a Python skill
/// on a slow board).
const COMPILE_TIMEOUT: Duration = Duration::from_secs(600);

pub struct SkillHost {
    pub program: PathBuf,
    /// agentd's state directory's skills/: each skill's scratch directory and the compiled
    /// components.
    pub dir: PathBuf,
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
        let scratch = self.dir.join("scratch").join(&skill.name);
        create_private_dir(&scratch)
            .map_err(|err| format!("could not make {}: {err}", scratch.display()))?;
        let call = Call {
            skill: skill.name.clone(),
            component,
            compiled_dir: self.dir.join("compiled"),
            scratch,
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

    /// The conversation with one skill host; Err says what went wrong outside the skill.
    async fn converse(&self, call: &Call, secrets: &Given) -> Result<Outcome, String> {
        let mut host = Command::new(&self.program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("could not be run: {}: {err}", self.program.display()))?;
        let (Some(mut input), Some(output)) = (host.stdin.take(), host.stdout.take()) else {
            return Err("could not be run: the skill host has no stdin or stdout".into());
        };
        let mut lines = BufReader::new(output).lines();
        send(&mut input, &ToHost::Call(Box::new(call.clone()))).await?;
        // Until the code runs, the compile timeout; from then on, the call's deadline.
        let mut until = Instant::now() + COMPILE_TIMEOUT;
        let mut running = false;
        loop {
            let line = match tokio::time::timeout_at(until, lines.next_line()).await {
                Ok(line) => line
                    .map_err(|err| err.to_string())?
                    .ok_or("could not be run: the skill host ended without an answer")?,
                // Blocked where wasmtime's deadline does not reach; dropping the host kills it.
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
                FromHost::Finished(outcome) => {
                    let _ = host.wait().await;
                    return Ok(outcome);
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

async fn send(input: &mut tokio::process::ChildStdin, message: &ToHost) -> Result<(), String> {
    let mut line = serde_json::to_vec(message).map_err(|err| err.to_string())?;
    line.push(b'\n');
    input
        .write_all(&line)
        .await
        .map_err(|err| format!("the skill host stopped listening: {err}"))
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
