//! `bench`: drives the direct path (load generator → fake upstream), a bare proxy
//! (→ proxy → fake) and the host (→ provider-host → openai plugin → fake) in one run,
//! open-loop at fixed rates, then checks memory over many requests and reloads.
//! See `docs/benchmarks.md`.

use std::{
    fs,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bench::{
    fake::{self, Canned},
    load::{self, Target},
    stats::{children_cpu_us, cpu_us, rss_kib, PathResult, Percentiles},
    workload,
};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Benchmarks provider-host against a direct call and a bare proxy, open-loop"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Internal>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Internal {
    /// The bare byte-forwarding proxy (started by the benchmark itself).
    #[command(hide = true)]
    Proxy {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        upstream: SocketAddr,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Streaming {
    /// Whole answers only.
    Off,
    /// Streams only.
    On,
    /// Both, whole answers first.
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Debug)]
#[serde(rename_all = "lowercase")]
enum Ledger {
    /// The default: `.provider-host/usage.sqlite3` beside the config file.
    Beside,
    /// In a folder of its own, away from the folder the host watches for config changes.
    Elsewhere,
    /// `usage.enabled: false`.
    Off,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Debug)]
#[serde(rename_all = "lowercase")]
enum PathKind {
    Direct,
    Proxy,
    /// The host passing an OpenAI client's body through to the OpenAI upstream.
    Host,
    /// The same host and upstream through an entry with `passthrough: false`: the
    /// plugin translates the request and the answer.
    Translated,
    /// An Anthropic Messages client to the same OpenAI upstream: translated across
    /// protocols both ways.
    Messages,
    /// The `host` path through an entry with `"isolation": "process"`: the plugin runs
    /// in the host's worker processes, called over a Unix socket.
    Isolated,
    /// The host path through an alias whose response cache holds the answer: after the
    /// first request every one is a hit served from memory, the upstream never called.
    Cached,
}

impl PathKind {
    fn name(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Proxy => "proxy",
            PathKind::Host => "host",
            PathKind::Translated => "translated",
            PathKind::Messages => "messages",
            PathKind::Isolated => "isolated",
            PathKind::Cached => "cached",
        }
    }
}

#[derive(clap::Args, Serialize, Clone)]
struct RunArgs {
    /// Request rates to drive, per second, each on every path.
    #[arg(long, value_delimiter = ',', default_value = "2000,4000")]
    rates: Vec<f64>,
    /// Seconds measured per path and rate.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds sent before measuring, per path and rate.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Whole answers, streams, or both.
    #[arg(long, value_enum, default_value_t = Streaming::Both)]
    stream: Streaming,
    /// Content chunks per streamed answer.
    #[arg(long, default_value_t = 10)]
    chunks: usize,
    /// Content chunks of the second streaming run that gives the per-chunk cost by
    /// difference (0 skips it).
    #[arg(long, default_value_t = 100)]
    slope_chunks: usize,
    /// The rate of the two per-chunk runs (low enough for the host to sustain the longer
    /// streams).
    #[arg(long, default_value_t = 500.0)]
    slope_rate: f64,
    /// Pin the host and the proxy to `--host-cpu`, the load generator and the fake to
    /// `--load-cpu` (with taskset), so the host's CPU time is its own.
    #[arg(long)]
    pin: bool,
    /// The core of the host and the proxy under `--pin`.
    #[arg(long, default_value_t = 1)]
    host_cpu: usize,
    /// The core of the load generator and the fake under `--pin`.
    #[arg(long, default_value_t = 0)]
    load_cpu: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Requests of the memory check (0 skips it), half streamed.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// Concurrency of the memory check.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Reloads of the memory check, alternating two builds of the plugin (0 skips it).
    #[arg(long, default_value_t = 100)]
    reloads: u32,
    /// Reloads of a new, never-seen build each time (what keeping every version mapped costs).
    #[arg(long, default_value_t = 10)]
    distinct_reloads: u32,
    /// Paths to drive.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "direct,proxy,host,translated,messages,isolated"
    )]
    paths: Vec<PathKind>,
    /// Repeat every (rate, path) measurement this many times, interleaved, and pool them.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Seconds after its intended send time a request is given up as failed.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// The provider-host binary (default: beside this one).
    #[arg(long)]
    host_bin: Option<PathBuf>,
    /// The openai plugin (default: beside this binary).
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// `RUST_LOG` of the host (`info` is what `provider-host serve` logs by default:
    /// one line per request).
    #[arg(long, default_value = "info")]
    host_log: String,
    /// Extra environment of the host, `NAME=VALUE` (e.g.
    /// `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072`); repeatable.
    #[arg(long = "host-env", value_parser = parse_env)]
    host_env: Vec<(String, String)>,
    /// Where the host keeps its usage ledger.
    #[arg(long, value_enum, default_value_t = Ledger::Beside)]
    ledger: Ledger,
    /// Keep the scratch folder (config, host log, usage ledger) for inspection.
    #[arg(long)]
    keep: bool,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Internal::Proxy { listen, upstream }) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(bench::proxy::run(listen, upstream))?;
            Ok(())
        }
        None => run(cli.run),
    }
}

/// Pins the calling thread (and every thread it starts later) to `cpu`.
fn pin_self(cpu: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "cannot pin to core {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// Lets this process open as many sockets as the hard limit allows.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit read and write the struct passed.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A child process (the host or the proxy), stopped with SIGTERM on drop.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cpu_us(&self) -> f64 {
        cpu_us(self.pid()).unwrap_or(0.0)
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.pid()).unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Server {
    /// SIGTERM, then SIGKILL if it has not stopped within 10 s.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: signals our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(program: &Path, pin: Option<usize>) -> Command {
    match pin {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpu.to_string()).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Waits until `path` on `addr` answers 200.
fn wait_ready(server: &mut Server, path: &str) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = load::call_blocking(server.addr, "GET", path, b"") {
            return Ok(());
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("{} exited with {status} before it was ready", server.name);
        }
        if Instant::now() > until {
            bail!("{} not ready on {} after 30 s", server.name, server.addr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Setup {
    scratch: PathBuf,
    host_bin: PathBuf,
    config_path: PathBuf,
    plugin_path: PathBuf,
    plugin_bytes: Vec<u8>,
    canned: std::sync::Arc<Canned>,
    fake: SocketAddr,
    host: Server,
    proxy: Server,
}

fn setup(args: &RunArgs) -> anyhow::Result<Setup> {
    let here = std::env::current_exe()?
        .parent()
        .context("the bench binary has a folder")?
        .to_owned();
    let host_bin = args
        .host_bin
        .clone()
        .unwrap_or_else(|| here.join("provider-host"));
    let plugin = args
        .plugin
        .clone()
        .unwrap_or_else(|| here.join("libopenai_provider.so"));
    for file in [&host_bin, &plugin] {
        if !file.exists() {
            bail!(
                "{} is missing: run `cargo build --release -p provider-host -p openai-provider` first",
                file.display()
            );
        }
    }
    let scratch = std::env::temp_dir().join(format!("provider-host-bench-{}", std::process::id()));
    let plugins = scratch.join("plugins");
    fs::create_dir_all(&plugins)?;
    let plugin_bytes = fs::read(&plugin)?;
    let plugin_path = plugins.join("libopenai_provider.so");
    fs::write(&plugin_path, &plugin_bytes)?;

    let canned = Canned::new(args.chunks);
    let fake = fake::spawn(canned.clone());
    let host_cpu = args.pin.then_some(args.host_cpu);

    let listen = free_port()?;
    let usage = match args.ledger {
        Ledger::Beside => json!({}),
        Ledger::Elsewhere => json!({"database": scratch.join("ledger/usage.sqlite3")}),
        Ledger::Off => json!({"enabled": false}),
    };
    fs::create_dir_all(scratch.join("ledger"))?;
    let config = json!({
        "listen": listen,
        "cache_dir": scratch.join("cache"),
        "usage": usage,
        "providers": [{
            "name": "openai",
            "library": plugin_path,
            "base_url": format!("http://{fake}/v1"),
            "api_key_env": "",
            "allow_private_network": true
        }, {
            "name": "translated",
            "library": plugin_path,
            "base_url": format!("http://{fake}/v1"),
            "api_key_env": "",
            "allow_private_network": true,
            "passthrough": false
        }, {
            "name": "isolated",
            "library": plugin_path,
            "base_url": format!("http://{fake}/v1"),
            "api_key_env": "",
            "allow_private_network": true,
            "isolation": "process"
        }],
        "models": {"cached": {
            "targets": [format!("openai/{}", workload::MODEL)],
            "cache": {"ttl": 86400, "shared": true}
        }}
    });
    let config_path = scratch.join("external_providers.json");
    fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let host = start_host(args, &host_bin, &config_path, &scratch)?;

    let listen = free_port()?;
    let child = command(&std::env::current_exe()?, host_cpu)
        .args(["proxy", "--listen", &listen.to_string()])
        .args(["--upstream", &fake.to_string()])
        .stdout(Stdio::null())
        .spawn()?;
    let proxy = Server {
        name: "proxy",
        child,
        addr: listen,
    };
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(proxy.addr).is_err() {
        if Instant::now() > until {
            bail!("the proxy did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Setup {
        scratch,
        host_bin,
        config_path,
        plugin_path,
        plugin_bytes,
        canned,
        fake,
        host,
        proxy,
    })
}

/// Starts `provider-host serve` on a free loopback port and waits until it is ready.
fn start_host(
    args: &RunArgs,
    host_bin: &Path,
    config_path: &Path,
    scratch: &Path,
) -> anyhow::Result<Server> {
    let listen = free_port()?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(scratch.join("host.log"))?;
    let child = command(host_bin, args.pin.then_some(args.host_cpu))
        .arg("--config")
        .arg(config_path)
        .arg("serve")
        .arg("--listen")
        .arg(listen.to_string())
        .env("RUST_LOG", &args.host_log)
        .envs(args.host_env.iter().map(|(n, v)| (n, v)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", host_bin.display()))?;
    let mut host = Server {
        name: "provider-host",
        child,
        addr: listen,
    };
    wait_ready(&mut host, "/readyz")?;
    Ok(host)
}

fn target(setup: &Setup, path: PathKind, stream: bool) -> Target {
    let (addr, model) = match path {
        PathKind::Direct => (setup.fake, workload::MODEL.to_owned()),
        PathKind::Proxy => (setup.proxy.addr, workload::MODEL.to_owned()),
        PathKind::Host | PathKind::Messages => {
            (setup.host.addr, format!("openai/{}", workload::MODEL))
        }
        PathKind::Translated => (setup.host.addr, format!("translated/{}", workload::MODEL)),
        PathKind::Isolated => (setup.host.addr, format!("isolated/{}", workload::MODEL)),
        PathKind::Cached => (setup.host.addr, "cached".to_owned()),
    };
    if path == PathKind::Messages {
        return Target {
            addr,
            path: "/v1/messages",
            body: Bytes::from(workload::messages_request_bytes(&model, stream)),
            stream,
            stream_end: "data: {\"type\":\"message_stop\"}",
        };
    }
    Target {
        addr,
        path: "/v1/chat/completions",
        body: Bytes::from(workload::chat_request_bytes(&model, stream)),
        stream,
        stream_end: "data: [DONE]",
    }
}

/// One mode (whole or streamed) at one rate, every path.
#[derive(Serialize, Clone)]
struct Phase {
    mode: &'static str,
    rate: f64,
    chunks: Option<usize>,
    seconds: f64,
    paths: Vec<PathResult>,
    /// Latency to the last byte, per percentile: host − direct, proxy − direct, host − proxy.
    added_us: Vec<(String, Percentiles)>,
    /// The same for the first chunk of a stream.
    added_first_chunk_us: Vec<(String, Percentiles)>,
}

impl Phase {
    fn path(&self, name: &str) -> Option<&PathResult> {
        self.paths.iter().find(|p| p.path == name)
    }

    fn added(&self, name: &str) -> Option<Percentiles> {
        self.added_us
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
    }
}

fn differences(
    paths: &[PathResult],
    pick: impl Fn(&PathResult) -> Percentiles,
) -> Vec<(String, Percentiles)> {
    let find = |n: &str| paths.iter().find(|p| p.path == n).map(&pick);
    let mut out = Vec::new();
    for (a, b) in [
        ("host", "direct"),
        ("proxy", "direct"),
        ("host", "proxy"),
        ("translated", "direct"),
        ("translated", "proxy"),
        ("messages", "proxy"),
        ("isolated", "direct"),
        ("isolated", "host"),
    ] {
        if let (Some(x), Some(y)) = (find(a), find(b)) {
            out.push((format!("{a} - {b}"), x.minus(&y)));
        }
    }
    out
}

fn run_phase(setup: &Setup, args: &RunArgs, stream: bool, rate: f64, paths: &[PathKind]) -> Phase {
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let timeout = Duration::from_secs_f64(args.timeout);
    let sent_per_run = ((args.warmup + args.duration) * rate).round();
    let mut samples: Vec<(PathKind, Vec<load::Sample>, f64, f64, f64, f64)> = paths
        .iter()
        .map(|p| (*p, Vec::new(), 0.0, 0.0, 0.0, 0.0))
        .collect();
    for _ in 0..args.rounds {
        for (path, all, server_cpu, bench_cpu, lag, worker_cpu) in samples.iter_mut() {
            let target = target(setup, *path, stream);
            let server = match path {
                PathKind::Proxy => &setup.proxy,
                _ => &setup.host,
            };
            std::thread::sleep(Duration::from_millis(300));
            let (server_before, bench_before) =
                (server.cpu_us(), cpu_us(std::process::id()).unwrap_or(0.0));
            let workers_before = children_cpu_us(server.pid());
            let run = load::open_loop(&target, rate, warmup, duration, timeout);
            *server_cpu += server.cpu_us() - server_before;
            *worker_cpu += children_cpu_us(server.pid()) - workers_before;
            *bench_cpu += cpu_us(std::process::id()).unwrap_or(0.0) - bench_before;
            *lag = f64::max(*lag, run.worst_send_lag as f64 / 1000.0);
            all.extend(run.samples);
        }
    }
    let sent = sent_per_run * f64::from(args.rounds);
    let results: Vec<PathResult> = samples
        .iter()
        .map(|(path, all, server_cpu, bench_cpu, lag, worker_cpu)| {
            let mut result = PathResult::new(path.name(), all);
            result.server_cpu_us_per_request = Some(server_cpu / sent);
            result.worker_cpu_us_per_request =
                (*path == PathKind::Isolated).then_some(*worker_cpu / sent);
            result.bench_cpu_us_per_request = bench_cpu / sent;
            result.worst_send_lag_us = *lag;
            result
        })
        .collect();
    Phase {
        mode: if stream { "streaming" } else { "non-streaming" },
        rate,
        chunks: stream.then_some(args.chunks),
        seconds: args.duration * f64::from(args.rounds),
        added_us: differences(&results, |p| p.latency_us),
        added_first_chunk_us: differences(&results, |p| p.first_chunk_us),
        paths: results,
    }
}

fn us(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.1}ms", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn print_phase(phase: &Phase) {
    let chunks = phase
        .chunks
        .map(|c| format!(", {c} chunks"))
        .unwrap_or_default();
    println!(
        "\n== {} at {} req/s{chunks}, {:.0} s measured per path (latency in µs from the intended send time)",
        phase.mode, phase.rate, phase.seconds
    );
    let header = |what: &str| {
        println!(
            "{:<22} {:>9} {:>8} {:>8} {:>8} {:>8} {:>12} {:>11}",
            what, "success", "p50", "p90", "p99", "p99.9", "server CPU/req", "bench CPU/req"
        )
    };
    let rows = |pick: &dyn Fn(&PathResult) -> Percentiles| {
        for p in &phase.paths {
            let v = pick(p).values();
            let cpu = match (p.path.as_str(), p.server_cpu_us_per_request) {
                ("direct", Some(c)) => format!("(idle {c:.1})"),
                (_, Some(c)) => format!("{c:.1} µs"),
                _ => "-".into(),
            };
            let cpu = match p.worker_cpu_us_per_request {
                Some(w) => format!("{cpu} +{w:.1} in workers"),
                None => cpu,
            };
            println!(
                "{:<22} {:>8.3}% {:>8} {:>8} {:>8} {:>8} {:>14} {:>10.1} µs",
                p.path,
                p.success_ratio * 100.0,
                us(v[0]),
                us(v[1]),
                us(v[2]),
                us(v[3]),
                cpu,
                p.bench_cpu_us_per_request
            );
        }
    };
    let added = |list: &[(String, Percentiles)]| {
        for (name, d) in list {
            let v = d.values();
            println!(
                "{:<22} {:>9} {:>8} {:>8} {:>8} {:>8}",
                format!("added {name}"),
                "",
                us(v[0]),
                us(v[1]),
                us(v[2]),
                us(v[3])
            );
        }
    };
    if phase.chunks.is_some() {
        header("first chunk");
        rows(&|p| p.first_chunk_us);
        added(&phase.added_first_chunk_us);
        header("whole stream");
    } else {
        header("path");
    }
    rows(&|p| p.latency_us);
    added(&phase.added_us);
    let lag = phase
        .paths
        .iter()
        .map(|p| p.worst_send_lag_us)
        .fold(0.0, f64::max);
    println!("(worst send lateness of the load generator: {lag:.0} µs)");
}

/// The per-chunk cost, by difference between two streaming runs.
#[derive(Serialize, Clone)]
struct ChunkSlope {
    rate: f64,
    chunks: [usize; 2],
    host_cpu_us_per_request: [f64; 2],
    host_cpu_us_per_chunk: f64,
    /// (host − direct) at p50 of the whole stream, per extra chunk.
    added_p50_us_per_chunk: f64,
    added_p99_us_per_chunk: f64,
    /// The host's success ratio in the two runs (the figures mean little below 1).
    success_ratio: [f64; 2],
    /// The bare proxy's CPU per extra chunk: the floor of relaying a chunk.
    proxy_cpu_us_per_chunk: f64,
    /// With `"isolation": "process"` (the `isolated` path): the host process's CPU per
    /// extra chunk, minus the in-process host's; the workers' CPU per extra chunk; and
    /// (isolated − host) latency per extra chunk, p50 and p99.
    isolation_added_host_cpu_us_per_chunk: Option<f64>,
    isolation_worker_cpu_us_per_chunk: Option<f64>,
    isolation_added_p50_us_per_chunk: Option<f64>,
    isolation_added_p99_us_per_chunk: Option<f64>,
}

/// What `"isolation": "process"` costs against in-process, in one phase (same run,
/// same rate): the `isolated` path against the `host` path.
#[derive(Serialize, Clone)]
struct IsolationCost {
    mode: &'static str,
    rate: f64,
    in_process_host_cpu_us_per_request: f64,
    isolated_host_cpu_us_per_request: f64,
    isolated_worker_cpu_us_per_request: f64,
    /// Host process CPU, isolated − in-process.
    added_host_cpu_us_per_request: f64,
    /// Host + workers CPU, isolated − in-process.
    added_total_cpu_us_per_request: f64,
    /// Host process CPU, isolated / in-process.
    host_cpu_ratio: f64,
    /// Latency to the last byte, isolated − in-process, p50 and p99.
    added_p50_us: f64,
    added_p99_us: f64,
    /// The same as ratios, isolated / in-process.
    p50_ratio: f64,
    p99_ratio: f64,
    success_ratio: f64,
}

fn isolation_cost(phase: &Phase) -> Option<IsolationCost> {
    let (host, isolated) = (phase.path("host")?, phase.path("isolated")?);
    let host_cpu = host.server_cpu_us_per_request?;
    let iso_cpu = isolated.server_cpu_us_per_request?;
    let workers = isolated.worker_cpu_us_per_request.unwrap_or(0.0);
    Some(IsolationCost {
        mode: phase.mode,
        rate: phase.rate,
        in_process_host_cpu_us_per_request: host_cpu,
        isolated_host_cpu_us_per_request: iso_cpu,
        isolated_worker_cpu_us_per_request: workers,
        added_host_cpu_us_per_request: iso_cpu - host_cpu,
        added_total_cpu_us_per_request: iso_cpu + workers - host_cpu,
        host_cpu_ratio: iso_cpu / host_cpu,
        added_p50_us: isolated.latency_us.p50 - host.latency_us.p50,
        added_p99_us: isolated.latency_us.p99 - host.latency_us.p99,
        p50_ratio: isolated.latency_us.p50 / host.latency_us.p50,
        p99_ratio: isolated.latency_us.p99 / host.latency_us.p99,
        success_ratio: isolated.success_ratio,
    })
}

fn print_isolation(cost: &IsolationCost) {
    println!(
        "isolation ({} at {} req/s): host CPU {:.1} → {:.1} µs/req ({:+.1} µs, ×{:.2}), workers {:.1} µs/req (total {:+.1} µs); latency p50 {:+.0} µs (×{:.2}), p99 {:+.0} µs (×{:.2}); success {:.3}%",
        cost.mode,
        cost.rate,
        cost.in_process_host_cpu_us_per_request,
        cost.isolated_host_cpu_us_per_request,
        cost.added_host_cpu_us_per_request,
        cost.host_cpu_ratio,
        cost.isolated_worker_cpu_us_per_request,
        cost.added_total_cpu_us_per_request,
        cost.added_p50_us,
        cost.p50_ratio,
        cost.added_p99_us,
        cost.p99_ratio,
        cost.success_ratio * 100.0
    );
}

#[derive(Serialize, Clone)]
struct Memory {
    requests: u64,
    concurrency: usize,
    ok: u64,
    failed: u64,
    seconds: f64,
    requests_per_second: f64,
    host_cpu_us_per_request: f64,
    rss_kib_at_start: u64,
    rss_kib_after_warmup: u64,
    rss_kib_after_requests: u64,
    /// (requests done, RSS) after each tenth of the run.
    rss_kib_series: Vec<(u64, u64)>,
    growth_ratio: f64,
}

#[derive(Serialize, Clone)]
struct Reloads {
    reloads: u32,
    reloaded: u32,
    failed: u32,
    duration_ms: Percentiles,
    background_requests: usize,
    background_success_ratio: f64,
    rss_kib_before: u64,
    /// After the first two reloads, once both builds are mapped.
    rss_kib_after_two: u64,
    rss_kib_after: u64,
    growth_ratio: f64,
    /// Growth from `rss_kib_after_two` to `rss_kib_after`: what each further reload keeps.
    steady_growth_ratio: f64,
    distinct_reloads: u32,
    rss_kib_after_distinct: u64,
    rss_kib_per_distinct_version: f64,
    mapped_libraries: u64,
    host_cpu_ms_per_reload: f64,
}

#[derive(Serialize)]
struct Report {
    machine: Value,
    args: RunArgs,
    phases: Vec<Phase>,
    /// `"isolation": "process"` against in-process, per phase.
    isolation: Vec<IsolationCost>,
    chunk_slope: Option<ChunkSlope>,
    memory: Option<Memory>,
    reloads: Option<Reloads>,
    targets: Vec<TargetCheck>,
}

#[derive(Serialize, Clone)]
struct TargetCheck {
    target: String,
    measured: String,
    met: bool,
}

/// Memory over many requests, on a freshly started host (the open-loop phases before
/// may have overloaded it, and RSS keeps its high-water mark).
fn memory_check(setup: &mut Setup, args: &RunArgs) -> anyhow::Result<Memory> {
    // Stop the host first, then start it on an empty usage ledger: a host loads the
    // month's records when it starts, so what the phases before wrote would count.
    setup.host.stop();
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(
            setup
                .scratch
                .join(format!(".provider-host/usage.sqlite3{suffix}")),
        );
    }
    setup.host = start_host(args, &setup.host_bin, &setup.config_path, &setup.scratch)?;
    let rss_at_start = setup.host.rss_kib();
    let timeout = Duration::from_secs_f64(args.timeout);
    let targets = [
        target(setup, PathKind::Host, false),
        target(setup, PathKind::Host, true),
    ];
    let pick = |i: u64| (i % 2) as usize;
    let warm = (args.requests / 10).clamp(1_000, 100_000);
    let _ = load::closed_loop(&targets, pick, warm, args.concurrency, timeout);
    std::thread::sleep(Duration::from_millis(500));
    let rss_warm = setup.host.rss_kib();
    let cpu_before = setup.host.cpu_us();
    let (mut ok, mut failed, mut elapsed) = (0, 0, Duration::ZERO);
    let mut series = Vec::new();
    let tenth = args.requests.div_ceil(10);
    let mut done = 0;
    while done < args.requests {
        let n = tenth.min(args.requests - done);
        let run = load::closed_loop(&targets, pick, n, args.concurrency, timeout);
        ok += run.ok;
        failed += run.failed;
        elapsed += run.elapsed;
        done += n;
        series.push((done, setup.host.rss_kib()));
    }
    let cpu = setup.host.cpu_us() - cpu_before;
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = setup.host.rss_kib();
    Ok(Memory {
        requests: args.requests,
        concurrency: args.concurrency,
        ok,
        failed,
        seconds: elapsed.as_secs_f64(),
        requests_per_second: args.requests as f64 / elapsed.as_secs_f64(),
        host_cpu_us_per_request: cpu / args.requests as f64,
        rss_kib_at_start: rss_at_start,
        rss_kib_after_warmup: rss_warm,
        rss_kib_after_requests: rss_after,
        rss_kib_series: series,
        growth_ratio: rss_after as f64 / rss_warm as f64 - 1.0,
    })
}

/// Puts `bytes` in place of the configured plugin, as a deploy does (write, rename).
fn deploy(setup: &Setup, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = setup.plugin_path.with_extension("deploy");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, &setup.plugin_path)?;
    Ok(())
}

fn reload_once(setup: &Setup) -> anyhow::Result<(bool, bool, f64)> {
    let (status, body) = load::call_blocking(setup.host.addr, "POST", "/admin/reload", b"")
        .map_err(anyhow::Error::msg)?;
    if status != 200 {
        bail!("POST /admin/reload answered {status}");
    }
    let report: Value = serde_json::from_slice(&body)?;
    let has = |field: &str| {
        report[field]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n == "openai" || n[0] == "openai"))
    };
    Ok((
        has("reloaded"),
        has("failed"),
        report["duration_ms"].as_f64().unwrap_or(0.0),
    ))
}

fn reload_check(setup: &Setup, args: &RunArgs) -> anyhow::Result<Reloads> {
    let variant_b = {
        let mut bytes = setup.plugin_bytes.clone();
        bytes.extend_from_slice(b"\0provider-host bench: variant b\0");
        bytes
    };
    // A light steady load through the whole check: reloads must not fail requests.
    let background_seconds = f64::from(args.reloads + args.distinct_reloads) * 0.4 + 2.0;
    let background = {
        let target = target(setup, PathKind::Host, false);
        let timeout = Duration::from_secs_f64(args.timeout);
        std::thread::spawn(move || {
            load::open_loop(
                &target,
                200.0,
                Duration::ZERO,
                Duration::from_secs_f64(background_seconds),
                timeout,
            )
        })
    };
    let rss_before = setup.host.rss_kib();
    let cpu_before = setup.host.cpu_us();
    let (mut reloaded, mut failed, mut durations) = (0, 0, Vec::new());
    let mut rss_after_two = rss_before;
    for i in 0..args.reloads {
        if i == 2 {
            rss_after_two = setup.host.rss_kib();
        }
        let bytes = if i % 2 == 0 {
            &variant_b
        } else {
            &setup.plugin_bytes
        };
        deploy(setup, bytes)?;
        let (r, f, ms) = reload_once(setup)?;
        if r {
            reloaded += 1;
            durations.push((ms * 1e6) as u64);
        }
        failed += u32::from(f);
        // Lets the file watcher's own reload (same change) run before the next deploy.
        std::thread::sleep(Duration::from_millis(300));
    }
    let cpu = setup.host.cpu_us() - cpu_before;
    let rss_after = setup.host.rss_kib();
    for i in 0..args.distinct_reloads {
        let mut bytes = setup.plugin_bytes.clone();
        bytes.extend_from_slice(format!("\0provider-host bench: build {i}\0").as_bytes());
        deploy(setup, &bytes)?;
        let (r, f, ms) = reload_once(setup)?;
        if r {
            reloaded += 1;
            durations.push((ms * 1e6) as u64);
        }
        failed += u32::from(f);
        std::thread::sleep(Duration::from_millis(300));
    }
    let rss_distinct = setup.host.rss_kib();
    deploy(setup, &setup.plugin_bytes)?;
    let _ = reload_once(setup);
    let background = background.join().expect("background load");
    let ok = background.samples.iter().filter(|s| s.ok).count();
    let status = load::call_blocking(setup.host.addr, "GET", "/admin/providers", b"")
        .ok()
        .and_then(|(_, body)| serde_json::from_slice::<Value>(&body).ok())
        .unwrap_or(Value::Null);
    Ok(Reloads {
        reloads: args.reloads,
        reloaded,
        failed,
        duration_ms: {
            // Percentiles works in ns → µs; durations were stored as ns of a ms figure.
            let p = Percentiles::of(durations);
            Percentiles {
                p50: p.p50 / 1000.0,
                p90: p.p90 / 1000.0,
                p99: p.p99 / 1000.0,
                p999: p.p999 / 1000.0,
            }
        },
        background_requests: background.samples.len(),
        background_success_ratio: ok as f64 / background.samples.len().max(1) as f64,
        rss_kib_before: rss_before,
        rss_kib_after_two: rss_after_two,
        rss_kib_after: rss_after,
        growth_ratio: rss_after as f64 / rss_before as f64 - 1.0,
        steady_growth_ratio: rss_after as f64 / rss_after_two as f64 - 1.0,
        distinct_reloads: args.distinct_reloads,
        rss_kib_after_distinct: rss_distinct,
        rss_kib_per_distinct_version: (rss_distinct as f64 - rss_after as f64)
            / f64::from(args.distinct_reloads.max(1)),
        mapped_libraries: status["mapped_libraries"].as_u64().unwrap_or(0),
        host_cpu_ms_per_reload: cpu / 1000.0 / f64::from(args.reloads.max(1)),
    })
}

fn smoke(setup: &Setup, paths: &[PathKind]) -> anyhow::Result<()> {
    for path in paths {
        for stream in [false, true] {
            let t = target(setup, *path, stream);
            let (status, body) =
                load::call_blocking(t.addr, "POST", t.path, &t.body).map_err(anyhow::Error::msg)?;
            if status != 200 {
                bail!(
                    "{} (stream {stream}) answered {status}: {}",
                    path.name(),
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }
    Ok(())
}

fn check(list: &mut Vec<TargetCheck>, target: &str, measured: String, met: bool) {
    list.push(TargetCheck {
        target: target.to_owned(),
        measured,
        met,
    });
}

fn targets(report: &Report) -> Vec<TargetCheck> {
    let mut list = Vec::new();
    let find = |mode: &str, rate: f64| {
        report
            .phases
            .iter()
            .find(|p| p.mode == mode && (p.rate - rate).abs() < 0.5)
    };
    let cpu = |phase: &Phase| phase.path("host").and_then(|p| p.server_cpu_us_per_request);
    for (mode, limit) in [("non-streaming", 60.0), ("streaming", 100.0)] {
        if let Some(c) = report.phases.iter().find(|p| p.mode == mode).and_then(cpu) {
            check(
                &mut list,
                &format!("host CPU per request < {limit} µs ({mode})"),
                format!("{c:.1} µs"),
                c < limit,
            );
        }
    }
    for (mode, limit) in [("non-streaming", 250.0), ("streaming", 500.0)] {
        if let Some(d) = find(mode, 2000.0).and_then(|p| p.added("host - direct")) {
            check(
                &mut list,
                &format!("added latency at p99 < {limit} µs at 2,000 req/s ({mode})"),
                format!("{:.0} µs", d.p99),
                d.p99 < limit,
            );
        }
    }
    for mode in ["non-streaming", "streaming"] {
        if let Some(h) = find(mode, 4000.0).and_then(|p| p.path("host")) {
            check(
                &mut list,
                &format!("sustains 4,000 req/s with 100% success ({mode})"),
                format!("{:.3}% success", h.success_ratio * 100.0),
                h.success_ratio >= 1.0,
            );
        }
    }
    for cost in &report.isolation {
        check(
            &mut list,
            &format!(
                "isolation \"process\" adds <= 30 µs of host CPU per request ({} at {} req/s)",
                cost.mode, cost.rate
            ),
            format!(
                "{:+.1} µs (workers {:.1} µs)",
                cost.added_host_cpu_us_per_request, cost.isolated_worker_cpu_us_per_request
            ),
            cost.added_host_cpu_us_per_request <= 30.0,
        );
    }
    if let Some(added) = report
        .chunk_slope
        .as_ref()
        .and_then(|s| s.isolation_added_host_cpu_us_per_chunk)
    {
        check(
            &mut list,
            "isolation \"process\" adds <= 10 µs of host CPU per streamed chunk",
            format!("{added:+.2} µs"),
            added <= 10.0,
        );
    }
    if let Some(s) = &report.chunk_slope {
        check(
            &mut list,
            "per-chunk relay < 5 µs (host CPU per extra chunk)",
            format!(
                "{:.2} µs (bare proxy {:.2} µs)",
                s.host_cpu_us_per_chunk, s.proxy_cpu_us_per_chunk
            ),
            s.host_cpu_us_per_chunk < 5.0,
        );
    }
    if let Some(m) = &report.memory {
        check(
            &mut list,
            &format!("RSS growth < 10% over {} requests", m.requests),
            format!(
                "{:+.1}% ({} → {} KiB)",
                m.growth_ratio * 100.0,
                m.rss_kib_after_warmup,
                m.rss_kib_after_requests
            ),
            m.growth_ratio < 0.10 && m.failed == 0,
        );
    }
    if let Some(r) = &report.reloads {
        check(
            &mut list,
            &format!("RSS growth < 10% over {} reloads", r.reloads),
            format!(
                "{:+.1}% ({} → {} KiB; {:+.1}% after the first two)",
                r.growth_ratio * 100.0,
                r.rss_kib_before,
                r.rss_kib_after,
                r.steady_growth_ratio * 100.0
            ),
            r.growth_ratio < 0.10 && r.failed == 0,
        );
    }
    list
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.pin {
        pin_self(args.load_cpu)?;
    }
    raise_fd_limit();
    let load_before = load_average();
    let mut setup = setup(&args)?;
    println!(
        "provider-host bench: fake upstream {}, proxy {} (pid {}), host {} (pid {}){}; load average {load_before}",
        setup.fake,
        setup.proxy.addr,
        setup.proxy.pid(),
        setup.host.addr,
        setup.host.pid(),
        if args.pin {
            format!(
                "; host and proxy pinned to core {}, load generator and fake to core {}",
                args.host_cpu, args.load_cpu
            )
        } else {
            String::new()
        }
    );
    smoke(&setup, &args.paths)?;
    let mut modes = Vec::new();
    if args.stream != Streaming::On {
        modes.push(false);
    }
    if args.stream != Streaming::Off {
        modes.push(true);
    }
    let mut phases = Vec::new();
    let mut isolation = Vec::new();
    for &stream in &modes {
        for &rate in &args.rates {
            let phase = run_phase(&setup, &args, stream, rate, &args.paths);
            print_phase(&phase);
            if let Some(cost) = isolation_cost(&phase) {
                print_isolation(&cost);
                isolation.push(cost);
            }
            phases.push(phase);
        }
    }
    let mut chunk_slope = None;
    if args.stream != Streaming::Off && args.slope_chunks > args.chunks {
        // Both runs at a rate the host sustains with the longer streams.
        let rate = args.slope_rate;
        let base = run_phase(&setup, &args, true, rate, &args.paths);
        print_phase(&base);
        setup.canned.set_chunks(args.slope_chunks);
        let mut slope_args = args.clone();
        slope_args.chunks = args.slope_chunks;
        let more = run_phase(&setup, &slope_args, true, rate, &args.paths);
        print_phase(&more);
        setup.canned.set_chunks(args.chunks);
        let extra = (args.slope_chunks - args.chunks) as f64;
        let cpu_of = |p: &Phase, path: &str| {
            p.path(path)
                .and_then(|h| h.server_cpu_us_per_request)
                .unwrap_or(0.0)
        };
        let cpu = |p: &Phase| cpu_of(p, "host");
        let added = |p: &Phase| p.added("host - direct").unwrap_or_default();
        let ok = |p: &Phase| p.path("host").map_or(0.0, |h| h.success_ratio);
        let slope = ChunkSlope {
            rate,
            chunks: [args.chunks, args.slope_chunks],
            host_cpu_us_per_request: [cpu(&base), cpu(&more)],
            host_cpu_us_per_chunk: (cpu(&more) - cpu(&base)) / extra,
            added_p50_us_per_chunk: (added(&more).p50 - added(&base).p50) / extra,
            added_p99_us_per_chunk: (added(&more).p99 - added(&base).p99) / extra,
            success_ratio: [ok(&base), ok(&more)],
            proxy_cpu_us_per_chunk: (cpu_of(&more, "proxy") - cpu_of(&base, "proxy")) / extra,
            isolation_added_host_cpu_us_per_chunk: base.path("isolated").map(|_| {
                (cpu_of(&more, "isolated") - cpu_of(&base, "isolated")) / extra
                    - (cpu(&more) - cpu(&base)) / extra
            }),
            isolation_worker_cpu_us_per_chunk: base.path("isolated").map(|_| {
                let workers = |p: &Phase| {
                    p.path("isolated")
                        .and_then(|i| i.worker_cpu_us_per_request)
                        .unwrap_or(0.0)
                };
                (workers(&more) - workers(&base)) / extra
            }),
            isolation_added_p50_us_per_chunk: more
                .added("isolated - host")
                .zip(base.added("isolated - host"))
                .map(|(m, b)| (m.p50 - b.p50) / extra),
            isolation_added_p99_us_per_chunk: more
                .added("isolated - host")
                .zip(base.added("isolated - host"))
                .map(|(m, b)| (m.p99 - b.p99) / extra),
        };
        if let (Some(cpu), Some(workers), Some(p50), Some(p99)) = (
            slope.isolation_added_host_cpu_us_per_chunk,
            slope.isolation_worker_cpu_us_per_chunk,
            slope.isolation_added_p50_us_per_chunk,
            slope.isolation_added_p99_us_per_chunk,
        ) {
            println!(
                "\n== per-chunk cost of isolation (isolated − host): host CPU {cpu:+.2} µs per chunk, workers {workers:.2} µs per chunk; latency {p50:+.2} µs (p50), {p99:+.2} µs (p99) per chunk"
            );
        }
        println!(
            "\n== per-chunk relay, by difference ({} vs {} chunks at {} req/s): host CPU {:.2} µs per chunk (bare proxy {:.2} µs); added latency {:.2} µs (p50), {:.2} µs (p99) per chunk",
            slope.chunks[0], slope.chunks[1], slope.rate, slope.host_cpu_us_per_chunk, slope.proxy_cpu_us_per_chunk, slope.added_p50_us_per_chunk, slope.added_p99_us_per_chunk
        );
        chunk_slope = Some(slope);
    }
    let memory = if args.requests > 0 {
        println!(
            "\n== memory: {} requests through the host (half streamed), {} in flight",
            args.requests, args.concurrency
        );
        let m = memory_check(&mut setup, &args)?;
        println!(
            "{} ok, {} failed in {:.1} s ({:.0} req/s, host CPU {:.1} µs/request); host RSS {} KiB at start, {} KiB after warm-up, {} KiB after: {:+.1}%",
            m.ok, m.failed, m.seconds, m.requests_per_second, m.host_cpu_us_per_request,
            m.rss_kib_at_start, m.rss_kib_after_warmup, m.rss_kib_after_requests, m.growth_ratio * 100.0
        );
        let series: Vec<String> = m
            .rss_kib_series
            .iter()
            .map(|(n, kib)| format!("{}k: {kib}", n / 1000))
            .collect();
        println!("RSS (KiB) along the run: {}", series.join(", "));
        Some(m)
    } else {
        None
    };
    let reloads = if args.reloads > 0 {
        println!(
            "\n== reloads: {} alternating between two builds of the plugin, then {} never-seen builds, under 200 req/s",
            args.reloads, args.distinct_reloads
        );
        let r = reload_check(&setup, &args)?;
        println!(
            "{} reloaded, {} failed; reload (validate + swap) p50 {:.1} ms, p90 {:.1} ms, max-ish p99 {:.1} ms; host CPU {:.1} ms per reload",
            r.reloaded, r.failed, r.duration_ms.p50, r.duration_ms.p90, r.duration_ms.p99, r.host_cpu_ms_per_reload
        );
        println!(
            "host RSS {} KiB before, {} KiB after the first two, {} KiB after {} reloads ({:+.1}% in all, {:+.1}% after the first two); {} KiB after {} new builds ({:.0} KiB per build kept mapped; {} libraries mapped); background requests {:.3}% ok of {}",
            r.rss_kib_before, r.rss_kib_after_two, r.rss_kib_after, r.reloads, r.growth_ratio * 100.0, r.steady_growth_ratio * 100.0,
            r.rss_kib_after_distinct, r.distinct_reloads, r.rss_kib_per_distinct_version, r.mapped_libraries,
            r.background_success_ratio * 100.0, r.background_requests
        );
        Some(r)
    } else {
        None
    };
    let machine = json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "pinned": args.pin,
        "cpu_model": fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| c.lines().find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))),
    });
    let mut report = Report {
        machine,
        args: args.clone(),
        phases,
        isolation,
        chunk_slope,
        memory,
        reloads,
        targets: Vec::new(),
    };
    report.targets = targets(&report);
    println!("\n== targets");
    for t in &report.targets {
        println!(
            "{} {:<62} {}",
            if t.met { "met   " } else { "MISSED" },
            t.target,
            t.measured
        );
    }
    println!("(load average now {})", load_average());
    if let Some(path) = &args.json {
        let mut file = fs::File::create(path)?;
        file.write_all(&serde_json::to_vec_pretty(&report)?)?;
        println!("results written to {}", path.display());
    }
    let scratch = setup.scratch.clone();
    drop(setup);
    if args.keep {
        println!("scratch folder kept: {}", scratch.display());
    } else {
        let _ = fs::remove_dir_all(&scratch);
    }
    Ok(())
}
