//! One pipeline for every caller: an embedder calling `Host` directly gets the same
//! usage records, cost, client budgets and stream accounting as an HTTP client.

use std::time::Instant;

use e2e::{mock_plugin, Scratch};
use futures_util::StreamExt;
use provider_host::{
    pipeline::{Call, Caller, DispatchError},
    Host,
};
use provider_sdk::{ChatRequest, ErrorKind, Message};

/// The mock counts words as tokens; these prices make one echo of "a b c" cost
/// (3 * 1.0 + 3 * 2.0) / 1e6 dollars.
fn host(scratch: &Scratch) -> std::sync::Arc<Host> {
    let config = scratch.config(serde_json::json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "pricing": {"mock/echo": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
                    "mock/long": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        "budgets": [{"client": "team-a", "limit_usd": 0.000009, "period": "day"}],
        "usage": {"enabled": true},
        "retry": {"max_retries": 0}
    }));
    Host::builder().config_file(config).build().unwrap()
}

fn call_as(client: &str, model: &str, text: &str) -> Call {
    Call {
        request: ChatRequest::new(model, vec![Message::user(text)]),
        caller: Caller {
            client: client.to_owned(),
            request_id: format!("req-{client}"),
            received: Instant::now(),
            cache: Default::default(),
        },
        native: None,
    }
}

#[tokio::test]
async fn host_chat_is_counted_in_usage_with_its_cost() {
    let scratch = Scratch::new();
    let host = host(&scratch);
    host.chat(ChatRequest::new("mock/echo", vec![Message::user("a b c")]))
        .await
        .unwrap();
    let summary = host.usage().summary();
    assert_eq!(summary.totals.calls, 1);
    assert_eq!(
        (
            summary.totals.prompt_tokens,
            summary.totals.completion_tokens
        ),
        (3, 3)
    );
    assert!((summary.totals.cost_usd - 9e-6).abs() < 1e-12);
    assert_eq!(summary.clients["anonymous"].calls, 1);
    assert_eq!(summary.models["mock/echo"].calls, 1);
}

#[tokio::test]
async fn a_client_budget_refuses_an_embedders_call_once_spent() {
    let scratch = Scratch::new();
    let host = host(&scratch);
    host.complete(call_as("team-a", "mock/echo", "a b c"))
        .await
        .expect("the first call spends the budget exactly");
    let refused = host
        .complete(call_as("team-a", "mock/echo", "a b c"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, DispatchError::ClientBudgetSpent(_)),
        "{refused:?}"
    );
    assert_eq!(refused.kind(), ErrorKind::QuotaExceeded);
    assert_eq!(refused.http_status(), 429);
    // Another client is not affected, and the refusal is itself counted.
    host.complete(call_as("team-b", "mock/echo", "a b c"))
        .await
        .unwrap();
    let summary = host.usage().summary();
    assert_eq!(summary.clients["team-a"].calls, 2);
    assert_eq!(
        summary.clients["team-a"].errors_by_kind["quota_exceeded"],
        1
    );
    assert_eq!(summary.clients["team-b"].calls, 1);
}

#[tokio::test]
async fn a_stream_is_counted_when_it_ends_with_the_usage_it_carried() {
    let scratch = Scratch::new();
    let host = host(&scratch);
    let mut request = ChatRequest::new("mock/long", vec![Message::user("go")]);
    request.max_tokens = Some(5);
    let stream = host.chat_stream(request).await.unwrap();
    assert_eq!(
        host.usage().summary().totals.calls,
        0,
        "not counted before it ends"
    );
    let events: Vec<_> = stream.collect().await;
    assert!(events.iter().all(Result::is_ok));
    let summary = host.usage().summary();
    assert_eq!(summary.totals.calls, 1);
    assert_eq!(summary.totals.completion_tokens, 5);
    assert_eq!(summary.models["mock/long"].calls, 1);
}

#[tokio::test]
async fn a_stream_dropped_early_is_counted_as_cancelled() {
    let scratch = Scratch::new();
    let host = host(&scratch);
    let mut request = ChatRequest::new("mock/long", vec![Message::user("go")]);
    request.max_tokens = Some(50);
    let mut stream = host.chat_stream(request).await.unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let summary = host.usage().summary();
    assert_eq!(summary.totals.calls, 1);
    assert_eq!(summary.totals.errors, 0, "a cancel is not an error");
}

#[tokio::test]
async fn an_unknown_model_is_counted_as_a_404_with_its_kind() {
    let scratch = Scratch::new();
    let host = host(&scratch);
    let error = host
        .chat(ChatRequest::new("nobody/nothing", vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert_eq!(error.http_status(), 404);
    let summary = host.usage().summary();
    assert_eq!(summary.totals.errors_by_kind["model_not_found"], 1);
}
