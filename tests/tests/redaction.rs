//! An upstream that quotes the host's API key back, in any encoding the host sends or
//! receives it in: neither the client's error nor the host's own log shows it.
//!
//! One test in its own binary: it installs the process-wide log subscriber, which no
//! other test may share.

use std::sync::{Arc, Mutex};

use e2e::{
    client::{send_chat, start_host_in_front_of},
    fake::{FakeUpstream, Reply},
    plugin, Scratch,
};
use serde_json::json;

/// Everything the host logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A key whose JSON-escaped and percent-encoded forms differ from it.
const ODD_KEY: &str = r#"sk-e2e/redact+me="key"\0123456789"#;

/// The forms of [`ODD_KEY`] an upstream may quote: literal, JSON-escaped (with and
/// without `\/`), percent-encoded in upper and lower case.
fn forms() -> Vec<String> {
    let json = serde_json::to_string(ODD_KEY).unwrap();
    let json = json[1..json.len() - 1].to_owned();
    let percent = "sk-e2e%2Fredact%2Bme%3D%22key%22%5C0123456789".to_owned();
    vec![
        ODD_KEY.to_owned(),
        json.clone(),
        json.replace('/', "\\/"),
        percent.to_lowercase(),
        percent,
    ]
}

#[tokio::test]
async fn a_quoted_key_reaches_neither_the_clients_error_nor_the_info_log_in_any_encoding() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish(),
    )
    .expect("the only subscriber in this test binary");

    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let server = start_host_in_front_of(
        &scratch,
        &fake,
        ("E2E_REDACTION_KEY", ODD_KEY),
        json!({"name": "openai", "library": plugin("openai_provider"), "base_url": "/v1"}),
        json!({"retry": {"max_retries": 0}, "circuit_breaker": {"enabled": false}}),
    )
    .await;
    for form in forms() {
        // The error message is JSON: the literal form must be escaped to sit in it,
        // which is the JSON form the redactor looks for too.
        let quoted =
            serde_json::to_string(&format!("Incorrect API key provided: {form}.")).unwrap();
        let body = format!(
            r#"{{"error": {{"message": {quoted}, "type": "invalid_request_error", "code": "invalid_api_key"}}}}"#
        );
        for stream in [false, true] {
            fake.script([Reply::status_json(401, &body)]);
            let request = json!({"model": "openai/gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
            let text = send_chat(&server, &request).await.text().await.unwrap();
            for leaked in forms() {
                assert!(
                    !text.contains(&leaked),
                    "{leaked} in the client's error: {text}"
                );
            }
            assert!(text.contains("Incorrect API key provided: ***"), "{text}");
        }
    }
    server.stop().await;
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        log.contains("attempt failed"),
        "the failures are logged: {log}"
    );
    for leaked in forms() {
        assert!(!log.contains(&leaked), "{leaked} in the log:\n{log}");
    }
}
