//! The HTTP service: OpenAI-compatible ingress, health, and graceful shutdown.
//!
//! `router` gives an axum `Router` an embedder can mount under any prefix; `serve`
//! runs it on a listener until a shutdown signal, letting requests in flight finish.

mod admin;
mod auth;
mod chat;
pub mod error;
mod wire;

use std::{future::Future, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::json;
use tracing::Instrument;

use crate::{config::Config, Host, KeyLookup};
pub use auth::{ClientKeys, ClientName};

/// The service's routes: `/v1/chat/completions`, `/v1/models`, `/admin/providers` and
/// `/admin/reload` (behind client auth when keys are configured), `/healthz` and
/// `/readyz`.
pub fn router(host: Arc<Host>) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/models", get(models))
        .route("/admin/providers", get(admin::providers))
        .route("/admin/reload", post(admin::reload))
        .route("/admin/providers/{name}/check", post(admin::check))
        .route("/admin/usage", get(admin::usage))
        .route("/admin/usage/reset", post(admin::reset_usage))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(
            host.clone(),
            auth::require_key,
        ));
    Router::new()
        .merge(api)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .layer(middleware::from_fn(request_id))
        .with_state(host)
}

/// The id of a request: the client's `x-request-id` when it is sane, else a new one.
/// It tags the request's log span and comes back in the response's `x-request-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

async fn request_id(mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned);
    let id = given.unwrap_or_else(new_request_id);
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("req-{nanos:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn metrics(State(host): State<Arc<Host>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        host.render_metrics(),
    )
}

/// The client keys a config asks for: its own, plus those in `auth.keys_env`.
pub fn client_keys(config: &Config, env: &KeyLookup) -> ClientKeys {
    let auth = &config.auth;
    let from_env = auth
        .keys_env
        .as_ref()
        .and_then(|var| env(var))
        .unwrap_or_default();
    let keys = auth
        .keys
        .iter()
        .map(|k| (k.key(), k.name()))
        .chain(
            from_env
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| (k, None)),
        )
        .collect::<Vec<_>>();
    ClientKeys::new(keys)
}

/// Serves `host` on `listener` until `shutdown` resolves; requests in flight finish.
pub async fn serve(
    host: Arc<Host>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let open = !host.snapshot().client_keys.enabled();
    if open && !address.ip().is_loopback() {
        tracing::warn!(%address, "listening beyond loopback with client authentication off: anyone who can reach this address can spend your provider keys; set `auth.keys` in the config");
    }
    for p in host.registry().providers() {
        match &p.manifest {
            Some(m) => {
                tracing::info!(provider = %p.name, plugin = %m.name, version = %m.version, state = %p.state, "provider")
            }
            None => tracing::info!(provider = %p.name, state = %p.state, "provider"),
        }
    }
    tracing::info!(%address, "serving");
    let served = axum::serve(listener, router(host.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    // Requests have finished: put their usage in the ledger before going.
    let flushing = host.clone();
    let _ = tokio::task::spawn_blocking(move || flushing.usage().flush()).await;
    served
}

async fn ready(State(host): State<Arc<Host>>) -> impl IntoResponse {
    let registry = host.registry();
    let ready: Vec<&str> = registry
        .providers()
        .filter(|p| p.ready.is_some())
        .map(|p| p.name.as_str())
        .collect();
    let status = if ready.is_empty() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(json!({"ready": !ready.is_empty(), "providers": ready})),
    )
}

async fn models(State(host): State<Arc<Host>>) -> impl IntoResponse {
    let registry = host.registry();
    let mut data = Vec::new();
    for p in registry.providers() {
        if let (Some(_), Some(manifest)) = (&p.ready, &p.manifest) {
            for m in &manifest.models {
                data.push(json!({"id": format!("{}/{}", p.name, m.id), "object": "model", "created": 0, "owned_by": p.name}));
            }
        }
    }
    for (alias, targets) in registry.aliases() {
        if targets.iter().any(|t| {
            registry
                .provider(&t.provider)
                .is_some_and(|p| p.ready.is_some())
        }) {
            data.push(json!({"id": alias, "object": "model", "created": 0, "owned_by": "alias"}));
        }
    }
    Json(json!({"object": "list", "data": data}))
}
