//! The `provider-host` command line.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;

// mimalloc over glibc's malloc: a request allocates and frees a few hundred small
// buffers (headers, JSON values, strings), and glibc's malloc/free were ~10% of the
// host's CPU per request in the profile (tests/bench/docs/benchmarks.md). Plugins keep
// their own allocator: abi_stable frees what crosses the boundary through the vtable of
// the side that allocated it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use provider_host::{
    config::{Config, DEFAULT_CONFIG_FILE},
    load::Loader,
    registry::{Origin, State},
    validate::check_only,
    Host,
};
use provider_sdk::{ChatRequest, Message, StreamEvent};

#[derive(Parser)]
#[command(
    name = "provider-host",
    version,
    about = "Loads LLM provider plugins and serves them behind one API"
)]
struct Cli {
    /// The config file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_FILE, env = "PROVIDER_HOST_CONFIG")]
    config: PathBuf,
    /// Log lines as text or as JSON objects.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible API until SIGTERM or Ctrl-C.
    Serve {
        /// Address to listen on, instead of the config's `listen` (`host:port`).
        #[arg(long, value_parser = provider_host::config::resolve_listen)]
        listen: Option<std::net::SocketAddr>,
        /// Refuse to start when a configured, enabled provider failed to load.
        #[arg(long)]
        require_all: bool,
    },
    /// Check a plugin file, check by check; exits non-zero if it is not valid.
    Validate {
        /// The plugin (`.so`) to check.
        plugin: PathBuf,
        /// Instead of a fresh fuzz pass, give the plugin this input a failed validation
        /// saved (the path its report named).
        #[arg(long, value_name = "INPUT")]
        replay: Option<PathBuf>,
    },
    /// Validate one plugin file in this process and report each check as a JSON line
    /// on stdout: the sandbox child every new plugin file is checked in.
    #[command(name = "validate-child", hide = true)]
    ValidateChild {
        /// The plugin copy to check.
        plugin: PathBuf,
        /// The fuzz pass's length in seconds.
        #[arg(long, default_value_t = 0.0)]
        fuzz_secs: f64,
        /// The fuzz pass's seed.
        #[arg(long, default_value_t = 0)]
        fuzz_seed: u64,
        /// Where each fuzz input is written before the plugin sees it.
        #[arg(long)]
        record: Option<PathBuf>,
        /// A saved input to replay instead of fuzzing.
        #[arg(long)]
        replay: Option<PathBuf>,
    },
    /// Run one plugin copy for the host over the Unix socket on stdin: a worker of a
    /// provider with `"isolation": "process"`.
    #[command(name = "plugin-worker", hide = true)]
    PluginWorker {
        /// The validated plugin copy to run.
        plugin: PathBuf,
    },
    /// List the providers the config loads, and the state of each.
    Providers {
        /// Also make one cheap live call to each ready provider and report it.
        #[arg(long)]
        check: bool,
    },
    /// Write a new provider crate that builds and passes `validate` as generated.
    NewProvider {
        /// The provider's name (`acme`, `acme-cloud`): its routing prefix and crate name.
        name: String,
        /// An OpenAI-compatible service: one preset of the kit's translator.
        #[arg(long)]
        openai_compatible: bool,
        /// The crate's folder (default: `providers/<name>` inside the provider-host
        /// sources, else `./<name>-provider`).
        #[arg(long)]
        path: Option<PathBuf>,
        /// The provider-host source folder to depend on by path, outside the workspace
        /// (default: the sources this host was built from, else the published crates).
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Send one chat through the host's pipeline and print the answer.
    Chat {
        /// `provider/model` or an alias.
        #[arg(long, short)]
        model: String,
        /// A system prompt.
        #[arg(long)]
        system: Option<String>,
        /// Wait for the whole answer instead of streaming it.
        #[arg(long)]
        no_stream: bool,
        /// The user message.
        prompt: String,
    },
}

fn main() -> ExitCode {
    // The SDK version plugins are built against, beside the host's own, so an operator
    // can tell which plugins this host loads.
    let version = format!(
        "{} (provider-sdk {})",
        env!("CARGO_PKG_VERSION"),
        provider_sdk::SDK_VERSION
    );
    let matches = <Cli as clap::CommandFactory>::command()
        .version(&*Box::leak(version.into_boxed_str()))
        .get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = if matches!(cli.command, Command::Serve { .. }) {
            "info"
        } else {
            "warn"
        };
        tracing_subscriber::EnvFilter::new(level)
    });
    // Colour codes only for a person at a terminal: a file or a pipe gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        // One JSON object per line, with the request span (and its id) on each.
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    let result = match cli.command {
        Command::Serve {
            listen,
            require_all,
        } => serve(&cli.config, listen, require_all),
        Command::Validate { plugin, replay } => validate(&cli.config, &plugin, replay),
        Command::ValidateChild {
            plugin,
            fuzz_secs,
            fuzz_seed,
            record,
            replay,
        } => {
            let options = provider_host::sandbox::ChildOptions {
                fuzz_secs,
                fuzz_seed,
                record,
                replay,
            };
            return ExitCode::from(provider_host::sandbox::child_main(&plugin, &options) as u8);
        }
        Command::PluginWorker { plugin } => {
            return ExitCode::from(provider_host::worker::child::main(&plugin) as u8)
        }
        Command::Providers { check } => providers(&cli.config, check),
        Command::NewProvider {
            name,
            openai_compatible,
            path,
            sdk_path,
        } => new_provider(name, openai_compatible, path, sdk_path),
        Command::Chat {
            model,
            system,
            no_stream,
            prompt,
        } => chat(&cli.config, model, system, prompt, !no_stream),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    config_path: &Path,
    listen: Option<std::net::SocketAddr>,
    require_all: bool,
) -> anyhow::Result<ExitCode> {
    let host = Host::builder().config_file(config_path).build()?;
    let failed = failed_providers(&host);
    if require_all && !failed.is_empty() {
        anyhow::bail!(
            "--require-all: {} failed to load: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    let address = listen.unwrap_or(host.config().listen);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let _watcher = provider_host::watch::watch(host.clone())
            .context("cannot watch the config and plugin files")?;
        reload_on_sighup(host.clone());
        provider_host::serve::serve(host, listener, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Reloads on every SIGHUP, like `POST /admin/reload`.
fn reload_on_sighup(host: std::sync::Arc<Host>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; use POST /admin/reload");
            return;
        };
        while hup.recv().await.is_some() {
            let report = host.reload_async("sighup").await;
            tracing::info!(
                generation = report.generation,
                failures = report.has_failures(),
                "reloaded on SIGHUP"
            );
        }
    });
    #[cfg(not(unix))]
    let _ = host;
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn validate(
    config_path: &Path,
    plugin: &Path,
    replay: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    // The config only chooses the cache folder; validating needs no config.
    // The config only chooses the cache folder and the sandbox; validating needs no
    // config. The file is checked in a child process and never loaded here.
    let dir = config_path.parent().unwrap_or(Path::new("."));
    let config = match config_path.exists() {
        true => Some(Config::load(config_path)?),
        false => None,
    };
    let cache = config.as_ref().and_then(|c| c.cache_dir.clone());
    let sandbox = config
        .as_ref()
        .map(|c| c.sandbox.clone())
        .unwrap_or_default();
    if let Some(input) = &replay {
        // Read it here too, so a wrong path is one clear line before any plugin runs.
        provider_host::fuzz::Input::decode_file(input)?;
    }
    let mut fuzz = provider_host::sandbox::FuzzOptions::from_config(&sandbox);
    fuzz.replay = replay;
    let sandbox = provider_host::sandbox::Sandbox::from_config(&sandbox, None);
    if fuzz.replay.is_some() && sandbox.is_none() {
        anyhow::bail!("--replay needs the validation sandbox (sandbox.enabled and a provider-host binary): a replayed crash would end this process");
    }
    let loader = Loader::new(cache.unwrap_or_else(|| Loader::default_cache_dir(dir)))
        .with_sandbox(sandbox.map(|s| s.with_fuzz(fuzz)));
    let report = check_only(&loader, plugin);
    println!("{report}");
    if let Some(reason) = report.failure() {
        eprintln!("error: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn providers(config_path: &Path, check: bool) -> anyhow::Result<ExitCode> {
    let host = Host::builder()
        .config_file(config_path)
        .without_ledger()
        .build()?;
    let registry = host.registry();
    println!("{:<14} {:<9} {:<30} LIBRARY", "NAME", "STATE", "PLUGIN");
    for p in registry.providers() {
        let plugin = p
            .manifest
            .as_ref()
            .map(|m| format!("{} {} (sdk {})", m.name, m.version, m.sdk_version))
            .unwrap_or_else(|| "-".to_owned());
        let state = match &p.state {
            State::Ready => "ready",
            State::Disabled => "disabled",
            State::Unavailable(_) => "unavail",
            State::Failed(_) => "FAILED",
        };
        let origin = if p.origin == Origin::PluginDir {
            " (drop-in)"
        } else {
            ""
        };
        println!(
            "{:<14} {:<9} {:<30} {}{origin}",
            p.name,
            state,
            plugin,
            p.library.display()
        );
        if let State::Unavailable(why) | State::Failed(why) = &p.state {
            println!("{:<14} └ {why}", "");
        }
    }
    for (alias, targets) in registry.aliases() {
        let list: Vec<String> = targets.iter().map(ToString::to_string).collect();
        println!("alias {alias} -> {}", list.join(", "));
    }
    for problem in registry.problems() {
        println!("problem: {problem}");
    }
    let failed = failed_providers(&host);
    if !check {
        return Ok(if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            eprintln!("error: {} provider(s) failed to load", failed.len());
            ExitCode::FAILURE
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut healthy = true;
    for p in registry.providers().filter(|p| p.ready.is_some()) {
        let Some(report) = runtime.block_on(host.check_provider(&p.name)) else {
            continue;
        };
        if report.healthy {
            println!(
                "check {:<14} ok     {:>7.1} ms  {}",
                p.name, report.latency_ms, report.probe
            );
        } else {
            healthy = false;
            let kind = report.kind.unwrap_or_default();
            let message = report.message.unwrap_or_default();
            println!(
                "check {:<14} FAILED {:>7.1} ms  {}: {kind}: {message}",
                p.name, report.latency_ms, report.probe
            );
        }
    }
    Ok(if healthy && failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `name: reason` of every configured, enabled provider whose plugin failed to load.
fn failed_providers(host: &Host) -> Vec<String> {
    host.registry()
        .providers()
        .filter(|p| p.origin == Origin::Config)
        .filter_map(|p| match &p.state {
            State::Failed(why) => Some(format!("{}: {why}", p.name)),
            _ => None,
        })
        .collect()
}

fn chat(
    config_path: &Path,
    model: String,
    system: Option<String>,
    prompt: String,
    stream: bool,
) -> anyhow::Result<ExitCode> {
    let host = Host::builder()
        .config_file(config_path)
        .without_ledger()
        .build()?;
    let mut messages = Vec::new();
    messages.extend(system.map(Message::system));
    messages.push(Message::user(prompt));
    let request = ChatRequest::new(model, messages);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut out = std::io::stdout().lock();
        if !stream {
            let done = host.chat(request).await?;
            let m = &done.response.message;
            if let Some(text) = &m.content {
                writeln!(out, "{text}")?;
            }
            for call in &m.tool_calls {
                writeln!(
                    out,
                    "[tool call {} {}({})]",
                    call.id, call.function.name, call.function.arguments
                )?;
            }
            eprintln!(
                "[{} finish={} usage={}]",
                done.target,
                done.response.finish_reason.as_str(),
                usage_line(done.response.usage)
            );
            return Ok(ExitCode::SUCCESS);
        }
        let mut events = host.chat_stream(request).await?;
        let target = events.target.clone();
        let (mut usage, mut finish) = (None, None);
        while let Some(event) = events.next().await {
            match event? {
                StreamEvent::TextDelta { text } | StreamEvent::ReasoningDelta { text } => {
                    write!(out, "{text}")?
                }
                StreamEvent::ToolCallStart { id, name, .. } => {
                    write!(out, "[tool call {id} {name}(")?
                }
                StreamEvent::ToolCallDelta { arguments, .. } => write!(out, "{arguments}")?,
                StreamEvent::Usage { usage: u } => usage = Some(u),
                StreamEvent::Finish { reason } => finish = Some(reason),
                StreamEvent::Start { .. } | StreamEvent::ReasoningDetail { .. } => {}
            }
            out.flush()?;
        }
        if finish == Some(provider_sdk::FinishReason::ToolCalls) {
            write!(out, ")]")?;
        }
        writeln!(out)?;
        let finish = finish.map(|f| f.as_str()).unwrap_or("none");
        eprintln!("[{target} finish={finish} usage={}]", usage_line(usage));
        Ok(ExitCode::SUCCESS)
    })
}

fn usage_line(usage: Option<provider_sdk::Usage>) -> String {
    match usage {
        Some(u) => format!("{}+{} tokens", u.prompt_tokens, u.completion_tokens),
        None => "not reported".to_owned(),
    }
}

fn new_provider(
    name: String,
    openai_compatible: bool,
    path: Option<PathBuf>,
    sdk_path: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use provider_host::scaffold::{generate, Dependencies, Request};
    let in_sources =
        Path::new("provider-sdk/Cargo.toml").is_file() && Path::new("providers").is_dir();
    let path = path.unwrap_or_else(|| match in_sources {
        true => Path::new("providers").join(&name),
        false => PathBuf::from(format!("{name}-provider")),
    });
    let generated = generate(&Request {
        name,
        openai_compatible,
        path,
        sdk_path,
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "wrote {}:", generated.path.display())?;
    for file in &generated.files {
        writeln!(out, "  {file}")?;
    }
    let (deps, target) = match &generated.dependencies {
        Dependencies::Workspace => (
            "a member of this workspace (providers/*)".to_owned(),
            "target/release".to_owned(),
        ),
        Dependencies::Path(root) => (
            format!(
                "provider-sdk and provider-kit by path, from {}",
                root.display()
            ),
            format!("{}/target/release", generated.path.display()),
        ),
        Dependencies::Version => (
            "provider-sdk 1.3 and provider-kit 1.0 from crates.io".to_owned(),
            format!("{}/target/release", generated.path.display()),
        ),
    };
    writeln!(out, "dependencies: {deps}")?;
    writeln!(out, "next:")?;
    writeln!(
        out,
        "  cargo test --manifest-path {}/Cargo.toml",
        generated.path.display()
    )?;
    writeln!(
        out,
        "  cargo build --release --manifest-path {}/Cargo.toml",
        generated.path.display()
    )?;
    writeln!(
        out,
        "  provider-host validate {target}/{}",
        generated.library
    )?;
    Ok(ExitCode::SUCCESS)
}
