//! The `chat` and `providers` commands, and how the binary reports a bad config.

use e2e::{mock_plugin, run_host, texts, Scratch};

#[test]
fn chat_prints_the_mock_answer_streamed_and_whole() {
    let scratch = Scratch::new();
    let config = scratch.mock_config();
    for extra in [None, Some("--no-stream")] {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"--config", &config, &"chat", &"--model", &"mock/echo"];
        if let Some(flag) = &extra {
            args.push(flag);
        }
        args.push(&"hello from the cli");
        let output = run_host(&args);
        let (stdout, stderr) = texts(&output);
        assert!(output.status.success(), "{stderr}");
        assert_eq!(stdout, "hello from the cli\n");
        assert!(
            stderr.contains("[mock/echo finish=stop usage=4+4 tokens]"),
            "{stderr}"
        );
    }
}

#[test]
fn chat_reports_a_provider_error_in_one_line_and_fails() {
    let scratch = Scratch::new();
    let config = scratch.mock_config();
    let output = run_host(&[
        &"--config",
        &config,
        &"chat",
        &"--model",
        &"mock/fail",
        &"authentication",
    ]);
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("error: mock/fail: authentication: mock failure on purpose: authentication (status 401)"), "{stderr}");
}

#[test]
fn providers_lists_each_entry_with_its_state() {
    let scratch = Scratch::new();
    let config = scratch.config(serde_json::json!({
        "providers": [
            {"name": "mock", "library": mock_plugin()},
            {"name": "off", "library": "nowhere.so", "enabled": false},
            {"name": "broken", "library": "nowhere.so"}
        ],
        "models": {"fast": {"targets": ["mock/echo"]}}
    }));
    let output = run_host(&[&"--config", &config, &"providers"]);
    let (stdout, stderr) = texts(&output);
    assert!(
        !output.status.success(),
        "a configured provider failed: the exit status says so"
    );
    assert!(stderr.contains("1 provider(s) failed to load"), "{stderr}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in:\n{stdout}"))
            .to_owned()
    };
    assert!(line("mock ").contains("ready"), "{stdout}");
    let plugin = format!("mock 1.0.0 (sdk {})", provider_sdk::SDK_VERSION);
    assert!(line("mock ").contains(&plugin), "{stdout}");
    assert!(line("off ").contains("disabled"), "{stdout}");
    assert!(line("broken ").contains("FAILED"), "{stdout}");
    assert!(stdout.contains("nowhere.so: no such file"), "{stdout}");
    assert!(stdout.contains("alias fast -> mock/echo"), "{stdout}");
}

#[test]
fn a_malformed_config_is_reported_with_file_and_position() {
    let scratch = Scratch::new();
    let config = scratch.write(
        "external_providers.json",
        "{\n  \"providers\": [\n    {\"name\": \"mock\",}\n  ]\n}\n",
    );
    let output = run_host(&[&"--config", &config, &"providers"]);
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    let expected = format!(
        "error: {}: at line 3 column 21: not valid JSON: trailing comma",
        config.display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
}

#[test]
fn a_schema_invalid_config_is_reported_with_file_and_json_path() {
    let scratch = Scratch::new();
    let config = scratch.write(
        "external_providers.json",
        r#"{"providers": [{"name": "mock", "library": "x.so", "api_key": "sk-123"}]}"#,
    );
    let output = run_host(&[
        &"--config",
        &config,
        &"chat",
        &"--model",
        &"mock/echo",
        &"hi",
    ]);
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    let expected = format!(
        "error: {}: at providers[0].api_key: unknown field `api_key`",
        config.display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert!(
        !stderr.contains("sk-123"),
        "config values are not echoed: {stderr}"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let scratch = Scratch::new();
    let missing = scratch.path("absent.json");
    let output = run_host(&[&"--config", &missing, &"providers"]);
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("$PROVIDER_HOST_CONFIG") && stderr.contains("--config <file>"),
        "where it looked and how to start: {stderr}"
    );
}

#[test]
fn serve_require_all_refuses_to_start_when_a_provider_failed() {
    let scratch = Scratch::new();
    let config = scratch.config(serde_json::json!({
        "providers": [
            {"name": "mock", "library": mock_plugin()},
            {"name": "broken", "library": "nowhere.so"}
        ]
    }));
    let output = run_host(&[
        &"--config",
        &config,
        &"serve",
        &"--listen",
        &"127.0.0.1:0",
        &"--require-all",
    ]);
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--require-all")
            && stderr.contains("broken: ")
            && stderr.contains("no such file"),
        "{stderr}"
    );
}

#[test]
fn serve_warns_of_a_failed_provider_in_plain_text_when_logging_to_a_pipe() {
    let scratch = Scratch::new();
    let config = scratch.config(serde_json::json!({
        "providers": [
            {"name": "mock", "library": mock_plugin()},
            {"name": "broken", "library": "nowhere.so"}
        ]
    }));
    let mut child = std::process::Command::new(e2e::host_binary())
        .args(["--config".as_ref(), config.as_os_str()])
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let lines = log_lines(child.stderr.take().unwrap());
    let mut log = String::new();
    let warning = until_logged(&lines, &mut log, "failed to load");
    until_logged(&lines, &mut log, "serving");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(
        warning.contains("WARN") && warning.contains("broken"),
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes in a pipe: {log:?}"
    );
}

#[test]
fn serve_answers_over_http_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};
    let scratch = Scratch::new();
    let config = scratch.mock_config();
    let mut child = std::process::Command::new(e2e::host_binary())
        .args([
            "--config".as_ref(),
            config.as_os_str(),
            "serve".as_ref(),
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let address = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve exited early:\n{log}"
        );
        log.push_str(&line);
        if let Some(at) = line.find("address=") {
            break line[at + "address=".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
        }
    };
    assert!(
        log.contains("provider=mock") && log.contains("state=ready"),
        "one line per provider:\n{log}"
    );
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let body = r#"{"model":"mock/echo","messages":[{"role":"user","content":"over the wire"}]}"#;
    write!(stream, "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(r#""content":"over the wire""#),
        "{response}"
    );
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("shutting down"), "{rest}");
}

#[test]
fn providers_check_makes_a_live_call_to_each_ready_provider() {
    let scratch = Scratch::new();
    let config = scratch.mock_config();
    let output = run_host(&[&"--config", &config, &"providers", &"--check"]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("check mock"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains(" ok ") && line.contains("one-token chat to echo"),
        "{line}"
    );
}

/// Reads `serve`'s log lines as they come, on a thread of their own.
fn log_lines(stderr: std::process::ChildStderr) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the log line that contains `needle` (a minute at most), keeping every line
/// in `log`.
fn until_logged(
    lines: &std::sync::mpsc::Receiver<String>,
    log: &mut String,
    needle: &str,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => panic!("serve never logged `{needle}`:\n{log}"),
        }
    }
}

#[cfg(unix)]
#[test]
fn sighup_reloads_a_config_the_file_watcher_cannot_see_change() {
    use std::os::unix::fs::symlink;
    let scratch = Scratch::new();
    // The config is reached through a symlink to its folder, swapped atomically the way
    // Kubernetes updates a mounted ConfigMap: the watched folder itself never changes,
    // so only the signal can bring the new config in.
    let config_in = |folder: &str, alias: &str| {
        scratch.write(
            &format!("{folder}/external_providers.json"),
            serde_json::to_vec(&serde_json::json!({
                "cache_dir": scratch.path("cache"),
                "providers": [{"name": "mock", "library": mock_plugin()}],
                "models": {alias: {"targets": ["mock/echo"]}}
            }))
            .unwrap(),
        )
    };
    config_in("v1", "before");
    config_in("v2", "after");
    symlink(scratch.path("v1"), scratch.path("current")).unwrap();
    let config = scratch.path("current/external_providers.json");
    let mut child = std::process::Command::new(e2e::host_binary())
        .args(["--config".as_ref(), config.as_os_str()])
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let lines = log_lines(child.stderr.take().unwrap());
    let mut log = String::new();
    let listening = until_logged(&lines, &mut log, "address=");
    let address = listening[listening.find("address=").unwrap() + "address=".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let models = || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    assert!(models().contains("\"before\""));

    symlink(scratch.path("v2"), scratch.path("current.new")).unwrap();
    std::fs::rename(scratch.path("current.new"), scratch.path("current")).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    until_logged(&lines, &mut log, "reloaded on SIGHUP");
    let after = models();
    assert!(
        after.contains("\"after\"") && !after.contains("\"before\""),
        "{after}\n{log}"
    );

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success(), "{log}");
}

#[test]
fn version_names_the_host_and_the_sdk_its_plugins_are_built_against() {
    let output = run_host(&[&"--version"]);
    let (stdout, _) = texts(&output);
    assert!(output.status.success());
    assert!(
        stdout.contains(&format!("(provider-sdk {})", provider_sdk::SDK_VERSION)),
        "{stdout}"
    );
}

#[test]
fn serve_listens_on_a_host_name() {
    let scratch = Scratch::new();
    let config = scratch.config(serde_json::json!({
        "providers": [{"name": "mock", "library": mock_plugin()}]
    }));
    let mut child = std::process::Command::new(e2e::host_binary())
        .args(["--config".as_ref(), config.as_os_str()])
        .args(["serve", "--listen", "localhost:0"])
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let lines = log_lines(child.stderr.take().unwrap());
    let mut log = String::new();
    let serving = until_logged(&lines, &mut log, "serving");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(serving.contains("127.0.0.1:"), "{log}");
}
#[test]
fn kill_9_under_load_loses_only_the_requests_answered_in_the_last_moment() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let scratch = Scratch::new();
    let config = scratch.mock_config();
    let mut child = std::process::Command::new(e2e::host_binary())
        .args([
            "--config".as_ref(),
            config.as_os_str(),
            "serve".as_ref(),
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let address = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve exited early"
        );
        if let Some(at) = line.find("address=") {
            break line[at + "address=".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
        }
    };
    // When each answer arrived, from four clients at once.
    let answered: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (answered, address) = (answered.clone(), address.clone());
            std::thread::spawn(move || {
                let body = r#"{"model":"mock/echo","messages":[{"role":"user","content":"load"}]}"#;
                for _ in 0..10_000 {
                    let Ok(mut stream) = std::net::TcpStream::connect(&address) else {
                        return;
                    };
                    let sent = write!(stream, "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                    let mut response = String::new();
                    if sent.is_err() || stream.read_to_string(&mut response).is_err() {
                        return;
                    }
                    if !response.starts_with("HTTP/1.1 200") {
                        return;
                    }
                    answered.lock().unwrap().push(Instant::now());
                }
            })
        })
        .collect();
    // Under load for longer than the loss window (two seconds of answers; ten at
    // most for a machine that answers nothing), then killed.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let first = answered.lock().unwrap().first().copied();
        if first.is_some_and(|first| first.elapsed() >= Duration::from_secs(2)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_at = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    for client in clients {
        client.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    let ledger = rusqlite::Connection::open(scratch.path(".provider-host/usage.sqlite3")).unwrap();
    let written: usize = ledger
        .query_row("SELECT count(*) FROM usage_records", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as usize;
    let lost = answered.len().saturating_sub(written);
    // The documented window: records are committed within about 0.1 s of the answer;
    // a second of slack for a busy machine.
    let window = Duration::from_secs(1);
    let recent = answered
        .iter()
        .filter(|at| killed_at.saturating_duration_since(**at) < window)
        .count();
    assert!(
        lost <= recent,
        "{lost} of {} answered requests lost, more than the {recent} answered in the last {window:?}",
        answered.len()
    );
    assert!(
        written > 0 && answered.len() > recent,
        "a load longer than the window"
    );
}

#[test]
fn a_reload_the_watcher_made_is_logged() {
    let scratch = Scratch::new();
    let write = |alias: &str| {
        scratch.config(serde_json::json!({
            "providers": [{"name": "mock", "library": mock_plugin()}],
            "models": {alias: {"targets": ["mock/echo"]}}
        }))
    };
    let config = write("before");
    let mut child = std::process::Command::new(e2e::host_binary())
        .args(["--config".as_ref(), config.as_os_str()])
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start serve");
    let lines = log_lines(child.stderr.take().unwrap());
    let mut log = String::new();
    until_logged(&lines, &mut log, "serving");
    write("after");
    let line = until_logged(&lines, &mut log, "reloaded after a file change");
    assert!(
        line.contains("INFO") && line.contains("generation=2"),
        "{line}"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success(), "{log}");
}
