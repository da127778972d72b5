//! In-process plugin calls cannot freeze the server: they run off the async runtime
//! with a deadline, and a call past it faults that plugin version, which is then no
//! longer routed to (a fallback chain moves on) and is reported in `/admin/providers`
//! and `/metrics`.
//!
//! A file of its own: the stuck plugin keeps spinning on its thread until this test
//! process exits, and should not slow other tests down.

use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc,
};

use e2e::{mock_plugin, sandboxed_host, Harm, Scratch, Server};
use serde_json::{json, Value};

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_stuck_in_build_request_is_faulted_and_the_server_keeps_serving() {
    let scratch = Scratch::new();
    // Loops forever only on a prompt with EVIL, so it passes validation and serves.
    let evil = Harm::EndlessLoop.on_evil(&scratch);
    let config = scratch.config(json!({
        "providers": [
            {"name": "mock", "library": mock_plugin()},
            {"name": "evil", "library": evil}
        ],
        "models": {"chain": {"targets": ["evil/m", "mock/echo"]}},
        "plugin_call_timeout": 1.0,
        "sandbox": {"binary": e2e::host_binary(), "timeout_secs": 5.0}
    }));
    let server = Server::serve(sandboxed_host(&config), false).await;
    let client = reqwest::Client::new();
    let url = server.at("/v1/chat/completions");
    let answer = client
        .post(&url)
        .json(&chat("evil/m", "hello"))
        .send()
        .await
        .unwrap();
    assert!(
        answer.status().is_success(),
        "the plugin serves before EVIL"
    );

    // Steady requests to the mock while the plugin is stuck.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let steady = {
        let (url, stop, ok, failed) = (url.clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for _ in 0..100_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match client
                    .post(&url)
                    .json(&chat("mock/echo", "steady"))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
            }
        })
    };
    let stuck = client
        .post(&url)
        .json(&chat("evil/m", "EVIL"))
        .send()
        .await
        .unwrap();
    assert_eq!(stuck.status().as_u16(), 500, "a plugin fault");
    let body: Value = stuck.json().await.unwrap();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("build_request did not return within 1.0 s"),
        "{body}"
    );

    // The faulted version is no longer routed to: the chain falls back to the mock,
    // and a direct request fails at once instead of hanging another thread.
    let fell_back: Value = client
        .post(&url)
        .json(&chat("chain", "after"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        fell_back["choices"][0]["message"]["content"], "after",
        "{fell_back}"
    );
    let direct = client
        .post(&url)
        .json(&chat("evil/m", "hello"))
        .send()
        .await
        .unwrap();
    assert!(!direct.status().is_success());
    let direct: Value = direct.json().await.unwrap();
    assert!(direct.to_string().contains("faulted"), "{direct}");

    let providers: Value = client
        .get(server.at("/admin/providers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let evil_status = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "evil")
        .unwrap();
    assert!(
        evil_status["faulted"]
            .as_str()
            .unwrap_or_default()
            .contains("build_request"),
        "{evil_status}"
    );
    let metrics = client
        .get(server.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l.contains("plugin_faulted")
            && l.contains("provider=\"evil\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );

    stop.store(true, Ordering::SeqCst);
    steady.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(failed, 0, "{ok} succeeded, {failed} failed");
    assert!(ok > 0, "the mock kept answering while the plugin was stuck");
    server.stop().await;
}
