//! Micro-benchmarks of the plugin boundary and of the reload path, each next to a
//! baseline measured in the same run, so that figures from a noisy shared machine can
//! be read as ratios.
//!
//! They load the real openai plugin: build it first
//! (`cargo build --release -p openai-provider`), then `cargo bench -p bench`.
//! `BENCH_PLUGIN=/path/to/libopenai_provider.so` points at another build.

use std::{
    path::{Path, PathBuf},
    sync::LazyLock,
};

use divan::{black_box, Bencher};
use provider_sdk::{
    abi::load::{self, PluginProvider},
    ChatRequest, Header, HttpResponse, ProviderConfig, StreamEvent,
};

fn main() {
    divan::main();
    let _ = std::fs::remove_dir_all(scratch_root());
}

/// Where the benchmarks put plugin copies, caches and configs; removed at the end.
fn scratch_root() -> PathBuf {
    std::env::temp_dir().join(format!("bench-boundary-{}", std::process::id()))
}

/// The built openai plugin: `$BENCH_PLUGIN`, else beside this benchmark's profile
/// folder (`target/release`), else `target/debug`.
fn plugin_file() -> PathBuf {
    if let Some(path) = std::env::var_os("BENCH_PLUGIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("benchmark path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<bench>");
    let name = "libopenai_provider.so";
    let candidates = [
        profile.join(name),
        profile.join("../release").join(name),
        profile.join("../debug").join(name),
    ];
    candidates
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found next to {}: run `cargo build --release -p openai-provider` first",
                profile.display()
            )
        })
}

static PLUGIN: LazyLock<PluginProvider> = LazyLock::new(|| {
    let file = plugin_file();
    // Copy it so this process maps its own file, like the host's loader does.
    let dir = scratch_root().join("plugin");
    std::fs::create_dir_all(&dir).expect("scratch");
    let copy = dir.join("libopenai_provider.so");
    std::fs::copy(&file, &copy).expect("copy the plugin");
    // SAFETY: the plugin is this workspace's own build.
    let library = unsafe { load::open(&copy) }.expect("the openai plugin loads");
    library
        .construct(&ProviderConfig {
            name: "openai".into(),
            base_url: Some("http://127.0.0.1:9/v1".into()),
            options: serde_json::json!({}),
            resolved_base_url: None,
        })
        .expect("the openai plugin constructs")
});

/// The request as the host hands it to the plugin: parsed, routing prefix stripped,
/// encoded again.
static REQUEST_JSON: LazyLock<String> = LazyLock::new(|| {
    let request: ChatRequest = serde_json::from_slice(&bench::workload::chat_request_bytes(
        bench::workload::MODEL,
        false,
    ))
    .expect("the workload parses");
    serde_json::to_string(&request).expect("encodes")
});

static ANSWER: LazyLock<Vec<u8>> = LazyLock::new(bench::workload::answer_body);
static CHUNK: LazyLock<Vec<u8>> = LazyLock::new(|| bench::workload::content_chunk(" teenager"));

/// `build_request` for a typical ~2 KB chat request: JSON in, host-owned `HttpRequest` out.
#[divan::bench(sample_count = 1000)]
fn build_request(bencher: Bencher) {
    let plugin = &*PLUGIN;
    let json = REQUEST_JSON.as_str();
    bencher.bench_local(|| plugin.build_request_json(black_box(json)).expect("builds"));
}

/// Baseline: a serde_json round trip of the same request (parse into `ChatRequest`,
/// encode again), what any translator has to do at least.
#[divan::bench(sample_count = 1000)]
fn build_request_baseline_serde_round_trip(bencher: Bencher) {
    let json = REQUEST_JSON.as_str();
    bencher.bench_local(|| {
        let request: ChatRequest = serde_json::from_str(black_box(json)).expect("parses");
        serde_json::to_vec(&request).expect("encodes")
    });
}

/// `parse_response` for a typical ~1 KB `chat.completion`: bytes in, `ChatResponse` out.
#[divan::bench(sample_count = 1000)]
fn parse_response(bencher: Bencher) {
    let plugin = &*PLUGIN;
    let headers = [Header::new("content-type", "application/json")];
    let body = ANSWER.as_slice();
    bencher.bench_local(|| {
        plugin
            .parse_response(&HttpResponse::new(200, &headers, black_box(body)))
            .expect("parses")
    });
}

/// Baseline: parsing the same body into a `serde_json::Value`.
#[divan::bench(sample_count = 1000)]
fn parse_response_baseline_serde_value(bencher: Bencher) {
    let body = ANSWER.as_slice();
    bencher.bench_local(|| {
        serde_json::from_slice::<serde_json::Value>(black_box(body)).expect("parses")
    });
}

/// Decoding one SSE chunk (`data: {chat.completion.chunk}`, ~300 bytes) in a stream
/// that is under way: one `feed` across the boundary, events back in host types.
#[divan::bench(sample_count = 1000)]
fn decode_one_chunk(bencher: Bencher) {
    let mut decoder = PLUGIN.stream_decoder().expect("decoder");
    let mut events: Vec<StreamEvent> = Vec::new();
    for piece in bench::workload::stream_pieces(0).iter().take(1) {
        decoder.feed(piece, &mut events).expect("feeds");
    }
    let chunk = CHUNK.as_slice();
    bencher.bench_local(|| {
        events.clear();
        decoder.feed(black_box(chunk), &mut events).expect("feeds");
        events.len()
    });
}

/// Baseline: parsing the same chunk's JSON into a `serde_json::Value`.
#[divan::bench(sample_count = 1000)]
fn decode_one_chunk_baseline_serde_value(bencher: Bencher) {
    let json = &CHUNK[b"data: ".len()..];
    bencher.bench_local(|| {
        serde_json::from_slice::<serde_json::Value>(black_box(json)).expect("parses")
    });
}

/// A whole stream of 10 content chunks (14 SSE events) in one piece, decoder included:
/// the boundary's share of one streamed request.
#[divan::bench(sample_count = 1000)]
fn decode_stream_of_10_chunks(bencher: Bencher) {
    let body = bench::workload::stream_pieces(10).concat();
    let plugin = &*PLUGIN;
    bencher.bench_local(|| {
        let mut decoder = plugin.stream_decoder().expect("decoder");
        let mut events = Vec::new();
        decoder.feed(black_box(&body), &mut events).expect("feeds");
        decoder.finish(&mut events).expect("finishes");
        events
    });
}

mod reload {
    use super::*;
    use std::sync::Arc;

    struct Scratch {
        host: Arc<provider_host::Host>,
        plugin: PathBuf,
        bytes: Vec<u8>,
    }

    /// A host whose config names one openai entry over a plugin copy it can replace.
    fn scratch(tag: &str) -> Scratch {
        let dir = scratch_root().join(format!("reload-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("plugins")).expect("scratch");
        let bytes = std::fs::read(plugin_file()).expect("read the plugin");
        let plugin = dir.join("plugins/libopenai_provider.so");
        std::fs::write(&plugin, &bytes).expect("copy");
        let config = serde_json::json!({
            "cache_dir": dir.join("cache"),
            "providers": [{"name": "openai", "library": plugin, "base_url": "http://127.0.0.1:9/v1",
                "api_key_env": "", "allow_private_network": true}],
        });
        let path = dir.join("external_providers.json");
        std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("config");
        let host = provider_host::Host::builder()
            .config_file(&path)
            .without_ledger()
            .build()
            .expect("the host builds");
        assert!(host.registry().any_ready(), "the openai entry serves");
        Scratch {
            host,
            plugin,
            bytes,
        }
    }

    fn deploy(path: &Path, bytes: &[u8]) {
        let tmp = path.with_extension("deploy");
        std::fs::write(&tmp, bytes).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }

    /// Validate + swap of a changed plugin file: alternating two builds (the same code,
    /// one with bytes appended), so the library is already mapped after the first two
    /// and the figure is hashing, the conformance check, construction and the swap.
    #[divan::bench(sample_count = 60, sample_size = 1)]
    fn changed_plugin(bencher: Bencher) {
        let s = scratch("changed");
        let mut other = s.bytes.clone();
        other.extend_from_slice(b"\0variant b\0");
        let builds = [other, s.bytes.clone()];
        let mut i = 0;
        bencher
            .with_inputs(|| {
                deploy(&s.plugin, &builds[i % 2]);
                i += 1;
            })
            .bench_local_values(|()| {
                let report = s.host.reload("bench");
                assert_eq!(report.changes.reloaded, ["openai"], "{report:?}");
            });
    }

    /// A never-seen build each time: the above plus the copy into the cache and dlopen.
    /// Every version stays mapped (see docs/architecture.md), so this one runs few times.
    #[divan::bench(sample_count = 10, sample_size = 1)]
    fn new_build(bencher: Bencher) {
        let s = scratch("new");
        let mut i = 0u32;
        bencher
            .with_inputs(|| {
                let mut bytes = s.bytes.clone();
                bytes.extend_from_slice(format!("\0build {i}\0").as_bytes());
                deploy(&s.plugin, &bytes);
                i += 1;
            })
            .bench_local_values(|()| {
                let report = s.host.reload("bench");
                assert_eq!(report.changes.reloaded, ["openai"], "{report:?}");
            });
    }

    /// Baseline: a reload that finds nothing changed (re-reads the config, hashes the
    /// plugin file, swaps the snapshot).
    #[divan::bench(sample_count = 60, sample_size = 1)]
    fn baseline_unchanged(bencher: Bencher) {
        let s = scratch("unchanged");
        bencher.bench_local(|| {
            let report = s.host.reload("bench");
            assert_eq!(report.changes.unchanged, ["openai"], "{report:?}");
        });
    }
}
