//! The official client SDKs (PyPI `openai` and `anthropic`, pinned in
//! `.ci/install-client-sdks`), run unmodified from scripts in `tests/client/` against a
//! host: they are the judges of wire compatibility.
//!
//! `.ci/install-client-sdks` puts both in one venv (`$CLIENT_SDKS_VENV`, default
//! `target/client-sdks-venv`; about 15 seconds the first time, under a second after).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::Instant,
};

use serde_json::Value;

/// Runs `.ci/install-client-sdks` once per process (it changes nothing when the venv has
/// the pinned versions) and returns the venv's python.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = crate::repo_root().join(
            std::env::var_os("CLIENT_SDKS_VENV")
                .unwrap_or_else(|| "target/client-sdks-venv".into()),
        );
        let started = Instant::now();
        let path = crate::run_setup_script(
            ".ci/install-client-sdks",
            &[("CLIENT_SDKS_VENV", venv.as_os_str())],
        );
        assert!(
            path.is_file(),
            ".ci/install-client-sdks printed `{}`, not the path of a python",
            path.display()
        );
        eprintln!(
            "client SDKs: venv ready in {:.1?}: {}",
            started.elapsed(),
            path.display()
        );
        path
    })
}

/// Runs `tests/client/<script>` with `args` and returns the JSON object it prints last.
/// Variables starting with `env_prefix` (`OPENAI_`, `ANTHROPIC_`) are removed, so only
/// the arguments configure the client, and loopback bypasses any proxy. Blocking: call
/// it from a blocking thread when the host runs in the same process.
pub fn run_script(script: &str, args: &[String], env_prefix: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("client")
        .join(script);
    let mut command = Command::new(python());
    command.arg(&script).args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with(env_prefix) {
            command.env_remove(&name);
        }
    }
    let output = command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the SDK script");
    let (stdout, stderr) = crate::texts(&output);
    assert!(
        output.status.success(),
        "{} {} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        script.display(),
        args.join(" "),
        output.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the SDK script printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// Drives the host at `url` (its root, `http://127.0.0.1:PORT`) with the official OpenAI
/// SDK (`tests/client/openai_sdk_check.py`, base URL `<url>/v1`) and returns what each
/// step observed. Runs on a blocking thread, so an in-process host keeps serving.
pub async fn openai(url: &str, key: &str, steps: &str) -> Value {
    let args = [format!("{url}/v1"), key.to_owned(), steps.to_owned()];
    observed("openai_sdk_check.py", "OPENAI_", args).await
}

/// Drives the host at `url` (its root: the SDK appends `/v1/messages`) with the official
/// Anthropic SDK (`tests/client/anthropic_sdk_check.py`); what each step observed.
pub async fn anthropic(url: &str, key: &str, steps: &str) -> Value {
    let args = [url.to_owned(), key.to_owned(), steps.to_owned()];
    observed("anthropic_sdk_check.py", "ANTHROPIC_", args).await
}

async fn observed(script: &'static str, env_prefix: &'static str, args: [String; 3]) -> Value {
    tokio::task::spawn_blocking(move || {
        let out = run_script(script, &args, env_prefix);
        eprintln!("{script} ({}): {}", out["sdk_version"], args.join(" "));
        out["steps"].clone()
    })
    .await
    .expect("the SDK script's thread")
}
