//! A plugin can never take the host down: files that crash, abort, exhaust memory or
//! hang while they are checked are refused in a child process, with the signal or the
//! limit named, at start, by hot reload and in `provider-host validate`; the host keeps
//! serving its other providers throughout.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use e2e::{mock_plugin, run_host, sandboxed_host, texts, Harm, Scratch, Server};
use provider_host::registry::State;
use provider_sdk::{ChatRequest, Message};
use serde_json::{json, Value};

/// The words a refusal of each harm names.
fn expected_reason(harm: Harm) -> &'static [&'static str] {
    match harm {
        Harm::Segfault => &[
            "build_request",
            "crashed in the validation sandbox",
            "SIGSEGV",
        ],
        Harm::Abort => &[
            "build_request",
            "crashed in the validation sandbox",
            "SIGABRT",
        ],
        Harm::Allocate20Gib => &[
            "build_request",
            "ran out of memory",
            "memory allocation of 21474836480 bytes failed",
            "address-space limit",
        ],
        Harm::EndlessLoop => &["build_request", "did not finish within 3 s", "SIGKILL"],
    }
}

fn assert_names(reason: &str, harm: Harm) {
    for part in expected_reason(harm) {
        assert!(
            reason.contains(part),
            "{harm:?}: expected `{part}` in: {reason}"
        );
    }
    assert_eq!(reason.lines().count(), 1, "one line: {reason}");
}

/// A config whose sandbox gives a hanging plugin 3 seconds.
fn config_with(scratch: &Scratch, providers: Value) -> std::path::PathBuf {
    scratch.config(json!({
        "providers": providers,
        "sandbox": {"binary": e2e::host_binary(), "timeout_secs": 3.0}
    }))
}

async fn echo(host: &provider_host::Host, text: &str) -> Result<String, String> {
    host.chat(ChatRequest::new("mock/echo", vec![Message::user(text)]))
        .await
        .map(|done| done.response.message.content.unwrap_or_default())
        .map_err(|e| e.to_string())
}

#[test]
fn validate_refuses_a_plugin_built_to_abort_on_panic_before_calling_it() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({}));
    let file = e2e::panic_abort_plugin();
    let output = run_host(&[&"--config", &config, &"validate", &file]);
    let (report, stderr) = texts(&output);
    assert!(!output.status.success(), "{report}\n{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    for part in ["manifest", "panic = \"abort\"", "panic = \"unwind\""] {
        assert!(errors[0].contains(part), "`{part}` in {}", errors[0]);
    }
    // Refused at the manifest: the round trip that would panic (and abort) never ran.
    assert!(report.contains("skip  build_request"), "{report}");
}

#[test]
fn a_host_without_sandbox_refuses_an_abort_built_plugin_too_and_serves_the_others() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [
            {"name": "mock", "library": mock_plugin()},
            {"name": "aborting", "library": e2e::panic_abort_plugin()}
        ],
        "sandbox": {"enabled": false}
    }));
    let host = provider_host::Host::from_config_file(&config).unwrap();
    match &host.registry().provider("aborting").unwrap().state {
        State::Failed(reason) => assert!(reason.contains("panic = \"abort\""), "{reason}"),
        other => panic!("must be refused, is {other}"),
    }
    assert_eq!(
        host.registry().provider("mock").unwrap().state,
        State::Ready
    );
}

#[test]
fn validate_refuses_each_hostile_plugin_naming_the_signal_or_the_limit() {
    for harm in Harm::ALL {
        let scratch = Scratch::new();
        let config = config_with(&scratch, json!([]));
        let file = harm.always();
        let output = run_host(&[&"--config", &config, &"validate", &file]);
        let (report, stderr) = texts(&output);
        assert!(!output.status.success(), "{harm:?}: {report}\n{stderr}");
        assert!(report.contains("plugin is NOT valid"), "{harm:?}: {report}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{harm:?}: {stderr}");
        assert!(
            errors[0].contains(&file.display().to_string()),
            "{}",
            errors[0]
        );
        assert_names(errors[0], harm);
    }
}

#[tokio::test]
async fn hostile_plugins_at_start_are_refused_and_every_other_request_succeeds() {
    let scratch = Scratch::new();
    let mut providers = vec![json!({"name": "mock", "library": mock_plugin()})];
    for harm in Harm::ALL {
        providers.push(json!({"name": harm.name(), "library": harm.always()}));
    }
    // This test process is the host: had any of these files been loaded here, the
    // test would have died with it.
    let host = sandboxed_host(&config_with(&scratch, json!(providers)));
    let registry = host.registry();
    for harm in Harm::ALL {
        match &registry.provider(harm.name()).unwrap().state {
            State::Failed(reason) => assert_names(reason, harm),
            other => panic!("{harm:?} must be refused, is {other}"),
        }
    }
    let mut served = 0;
    for i in 0..20 {
        assert_eq!(echo(&host, &format!("hi {i}")).await, Ok(format!("hi {i}")));
        served += 1;
    }
    assert_eq!(served, 20);
    assert_eq!(
        host.loader().mapped_libraries(),
        1,
        "only the mock was mapped into the host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_plugins_arriving_by_hot_reload_under_load_are_refused_while_others_serve() {
    let scratch = Scratch::new();
    let live = scratch.write("live/libhostile.so", std::fs::read(mock_plugin()).unwrap());
    let config = config_with(
        &scratch,
        json!([
            {"name": "mock", "library": mock_plugin()},
            {"name": "live", "library": live}
        ]),
    );
    let server = Server::serve(sandboxed_host(&config), false).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop, ok, failed) =
                (server.at("/v1/chat/completions"), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                // Bounded: the test stops it long before.
                for _ in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let answer = client
                        .post(&url)
                        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "steady"}]}))
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::SeqCst),
                        _ => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        })
        .collect();
    let client = reqwest::Client::new();
    for harm in Harm::ALL {
        let before = ok.load(Ordering::SeqCst);
        replace(&live, &std::fs::read(harm.always()).unwrap());
        let report: Value = client
            .post(server.at("/admin/reload"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(report["failed"][0][0], "live", "{harm:?}: {report}");
        assert_names(report["failed"][0][1].as_str().unwrap(), harm);
        // The previous (good) version of `live` serves on, and so does everyone else.
        let live_answer = server
            .host
            .chat(ChatRequest::new("live/echo", vec![Message::user("still")]))
            .await
            .expect("the previous version serves on");
        assert_eq!(
            live_answer.response.message.content.as_deref(),
            Some("still")
        );
        assert!(
            ok.load(Ordering::SeqCst) > before,
            "{harm:?}: requests kept succeeding"
        );
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(failed, 0, "{ok} succeeded, {failed} failed");
    assert!(ok > 0);
    server.stop().await;
}

#[test]
fn a_file_that_passed_the_sandbox_is_not_checked_again_on_reload() {
    let scratch = Scratch::new();
    let config = config_with(
        &scratch,
        json!([{"name": "mock", "library": mock_plugin()}]),
    );
    let host = sandboxed_host(&config);
    let sandbox = host.loader().sandbox().expect("sandbox on");
    assert_eq!(sandbox.children_run(), 1);
    // Another entry over the same file, then a plain reload: same content, no child.
    std::fs::write(
        &config,
        serde_json::to_vec(&json!({
            "providers": [
                {"name": "mock", "library": mock_plugin()},
                {"name": "again", "library": mock_plugin()}
            ],
            "cache_dir": scratch.path("cache"),
            "sandbox": {"binary": e2e::host_binary(), "timeout_secs": 3.0}
        }))
        .unwrap(),
    )
    .unwrap();
    let report = host.reload("test");
    assert_eq!(report.changes.added, vec!["again".to_owned()], "{report:?}");
    assert_eq!(sandbox.children_run(), 1);
}

/// Replaces `path` the way a deploy script does: write beside it, then rename over it.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
    // Distinct mtimes are not needed: a reload hashes the file.
    std::thread::sleep(Duration::from_millis(1));
}
