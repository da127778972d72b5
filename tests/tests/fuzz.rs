//! Validation looks harder: a decoder must report a stream cut short, and a bounded fuzz
//! pass gives every plugin truncated, mutated and random upstream bytes. A plugin that
//! crashes, panics or hangs on them is refused, by `provider-host validate`, at start
//! and by hot reload, with the input that broke it saved where the refusal says, and
//! `validate --replay` reproduces the failure from that file alone.

use std::path::{Path, PathBuf};

use e2e::{mock_plugin, plugin, run_host, sandboxed_host, texts, Scratch, Server};
use provider_host::{
    fuzz::{Call, Input},
    registry::State,
};
use provider_sdk::{ChatRequest, Message};
use serde_json::{json, Value};

/// The hostile-fuzz plugin in `mode` (see tests/plugins/hostile-fuzz): the build with
/// its mode bytes rewritten, in a copy of its own.
fn hostile_fuzz(scratch: &Scratch, mode: &str) -> PathBuf {
    let bytes = std::fs::read(plugin("fixture_hostile_fuzz")).expect("read hostile-fuzz");
    let from = b"HOSTILE-FUZZ-MODE:segv_";
    let at: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| w == from)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "the mode appears once in the plugin");
    assert_eq!(mode.len(), 5, "modes are five bytes");
    let mut patched = bytes;
    patched[at[0] + 18..at[0] + 23].copy_from_slice(mode.as_bytes());
    scratch.write(&format!("{mode}/libhostile_fuzz.so"), patched)
}

/// A config with a sandbox that gives a hanging plugin 3 seconds (and `sandbox` merged
/// over that).
fn config_with(scratch: &Scratch, providers: Value, sandbox: Value) -> PathBuf {
    let mut settings = json!({"binary": e2e::host_binary(), "timeout_secs": 3.0});
    for (key, value) in sandbox.as_object().into_iter().flatten() {
        settings[key] = value.clone();
    }
    scratch.config(json!({"providers": providers, "sandbox": settings}))
}

/// Runs `validate` (plus `extra` arguments); returns (passed, report, the one error line).
fn validate(config: &Path, file: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"--config", &config, &"validate", &file];
    for arg in extra {
        args.push(arg);
    }
    let output = run_host(&args);
    let (stdout, stderr) = texts(&output);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert!(errors.len() <= 1, "at most one error line:\n{stderr}");
    let error = errors.first().map(|l| l.to_string()).unwrap_or_default();
    (output.status.success(), stdout, error)
}

/// The saved input a refusal names: `... the input is saved in <path> (replay it: ...)`.
fn saved_input(reason: &str) -> PathBuf {
    let rest = reason
        .split("the input is saved in ")
        .nth(1)
        .unwrap_or_else(|| panic!("the refusal names a saved input: {reason}"));
    PathBuf::from(rest.split(" (replay it").next().unwrap())
}

fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "expected `{part}` in: {text}");
    }
}

#[test]
fn validate_refuses_a_plugin_that_segfaults_on_a_truncated_body_and_saves_the_input() {
    let scratch = Scratch::new();
    let config = config_with(&scratch, json!([]), json!({}));
    let file = hostile_fuzz(&scratch, "segv_");
    let (passed, report, error) = validate(&config, &file, &[]);
    assert!(!passed, "{report}");
    // It behaved on every fixture: only the fuzz pass caught it.
    assert_eq!(report.matches("  PASS  ").count(), 10, "{report}");
    assert_contains(
        &error,
        &[
            &file.display().to_string(),
            "fuzz: crashed in the validation sandbox with SIGSEGV",
            "on fuzzed upstream bytes given to parse_response",
            "provider-host validate",
            "--replay",
        ],
    );
    let saved = saved_input(&error);
    assert!(
        saved.starts_with(scratch.path("cache").join("fuzz-inputs")),
        "saved under the cache: {}",
        saved.display()
    );
    let input = Input::decode_file(&saved).expect("a saved fuzz input");
    assert_eq!(input.call, Call::ParseResponse);
    assert!(
        serde_json::from_slice::<Value>(&input.body).is_err(),
        "the body that broke it is not JSON: {:?}",
        String::from_utf8_lossy(&input.body)
    );
    // The saved file alone reproduces the crash, and only for the plugin at fault.
    let saved_arg = saved.to_str().unwrap();
    let (passed, report, replayed) = validate(&config, &file, &["--replay", saved_arg]);
    assert!(!passed, "{report}");
    assert_contains(
        &replayed,
        &[
            "fuzz: crashed in the validation sandbox with SIGSEGV",
            "on the replayed input",
        ],
    );
    let (passed, report, _) = validate(&config, &mock_plugin(), &["--replay", saved_arg]);
    assert!(
        passed,
        "the mock answers that input with an error: {report}"
    );
    assert!(report.contains("the replayed input passed"), "{report}");
}

#[test]
fn validate_refuses_a_decoder_that_panics_on_a_line_cut_mid_json() {
    let scratch = Scratch::new();
    let config = config_with(&scratch, json!([]), json!({}));
    let file = hostile_fuzz(&scratch, "panic");
    let (passed, report, error) = validate(&config, &file, &[]);
    assert!(!passed, "{report}");
    assert_contains(
        &error,
        &[
            "fuzz: panicked on fuzzed upstream bytes given to stream",
            "seed 0x",
            "plugin panicked: a stream line is not JSON",
        ],
    );
    let input = Input::decode_file(&saved_input(&error)).expect("a saved fuzz input");
    assert_eq!(input.call, Call::Stream);
    assert_eq!(input.pieces.iter().sum::<usize>(), input.body.len());
    let broken_line = input
        .body
        .split(|&b| b == b'\n')
        .rev()
        .skip(1) // what follows the last newline was never a whole line
        .any(|line| serde_json::from_slice::<Value>(line).is_err());
    assert!(broken_line, "a whole line of it is not JSON: {input:?}");
    let saved = saved_input(&error);
    let (passed, _, replayed) = validate(&config, &file, &["--replay", saved.to_str().unwrap()]);
    assert!(!passed);
    assert_contains(&replayed, &["panicked", "a stream line is not JSON"]);
}

#[test]
fn validate_refuses_a_classify_error_that_hangs_on_fuzzed_bytes() {
    let scratch = Scratch::new();
    let config = config_with(
        &scratch,
        json!([]),
        json!({"timeout_secs": 2.0, "fuzz_secs": 0.5}),
    );
    let file = hostile_fuzz(&scratch, "loop_");
    let (passed, report, error) = validate(&config, &file, &[]);
    assert!(!passed, "{report}");
    assert_contains(
        &error,
        &[
            "fuzz: did not finish within 2.5 s in the validation sandbox",
            "SIGKILL",
            "it hangs on fuzzed upstream bytes given to classify_error",
        ],
    );
    let input = Input::decode_file(&saved_input(&error)).expect("a saved fuzz input");
    assert_eq!(input.call, Call::ClassifyError);
    assert!(input.status >= 400, "{input:?}");
}

#[test]
fn validate_refuses_a_decoder_that_treats_a_cut_stream_as_complete() {
    let scratch = Scratch::new();
    let config = config_with(&scratch, json!([]), json!({}));
    let file = hostile_fuzz(&scratch, "lenit");
    let (passed, report, error) = validate(&config, &file, &[]);
    assert!(!passed, "{report}");
    assert_contains(
        &error,
        &[
            "cut_stream: the sample stream: treats a stream cut short as complete",
            "it ended without an error but lacks",
            "`finish` must fail",
        ],
    );
    assert!(report.contains("  skip  fuzz"), "{report}");
}

#[test]
fn a_fixed_seed_makes_the_same_pass_and_saves_the_same_input() {
    let scratch = Scratch::new();
    let config = config_with(&scratch, json!([]), json!({"fuzz_seed": 12345}));
    let file = hostile_fuzz(&scratch, "panic");
    let first = saved_input(&validate(&config, &file, &[]).2);
    let bytes = std::fs::read(&first).unwrap();
    std::fs::remove_file(&first).unwrap();
    let again = saved_input(&validate(&config, &file, &[]).2);
    assert_eq!(first, again, "named after the seed");
    assert_eq!(std::fs::read(&again).unwrap(), bytes);
    assert!(first.to_str().unwrap().ends_with("-0000000000003039.input"));
}

#[test]
fn a_fuzz_pass_longer_than_a_minute_is_a_config_error() {
    let scratch = Scratch::new();
    let config = config_with(&scratch, json!([]), json!({"fuzz_secs": 600}));
    let (passed, _, error) = validate(&config, &mock_plugin(), &[]);
    assert!(!passed);
    assert_contains(
        &error,
        &["sandbox.fuzz_secs", "is 600", "from 0 (off) to 60"],
    );
}

#[test]
fn serve_logs_the_refusal_at_start_naming_the_saved_input() {
    let scratch = Scratch::new();
    let file = hostile_fuzz(&scratch, "segv_");
    let config = config_with(
        &scratch,
        json!([
            {"name": "mock", "library": mock_plugin()},
            {"name": "fuzzy", "library": file}
        ]),
        json!({}),
    );
    let mut child = std::process::Command::new(e2e::host_binary())
        .args(["--config".as_ref(), config.as_os_str()])
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let warning = loop {
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) if line.contains("failed to load") && line.contains("fuzzy") => break line,
            Ok(line) => log.push_str(&(line + "\n")),
            Err(_) => panic!("serve never logged the refusal:\n{log}"),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_contains(&warning, &["WARN", "SIGSEGV", "on fuzzed upstream bytes"]);
    let warning = warning.as_str();
    let saved = saved_input(warning);
    assert!(saved.is_file(), "{}", saved.display());
}

#[tokio::test]
async fn a_fuzz_crashing_plugin_is_refused_at_start_and_every_other_request_succeeds() {
    let scratch = Scratch::new();
    let file = hostile_fuzz(&scratch, "segv_");
    let config = config_with(
        &scratch,
        json!([
            {"name": "mock", "library": mock_plugin()},
            {"name": "fuzzy", "library": file}
        ]),
        json!({}),
    );
    // This test process is the host: had the file been loaded here, the fuzzed bytes
    // would never have reached it, and a request's would have killed the test.
    let server = Server::serve(sandboxed_host(&config), false).await;
    let registry = server.host.registry();
    let State::Failed(reason) = &registry.provider("fuzzy").unwrap().state else {
        panic!("fuzzy must be refused");
    };
    assert!(saved_input(reason).is_file(), "{reason}");
    let providers: Value = reqwest::get(server.at("/admin/providers"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fuzzy = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "fuzzy")
        .expect("listed");
    assert_eq!(fuzzy["state"], "failed");
    assert_eq!(fuzzy["reason"].as_str(), Some(reason.as_str()));
    let mut served = 0;
    for i in 0..10 {
        let answer = server
            .host
            .chat(ChatRequest::new(
                "mock/echo",
                vec![Message::user(format!("hi {i}"))],
            ))
            .await
            .expect("the mock serves");
        assert_eq!(answer.response.message.content, Some(format!("hi {i}")));
        served += 1;
    }
    assert_eq!(served, 10);
    assert_eq!(
        server.host.loader().mapped_libraries(),
        1,
        "only the mock was mapped"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_fuzz_crashing_version_arriving_by_hot_reload_is_refused_and_the_previous_serves() {
    let scratch = Scratch::new();
    let live = scratch.write("live/liblive.so", std::fs::read(mock_plugin()).unwrap());
    let config = config_with(
        &scratch,
        json!([{"name": "live", "library": live}]),
        json!({}),
    );
    let server = Server::serve(sandboxed_host(&config), false).await;
    let tmp = live.with_extension("tmp");
    std::fs::copy(hostile_fuzz(&scratch, "panic"), &tmp).unwrap();
    std::fs::rename(&tmp, &live).unwrap();
    let client = reqwest::Client::new();
    let report: Value = client
        .post(server.at("/admin/reload"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["failed"][0][0], "live", "{report}");
    let reason = report["failed"][0][1].as_str().unwrap();
    assert_contains(
        reason,
        &["panicked on fuzzed upstream bytes given to stream"],
    );
    let saved = saved_input(reason);
    assert!(saved.is_file(), "{reason}");
    let providers: Value = client
        .get(server.at("/admin/providers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        providers["providers"][0]["last_reload_error"].as_str(),
        Some(reason)
    );
    let answer = server
        .host
        .chat(ChatRequest::new("live/echo", vec![Message::user("still")]))
        .await
        .expect("the previous version serves on");
    assert_eq!(answer.response.message.content.as_deref(), Some("still"));
    server.stop().await;
}
