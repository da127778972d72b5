//! `external_providers.json`: what the host loads and how requests are routed.
//!
//! Parsing is strict: unknown fields are errors, and every error names the file, the
//! JSON path and the problem. `${VAR}` (or `${VAR:-default}`) inside any string value is
//! replaced by the environment variable before the config is checked; `$$` is a `$`.

mod cache;
mod limits;
mod policy;
mod shared_state;
mod usage;

pub use cache::{AliasCache, CacheConfig, CachePolicy, SemanticCache};
pub use limits::{Limit, LimitScope, WINDOW_SECS};
pub use policy::{BreakerPolicy, RawLogConfig, RetryPolicy};
pub use shared_state::{RedisUrl, SharedStateConfig, UnavailablePolicy};
pub use usage::{Budget, ClientKeySpec, NamedKey, Period, PriceOverrides, UsageConfig};

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::target::Target;

/// How answers of `POST /v1/responses` with `store: true` are kept: in the usage ledger's
/// database (SQLite, or PostgreSQL for a fleet), in memory when the ledger is off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponsesConfig {
    /// How long a stored response can be retrieved or continued, in hours.
    pub retention_hours: f64,
    /// The most responses kept when they live in memory (oldest go first).
    pub max_in_memory: usize,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        ResponsesConfig {
            retention_hours: 720.0,
            max_in_memory: 10_000,
        }
    }
}

/// Looks up a secret (an API key, a client key list) by the name of its environment
/// variable, or wherever an embedder keeps secrets.
pub type KeyLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// The default config file name, looked up in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "external_providers.json";

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the server listens on: `host:port`, a host name resolved at load.
    #[serde(default = "default_listen", deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// Folders scanned for drop-in plugins, served under their manifest's name.
    #[serde(default)]
    pub plugin_dirs: Vec<PathBuf>,
    /// Where loaded plugin files are copied to (one content-addressed copy per version).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// The configured providers.
    #[serde(default)]
    pub providers: Vec<ProviderEntry>,
    /// Model aliases: a name clients use, mapped to `provider/model` targets.
    #[serde(default)]
    pub models: BTreeMap<String, Alias>,
    /// Largest request body the server accepts, in bytes.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Who may call the server.
    #[serde(default)]
    pub auth: ClientAuth,
    /// Upstream timeouts, in seconds.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Caps on upstream streams.
    #[serde(default)]
    pub stream_limits: StreamLimits,
    /// Timeouts and limits of the HTTP listener.
    #[serde(default)]
    pub server: ServerLimits,
    /// The HTTP proxy every upstream call goes through (`http://host:port`, with
    /// `user:password@` for basic authentication). Without it no proxy is used,
    /// whatever `HTTP_PROXY`/`HTTPS_PROXY` say: a proxy the environment slipped in would
    /// see every API key and bypass the address guard.
    #[serde(default)]
    pub proxy: Option<String>,
    /// The whole request's deadline in seconds, retries and fallbacks included.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: f64,
    /// Retries of failed attempts (each provider may override it).
    #[serde(default)]
    pub retry: RetryPolicy,
    /// When a failing provider is taken out of rotation.
    #[serde(default)]
    pub circuit_breaker: BreakerPolicy,
    /// Raw logging of upstream traffic; off when absent.
    #[serde(default)]
    pub raw_log: Option<RawLogConfig>,
    /// Prices per `provider/model`, overriding the plugins' manifests.
    #[serde(default)]
    pub pricing: PriceOverrides,
    /// Spend limits per client or provider.
    #[serde(default)]
    pub budgets: Vec<Budget>,
    /// Request, token and concurrency limits per client, provider or `provider/model`.
    #[serde(default)]
    pub limits: Vec<Limit>,
    /// Where usage is kept.
    #[serde(default)]
    pub usage: UsageConfig,
    /// Stored Responses-API answers (`store: true`) and how long they are kept.
    #[serde(default)]
    pub responses: ResponsesConfig,
    /// How long one plugin call on the request path may take, in seconds; past it the
    /// plugin version is faulted and no longer served.
    #[serde(default = "default_plugin_call_timeout")]
    pub plugin_call_timeout: f64,
    /// The child process every new plugin file is validated in before it is loaded.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// Where live counters are kept when several hosts must agree (Redis), or memory.
    #[serde(default)]
    pub shared_state: SharedStateConfig,
    /// The response cache: its bounds, and whether every model is cached by default.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Where every provider's plugin runs unless its entry says otherwise:
    /// `"in-process"` (the default, fastest) or `"process"` (worker processes).
    #[serde(default)]
    pub isolation: Isolation,
    /// The worker processes of providers with `"isolation": "process"`.
    #[serde(default)]
    pub workers: WorkersConfig,
}

/// Where a provider's plugin code runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// In the host process: the fastest; a plugin that crashes takes the host down.
    #[default]
    InProcess,
    /// In a pool of worker processes (`host/src/worker/`): a crash costs only the calls
    /// in flight on the worker that died.
    Process,
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isolation::InProcess => "in-process",
            Isolation::Process => "process",
        })
    }
}

/// The worker processes of providers with `"isolation": "process"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Worker processes per provider version (an entry's `workers` overrides it).
    pub pool_size: usize,
}

/// The most worker processes one provider version may have.
pub const MAX_WORKERS: usize = 64;

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig { pool_size: 2 }
    }
}

/// Where and under which limits plugin files are validated before the host loads them
/// (see `host/src/sandbox.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Validate in a child process; off validates in the host process itself, where a
    /// crashing plugin takes the host down.
    pub enabled: bool,
    /// The `provider-host` binary to re-execute; by default the one beside this
    /// program, else the first on `PATH`.
    pub binary: Option<PathBuf>,
    /// The child's address-space limit, in MiB.
    pub address_space_mb: u64,
    /// The child's wall-clock limit, in seconds (the fuzz pass's time is added).
    pub timeout_secs: f64,
    /// How long the fuzz pass of validation makes inputs, in seconds (0 turns it off,
    /// at most [`MAX_FUZZ_SECS`]).
    pub fuzz_secs: f64,
    /// The fuzz pass's seed, to replay a pass exactly; a fresh one each run by default
    /// (every report names the seed it used).
    pub fuzz_seed: Option<u64>,
}

/// The longest fuzz pass `sandbox.fuzz_secs` may ask for: validation runs at every
/// start and reload for each new plugin file.
pub const MAX_FUZZ_SECS: f64 = 60.0;

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            enabled: true,
            binary: None,
            address_space_mb: 4096,
            timeout_secs: 20.0,
            fuzz_secs: 1.0,
            fuzz_seed: None,
        }
    }
}

fn default_plugin_call_timeout() -> f64 {
    10.0
}

impl Config {
    /// [`Config::plugin_call_timeout`] as a duration.
    pub fn plugin_call_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.plugin_call_timeout.max(0.001))
    }
}

fn default_request_timeout() -> f64 {
    300.0
}

/// How much of an upstream stream the host takes: one SSE line, one event, and the
/// whole stream, in bytes. Past a cap the stream ends with an error event and the
/// upstream is dropped, so a hostile or broken upstream cannot grow the host's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamLimits {
    /// The longest line (bytes between two newlines).
    pub max_line_bytes: usize,
    /// The longest event (bytes between two blank lines).
    pub max_event_bytes: usize,
    /// The most bytes of one streamed answer.
    pub max_stream_bytes: u64,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_line_bytes: 4 * 1024 * 1024,
            max_event_bytes: 8 * 1024 * 1024,
            max_stream_bytes: 256 * 1024 * 1024,
        }
    }
}

/// How the HTTP listener treats its clients: read timeouts, a connection limit and how
/// long shutdown waits for requests in flight. Seconds, fractions allowed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLimits {
    /// The longest a client may take to send a request's headers, and the longest a
    /// kept-alive connection may sit idle waiting for its next request (HTTP/1).
    pub header_timeout: f64,
    /// The longest a client may take to send a request's whole body.
    pub body_timeout: f64,
    /// The most connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// After a shutdown signal, the longest requests in flight are waited for;
    /// then the remaining connections are dropped and the process exits.
    pub drain_timeout: f64,
    /// The most request-body bytes being worked on at once (requests over 64 KiB
    /// count, from their `content-length`): a request takes several times its size
    /// while it is parsed and translated, so this bounds the memory large requests
    /// take together. One that finds no room within `body_timeout` gets a 503.
    pub max_inflight_body_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: 10.0,
            body_timeout: 60.0,
            max_connections: 1024,
            drain_timeout: 30.0,
            max_inflight_body_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Upstream timeouts in seconds (fractions allowed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect: f64,
    /// From sending the request to the response headers.
    pub first_byte: f64,
    /// Between two chunks of a response body.
    pub idle: f64,
    /// The whole upstream call, body included.
    pub total: f64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: 10.0,
            first_byte: 120.0,
            idle: 60.0,
            total: 600.0,
        }
    }
}

impl Timeouts {
    /// The connect timeout.
    pub fn connect(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.connect)
    }

    /// The first-byte timeout.
    pub fn first_byte(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.first_byte)
    }

    /// The idle timeout between body chunks.
    pub fn idle(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.idle)
    }

    /// The total timeout.
    pub fn total(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.total)
    }
}

/// Bearer keys clients must present. With none configured, the server is open (and
/// warns when it listens beyond loopback).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuth {
    /// Accepted keys (prefer `${VAR}` references to literal keys), bare or named.
    #[serde(default)]
    pub keys: Vec<ClientKeySpec>,
    /// An environment variable holding more keys, comma-separated.
    #[serde(default)]
    pub keys_env: Option<String>,
    /// Keys for `/admin/*` (reload, usage reset, provider checks), distinct from client
    /// keys: a client key never opens an admin endpoint once these are set. Without
    /// them, admin endpoints answer only on a loopback listener.
    #[serde(default)]
    pub admin_keys: Vec<ClientKeySpec>,
}

fn default_max_request_bytes() -> usize {
    8 * 1024 * 1024
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    resolve_listen(&text).map_err(serde::de::Error::custom)
}

/// The address `text` names: `127.0.0.1:8080`, `[::1]:8080`, or a host name and port
/// (`localhost:8080`), resolved now; a name with several addresses takes the first
/// IPv4 one. The error says what to write.
pub fn resolve_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let how = "write host:port, such as 127.0.0.1:8080, localhost:8080 or [::1]:8080";
    if text
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(format!("`{text}` has no port: {how}"));
    }
    let addresses: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(text)
        .map_err(|e| format!("`{text}` does not resolve ({e}): {how}"))?
        .collect();
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("`{text}` resolves to no address: {how}"))
}

fn enabled_by_default() -> bool {
    true
}

/// One provider: a name (the routing prefix) over a plugin library.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    /// Routing prefix: `name/model`.
    pub name: String,
    /// The plugin file; relative paths resolve from the config file's folder.
    pub library: PathBuf,
    /// Disabled entries are listed but not loaded.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Upstream base URL; the plugin's default when absent.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the API key; the plugin's default when absent,
    /// none at all when `""` (local servers that take no key).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Allow upstream addresses in private, loopback and link-local ranges.
    #[serde(default)]
    pub allow_private_network: bool,
    /// Provider-specific options, handed to the plugin as they are.
    #[serde(default)]
    pub options: Value,
    /// Pins the plugin file's SHA-256 (hex): a file with other content is refused
    /// before it is loaded.
    #[serde(default)]
    pub sha256: Option<String>,
    /// This provider's retry policy, instead of the global one.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// Send a client's own body unchanged when this provider's upstream speaks the
    /// client's protocol (exact passthrough; on by default). `false` always translates
    /// through the plugin.
    #[serde(default = "enabled_by_default")]
    pub passthrough: bool,
    /// Where the plugin runs; the config's top-level `isolation` when absent (filled
    /// in when the config is read).
    #[serde(default)]
    pub isolation: Option<Isolation>,
    /// Worker processes for `"isolation": "process"`; `workers.pool_size` when absent
    /// (filled in when the config is read).
    #[serde(default)]
    pub workers: Option<usize>,
}

impl ProviderEntry {
    /// Where this entry's plugin runs.
    pub fn isolation(&self) -> Isolation {
        self.isolation.unwrap_or_default()
    }

    /// How many worker processes this entry's plugin gets in process isolation.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or(WorkersConfig::default().pool_size)
            .clamp(1, MAX_WORKERS)
    }
}

/// A model alias and its targets, tried in order: a fallback chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    /// `provider/model` targets, first preferred.
    pub targets: Vec<TargetSpec>,
    /// How the alias's answers are cached; the global `cache` section when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<AliasCache>,
}

/// One target of an alias: `"provider/model"`, or `{"target": "provider/model",
/// "larger_context": true}` for a target that a context-window error may fall back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetSpec {
    /// `provider/model`.
    Plain(String),
    /// With options.
    Detailed(DetailedTarget),
}

/// An alias target with options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailedTarget {
    /// `provider/model`.
    pub target: String,
    /// Has a larger context window than the targets before it.
    #[serde(default)]
    pub larger_context: bool,
}

impl TargetSpec {
    /// The `provider/model` text.
    pub fn target(&self) -> &str {
        match self {
            TargetSpec::Plain(t) => t,
            TargetSpec::Detailed(d) => &d.target,
        }
    }

    /// Whether a context-window error may fall back to it.
    pub fn larger_context(&self) -> bool {
        matches!(self, TargetSpec::Detailed(d) if d.larger_context)
    }
}

impl From<&str> for TargetSpec {
    fn from(text: &str) -> Self {
        TargetSpec::Plain(text.to_owned())
    }
}

/// A config that could not be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// Where in the file: a JSON path (`providers[1].name`) or `line:column`.
    pub location: String,
    /// What is wrong, and what to do.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: at {}: {}",
                self.file.display(),
                self.location,
                self.message
            )
        }
    }
}

impl Config {
    /// Reads and checks the config at `path`, resolving relative paths against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] with `${VAR}` references and the `LLM_*` overrides looked up
    /// in `env` instead of the process environment.
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            location: String::new(),
            message: match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "no such file (looked at {}, from --config, else $PROVIDER_HOST_CONFIG, else ./{DEFAULT_CONFIG_FILE}): run from the folder that holds {DEFAULT_CONFIG_FILE}, or name it with --config <file>",
                    path.display()
                ),
                _ => format!("cannot read the config: {e}"),
            },
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, path, base, env)
    }

    /// Parses config text. `file` is only used in errors; relative paths resolve from
    /// `base`; `env` looks up `${VAR}` references.
    pub fn parse(
        text: &str,
        file: &Path,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let error = |location: String, message: String| ConfigError {
            file: file.to_owned(),
            location,
            message,
        };
        let mut value: Value = serde_json::from_str(text).map_err(|e| {
            error(
                format!("line {} column {}", e.line(), e.column()),
                format!("not valid JSON: {}", strip_position(&e.to_string())),
            )
        })?;
        substitute_env(&mut value, &mut String::from("$"), env)
            .map_err(|(path, message)| error(path, message))?;
        let mut config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            error(
                if path == "." { String::new() } else { path },
                e.into_inner().to_string(),
            )
        })?;
        policy::apply_env_overrides(&mut config.retry, &mut config.request_timeout, env)
            .map_err(|(path, message)| error(path, message))?;
        config
            .check()
            .map_err(|(path, message)| error(path, message))?;
        config.resolve_paths(base);
        config.resolve_isolation();
        Ok(config)
    }

    /// The entry called `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderEntry> {
        self.providers.iter().find(|p| p.name == name)
    }

    fn check(&self) -> Result<(), (String, String)> {
        let fuzz = self.sandbox.fuzz_secs;
        if !(0.0..=MAX_FUZZ_SECS).contains(&fuzz) {
            return Err((
                "sandbox.fuzz_secs".to_owned(),
                format!("is {fuzz}: give the fuzz pass's seconds, from 0 (off) to {MAX_FUZZ_SECS}"),
            ));
        }
        let mut names = HashSet::new();
        for (i, entry) in self.providers.iter().enumerate() {
            if let Err(why) = check_name(&entry.name) {
                return Err((format!("providers[{i}].name"), why));
            }
            if !names.insert(entry.name.as_str()) {
                return Err((
                    format!("providers[{i}].name"),
                    format!("two providers are called `{}`: names are routing prefixes and must be unique", entry.name),
                ));
            }
            if entry.library.as_os_str().is_empty() {
                return Err((
                    format!("providers[{i}].library"),
                    "is empty: give the path of the plugin file".to_owned(),
                ));
            }
            if let Some(url) = &entry.base_url {
                match url::Url::parse(url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                    Ok(u) => {
                        return Err((
                            format!("providers[{i}].base_url"),
                            format!("`{url}` has scheme `{}`: use http or https", u.scheme()),
                        ))
                    }
                    Err(e) => {
                        return Err((
                            format!("providers[{i}].base_url"),
                            format!("`{url}` is not a URL: {e}"),
                        ))
                    }
                }
            }
            if let Some(var) = entry.api_key_env.as_ref().filter(|v| !v.is_empty()) {
                if !is_env_name(var) {
                    return Err((
                        format!("providers[{i}].api_key_env"),
                        format!(
                            "`{var}` is not an environment variable name (letters, digits, `_`)"
                        ),
                    ));
                }
            }
            if let Some(pin) = &entry.sha256 {
                if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err((
                        format!("providers[{i}].sha256"),
                        "must be 64 hex digits (`sha256sum <plugin>` prints it)".to_owned(),
                    ));
                }
            }
            if let Some(workers) = entry.workers {
                check_workers(workers).map_err(|why| (format!("providers[{i}].workers"), why))?;
            }
            if !(entry.options.is_object() || entry.options.is_null()) {
                return Err((
                    format!("providers[{i}].options"),
                    "must be an object".to_owned(),
                ));
            }
        }
        check_workers(self.workers.pool_size)
            .map_err(|why| ("workers.pool_size".to_owned(), why))?;
        if let Some(var) = &self.auth.keys_env {
            if !is_env_name(var) {
                return Err((
                    "auth.keys_env".to_owned(),
                    format!("`{var}` is not an environment variable name (letters, digits, `_`)"),
                ));
            }
        }
        if self.auth.keys.iter().any(|k| k.key().trim().is_empty()) {
            return Err((
                "auth.keys".to_owned(),
                "an empty key would let anyone in: remove it".to_owned(),
            ));
        }
        if self
            .auth
            .admin_keys
            .iter()
            .any(|k| k.key().trim().is_empty())
        {
            return Err((
                "auth.admin_keys".to_owned(),
                "an empty key would let anyone administer the host: remove it".to_owned(),
            ));
        }
        let server = &self.server;
        for (field, value) in [
            ("header_timeout", server.header_timeout),
            ("body_timeout", server.body_timeout),
            ("drain_timeout", server.drain_timeout),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err((
                    format!("server.{field}"),
                    format!("{value} is not a positive number of seconds"),
                ));
            }
        }
        if server.max_inflight_body_bytes < self.max_request_bytes {
            return Err((
                "server.max_inflight_body_bytes".to_owned(),
                format!(
                    "{} is less than max_request_bytes ({}): the largest request could never be served",
                    server.max_inflight_body_bytes, self.max_request_bytes
                ),
            ));
        }
        if server.max_connections == 0 {
            return Err((
                "server.max_connections".to_owned(),
                "must be at least 1".to_owned(),
            ));
        }
        self.cache.check()?;
        for (name, alias) in &self.models {
            if let Some(cache) = &alias.cache {
                cache.check(&format!("models.{name}"))?;
            }
        }
        if let Some(redis) = &self.shared_state.redis {
            redis
                .check()
                .map_err(|why| ("shared_state.redis".to_owned(), why))?;
        }
        if self.shared_state.timeout_ms == 0 {
            return Err((
                "shared_state.timeout_ms".to_owned(),
                "must be at least 1 (milliseconds a Redis round trip may take)".to_owned(),
            ));
        }
        let limits = &self.stream_limits;
        if limits.max_line_bytes == 0 || limits.max_event_bytes == 0 || limits.max_stream_bytes == 0
        {
            return Err((
                "stream_limits".to_owned(),
                "every cap must be at least one byte".to_owned(),
            ));
        }
        if let Some(proxy) = &self.proxy {
            // Said without the URL itself: it may carry the proxy's password.
            let problem = match url::Url::parse(proxy) {
                Err(_) => Some("is not a URL"),
                Ok(u) if u.scheme() == "https" => Some(
                    "is an https:// URL: TLS to the proxy itself is not supported; name it \
                     with http:// (calls to https targets still run TLS end to end through \
                     the proxy's CONNECT tunnel)",
                ),
                Ok(u) if u.scheme() != "http" => Some("is not an http:// URL"),
                Ok(u) if u.host().is_none() => Some("has no host"),
                Ok(_) => None,
            };
            if let Some(problem) = problem {
                return Err((
                    "proxy".to_owned(),
                    format!("the proxy URL {problem} (expected `http://host:port`)"),
                ));
            }
        }
        if !(self.request_timeout.is_finite() && self.request_timeout > 0.0) {
            return Err((
                "request_timeout".to_owned(),
                format!(
                    "{} is not a positive number of seconds",
                    self.request_timeout
                ),
            ));
        }
        let retries = std::iter::once(("retry".to_owned(), &self.retry)).chain(
            self.providers.iter().enumerate().filter_map(|(i, p)| {
                p.retry
                    .as_ref()
                    .map(|r| (format!("providers[{i}].retry"), r))
            }),
        );
        for (location, retry) in retries {
            if !(retry.delay.is_finite()
                && retry.delay >= 0.0
                && retry.max_delay.is_finite()
                && retry.max_delay >= retry.delay)
            {
                return Err((
                    location,
                    format!(
                        "delay {} and max_delay {} must be seconds with delay <= max_delay",
                        retry.delay, retry.max_delay
                    ),
                ));
            }
        }
        let b = &self.circuit_breaker;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let sane = b.consecutive_failures > 0
            && positive(b.error_ratio)
            && b.error_ratio <= 1.0
            && positive(b.window)
            && positive(b.open_for)
            && positive(b.probe_timeout);
        if !sane {
            return Err(("circuit_breaker".to_owned(), "needs consecutive_failures >= 1, 0 < error_ratio <= 1, and positive window, open_for and probe_timeout".to_owned()));
        }
        let t = &self.timeouts;
        for (name, value) in [
            ("connect", t.connect),
            ("first_byte", t.first_byte),
            ("idle", t.idle),
            ("total", t.total),
        ] {
            if !(value.is_finite() && value > 0.0 && value <= 86_400.0) {
                return Err((
                    format!("timeouts.{name}"),
                    format!("{value} is not a number of seconds between 0 and 86400"),
                ));
            }
        }
        for (i, budget) in self.budgets.iter().enumerate() {
            let location = format!("budgets[{i}]");
            match (&budget.client, &budget.provider) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err((
                        location,
                        "name exactly one of `client` and `provider`".to_owned(),
                    ))
                }
            }
            if !(budget.limit_usd.is_finite() && budget.limit_usd >= 0.0) {
                return Err((
                    location,
                    format!("limit_usd {} is not an amount of dollars", budget.limit_usd),
                ));
            }
            if let Some(provider) = &budget.provider {
                if !names.contains(provider.as_str()) {
                    return Err((location, format!("no provider is called `{provider}`")));
                }
            }
        }
        let named_clients: HashSet<&str> = self
            .auth
            .keys
            .iter()
            .filter_map(ClientKeySpec::name)
            .collect();
        limits::check(&self.limits, &named_clients, &names)?;
        for (target, price) in &self.pricing {
            let location = format!("pricing.{target}");
            if Target::parse(target).is_none() {
                return Err((location, format!("`{target}` is not `provider/model`")));
            }
            let prices = [
                Some(price.input_per_mtok),
                Some(price.output_per_mtok),
                price.cached_input_per_mtok,
            ];
            if prices
                .into_iter()
                .flatten()
                .any(|x| !x.is_finite() || x < 0.0)
            {
                return Err((
                    location,
                    "prices must be non-negative numbers of dollars per million tokens".to_owned(),
                ));
            }
        }
        if self.max_request_bytes < 1024 {
            return Err((
                "max_request_bytes".to_owned(),
                "is below 1024 bytes: no chat request fits".to_owned(),
            ));
        }
        for (alias, target) in &self.models {
            if alias.is_empty() {
                return Err(("models".to_owned(), "an alias name is empty".to_owned()));
            }
            if target.targets.is_empty() {
                return Err((
                    format!("models.{alias}.targets"),
                    "is empty: list at least one `provider/model`".to_owned(),
                ));
            }
            for (j, t) in target.targets.iter().map(TargetSpec::target).enumerate() {
                let location = format!("models.{alias}.targets[{j}]");
                let Some((provider, model)) = t.split_once('/') else {
                    return Err((location, format!("`{t}` is not `provider/model`")));
                };
                if model.is_empty() {
                    return Err((location, format!("`{t}` names no model after `/`")));
                }
                if !names.contains(provider) {
                    return Err((location, format!("no provider is called `{provider}`: add it to `providers` or fix the target")));
                }
            }
        }
        Ok(())
    }

    /// Gives every entry its isolation and worker count, from the top level when it
    /// names none, so that a change of either at the top level reloads the entries.
    fn resolve_isolation(&mut self) {
        for entry in &mut self.providers {
            entry.isolation.get_or_insert(self.isolation);
            entry.workers.get_or_insert(self.workers.pool_size);
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        for entry in &mut self.providers {
            entry.library = base.join(&entry.library);
        }
        for dir in &mut self.plugin_dirs {
            *dir = base.join(&*dir);
        }
        if let Some(dir) = &mut self.cache_dir {
            *dir = base.join(&*dir);
        }
        if let Some(binary) = &mut self.sandbox.binary {
            *binary = base.join(&*binary);
        }
        self.usage.database = base.join(&self.usage.database);
        if let Some(raw) = &mut self.raw_log {
            if raw.to.as_os_str() != "stderr" {
                raw.to = base.join(&raw.to);
            }
        }
    }
}

fn check_workers(count: usize) -> Result<(), String> {
    if (1..=MAX_WORKERS).contains(&count) {
        Ok(())
    } else {
        Err(format!(
            "{count} worker processes: give between 1 and {MAX_WORKERS}"
        ))
    }
}

/// Provider names become URL-ish routing prefixes: keep them simple.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid provider name: use 1 to 64 lowercase letters, digits, `-` or `_`"))
    }
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// serde_json appends " at line L column C"; the caller reports the position itself.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string of `value`.
fn substitute_env(
    value: &mut Value,
    path: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = expand(s, env).map_err(|m| {
                (
                    path.trim_start_matches("$.")
                        .trim_start_matches('$')
                        .to_owned(),
                    m,
                )
            })?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                substitute_env(item, path, env)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                substitute_env(item, path, env)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("`{text}` has `${{` without a closing `}}`"))?;
            let reference = &inner[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if !is_env_name(name) {
                return Err(format!(
                    "`${{{reference}}}` does not name an environment variable"
                ));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!("environment variable `{name}` is not set: set it, or write `${{{name}:-default}}`"))
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let env = |name: &str| (name == "HOME_URL").then(|| "http://10.0.0.2:8000/v1".to_owned());
        Config::parse(
            text,
            Path::new("/etc/ph/external_providers.json"),
            Path::new("/etc/ph"),
            &env,
        )
    }

    #[test]
    fn listen_takes_a_host_name_and_says_what_to_write_when_it_cannot() {
        assert_eq!(
            resolve_listen("localhost:8080").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 8080))
        );
        assert_eq!(
            resolve_listen("[::1]:9000").unwrap(),
            "[::1]:9000".parse().unwrap()
        );
        let no_port = resolve_listen("localhost").unwrap_err();
        assert!(
            no_port.contains("no port") && no_port.contains("localhost:8080"),
            "{no_port}"
        );
        let bad_port = resolve_listen("localhost:http").unwrap_err();
        assert!(bad_port.contains("no port"), "{bad_port}");
    }

    #[test]
    fn a_proxy_is_an_http_url_and_a_bad_one_is_refused_without_quoting_its_password() {
        let proxy = |url: &str| parse(&format!(r#"{{"proxy": "{url}"}}"#));
        let fine = proxy("http://gateway:s3cret@proxy.internal:3128").unwrap();
        assert_eq!(
            fine.proxy.as_deref(),
            Some("http://gateway:s3cret@proxy.internal:3128")
        );
        for (url, says) in [
            ("https://gateway:s3cret@proxy.internal", "TLS to the proxy"),
            (
                "socks5://gateway:s3cret@proxy.internal",
                "not an http:// URL",
            ),
            ("gateway:s3cret", "not an http:// URL"),
            ("http://", "not a URL"),
        ] {
            let refused = proxy(url).unwrap_err();
            assert_eq!(refused.location, "proxy", "{url}");
            assert!(refused.message.contains(says), "{url}: {}", refused.message);
            assert!(!refused.message.contains("s3cret"), "{}", refused.message);
        }
    }

    #[test]
    fn a_cache_on_an_alias_is_read_and_bad_values_are_named_with_what_to_write() {
        let config = parse(
            r#"{"providers": [{"name": "mock", "library": "m.so"}], "models": {"fast": {"targets": ["mock/echo"], "cache": {"ttl": 60, "semantic": {"embedding_model": "mock/embed", "threshold": 0.9}}}}}"#,
        )
        .unwrap();
        let cache = config.models["fast"].cache.as_ref().unwrap();
        assert_eq!(cache.ttl, Some(60));
        assert_eq!(
            cache.semantic.as_ref().unwrap().embedding_model,
            "mock/embed"
        );
        assert!(!config.cache.enabled, "off by default");

        let threshold = parse(
            r#"{"providers": [{"name": "mock", "library": "m.so"}], "models": {"fast": {"targets": ["mock/echo"], "cache": {"semantic": {"embedding_model": "mock/embed", "threshold": 1.5}}}}}"#,
        )
        .unwrap_err();
        assert_eq!(threshold.location, "models.fast.cache.semantic.threshold");
        assert!(
            threshold.message.contains("cosine similarity"),
            "{}",
            threshold.message
        );
        let ttl = parse(r#"{"providers": [{"name": "mock", "library": "m.so"}], "models": {"fast": {"targets": ["mock/echo"], "cache": {"ttl": 0}}}}"#)
            .unwrap_err();
        assert_eq!(ttl.location, "models.fast.cache.ttl");
        assert!(
            ttl.message.contains("\"enabled\": false"),
            "{}",
            ttl.message
        );
        let entry =
            parse(r#"{"cache": {"max_bytes": 1000, "max_entry_bytes": 2000}}"#).unwrap_err();
        assert_eq!(entry.location, "cache.max_entry_bytes");
        let unknown = parse(r#"{"cache": {"tll": 5}}"#).unwrap_err();
        assert!(unknown.message.contains("tll"), "{}", unknown.message);
    }

    #[test]
    fn shared_state_names_a_redis_url_and_a_policy_or_says_what_to_write() {
        let config = parse(
            r#"{"shared_state": {"redis": "redis://:pw@127.0.0.1:6379/1", "on_unavailable": "fail_closed"}}"#,
        )
        .unwrap();
        let shared = &config.shared_state;
        assert_eq!(shared.on_unavailable, UnavailablePolicy::FailClosed);
        assert_eq!(shared.key_prefix, "provider-host");
        assert_eq!(
            shared.redis.as_ref().unwrap().to_string(),
            "redis://:***@127.0.0.1:6379/1"
        );

        let wrong_scheme =
            parse(r#"{"shared_state": {"redis": "http://127.0.0.1:6379"}}"#).unwrap_err();
        assert_eq!(wrong_scheme.location, "shared_state.redis");
        assert!(
            wrong_scheme.message.contains("only redis://"),
            "{wrong_scheme}"
        );

        let bad_policy = parse(r#"{"shared_state": {"on_unavailable": "retry"}}"#).unwrap_err();
        assert_eq!(bad_policy.location, "shared_state.on_unavailable");
        assert!(
            bad_policy.message.contains("fail_open") && bad_policy.message.contains("fail_closed"),
            "{bad_policy}"
        );
    }

    #[test]
    fn the_documented_shape_parses_and_paths_resolve_from_the_config_folder() {
        let config = parse(
            r#"{
              "listen": "127.0.0.1:8080",
              "plugin_dirs": ["plugins"],
              "providers": [
                { "name": "mock",   "library": "target/release/libmock_provider.so" },
                { "name": "openai", "library": "/opt/libopenai_provider.so",
                  "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY",
                  "allow_private_network": false, "enabled": true, "options": {} }
              ],
              "models": { "fast": { "targets": ["openai/gpt-4o-mini", "mock/echo"] } }
            }"#,
        )
        .unwrap();
        assert_eq!(
            config.providers[0].library,
            Path::new("/etc/ph/target/release/libmock_provider.so")
        );
        assert_eq!(
            config.providers[1].library,
            Path::new("/opt/libopenai_provider.so")
        );
        assert_eq!(config.plugin_dirs, vec![PathBuf::from("/etc/ph/plugins")]);
        assert_eq!(config.models["fast"].targets.len(), 2);
        assert!(
            config.providers[0].enabled,
            "entries are enabled unless they say otherwise"
        );
    }

    #[test]
    fn unknown_fields_are_errors_with_their_path() {
        let e = parse(r#"{"providers": [{"name": "mock", "library": "x.so", "enabeld": false}]}"#)
            .unwrap_err();
        assert_eq!(e.location, "providers[0].enabeld");
        assert!(e.message.contains("unknown field `enabeld`"), "{e}");
        assert!(
            e.to_string().starts_with(
                "/etc/ph/external_providers.json: at providers[0].enabeld: unknown field"
            ),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = parse(r#"{"providers": [{"name": "mock", "library": "x.so", "enabled": "yes"}]}"#)
            .unwrap_err();
        assert_eq!(e.location, "providers[0].enabled");
    }

    #[test]
    fn broken_json_names_line_and_column() {
        let e = parse("{\n  \"providers\": [\n}").unwrap_err();
        assert_eq!(e.location, "line 3 column 1");
        assert!(e.message.starts_with("not valid JSON"), "{e}");
    }

    #[test]
    fn duplicate_names_and_dangling_alias_targets_are_rejected() {
        let e = parse(r#"{"providers": [{"name": "a", "library": "x.so"}, {"name": "a", "library": "y.so"}]}"#).unwrap_err();
        assert_eq!(e.location, "providers[1].name");
        let e = parse(r#"{"providers": [{"name": "a", "library": "x.so"}], "models": {"m": {"targets": ["b/x"]}}}"#).unwrap_err();
        assert_eq!(e.location, "models.m.targets[0]");
        assert!(e.message.contains("no provider is called `b`"), "{e}");
    }

    #[test]
    fn env_references_are_substituted_or_reported() {
        let config = parse(
            r#"{"providers": [{"name": "vllm", "library": "x.so", "base_url": "${HOME_URL}",
                "options": {"note": "costs $$5", "region": "${REGION:-eu}"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            config.providers[0].base_url.as_deref(),
            Some("http://10.0.0.2:8000/v1")
        );
        assert_eq!(config.providers[0].options["note"], "costs $5");
        assert_eq!(config.providers[0].options["region"], "eu");
        let e = parse(r#"{"providers": [{"name": "v", "library": "${NOPE}"}]}"#).unwrap_err();
        assert_eq!(e.location, "providers[0].library");
        assert!(e.message.contains("`NOPE` is not set"), "{e}");
    }

    #[test]
    fn llm_environment_variables_override_the_global_retry_policy_and_deadline() {
        let env = |name: &str| match name {
            "LLM_MAX_RETRIES" => Some("4".to_owned()),
            "LLM_RETRY_DELAY" => Some("0.25".to_owned()),
            "LLM_RETRY_MAX_DELAY" => Some("3".to_owned()),
            "LLM_REQUEST_TIMEOUT" => Some("12.5".to_owned()),
            _ => None,
        };
        let text = r#"{"retry": {"max_retries": 1}, "request_timeout": 60}"#;
        let config = Config::parse(text, Path::new("c.json"), Path::new("/"), &env).unwrap();
        assert_eq!(
            config.retry,
            RetryPolicy {
                max_retries: 4,
                delay: 0.25,
                max_delay: 3.0
            }
        );
        assert_eq!(config.request_timeout, 12.5);
        let bad = |name: &str| (name == "LLM_RETRY_DELAY").then(|| "soon".to_owned());
        let e = Config::parse("{}", Path::new("c.json"), Path::new("/"), &bad).unwrap_err();
        assert_eq!(e.location, "environment variable LLM_RETRY_DELAY");
        assert!(
            e.message.contains("`soon` is not a number of seconds"),
            "{e}"
        );
    }

    #[test]
    fn alias_targets_may_be_marked_larger_context() {
        let config = parse(
            r#"{"providers": [{"name": "a", "library": "x.so"}],
                "models": {"m": {"targets": ["a/small", {"target": "a/big", "larger_context": true}]}}}"#,
        )
        .unwrap();
        let targets = &config.models["m"].targets;
        assert_eq!(
            (targets[0].target(), targets[0].larger_context()),
            ("a/small", false)
        );
        assert_eq!(
            (targets[1].target(), targets[1].larger_context()),
            ("a/big", true)
        );
    }

    #[test]
    fn bad_values_are_explained() {
        let bad = [
            (
                r#"{"providers": [{"name": "Open AI", "library": "x.so"}]}"#,
                "providers[0].name",
            ),
            (
                r#"{"providers": [{"name": "a", "library": "x.so", "base_url": "ftp://x"}]}"#,
                "providers[0].base_url",
            ),
            (
                r#"{"providers": [{"name": "a", "library": "x.so", "api_key_env": "MY KEY"}]}"#,
                "providers[0].api_key_env",
            ),
            (
                r#"{"providers": [{"name": "a", "library": "x.so", "options": [1]}]}"#,
                "providers[0].options",
            ),
            (r#"{"listen": "localhost"}"#, "listen"),
            (r#"{"models": {"m": {"targets": []}}}"#, "models.m.targets"),
        ];
        for (text, location) in bad {
            assert_eq!(parse(text).unwrap_err().location, location, "{text}");
        }
    }
}
