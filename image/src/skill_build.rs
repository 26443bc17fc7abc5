//! `carapace skill build DIR`: a skill's code becomes DIR/skill.wasm, a WebAssembly component
//! of the skill world (carapace_skills::WIT). The code is Python (scripts/tools.py, built with
//! componentize-py) or JavaScript (scripts/tools.js, built with componentize-js: [`js`]): one
//! function per tool that skill.toml declares, plus any modules beside it. The author writes
//! plain functions; the glue that turns a tool call into a function call, and a small `carapace`
//! module for HTTP, are ours and generated here. The same .wasm runs on x86-64 and arm64.

mod js;

use std::path::{Path, PathBuf};
use std::process::Command;

use carapace_skills::{COMPONENT_FILE, Declaration, WIT, WIT_WORLD};

use crate::error::{Error, Result};
use crate::tools;

pub use js::{COMPONENTIZE_JS_VERSION, JS_TOOLS};

/// componentize-py, pinned: `make deps` installs this version (with its wheel's sha256) into
/// out/venv-skills.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// The Python module holding a skill's tools, in its scripts/ folder.
pub const PYTHON_TOOLS: &str = "scripts/tools.py";

/// What one build works with; the component goes to `work`/skill.wasm.
struct Job<'a> {
    dir: &'a Path,
    workspace: &'a Path,
    skill: &'a str,
    declaration: &'a Declaration,
    /// A temporary folder, removed after the build.
    work: &'a Path,
    /// The skill world's WIT, in a folder of its own inside `work`.
    wit: &'a Path,
}

/// Builds DIR's component; returns its path.
pub fn build(dir: &Path, workspace: &Path) -> Result<PathBuf> {
    let skill = read_name(dir)?;
    let declaration = Declaration::load(dir)
        .map_err(|err| Error::Image(err.to_string()))?
        .ok_or_else(|| {
            Error::Image(format!(
                "{}: no skill.toml; declare the tools the code offers there first",
                dir.display()
            ))
        })?;
    // One language per skill: the component has one entry point.
    let python = dir.join(PYTHON_TOOLS).is_file();
    let javascript = dir.join(JS_TOOLS).is_file();
    if python && javascript {
        return Err(Error::Image(format!(
            "{}: both {PYTHON_TOOLS} and {JS_TOOLS}; a skill is built from one of them, so \
             remove the other",
            dir.display()
        )));
    }
    if !python && !javascript {
        return Err(Error::Image(format!(
            "{}: no {PYTHON_TOOLS} or {JS_TOOLS}; write one function per tool skill.toml \
             declares in one of them",
            dir.display()
        )));
    }
    let work = tempfile::tempdir().map_err(|e| Error::Image(format!("a temporary folder: {e}")))?;
    let wit = work.path().join("wit");
    std::fs::create_dir(&wit).map_err(|e| Error::Image(e.to_string()))?;
    std::fs::write(wit.join("skill.wit"), WIT).map_err(|e| Error::Image(e.to_string()))?;
    let job = Job {
        dir,
        workspace,
        skill: &skill,
        declaration: &declaration,
        work: work.path(),
        wit: &wit,
    };
    if python {
        build_python(&job)?;
    } else {
        js::build(&job)?;
    }

    let built = work.path().join(COMPONENT_FILE);
    let bytes =
        std::fs::read(&built).map_err(|e| Error::Image(format!("{}: {e}", built.display())))?;
    let out = dir.join(COMPONENT_FILE);
    crate::fsutil::write_atomic(&out, &bytes)?;
    Ok(out)
}

/// scripts/tools.py and the modules beside it, with our glue, into `job.work`/skill.wasm.
fn build_python(job: &Job) -> Result<()> {
    let componentize = componentize_py(job.workspace)?;
    let glue = job.work.join("glue");
    std::fs::create_dir(&glue).map_err(|e| Error::Image(e.to_string()))?;
    std::fs::write(
        glue.join("carapace_skill_app.py"),
        app_module(job.declaration),
    )
    .map_err(|e| Error::Image(e.to_string()))?;
    std::fs::write(glue.join("carapace.py"), HTTP_MODULE)
        .map_err(|e| Error::Image(e.to_string()))?;

    eprintln!(
        "carapace: building skill {} with componentize-py {COMPONENTIZE_PY_VERSION}",
        job.skill
    );
    tools::output(
        Command::new(&componentize)
            .arg("--quiet")
            .arg("-d")
            .arg(job.wit)
            .arg("-w")
            .arg(WIT_WORLD)
            .arg("componentize")
            .arg("-p")
            .arg(&glue)
            .arg("-p")
            .arg(job.dir.join("scripts"))
            .arg("carapace_skill_app")
            .arg("-o")
            .arg(job.work.join(COMPONENT_FILE)),
    )?;
    Ok(())
}

fn read_name(dir: &Path) -> std::result::Result<String, Error> {
    let path = dir.join(carapace_skills::SKILL_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Image(format!("{}: {e}", path.display())))?;
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    carapace_skills::parse(&text, Some(&folder))
        .map(|skill| skill.name)
        .map_err(|problem| Error::Image(format!("{}: {problem}", path.display())))
}

/// componentize-py: $CARAPACE_COMPONENTIZE_PY, out/venv-skills (make deps), or PATH; it must be
/// the pinned version.
fn componentize_py(workspace: &Path) -> Result<PathBuf> {
    let candidates = tools::candidates(
        "CARAPACE_COMPONENTIZE_PY",
        workspace.join("out/venv-skills/bin/componentize-py"),
        "componentize-py",
    );
    for candidate in candidates {
        if !candidate.is_file() {
            continue;
        }
        let version = tools::output(Command::new(&candidate).arg("--version"))?;
        if version.trim() == format!("componentize-py {COMPONENTIZE_PY_VERSION}") {
            return Ok(candidate);
        }
        return Err(Error::Image(format!(
            "{} is {}, not componentize-py {COMPONENTIZE_PY_VERSION}: run `make deps` (it \
             installs the pinned one into out/venv-skills)",
            candidate.display(),
            version.trim()
        )));
    }
    Err(Error::MissingTool {
        tool: "componentize-py".into(),
        package: format!(
            "PyPI's componentize-py=={COMPONENTIZE_PY_VERSION}; `make deps` installs it into out/venv-skills"
        ),
    })
}

/// The component's entry point: checks at build time that every declared tool is a function in
/// tools.py (componentize-py runs module code while it builds), and turns a call into a call
/// of that function with the model's arguments as keywords. A str answer goes to the model as
/// it is, anything else as JSON; an exception becomes the tool's error.
fn app_module(declaration: &Declaration) -> String {
    let names: Vec<String> = declaration
        .tools
        .iter()
        .map(|tool| format!("{:?}", tool.name))
        .collect();
    format!(
        r#"# Generated by `carapace skill build`: the glue between the skill world and tools.py.
import json

import tools
from componentize_py_types import Err
from wit_world import exports

DECLARED = [{names}]
for _name in DECLARED:
    if not callable(getattr(tools, _name, None)):
        raise SystemExit(
            f"scripts/tools.py has no function {{_name}} for the tool skill.toml declares"
        )


class Tool(exports.Tool):
    def call(self, name: str, arguments: str) -> str:
        if name not in DECLARED:
            raise Err(f"this skill has no tool named {{name}}")
        try:
            args = json.loads(arguments) if arguments.strip() else {{}}
        except ValueError as error:
            raise Err(f"the arguments are not JSON: {{error}}")
        if not isinstance(args, dict):
            raise Err("the arguments must be a JSON object")
        try:
            answer = getattr(tools, name)(**args)
        except Err:
            raise
        except Exception as error:
            raise Err(f"{{type(error).__name__}}: {{error}}")
        return answer if isinstance(answer, str) else json.dumps(answer)
"#,
        names = names.join(", ")
    )
}

/// `import carapace` in a skill: HTTP through the box.
const HTTP_MODULE: &str = r#"# Generated by `carapace skill build`: HTTP for skills. Only https:// to the hosts the skill
# declares in skill.toml (and the owner approved) is allowed; anything else raises HttpError.
import json as _json

from componentize_py_types import Err
from wit_world.imports import http as _http


class HttpError(Exception):
    pass


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = dict(headers)
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return _json.loads(self.body)


def secret(name):
    """The reference for secret `name` (declared in skill.toml): put it where the value goes in
    a request's URL, headers or body, and the box puts the value the owner gave in as it sends
    the request. The code never sees the value."""
    return "{{secret:" + name + "}}"


def fetch(url, method="GET", headers=None, body=b"", json=None):
    """Makes an HTTP request through the box and returns a Response."""
    headers = dict(headers or {})
    if json is not None:
        body = _json.dumps(json).encode()
        headers.setdefault("content-type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    request = _http.Request(method, url, list(headers.items()), bytes(body))
    try:
        answer = _http.fetch(request)
    except Err as error:
        raise HttpError(error.value) from None
    return Response(answer.status, answer.headers, answer.body)
"#;
