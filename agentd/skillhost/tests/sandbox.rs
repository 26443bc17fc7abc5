//! The skill sandbox, with real components built by `carapace skill build` from the example
//! skills in tests/skills and run by the real carapace-skillhost binary; the test plays agentd's
//! part of the conversation (it answers the skill's HTTP requests itself).

use carapace_skills::sandbox_protocol::{
    Call, FromHost, HttpRequest, HttpResponse, Limits, Outcome, Stop, ToHost,
};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The example skills, built once per run into the target's temporary folder.
fn built(skill: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let root = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skillhost-tests");
        let _ = std::fs::remove_dir_all(&root);
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for name in ["weather", "mischief", "text-format"] {
            let dir = root.join("skills").join(name);
            std::fs::create_dir_all(dir.join("scripts")).unwrap();
            let source = workspace.join("tests/skills").join(name);
            // Python's or JavaScript's tools, whichever the skill has.
            let code = ["scripts/tools.py", "scripts/tools.js"]
                .into_iter()
                .filter(|file| source.join(file).is_file());
            for file in ["SKILL.md", "skill.toml"].into_iter().chain(code) {
                std::fs::copy(source.join(file), dir.join(file)).unwrap();
            }
            carapace_image::skill_build::build(&dir, &workspace)
                .unwrap_or_else(|err| panic!("carapace skill build {name}: {err}"));
        }
        root
    });
    root.join("skills").join(skill)
}

fn call(skill: &str, tool: &str, arguments: serde_json::Value, limits: Limits) -> Call {
    call_at(&built(skill), tool, arguments, limits)
}

/// A call into the skill built in `dir`, ROOT/skills/NAME; its scratch and compiled code go
/// under ROOT too.
fn call_at(dir: &Path, tool: &str, arguments: serde_json::Value, limits: Limits) -> Call {
    let skill = dir.file_name().unwrap().to_str().unwrap();
    let root = dir.parent().unwrap().parent().unwrap();
    let scratch = root.join("scratch").join(skill);
    std::fs::create_dir_all(&scratch).unwrap();
    Call {
        skill: skill.into(),
        component: dir.join("skill.wasm"),
        compiled_dir: root.join("compiled"),
        scratch,
        limits,
        hosts: vec!["weather.carapace.test".into()],
        tool: tool.into(),
        arguments: arguments.to_string(),
    }
}

/// Runs `call` through carapace-skillhost, answering its HTTP requests with `answer`; returns
/// how it ended and the requests it made.
fn run(
    call: &Call,
    answer: impl Fn(&HttpRequest) -> Result<HttpResponse, String>,
) -> (Outcome, Vec<HttpRequest>) {
    let mut host = Command::new(env!("CARGO_BIN_EXE_carapace-skillhost"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = host.stdin.take().unwrap();
    let mut output = BufReader::new(host.stdout.take().unwrap());
    let send = |input: &mut std::process::ChildStdin, message: &ToHost| {
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        input.write_all(&line).unwrap();
    };
    send(&mut input, &ToHost::Call(Box::new(call.clone())));
    let mut requests = Vec::new();
    loop {
        let mut line = String::new();
        assert_ne!(
            output.read_line(&mut line).unwrap(),
            0,
            "the host ended without a finish"
        );
        match serde_json::from_str::<FromHost>(&line).unwrap() {
            FromHost::Running { .. } => {}
            FromHost::Fetch(request) => {
                send(&mut input, &ToHost::Fetched(answer(&request)));
                requests.push(request);
            }
            FromHost::Finished(outcome) => {
                assert!(host.wait().unwrap().success());
                return (outcome, requests);
            }
            other => panic!("{other:?} in answer to a call"),
        }
    }
}

fn no_http(request: &HttpRequest) -> Result<HttpResponse, String> {
    panic!("the skill was let through to {}", request.url)
}

#[test]
fn a_python_tool_answers_and_keeps_files_in_its_scratch_directory() {
    let call = call(
        "mischief",
        "keep",
        serde_json::json!({"name": "note.txt", "text": "remember the milk"}),
        Limits::default(),
    );
    let (outcome, _) = run(&call, no_http);
    assert_eq!(outcome, Outcome::Answer("remember the milk".into()));
    assert_eq!(
        std::fs::read_to_string(call.scratch.join("note.txt")).unwrap(),
        "remember the milk"
    );
    // The second call loads the kept machine code: it is quick.
    let started = Instant::now();
    let (outcome, _) = run(&call, no_http);
    assert_eq!(outcome, Outcome::Answer("remember the milk".into()));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_skill_that_loops_forever_is_stopped_by_its_deadline() {
    let limits = Limits {
        deadline_ms: 1500,
        ..Limits::default()
    };
    // Compile first, so that the time measured is the call's.
    run(
        &call(
            "mischief",
            "keep",
            serde_json::json!({"name": "a", "text": "b"}),
            limits,
        ),
        no_http,
    );
    let started = Instant::now();
    let (outcome, _) = run(
        &call("mischief", "spin", serde_json::json!({}), limits),
        no_http,
    );
    let took = started.elapsed();
    assert_eq!(outcome, Outcome::Stopped(Stop::Deadline { ms: 1500 }));
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[test]
fn a_skill_that_allocates_without_bound_is_stopped_by_its_memory_limit() {
    let limits = Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    };
    let (outcome, _) = run(
        &call("mischief", "hog", serde_json::json!({}), limits),
        no_http,
    );
    assert_eq!(
        outcome,
        Outcome::Stopped(Stop::MemoryLimit { bytes: 64 << 20 })
    );
}

#[test]
fn a_skill_reads_nothing_outside_its_scratch_directory() {
    for path in [
        "/etc/passwd",
        "/scratch/../../etc/passwd",
        "/proc/self/environ",
        "../skill.wasm",
    ] {
        let (outcome, _) = run(
            &call(
                "mischief",
                "peek",
                serde_json::json!({"path": path}),
                Limits::default(),
            ),
            no_http,
        );
        let Outcome::Answer(answer) = outcome else {
            panic!("{path}: {outcome:?}")
        };
        assert!(answer.starts_with("refused: "), "{path}: {answer}");
    }
    let mine = call(
        "mischief",
        "peek",
        serde_json::json!({"path": "/scratch/mine"}),
        Limits::default(),
    );
    std::fs::write(mine.scratch.join("mine"), "12345").unwrap();
    assert_eq!(
        run(&mine, no_http).0,
        Outcome::Answer("read 5 bytes".into())
    );
}

#[test]
fn http_reaches_only_the_declared_host_and_goes_through_agentd() {
    let (outcome, requests) = run(
        &call(
            "weather",
            "forecast",
            serde_json::json!({"place": "Oslo"}),
            Limits::default(),
        ),
        |request| {
            Ok(HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: format!(
                    "{{\"celsius\": 4, \"sky\": \"snow\", \"asked\": \"{}\"}}",
                    request.url
                )
                .into_bytes(),
            })
        },
    );
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].url,
        "https://weather.carapace.test/v1/forecast?place=Oslo"
    );
    assert_eq!(requests[0].method, "GET");
    // The key's reference, not a key: agentd fills it in (skill_secrets.rs).
    assert!(
        requests[0].headers.contains(&(
            "authorization".into(),
            "Bearer {{secret:WEATHER_KEY}}".into()
        )),
        "{:?}",
        requests[0].headers
    );
    let Outcome::Answer(answer) = outcome else {
        panic!("{outcome:?}")
    };
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"place": "Oslo", "celsius": 4, "sky": "snow"})
    );

    for url in [
        "https://evil.carapace.test/",
        "http://weather.carapace.test/",
    ] {
        let (outcome, requests) = run(
            &call(
                "mischief",
                "call_home",
                serde_json::json!({"url": url}),
                Limits::default(),
            ),
            no_http,
        );
        assert!(requests.is_empty());
        let Outcome::Answer(answer) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(answer.starts_with("refused: "), "{url}: {answer}");
    }
}

#[test]
fn a_tool_error_reaches_the_model_as_the_tools_error() {
    let (outcome, _) = run(
        &call(
            "weather",
            "forecast",
            serde_json::json!({"place": "Oslo"}),
            Limits::default(),
        ),
        |_| Err("the box has no route to weather.carapace.test".into()),
    );
    assert_eq!(
        outcome,
        Outcome::ToolError("HttpError: the box has no route to weather.carapace.test".into())
    );
    let (outcome, _) = run(
        &call(
            "weather",
            "forecast",
            serde_json::json!({"city": "Oslo"}),
            Limits::default(),
        ),
        no_http,
    );
    let Outcome::ToolError(message) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(message.starts_with("TypeError: "), "{message}");
}

/// The answer `tool` of the text-format skill (JavaScript) gives to `arguments`.
fn text_format(tool: &str, arguments: serde_json::Value) -> Outcome {
    run(
        &call("text-format", tool, arguments, Limits::default()),
        no_http,
    )
    .0
}

#[test]
fn a_javascript_tool_formats_text() {
    assert_eq!(
        text_format(
            "title_case",
            serde_json::json!({"text": "a tale OF two cities and the NASA moon"})
        ),
        Outcome::Answer("A Tale of Two Cities and the NASA Moon".into())
    );
    // The second call loads the kept machine code: it is quick.
    let started = Instant::now();
    let outcome = text_format(
        "table",
        serde_json::json!({"rows": [
            ["Tea", "Minutes", "°C"],
            ["Green", "2", "80"],
            ["Black", "4", "95"],
            ["Rooibos", "6"],
        ]}),
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        outcome,
        Outcome::Answer(
            "| Tea     | Minutes | °C  |\n\
             |---------|---------|-----|\n\
             | Green   | 2       | 80  |\n\
             | Black   | 4       | 95  |\n\
             | Rooibos | 6       |     |"
                .into()
        )
    );
    // wrap is an async function: the glue awaits it.
    assert_eq!(
        text_format(
            "wrap",
            serde_json::json!({
                "text": "The quick brown fox jumps over the lazy dog.\n\n\
                         Pack my box with five dozen liquor jugs.",
                "width": 16,
            })
        ),
        Outcome::Answer(
            "The quick brown\nfox jumps over\nthe lazy dog.\n\n\
             Pack my box with\nfive dozen\nliquor jugs."
                .into()
        )
    );
}

#[test]
fn a_javascript_tools_error_reaches_the_model_as_the_tools_error() {
    assert_eq!(
        text_format("table", serde_json::json!({"rows": [["a"], "b"]})),
        Outcome::ToolError("TypeError: rows must be a non-empty array of arrays of strings".into())
    );
    assert_eq!(
        text_format("wrap", serde_json::json!({"text": "a", "width": 0})),
        Outcome::ToolError(
            "RangeError: width must be a whole number of characters, 1 or more, not 0".into()
        )
    );
    assert_eq!(
        text_format("shout", serde_json::json!({})),
        Outcome::ToolError("this skill has no tool named shout".into())
    );
}

/// A JavaScript skill of the test's own, in a fresh ROOT/skills/NAME (ROOT named after it):
/// its skill.toml and scripts/tools.js.
fn javascript_skill(name: &str, declaration: &str, tools: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("skillhost-tests-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("skills").join(name);
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("SKILL.md"),
        format!("---\nname: {name}\ndescription: A test skill.\n---\nFor tests only.\n"),
    )
    .unwrap();
    std::fs::write(dir.join("skill.toml"), declaration).unwrap();
    std::fs::write(dir.join("scripts/tools.js"), tools).unwrap();
    dir
}

fn build(dir: &Path) -> Result<PathBuf, String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    carapace_image::skill_build::build(dir, &workspace).map_err(|err| err.to_string())
}

#[test]
fn javascript_http_reaches_only_the_declared_host_and_goes_through_agentd() {
    let dir = javascript_skill(
        "report",
        "hosts = [\"weather.carapace.test\"]\n\n\
         [[tool]]\nname = \"report\"\ndescription = \"Posts a report\"\n\n\
         [[tool]]\nname = \"web\"\ndescription = \"The web's own fetch\"\n",
        r#"import { fetch, HttpError } from "./carapace.js";

export function report({ url }) {
  try {
    const answer = fetch(url, { method: "POST", headers: { "X-Trace": "1" }, json: { sky: "snow" } });
    return { status: answer.status, type: answer.headers["content-type"], saved: answer.json().saved };
  } catch (error) {
    if (error instanceof HttpError) return `refused: ${error.message}`;
    throw error;
  }
}

export function web() {
  return globalThis.fetch("https://weather.carapace.test/");
}
"#,
    );
    build(&dir).unwrap();
    let report = |url: &str| {
        call_at(
            &dir,
            "report",
            serde_json::json!({"url": url}),
            Limits::default(),
        )
    };

    let (outcome, requests) = run(&report("https://weather.carapace.test/v1/reports"), |_| {
        Ok(HttpResponse {
            status: 201,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: b"{\"saved\": true}".to_vec(),
        })
    });
    assert_eq!(
        outcome,
        Outcome::Answer(r#"{"status":201,"type":"application/json","saved":true}"#.into())
    );
    assert_eq!(
        requests,
        [HttpRequest {
            method: "POST".into(),
            url: "https://weather.carapace.test/v1/reports".into(),
            headers: vec![
                ("X-Trace".into(), "1".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: br#"{"sky":"snow"}"#.to_vec(),
        }]
    );

    for url in [
        "https://evil.carapace.test/",
        "http://weather.carapace.test/",
    ] {
        let (outcome, requests) = run(&report(url), no_http);
        assert!(requests.is_empty());
        let Outcome::Answer(answer) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(answer.starts_with("refused: "), "{url}: {answer}");
    }
    let (outcome, _) = run(&report("https://weather.carapace.test/"), |_| {
        Err("the box has no route to weather.carapace.test".into())
    });
    assert_eq!(
        outcome,
        Outcome::Answer("refused: the box has no route to weather.carapace.test".into())
    );

    // StarlingMonkey's own fetch() has no wasi:http under it: an error, not a crash.
    let (outcome, _) = run(
        &call_at(&dir, "web", serde_json::json!({}), Limits::default()),
        no_http,
    );
    let Outcome::ToolError(message) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        message.starts_with("TypeError: the web's fetch() is not available in a skill"),
        "{message}"
    );
}

#[test]
fn a_javascript_skill_that_lacks_a_declared_function_or_parses_badly_does_not_build() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/skills/text-format");
    let declaration = std::fs::read_to_string(source.join("skill.toml")).unwrap();
    let dir = javascript_skill(
        "half-done",
        &declaration,
        "export function title_case({ text }) {\n  return text;\n}\n",
    );
    let message = build(&dir).unwrap_err();
    assert!(
        message.contains(
            "skill.toml declares tools that scripts/tools.js exports no function for: table, wrap"
        ),
        "{message}"
    );
    std::fs::write(
        dir.join("scripts/tools.js"),
        "export function title_case({ text } {\n  return text;\n}\n",
    )
    .unwrap();
    let message = build(&dir).unwrap_err();
    assert!(
        message.contains("scripts/tools.js:1:") && message.contains("SyntaxError"),
        "{message}"
    );
    assert!(!dir.join("skill.wasm").exists());
}

/// The skill host as PID 1 runs it, `serve --client UID`: a call from its client comes with the
/// component open (the service, under another uid, could not open agentd's files), runs in a
/// process of its own and keeps its files in the service's state directory; `prepare` compiles
/// a component ahead of its first call (once), `prune` removes compiled code of components not
/// kept and of other engines, `forget` removes a skill's scratch files; a connection from any
/// other uid gets nothing at all.
#[test]
fn the_service_runs_its_clients_calls_and_keeps_their_files_in_its_own_state() {
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    let runtime = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    // Others may reach the socket (as in /run/skillhost); the peer's uid decides.
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let uid = rustix::process::getuid().as_raw();
    /// Stops the service however the test ends.
    struct Service(std::process::Child);
    impl Drop for Service {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut service = Service(
        Command::new(env!("CARGO_BIN_EXE_carapace-skillhost"))
            .args(["serve", "--client", &uid.to_string()])
            .env("RUNTIME_DIRECTORY", runtime.path())
            .env("STATE_DIRECTORY", state.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let socket = runtime.path().join("calls.sock");
    let mut first = String::new();
    BufReader::new(service.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(
        first,
        format!("listening on {} for uid {uid}\n", socket.display())
    );

    let converse = |message: &ToHost, component: Option<&std::fs::File>| {
        let stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        match component {
            Some(file) => {
                carapace_skills::handoff::send_call(stream.as_fd(), &line, file.as_fd()).unwrap()
            }
            None => (&stream).write_all(&line).unwrap(),
        }
        // The last word: Finished, Prepared or Pruned.
        let mut reader = BufReader::new(&stream);
        loop {
            let mut answer = String::new();
            assert_ne!(reader.read_line(&mut answer).unwrap(), 0, "no finish");
            match serde_json::from_str(&answer).unwrap() {
                FromHost::Running { .. } | FromHost::Fetch(_) => {}
                last => return last,
            }
        }
    };
    let finished = |last: FromHost| match last {
        FromHost::Finished(outcome) => outcome,
        other => panic!("{other:?} where Finished was due"),
    };
    let mut keep = call(
        "mischief",
        "keep",
        serde_json::json!({"name": "list.txt", "text": "milk"}),
        Limits::default(),
    );
    // Paths agentd does not know: the service puts its own in their place.
    keep.scratch = PathBuf::from("/nonexistent/scratch");
    keep.compiled_dir = PathBuf::from("/nonexistent/compiled");
    let component = std::fs::File::open(&keep.component).unwrap();
    // Compiled ahead of the first call, once.
    let prepare = ToHost::Prepare {
        skill: "mischief".into(),
    };
    assert_eq!(
        converse(&prepare, Some(&component)),
        FromHost::Prepared { compiled: true }
    );
    assert_eq!(
        converse(&prepare, Some(&component)),
        FromHost::Prepared { compiled: false }
    );
    let compiled_dir = state.path().join("compiled");
    let compiled_files = || {
        let mut names: Vec<String> = std::fs::read_dir(&compiled_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".cwasm"))
            .collect();
        names.sort();
        names
    };
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(&keep.component).unwrap(),
        ))
    };
    let ours = compiled_files();
    assert!(
        ours.len() == 1 && ours[0].starts_with(&format!("{sha}-")),
        "{ours:?}"
    );
    assert_eq!(
        finished(converse(
            &ToHost::Call(Box::new(keep.clone())),
            Some(&component)
        )),
        Outcome::Answer("milk".into())
    );
    let kept = state.path().join("scratch/mischief/list.txt");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "milk");
    assert_eq!(compiled_files(), ours, "compiled again for the call");
    // Without the component's descriptor there is nothing to run.
    let Outcome::Stopped(Stop::Unusable { detail }) =
        finished(converse(&ToHost::Call(Box::new(keep)), None))
    else {
        panic!("a call without its component ran");
    };
    assert!(
        detail.contains("without its component's descriptor"),
        "{detail}"
    );

    // Pruned: another component's code and another engine's; ours stays while it is kept.
    let tag = ours[0].trim_start_matches(&format!("{sha}-"));
    let other_component = format!("{}-{tag}", "0".repeat(64));
    let other_engine = format!("{sha}-0000000000000000.cwasm");
    for stale in [&other_component, &other_engine] {
        std::fs::write(compiled_dir.join(stale), b"stale").unwrap();
    }
    assert_eq!(
        converse(
            &ToHost::Prune {
                keep: vec![sha.clone()]
            },
            None
        ),
        FromHost::Pruned { removed: 2 }
    );
    assert_eq!(compiled_files(), ours);
    let Outcome::Stopped(Stop::Unusable { detail }) = finished(converse(
        &ToHost::Prune {
            keep: vec!["../x".into()],
        },
        None,
    )) else {
        panic!("a keep list that is not of sha256s was taken");
    };
    assert!(detail.contains("\"../x\" is not a sha256"), "{detail}");
    // Nothing kept: its code and its lock file go.
    assert_eq!(
        converse(&ToHost::Prune { keep: vec![] }, None),
        FromHost::Pruned { removed: 2 }
    );
    assert_eq!(std::fs::read_dir(&compiled_dir).unwrap().count(), 0);

    let forget = ToHost::Forget {
        skill: "mischief".into(),
    };
    assert_eq!(
        finished(converse(&forget, None)),
        Outcome::Answer(String::new())
    );
    assert!(!state.path().join("scratch/mischief").exists());

    // Another uid: the connection is closed at once, nothing said.
    let stranger = Command::new("python3")
        .args([
            "-c",
            "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n\
             print(repr(s.recv(100)))",
        ])
        .arg(&socket)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&stranger.stdout),
        "b''\n",
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );
    service.0.kill().unwrap();
    service.0.wait().unwrap();
    let mut said = String::new();
    std::io::Read::read_to_string(&mut service.0.stderr.take().unwrap(), &mut said).unwrap();
    assert!(
        said.contains(&format!(
            "refused a connection from uid 65534: only uid {uid} may call"
        )),
        "{said}"
    );
}
