//! Embedding provider-host in your own axum service.
//!
//! The host's OpenAI-compatible API is mounted under `/llm`, beside the app's own
//! routes, and one route of the app calls the host directly as a library.
//!
//! ```sh
//! cargo build --release -p mock-provider
//! cargo run --release -p provider-host --example embed
//! curl -s localhost:3000/llm/v1/models
//! curl -s localhost:3000/summary?text=hello+world
//! ```

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    routing::get,
    Router,
};
use provider_host::{provider_sdk::ChatRequest, provider_sdk::Message, Host};
use serde::Deserialize;

#[derive(Deserialize)]
struct Summary {
    text: String,
}

/// An app route that uses the host as a library: no HTTP hop.
async fn summary(State(host): State<Arc<Host>>, Query(q): Query<Summary>) -> String {
    let request = ChatRequest::new("mock/echo", vec![Message::user(q.text)]);
    match host.chat(request).await {
        Ok(done) => done.response.message.content.unwrap_or_default(),
        Err(e) => format!("error: {e}"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let host = Host::builder()
        .config_file("external_providers.json")
        .build()?;
    let app = Router::new()
        .route("/summary", get(summary))
        .with_state(host.clone())
        .nest("/llm", provider_host::serve::router(host.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000 (host API under /llm)");
    axum::serve(listener, app).await?;
    Ok(())
}
