//! Hot reload: operators replace plugins and edit the config under load, and clients
//! notice nothing but the new version answering.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use e2e::{mock_plugin, plugin, sse_data, Scratch, Server};
use serde_json::{json, Value};

/// Replaces `path` the way a deploy script does: write beside it, then rename over it.
fn replace_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-deploy");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Overwrites `path` in place the way `cp` does: truncate, then write, here in two
/// halves with a pause, so the watcher sees a truncated file for a while.
async fn overwrite_in_place(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    let half = bytes.len() / 2;
    file.write_all(&bytes[..half]).unwrap();
    file.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    file.write_all(&bytes[half..]).unwrap();
    file.sync_all().unwrap();
}

fn bytes_of(lib: &str) -> Vec<u8> {
    std::fs::read(plugin(lib)).unwrap()
}

async fn answer(client: &reqwest::Client, server: &Server, model: &str) -> Result<String, String> {
    let response = client
        .post(server.at("/v1/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "who?"}]}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    Ok(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Polls until `model` answers with text containing `expected` (or equal to it, when
/// `expected` starts with `=`); returns how long it took.
async fn until_answer(server: &Server, model: &str, expected: &str, limit: Duration) -> Duration {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(text) = answer(&client, server, model).await {
            let matched = match expected.strip_prefix('=') {
                Some(exact) => text == exact,
                None => text.contains(expected),
            };
            if matched {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < limit,
            "`{model}` did not answer with `{expected}` within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(server: &Server) -> Value {
    reqwest::get(server.at("/admin/providers"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn provider<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {status}"))
}

async fn until_status(server: &Server, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let now = status(server).await;
        if check(&now) {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "status never showed {what}: {now:#}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn write_config(path: &Path, config: &Value) {
    replace_atomically(path, serde_json::to_vec_pretty(config).unwrap().as_slice());
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    plain: AtomicUsize,
    streams: AtomicUsize,
    failures: Mutex<Vec<String>>,
    /// The plugin versions intact streams came from (`variant A`, `variant B`).
    stream_versions: Mutex<std::collections::BTreeSet<String>>,
}

/// One client: plain and streamed requests in turn until `stop`.
async fn client_loop(url: String, stop: Arc<AtomicBool>, tally: Arc<Tally>, id: usize) {
    let client = reqwest::Client::new();
    let mut turn = id;
    while !stop.load(Ordering::Relaxed) {
        turn += 1;
        let (model, stream) = match turn % 3 {
            0 => ("v/m", false),
            1 => ("v/m", true),
            _ => ("mock/echo", false),
        };
        let request = json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]});
        let result: Result<(), String> = async {
            let response = client
                .post(format!("{url}/v1/chat/completions"))
                .json(&request)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("{model} stream={stream}: {status} {text}"));
            }
            if !stream {
                return Ok(());
            }
            // A stream must complete intact, on one version: 20 lines of the same variant.
            let data = sse_data(&text);
            if data.last().map(String::as_str) != Some("[DONE]") {
                return Err(format!("stream did not finish: {text}"));
            }
            let lines: Vec<String> = data
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_owned)
                })
                .filter(|t| !t.is_empty())
                .collect();
            let first = lines
                .first()
                .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            if lines.len() != 20 || !lines.iter().all(|l| l.starts_with(&first)) {
                return Err(format!("stream not intact: {lines:?}"));
            }
            tally.stream_versions.lock().unwrap().insert(first);
            Ok(())
        }
        .await;
        match result {
            Ok(()) if stream => tally.streams.fetch_add(1, Ordering::Relaxed),
            Ok(()) => tally.plain.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tally.failures.lock().unwrap().push(e);
                0
            }
        };
    }
}

fn live_config(scratch: &Scratch, live: &Path, extra_provider: bool, alias_target: &str) -> Value {
    let mut providers = vec![
        json!({"name": "v", "library": live, "options": {"stream_lines": 20, "stream_interval_ms": 5}}),
        json!({"name": "mock", "library": mock_plugin()}),
    ];
    if extra_provider {
        providers.push(json!({"name": "extra", "library": mock_plugin()}));
    }
    json!({
        "cache_dir": scratch.path("cache"),
        "providers": providers,
        "models": {"pick": {"targets": [alias_target]}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plugins_and_config_change_under_load_without_a_single_failed_request() {
    let scratch = Scratch::new();
    let live = scratch.write("live/libvariant.so", bytes_of("fixture_variant_a"));
    let config_path = scratch.path("external_providers.json");
    write_config(&config_path, &live_config(&scratch, &live, false, "v/m"));
    let server = Server::start_watching(&config_path).await;
    // How long a new version may take to answer: the watcher needs a fraction of a
    // second; a busy machine gets far more, and a reload that never happens fails.
    let limit = Duration::from_secs(30);
    until_answer(&server, "v/m", "variant A", limit).await;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..4)
        .map(|id| {
            tokio::spawn(client_loop(
                server.url.clone(),
                stop.clone(),
                tally.clone(),
                id,
            ))
        })
        .collect();
    let mut delays = Vec::new();

    // New versions, again and again: renamed into place, and copied over the file in
    // place (truncated for a moment), while the clients keep going.
    for _ in 0..3 {
        replace_atomically(&live, &bytes_of("fixture_variant_b"));
        delays.push(until_answer(&server, "v/m", "variant B", limit).await);
        tokio::time::sleep(Duration::from_millis(150)).await;
        overwrite_in_place(&live, &bytes_of("fixture_variant_a")).await;
        delays.push(until_answer(&server, "v/m", "variant A", limit).await);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // Bad versions: truncated, ABI-incompatible, panicking in construct. None serves.
    let bad: [(&str, Vec<u8>); 3] = [
        (
            "truncated",
            bytes_of("fixture_variant_b")[..40_000].to_vec(),
        ),
        ("layout does not match", bytes_of("fixture_bad_layout")),
        ("plugin panicked", bytes_of("fixture_panic_in_construct")),
    ];
    for (expected, bytes) in bad {
        replace_atomically(&live, &bytes);
        let now = until_status(&server, expected, |s| {
            provider(s, "v")["last_reload_error"]
                .as_str()
                .is_some_and(|e| e.contains(expected))
        })
        .await;
        assert_eq!(
            provider(&now, "v")["state"],
            "ready",
            "the previous version keeps serving"
        );
        let text = answer(&reqwest::Client::new(), &server, "v/m")
            .await
            .unwrap();
        assert!(
            text.contains("variant A"),
            "a bad version never serves: {text}"
        );
    }
    replace_atomically(&live, &bytes_of("fixture_variant_b"));
    delays.push(until_answer(&server, "v/m", "variant B", limit).await);

    // Config edits: add a provider, remove it, change an alias, break the JSON.
    write_config(&config_path, &live_config(&scratch, &live, true, "v/m"));
    delays.push(until_answer(&server, "extra/echo", "=who?", limit).await);
    write_config(
        &config_path,
        &live_config(&scratch, &live, false, "mock/echo"),
    );
    delays.push(until_answer(&server, "pick", "=who?", limit).await);
    let models: Value = reqwest::get(server.at("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !models.to_string().contains("extra/"),
        "a removed provider is no longer routable: {models}"
    );
    replace_atomically(&config_path, b"{ \"providers\": [ oops");
    let now = until_status(&server, "the config error", |s| {
        s["last_reload"]["config_error"]
            .as_str()
            .is_some_and(|e| e.contains("not valid JSON"))
    })
    .await;
    assert_eq!(provider(&now, "v")["state"], "ready");
    assert_eq!(
        answer(&reqwest::Client::new(), &server, "pick")
            .await
            .unwrap(),
        "who?",
        "the previous config stays"
    );
    write_config(&config_path, &live_config(&scratch, &live, false, "v/m"));
    delays.push(until_answer(&server, "pick", "variant B", limit).await);

    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}",
        failures.len(),
        failures.first()
    );
    let (plain, streams) = (
        tally.plain.load(Ordering::Relaxed),
        tally.streams.load(Ordering::Relaxed),
    );
    let versions = tally.stream_versions.lock().unwrap().clone();
    assert!(
        plain > 0 && versions.contains("variant A") && versions.contains("variant B"),
        "the load ran across the reloads: {plain} plain, {streams} streams, from {versions:?}"
    );
    eprintln!("served {plain} plain and {streams} streamed requests; new versions answered after {delays:?}");

    let last = status(&server).await;
    assert!(
        provider(&last, "v")["generation"].as_u64().unwrap() >= 4,
        "{last:#}"
    );
    assert!(last["reload_failures"].as_u64().unwrap() >= 4, "{last:#}");
    assert!(last["retired_libraries"].as_u64().unwrap() >= 1, "{last:#}");
    server.stop().await;
}

#[tokio::test]
async fn a_plugin_dropped_into_a_watched_folder_appears_and_removing_it_retires_it() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path("plugins")).unwrap();
    let config = scratch.config(json!({"plugin_dirs": [scratch.path("plugins")], "providers": [{"name": "mock", "library": mock_plugin()}]}));
    let server = Server::start_watching(&config).await;
    let dropped = scratch.path("plugins/libvariant.so");
    replace_atomically(&dropped, &bytes_of("fixture_variant_a"));
    until_answer(&server, "variant/m", "variant A", Duration::from_secs(30)).await;
    let models: Value = reqwest::get(server.at("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "variant/m"),
        "{models}"
    );
    let now = status(&server).await;
    assert_eq!(provider(&now, "variant")["origin"], "plugin_dir");

    std::fs::remove_file(&dropped).unwrap();
    let now = until_status(&server, "the drop-in gone", |s| {
        s["providers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "variant")
    })
    .await;
    assert_eq!(
        now["retired_libraries"], 1,
        "its library stays mapped, counted as retired: {now:#}"
    );
    server.stop().await;
}

#[tokio::test]
async fn admin_reload_reports_what_changed_and_what_failed() {
    let scratch = Scratch::new();
    let live = scratch.write("live/libvariant.so", bytes_of("fixture_variant_a"));
    let config = scratch.config(json!({"providers": [
        {"name": "v", "library": live},
        {"name": "mock", "library": mock_plugin()}
    ]}));
    let server = Server::start(&config).await;
    let client = reqwest::Client::new();
    let reload = || async {
        client
            .post(server.at("/admin/reload"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };

    let report = reload().await;
    assert_eq!(report["unchanged"], json!(["v", "mock"]));
    assert_eq!(report["reloaded"], json!([]));

    replace_atomically(&live, &bytes_of("fixture_variant_b"));
    let report = reload().await;
    assert_eq!(report["reloaded"], json!(["v"]), "{report}");
    assert_eq!(report["unchanged"], json!(["mock"]));
    assert!(answer(&client, &server, "v/m")
        .await
        .unwrap()
        .contains("variant B"));

    replace_atomically(&live, b"garbage");
    let report = reload().await;
    assert_eq!(report["failed"][0][0], "v", "{report}");
    assert!(
        report["failed"][0][1]
            .as_str()
            .unwrap()
            .contains("not a shared library"),
        "{report}"
    );
    let again = reload().await;
    assert_eq!(
        again["failed"],
        json!([]),
        "the same bad file is reported once, not on every reload: {again}"
    );
    assert!(answer(&client, &server, "v/m")
        .await
        .unwrap()
        .contains("variant B"));
    server.stop().await;
}

#[tokio::test]
async fn a_pinned_sha256_refuses_other_content() {
    let scratch = Scratch::new();
    let file = plugin("fixture_variant_a");
    let sha = provider_host::load::file_sha256(&file).unwrap();
    let wrong = "0".repeat(64);
    let config = scratch.config(json!({"providers": [
        {"name": "good", "library": file, "sha256": sha},
        {"name": "bad", "library": file, "sha256": wrong}
    ]}));
    let host = provider_host::Host::from_config_file(&config).unwrap();
    let registry = host.registry();
    assert!(registry.provider("good").unwrap().ready.is_some());
    let bad = registry.provider("bad").unwrap().state.to_string();
    assert!(
        bad.contains(&format!("the config pins {wrong}")) && bad.contains(&sha),
        "{bad}"
    );
    assert_eq!(
        host.loader().mapped_libraries(),
        1,
        "the refused file was never loaded twice"
    );
}

#[cfg(unix)]
#[test]
fn plugins_that_other_users_can_write_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new();
    let open_file = scratch.write("a/libvariant.so", bytes_of("fixture_variant_a"));
    std::fs::set_permissions(&open_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let open_dir: PathBuf = scratch.path("b");
    scratch.write("b/libvariant.so", bytes_of("fixture_variant_a"));
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = scratch.config(json!({
        "providers": [{"name": "f", "library": open_file}, {"name": "d", "library": open_dir.join("libvariant.so")}],
        "plugin_dirs": [open_dir]
    }));
    let host = provider_host::Host::from_config_file(&config).unwrap();
    let registry = host.registry();
    for name in ["f", "d"] {
        let state = registry.provider(name).unwrap().state.to_string();
        assert!(
            state.contains("writable by every user") && state.contains("chmod o-w"),
            "{name}: {state}"
        );
    }
    assert!(
        registry
            .problems()
            .iter()
            .any(|p| p.contains("writable by every user")),
        "{:?}",
        registry.problems()
    );
}

#[tokio::test]
async fn a_fresh_start_retires_nothing_even_with_providers_waiting_for_keys() {
    let scratch = Scratch::new();
    let config = scratch.config(serde_json::json!({
        "providers": [
            {"name": "mock", "library": e2e::mock_plugin()},
            {"name": "openai", "library": e2e::plugin("openai_provider"), "api_key_env": "E2E_NEVER_SET_KEY"},
            {"name": "anthropic", "library": e2e::plugin("anthropic_provider"), "api_key_env": "E2E_NEVER_SET_KEY"}
        ]
    }));
    let server = Server::start_with_keys(&config, &[]).await;
    let status: serde_json::Value = reqwest::get(server.at("/admin/providers"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let states: Vec<&str> = status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"unavailable"), "{status:#}");
    assert_eq!(
        status["retired_libraries"], 0,
        "loaded for this config, not retired: {status:#}"
    );
    server.stop().await;
}
/// The plugin copies in a cache folder.
fn cached_copies(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_plugin_cache_keeps_only_copies_a_version_uses() {
    let scratch = Scratch::new();
    let live = scratch.write("live/libvariant.so", bytes_of("fixture_variant_a"));
    let cache = scratch.path("cache");
    let config = scratch.config(json!({
        "cache_dir": cache,
        "providers": [{"name": "v", "library": live}]
    }));
    // Left by an earlier run a day ago, and by another host a moment ago.
    std::fs::create_dir_all(&cache).unwrap();
    let stale = cache.join("libgone-0123456789abcdef.so");
    std::fs::write(&stale, b"old").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(86_400))
        .unwrap();
    std::fs::write(cache.join("libfresh-fedcba9876543210.so"), b"new").unwrap();

    let server = Server::start(&config).await;
    let at_start = cached_copies(&cache);
    assert_eq!(at_start.len(), 2, "the stale copy went: {at_start:?}");
    assert!(at_start.contains(&"libfresh-fedcba9876543210.so".to_owned()));
    for (variant, expected) in [
        ("fixture_variant_b", "variant B"),
        ("fixture_variant_a", "variant A"),
        ("fixture_variant_b", "variant B"),
    ] {
        replace_atomically(&live, &bytes_of(variant));
        let report = server.host.reload_async("test").await;
        assert!(report.changes.failed.is_empty(), "{report:?}");
        let client = reqwest::Client::new();
        let answered = answer(&client, &server, "v/m").await.unwrap();
        assert!(answered.contains(expected), "{answered}");
        let copies = cached_copies(&cache);
        assert_eq!(
            copies.len(),
            2,
            "the serving version's copy and the other host's: {copies:?}"
        );
    }
    let status = status(&server).await;
    assert_eq!(status["mapped_libraries"], 2, "{status}");
    assert_eq!(status["retired_libraries"], 1, "{status}");
    server.stop().await;
}
