//! Helpers for the end-to-end suite: where the built artifacts are, scratch folders,
//! configs, and running the `provider-host` binary.
//!
//! The suite uses the artifacts `cargo build --workspace` produced (the README's test
//! command builds them first): plugins are real cdylibs, loaded by the real loader.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

pub mod browser;
pub mod client;
pub mod fake;
pub mod redis;
pub mod sdk;
pub mod series;
pub mod tls;

pub use tempfile::TempDir;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// Runs one of the `.ci/` set-up scripts from the repository's root (its progress on
/// the test's stderr) and returns the last line it printed: the path it set up.
/// Fails the test, naming the script, when it fails.
pub fn run_setup_script(script: &str, envs: &[(&str, &std::ffi::OsStr)]) -> PathBuf {
    let root = repo_root();
    let output = Command::new("bash")
        .arg(root.join(script))
        .current_dir(&root)
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run bash");
    assert!(
        output.status.success(),
        "{script} failed ({}); its output is above",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
}

/// The cargo profile folder the test binary was built into (`target/debug`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_owned()
}

/// The path of a built artifact, failing with what to do if it is missing.
fn artifact(file: String) -> PathBuf {
    let path = target_dir().join(&file);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before the tests (the README's test command does)",
        path.display()
    );
    path
}

/// The built plugin whose library is called `lib_name` (e.g. `mock_provider`).
pub fn plugin(lib_name: &str) -> PathBuf {
    artifact(format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// The mock provider plugin.
pub fn mock_plugin() -> PathBuf {
    plugin("mock_provider")
}

/// The `provider-host` binary.
pub fn host_binary() -> PathBuf {
    artifact(format!("provider-host{}", std::env::consts::EXE_SUFFIX))
}

/// A scratch folder with a private plugin cache inside.
pub struct Scratch {
    /// The folder; removed on drop.
    pub dir: TempDir,
}

impl Scratch {
    /// A new empty scratch folder.
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A path inside the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `contents` to `name` and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&path, contents).expect("write scratch file");
        path
    }

    /// Writes a config whose `cache_dir` is inside this folder; `body` holds the rest
    /// of the top-level fields.
    pub fn config(&self, body: serde_json::Value) -> PathBuf {
        let mut config = body;
        config["cache_dir"] = serde_json::json!(self.path("cache"));
        // Validation's fuzz pass takes `sandbox.fuzz_secs` (1 s by default) for each new
        // plugin file in every host a test starts; a test that does not set up the
        // sandbox itself is not about it and gives it a fifth of that.
        if config.get("sandbox").is_none() {
            config["sandbox"] = serde_json::json!({"fuzz_secs": 0.2});
        }
        self.write(
            "external_providers.json",
            serde_json::to_vec_pretty(&config).expect("json"),
        )
    }

    /// A config with one mock provider called `mock`.
    pub fn mock_config(&self) -> PathBuf {
        self.config(serde_json::json!({
            "providers": [{"name": "mock", "library": mock_plugin()}]
        }))
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `provider-host` with `args` (and no inherited key variables).
pub fn run_host(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut command = Command::new(host_binary());
    for arg in args {
        command.arg(arg);
    }
    command
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run provider-host")
}

/// stdout and stderr of a finished command, as text.
pub fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every provider plugin of the workspace (`providers/*`), as built files.
pub fn workspace_provider_plugins() -> Vec<PathBuf> {
    let providers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../providers");
    let mut plugins: Vec<PathBuf> = std::fs::read_dir(&providers)
        .expect("providers folder")
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("Cargo.toml")).ok())
        .filter_map(|manifest| lib_name(&manifest))
        .map(|name| plugin(&name))
        .collect();
    plugins.sort();
    plugins
}

/// The `name` of a Cargo manifest's `[lib]` section.
fn lib_name(manifest: &str) -> Option<String> {
    let lib = manifest.split("[lib]").nth(1)?;
    let section = lib.split("\n[").next()?;
    section.lines().find_map(|line| {
        let value = line.trim().strip_prefix("name")?.trim().strip_prefix('=')?;
        Some(value.trim().trim_matches('"').to_owned())
    })
}

/// A key lookup that knows `pairs` (variable, key) and nothing else: a host built with
/// it never reads the process environment, which tests must not change while other
/// tests run beside them (`setenv` is not thread-safe).
pub fn key_lookup(
    pairs: &[(&str, &str)],
) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(name, key)| (name.to_string(), key.to_string()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, key)| key.clone())
    }
}

/// A host built from `config`, its API keys (and `${VAR}`s) from `pairs` only.
pub fn host_with_keys(
    config: &Path,
    pairs: &[(&str, &str)],
) -> std::sync::Arc<provider_host::Host> {
    provider_host::Host::builder()
        .config_file(config)
        .api_keys(key_lookup(pairs))
        .env(key_lookup(pairs))
        .build()
        .expect("config loads")
}

/// A clock a test sets by hand (Unix seconds), for the host's usage meter: budget
/// periods end when the test says, without waiting for them.
#[derive(Clone, Default)]
pub struct HandClock(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl HandClock {
    /// Sets the time.
    pub fn set(&self, unix: f64) {
        self.0
            .store(unix.to_bits(), std::sync::atomic::Ordering::SeqCst);
    }

    /// The time it shows.
    pub fn now(&self) -> f64 {
        f64::from_bits(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// A builder for a host over `config` whose usage meter reads this clock.
    pub fn host_builder(&self, config: &Path) -> provider_host::HostBuilder {
        let clock = self.clone();
        provider_host::Host::builder()
            .config_file(config)
            .usage_clock(move || clock.now())
    }
}

/// 2026-11-22T13:59:59Z, a second before an hour boundary.
pub const BEFORE_TWO_PM: f64 = 1_795_355_999.0;

/// Asks the mock (`mock/echo`) to echo `words` as the client named `client`.
pub async fn echo_as(
    host: &provider_host::Host,
    client: &str,
    words: &str,
) -> Result<provider_host::pipeline::Completion, provider_host::pipeline::DispatchError> {
    let mut call = provider_host::pipeline::Call::new(provider_sdk::ChatRequest::new(
        "mock/echo",
        vec![provider_sdk::Message::user(words)],
    ));
    call.caller.client = client.to_owned();
    host.complete(call).await
}

/// A host serving on an ephemeral loopback port inside the test process.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The host behind it.
    pub host: std::sync::Arc<provider_host::Host>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _watcher: Option<provider_host::watch::Watcher>,
}

impl Server {
    /// Loads `config` and serves it. Call from within a tokio runtime.
    pub async fn start(config: &Path) -> Server {
        let host = provider_host::Host::builder()
            .config_file(config)
            .build()
            .expect("config loads");
        Server::serve(host, false).await
    }

    /// Like [`Server::start`], with API keys (and `${VAR}`s) from `pairs` (variable,
    /// value) instead of the process environment.
    pub async fn start_with_keys(config: &Path, pairs: &[(&str, &str)]) -> Server {
        Server::serve(host_with_keys(config, pairs), false).await
    }

    /// Like [`Server::start`], and watches the config and plugin files as `serve` does.
    pub async fn start_watching(config: &Path) -> Server {
        let host = provider_host::Host::builder()
            .config_file(config)
            .build()
            .expect("config loads");
        Server::serve(host, true).await
    }

    /// Loads `config` and serves it on every address (`0.0.0.0`), a listener beyond
    /// loopback; the test still reaches it through 127.0.0.1.
    pub async fn start_beyond_loopback(config: &Path) -> Server {
        let host = provider_host::Host::builder()
            .config_file(config)
            .build()
            .expect("config loads");
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
            .await
            .expect("bind every address");
        Server::serve_on(host, listener, false)
    }

    /// Serves `host`, watching its files when `watch` is set.
    pub async fn serve(host: std::sync::Arc<provider_host::Host>, watch: bool) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Server::serve_on(host, listener, watch)
    }

    /// Serves `host` on `listener`, reached through 127.0.0.1 at its port.
    fn serve_on(
        host: std::sync::Arc<provider_host::Host>,
        listener: tokio::net::TcpListener,
        watch: bool,
    ) -> Server {
        let watcher = watch.then(|| provider_host::watch::watch(host.clone()).expect("watch"));
        let port = listener.local_addr().expect("address").port();
        let url = format!("http://127.0.0.1:{port}");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(provider_host::serve::serve(host.clone(), listener, async {
            let _ = rx.await;
        }));
        Server {
            url,
            host,
            shutdown: Some(tx),
            task: Some(task),
            _watcher: watcher,
        }
    }

    /// The URL of `path` on this server.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Asks the server to stop and waits until requests in flight have finished.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}

/// Splits an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// Upstream bytes that more than one test file answers with.
pub mod canned {
    /// The "Default" example response of "Create chat completion" in OpenAI's API reference
    /// (platform.openai.com/docs/api-reference/chat/create), byte for byte.
    pub const OPENAI_CHAT_COMPLETION: &str = r#"{
  "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
  "object": "chat.completion",
  "created": 1741569952,
  "model": "gpt-4.1-2025-04-14",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "Hello! How can I assist you today?",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {
      "cached_tokens": 0,
      "audio_tokens": 0
    },
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  },
  "service_tier": "default"
}"#;
}

/// The mock provider as released with provider-sdk 1.0.0, built from the frozen sources
/// in `tests/plugins/sdk-1.0` (a workspace of its own) into `target/sdk-1.0`, once per
/// process; cargo's own lock serializes concurrent test processes. About 35 seconds the
/// first time, under a second after.
pub fn sdk_1_0_plugin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_own_workspace("sdk-1.0", "mock_provider_sdk_1_0"))
        .clone()
}

/// A minimal provider built with `panic = "abort"` that panics in `build_request`,
/// from `tests/plugins/panic-abort` (a workspace of its own, since `panic` is a profile
/// setting) into `target/panic-abort`, once per process.
pub fn panic_abort_plugin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_own_workspace("panic-abort", "fixture_panic_abort"))
        .clone()
}

/// Builds the fixture workspace `tests/plugins/<name>` with `--locked` into
/// `target/<name>` and returns its library `lib`.
fn build_own_workspace(name: &str, lib: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned();
    let target = root.join("target").join(name);
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--locked", "--quiet", "--manifest-path"])
        .arg(root.join(format!("tests/plugins/{name}/Cargo.toml")))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "building the {name} fixture failed ({status}); its output is above"
    );
    let file = target.join(format!(
        "debug/{}{lib}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(file.is_file(), "{} was not built", file.display());
    file
}

/// What a hostile test plugin (`tests/plugins/hostile-*`) does to the process it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Harm {
    /// Dereferences a null pointer (SIGSEGV).
    Segfault,
    /// Calls `abort()` (SIGABRT).
    Abort,
    /// Allocates 20 GiB and touches it.
    Allocate20Gib,
    /// Spins forever in `build_request`.
    EndlessLoop,
}

impl Harm {
    /// Every harm.
    pub const ALL: [Harm; 4] = [
        Harm::Segfault,
        Harm::Abort,
        Harm::Allocate20Gib,
        Harm::EndlessLoop,
    ];

    /// The plugin's short name (`segv`, `abort`, `oom`, `loop`).
    pub fn name(self) -> &'static str {
        match self {
            Harm::Segfault => "segv",
            Harm::Abort => "abort",
            Harm::Allocate20Gib => "oom",
            Harm::EndlessLoop => "loop",
        }
    }

    /// The built plugin, which harms on every request (and so always in validation).
    /// Never load it in the test process itself: only through the sandbox.
    pub fn always(self) -> PathBuf {
        plugin(&format!("fixture_hostile_{}", self.name()))
    }

    /// A copy of the plugin in `scratch` that harms only on a request whose last user
    /// message contains `EVIL` (so it passes validation): the build with its trigger
    /// bytes rewritten (see tests/plugins/hostile.rs).
    pub fn on_evil(self, scratch: &Scratch) -> PathBuf {
        let bytes = std::fs::read(self.always()).expect("read hostile plugin");
        let (from, to) = (b"HOSTILE-TRIGGER:always.", b"HOSTILE-TRIGGER:on-EVIL");
        let at: Vec<usize> = bytes
            .windows(from.len())
            .enumerate()
            .filter(|(_, w)| w == from)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at.len(), 1, "the trigger appears once in the plugin");
        let mut patched = bytes;
        patched[at[0]..at[0] + to.len()].copy_from_slice(to);
        scratch.write(&format!("evil/libhostile_{}.so", self.name()), patched)
    }
}

/// A host over `config` that validates plugin files in a child process of the built
/// `provider-host` binary (the test binary is not one).
pub fn sandboxed_host(config: &Path) -> std::sync::Arc<provider_host::Host> {
    provider_host::Host::builder()
        .config_file(config)
        .sandbox_binary(host_binary())
        .build()
        .expect("config loads")
}
