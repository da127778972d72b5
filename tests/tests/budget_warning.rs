//! The log's warning when a budget passes 80%, read from the host's own log lines.
//!
//! One test in its own binary: it installs the process-wide log subscriber, which no
//! other test may share (a per-thread subscriber misses events whose call site another
//! thread registered first).

use std::sync::{Arc, Mutex};

use e2e::{echo_as, mock_plugin, HandClock, Scratch, BEFORE_TWO_PM};
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

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn warnings(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains("budget 80% spent"))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn the_log_warns_once_when_a_budget_passes_80_percent_and_again_in_the_next_period() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish(),
    )
    .expect("the only subscriber in this test binary");

    let (scratch, clock) = (Scratch::new(), HandClock::default());
    let config = scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        // Each echo of "a b c" costs $9e-6: $27e-6 is 67% of the limit, $36e-6 is 90%.
        "budgets": [{"client": "team-a", "limit_usd": 0.00004, "period": "hour"}]
    }));
    let host = clock
        .host_builder(&config)
        .api_keys(e2e::key_lookup(&[]))
        .build()
        .unwrap();
    clock.set(BEFORE_TWO_PM - 60.0);
    let mut seen = Vec::new();
    for _ in 0..5 {
        echo_as(&host, "team-a", "a b c").await.unwrap();
        seen.push(captured.warnings().len());
    }
    assert_eq!(
        seen,
        [0, 0, 0, 1, 1],
        "one warning, at the call that crossed 80%:\n{}",
        captured.text()
    );
    let warning = &captured.warnings()[0];
    assert!(
        warning.contains("WARN")
            && warning.contains("scope=client team-a")
            && warning.contains("period=Hour"),
        "{warning}"
    );

    // The next hour: the budget starts over, and so does its warning.
    clock.set(BEFORE_TWO_PM + 1.0);
    for _ in 0..4 {
        echo_as(&host, "team-a", "a b c").await.unwrap();
    }
    assert_eq!(captured.warnings().len(), 2, "{}", captured.text());
}
