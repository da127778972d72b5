//! `"isolation": "process"`: a provider's plugin runs in worker processes, so a plugin
//! that segfaults, aborts, exhausts memory or loops on one marked request costs only
//! that request (which fails as `plugin_fault`, or falls back), its worker is replaced,
//! and the host and every other request carry on. Hot reload swaps worker pools
//! without dropping a request, and no worker outlives its host.
//!
//! This test process is the host: had any plugin call crashed in it, the test would
//! have died with it.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use e2e::{mock_plugin, sandboxed_host, Harm, Scratch, Server};
use serde_json::{json, Value};

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// A config with `evil` (a hostile plugin that harms only on `EVIL`) in worker
/// processes, the mock in-process, and a chain that falls back from one to the other.
fn config(scratch: &Scratch, evil: PathBuf, breaker: Value) -> PathBuf {
    scratch.config(json!({
        "circuit_breaker": breaker,
        "providers": [
            {"name": "mock", "library": mock_plugin()},
            {"name": "evil", "library": evil, "isolation": "process"}
        ],
        "models": {"chain": {"targets": ["evil/m", "mock/echo"]}},
        "workers": {"pool_size": 2},
        "plugin_call_timeout": 1.0,
        "sandbox": {"binary": e2e::host_binary(), "timeout_secs": 5.0}
    }))
}

/// The signal each harm ends its worker with.
fn signal_of(harm: Harm) -> &'static str {
    match harm {
        Harm::Segfault => "SIGSEGV",
        // An allocation past the worker's address-space limit fails, and Rust aborts.
        Harm::Abort | Harm::Allocate20Gib => "SIGABRT",
        // A call past its deadline: the host kills the worker.
        Harm::EndlessLoop => "SIGKILL",
    }
}

async fn provider_status(client: &reqwest::Client, server: &Server, name: &str) -> Value {
    let providers: Value = client
        .get(server.at("/admin/providers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap()
}

/// Steady requests to `model`, counted, until `stop`.
fn steady(
    url: String,
    model: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let (mut ok, mut failures) = (0, Vec::new());
        for i in 0..100_000 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let text = format!("steady {i}");
            let answer = client.post(&url).json(&chat(model, &text)).send().await;
            match answer {
                Ok(r) if r.status().is_success() => {
                    let body: Value = r.json().await.unwrap();
                    let content = body["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    if content.ends_with(&text) {
                        ok += 1;
                    } else {
                        failures.push(format!("wrong answer: {body}"));
                    }
                }
                Ok(r) => failures.push(format!(
                    "{}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => failures.push(e.to_string()),
            }
        }
        (ok, failures)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_marked_request_costs_only_itself_and_its_worker_is_replaced() {
    for harm in Harm::ALL {
        let scratch = Scratch::new();
        // The provider's breaker stays shut here (see the next test for it opening): on a
        // loaded machine every call to `evil` in a window can fail while its workers
        // restart, which a ratio of 1.0 would count, so the ratio rule is out of reach.
        let breaker =
            json!({"consecutive_failures": 1000, "error_ratio": 1.0, "min_calls": 1_000_000});
        let evil = harm.on_evil(&scratch);
        let server = Server::serve(sandboxed_host(&config(&scratch, evil, breaker)), false).await;
        let client = reqwest::Client::new();
        let url = server.at("/v1/chat/completions");
        let before = provider_status(&client, &server, "evil").await;
        assert_eq!(before["isolation"], "process", "{before}");
        assert_eq!(before["workers"]["running"], 2, "{before}");
        assert_eq!(before["workers"]["restarts"], 0, "{before}");

        // Steady load on the in-process mock, and through the chain whose first
        // target is the hostile plugin, while marked requests crash its workers.
        let stop = Arc::new(AtomicBool::new(false));
        let on_mock = steady(url.clone(), "mock/echo", stop.clone());
        let on_chain = steady(url.clone(), "chain", stop.clone());

        let crashes = 3;
        for _ in 0..crashes {
            let marked = client
                .post(&url)
                .json(&chat("evil/m", "EVIL"))
                .send()
                .await
                .unwrap();
            let status = marked.status().as_u16();
            let body: Value = marked.json().await.unwrap();
            assert_eq!(status, 500, "{harm:?}: a plugin fault: {body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("worker process") && message.contains("build_request"),
                "{harm:?}: {body}"
            );
            // Through the chain, the marked request falls back to the mock.
            let fell_back: Value = client
                .post(&url)
                .json(&chat("chain", "EVIL again"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                fell_back["choices"][0]["message"]["content"], "EVIL again",
                "{harm:?}: {fell_back}"
            );
        }

        // The workers were replaced: the plugin answers ordinary requests again.
        let mut answered = 0;
        for i in 0..10 {
            let text = format!("after {i}");
            let body: Value = client
                .post(&url)
                .json(&chat("evil/m", &text))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                body["choices"][0]["message"]["content"],
                format!("hostile: {text}"),
                "{harm:?}: {body}"
            );
            answered += 1;
        }
        assert_eq!(answered, 10);

        stop.store(true, Ordering::SeqCst);
        let (mock_ok, mock_failures) = on_mock.await.unwrap();
        let (chain_ok, chain_failures) = on_chain.await.unwrap();
        assert!(mock_failures.is_empty(), "{harm:?}: {mock_failures:?}");
        assert!(chain_failures.is_empty(), "{harm:?}: {chain_failures:?}");
        assert!(
            mock_ok > 0 && chain_ok > 0,
            "{harm:?}: {mock_ok} and {chain_ok} answered"
        );

        let after = provider_status(&client, &server, "evil").await;
        let workers = &after["workers"];
        assert!(
            workers["restarts"].as_u64().unwrap() >= crashes,
            "{harm:?}: {after}"
        );
        assert!(
            workers["last_crash_signal"]
                .as_str()
                .unwrap_or_default()
                .contains(signal_of(harm)),
            "{harm:?}: {after}"
        );
        assert_eq!(after["state"], "ready", "{harm:?}: {after}");
        let metrics = client
            .get(server.at("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let restarts: u64 = metrics
            .lines()
            .find(|l| l.contains("plugin_worker_restarts") && l.contains("provider=\"evil\""))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{harm:?}: no restarts gauge in {metrics}"));
        assert!(
            restarts >= crashes,
            "{harm:?}: {restarts} restarts in /metrics"
        );
        assert!(
            after["faulted"].is_null(),
            "a crash does not fault the version: {after}"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_crashes_open_the_providers_breaker_and_a_chain_skips_it() {
    let scratch = Scratch::new();
    let breaker = json!({"consecutive_failures": 3});
    let evil = Harm::Segfault.on_evil(&scratch);
    let server = Server::serve(sandboxed_host(&config(&scratch, evil, breaker)), false).await;
    let client = reqwest::Client::new();
    let url = server.at("/v1/chat/completions");
    for _ in 0..3 {
        let marked = client
            .post(&url)
            .json(&chat("evil/m", "EVIL"))
            .send()
            .await
            .unwrap();
        assert_eq!(marked.status().as_u16(), 500);
    }
    let status = provider_status(&client, &server, "evil").await;
    assert_eq!(
        status["circuit"], "open",
        "the provider's own breaker: {status}"
    );
    // Another model of the same plugin is not tried either, and the chain moves on
    // without calling it.
    let other: Value = client
        .post(&url)
        .json(&chat("evil/other", "hello"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(other.to_string().contains("circuit open"), "{other}");
    let crashes = status["workers"]["crashes"].as_u64().unwrap();
    assert_eq!(crashes, 3, "{status}");
    let fell_back: Value = client
        .post(&url)
        .json(&chat("chain", "EVIL"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        fell_back["choices"][0]["message"]["content"], "EVIL",
        "{fell_back}"
    );
    let after = provider_status(&client, &server, "evil").await;
    assert_eq!(
        after["workers"]["crashes"].as_u64().unwrap(),
        crashes,
        "no call reached a worker: {after}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_decode_in_the_worker_that_started_them() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin(), "isolation": "process"}],
        "sandbox": {"binary": e2e::host_binary()}
    }));
    let server = Server::serve(sandboxed_host(&config), false).await;
    let client = reqwest::Client::new();
    let streams = (0..8).map(|_| {
        let (client, url) = (client.clone(), server.at("/v1/chat/completions"));
        tokio::spawn(async move {
            let body = client
                .post(url)
                .json(
                    &json!({"model": "mock/long", "stream": true, "max_tokens": 40,
                              "messages": [{"role": "user", "content": "go"}]}),
                )
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            e2e::sse_data(&body)
        })
    });
    for stream in streams {
        let data = stream.await.unwrap();
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let words: usize = data
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter(|v| v["choices"][0]["delta"]["content"].is_string())
            .count();
        assert_eq!(words, 40, "every chunk of every stream arrived: {data:?}");
    }
    // Usage is counted from the events the workers decoded, as in-process.
    let usage: Value = client
        .get(server.at("/admin/usage"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage["totals"]["calls"], 8, "{usage}");
    assert_eq!(usage["totals"]["errors"], 0, "{usage}");
    assert_eq!(usage["totals"]["completion_tokens"], 8 * 40, "{usage}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frozen_sdk_1_0_plugin_serves_from_its_workers() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "old", "library": e2e::sdk_1_0_plugin(), "isolation": "process"}],
        "sandbox": {"binary": e2e::host_binary()}
    }));
    let server = Server::serve(sandboxed_host(&config), false).await;
    let client = reqwest::Client::new();
    let answer: Value = client
        .post(server.at("/v1/chat/completions"))
        .json(&chat("old/echo", "still here"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"], "still here",
        "{answer}"
    );
    // No native Anthropic entry in 1.0: the worker's plugin answers "no", the host
    // translates.
    let message: Value = client
        .post(server.at("/v1/messages"))
        .json(&json!({"model": "old/echo", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "translated"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(message["content"][0]["text"], "translated", "{message}");
    let body = client
        .post(server.at("/v1/chat/completions"))
        .json(
            &json!({"model": "old/long", "stream": true, "max_tokens": 3,
                      "messages": [{"role": "user", "content": "go"}]}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = e2e::sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_reload_in_process_isolation_drops_nothing_and_retires_the_old_workers() {
    let scratch = Scratch::new();
    let variant = |name: &str| std::fs::read(e2e::plugin(name)).unwrap();
    let live = scratch.write("live/libvariant.so", variant("fixture_variant_a"));
    let config = scratch.config(json!({
        "providers": [{"name": "v", "library": live, "isolation": "process"}],
        "sandbox": {"binary": e2e::host_binary()}
    }));
    let server = Server::serve(sandboxed_host(&config), false).await;
    let old_pids = server
        .host
        .registry()
        .provider("v")
        .unwrap()
        .ready
        .as_ref()
        .unwrap()
        .plugin
        .worker_pids();
    assert_eq!(old_pids.len(), 2);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop, ok, failed) = (
                server.at("/v1/chat/completions"),
                stop.clone(),
                ok.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for _ in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match client.post(&url).json(&chat("v/m", "steady")).send().await {
                        Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::SeqCst),
                        _ => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        })
        .collect();
    let client = reqwest::Client::new();
    for round in 0..4 {
        let next = if round % 2 == 0 {
            "fixture_variant_b"
        } else {
            "fixture_variant_a"
        };
        let before = ok.load(Ordering::SeqCst);
        let tmp = live.with_extension("tmp");
        std::fs::write(&tmp, variant(next)).unwrap();
        std::fs::rename(&tmp, &live).unwrap();
        let report: Value = client
            .post(server.at("/admin/reload"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(report["reloaded"][0], "v", "{report}");
        let expected = if round % 2 == 0 {
            "variant B"
        } else {
            "variant A"
        };
        let answer: Value = client
            .post(server.at("/v1/chat/completions"))
            .json(&chat("v/m", "which"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            answer["choices"][0]["message"]["content"],
            format!("{expected}: which")
        );
        // Bounded wait for the steady clients to make progress on the new version.
        for _ in 0..200 {
            if ok.load(Ordering::SeqCst) > before + 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            ok.load(Ordering::SeqCst) > before,
            "requests kept succeeding"
        );
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(failed, 0, "{ok} succeeded, {failed} failed");
    assert!(ok > 0);
    // The first version's workers drained and exited.
    for pid in old_pids {
        assert!(
            gone(pid).await,
            "worker {pid} of a retired version still runs"
        );
    }
    server.stop().await;
}

#[test]
fn no_worker_outlives_a_host_killed_with_sigkill() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin(), "isolation": "process"}],
        "workers": {"pool_size": 3},
        "listen": "127.0.0.1:0",
        "sandbox": {"binary": e2e::host_binary()}
    }));
    let mut host = std::process::Command::new(e2e::host_binary())
        .args(["--config".as_ref(), config.as_os_str(), "serve".as_ref()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Bounded wait for the three workers to be up.
    let mut workers = Vec::new();
    for _ in 0..500 {
        workers = children_of(host.id());
        if workers.len() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        workers.len(),
        3,
        "the host started its workers: {workers:?}"
    );
    host.kill().unwrap();
    host.wait().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for pid in workers {
        assert!(
            runtime.block_on(gone(pid)),
            "worker {pid} outlived its host"
        );
    }
}

#[test]
fn a_bad_isolation_value_is_named_with_what_to_write() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin(), "isolation": "sandboxed"}]
    }));
    let error = provider_host::config::Config::load(&config)
        .unwrap_err()
        .to_string();
    for part in [
        "providers[0].isolation",
        "sandboxed",
        "in-process",
        "process",
    ] {
        assert!(error.contains(part), "`{part}` in: {error}");
    }
    let config = scratch.config(json!({"isolation": "process", "workers": {"pool_size": 0}}));
    let error = provider_host::config::Config::load(&config)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("workers.pool_size") && error.contains("between 1 and 64"),
        "{error}"
    );
}

/// The process ids of `pid`'s children (every thread's).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Whether process `pid` is gone (or a zombie), waiting at most five seconds.
async fn gone(pid: u32) -> bool {
    for _ in 0..500 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')) =>
            {
                return true
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    false
}
