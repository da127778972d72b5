//! What rate limits add to a call: `Host::complete` on the mock's `echo` (answered
//! without I/O, so the pipeline is most of what is measured) with no limits, with a
//! client, a provider and a target limit counted in memory, and the same limits
//! counted in a local `redis-server` (one script when the call is admitted, one when
//! it is settled). Each next to the others in the same run, so a noisy shared machine
//! still gives the differences.
//!
//! Build the mock first (`cargo build --release -p mock-provider`), then
//! `cargo bench -p bench --bench limits`. Needs `redis-server` on `PATH`
//! (`.ci/install-redis`).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, LazyLock},
    time::{Duration, Instant},
};

use divan::Bencher;
use provider_host::{pipeline::Call, Host};
use provider_sdk::{ChatRequest, Message};

fn main() {
    divan::main();
    if let Some(mut redis) = REDIS.lock().ok().and_then(|mut r| r.take()) {
        let _ = redis.0.kill();
        let _ = redis.0.wait();
    }
    let _ = std::fs::remove_dir_all(scratch_root());
}

fn scratch_root() -> PathBuf {
    std::env::temp_dir().join(format!("bench-limits-{}", std::process::id()))
}

/// The built mock plugin, beside this benchmark's profile folder, else in `release`
/// or `debug`.
fn mock_plugin() -> PathBuf {
    let exe = std::env::current_exe().expect("benchmark path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<bench>");
    let name = "libmock_provider.so";
    [
        profile.join(name),
        profile.join("../release").join(name),
        profile.join("../debug").join(name),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("{name} not found: run `cargo build --release -p mock-provider`"))
}

/// A `redis-server` of this run's own, on a free port.
struct RedisChild(Child, u16);

static REDIS: LazyLock<std::sync::Mutex<Option<RedisChild>>> = LazyLock::new(|| {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH (.ci/install-redis)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::sync::Mutex::new(Some(RedisChild(child, port)))
});

fn redis_url() -> String {
    let port = REDIS.lock().unwrap().as_ref().expect("running").1;
    format!("redis://127.0.0.1:{port}")
}

/// A host over the mock with `extra` config fields.
fn host(tag: &str, extra: serde_json::Value) -> Arc<Host> {
    let dir = scratch_root().join(tag);
    std::fs::create_dir_all(&dir).expect("scratch");
    let mut config = serde_json::json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "auth": {"keys": [{"key": "sk-bench", "name": "team-a"}]},
        "usage": {"enabled": false},
        "sandbox": {"enabled": false},
        "cache_dir": dir.join("cache"),
    });
    for (k, v) in extra.as_object().expect("an object") {
        config[k] = v.clone();
    }
    let path = dir.join("external_providers.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    Host::builder()
        .config_file(&path)
        .build()
        .expect("config loads")
}

/// Limits no call reaches: a client's, the provider's and the target's.
fn limits() -> serde_json::Value {
    serde_json::json!([
        {"client": "team-a", "rpm": 1_000_000_000u64, "tpm": 1_000_000_000_000u64, "concurrent": 1000},
        {"provider": "mock", "rpm": 1_000_000_000u64},
        {"target": "mock/echo", "tpm": 1_000_000_000_000u64}
    ])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn call() -> Call {
    let mut call = Call::new(ChatRequest::new(
        "mock/echo",
        vec![Message::user("the quick brown fox")],
    ));
    call.caller.client = "team-a".to_owned();
    call
}

fn bench_host(bencher: Bencher, host: Arc<Host>) {
    let runtime = runtime();
    // Warm: plugin loaded, Redis connected and its scripts cached.
    for _ in 0..100 {
        runtime.block_on(host.complete(call())).expect("answers");
    }
    bencher.bench_local(|| runtime.block_on(host.complete(call())).expect("answers"));
}

/// Baseline: no limits configured.
#[divan::bench(sample_count = 200, sample_size = 20)]
fn complete_without_limits(bencher: Bencher) {
    bench_host(bencher, host("off", serde_json::json!({})));
}

/// Three limits (client, provider, target), counted in this host's memory.
#[divan::bench(sample_count = 200, sample_size = 20)]
fn complete_with_limits_in_memory(bencher: Bencher) {
    bench_host(
        bencher,
        host("memory", serde_json::json!({"limits": limits()})),
    );
}

/// The same three limits, counted in a local Redis.
#[divan::bench(sample_count = 200, sample_size = 20)]
fn complete_with_limits_in_redis(bencher: Bencher) {
    let extra = serde_json::json!({
        "limits": limits(),
        "shared_state": {"redis": redis_url(), "key_prefix": "bench"}
    });
    bench_host(bencher, host("redis", extra));
}
