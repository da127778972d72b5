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
    extract::State,
    http::StatusCode,
    middleware,
    response::IntoResponse,
    routing::{get, post},
    Json, Router,
};
use serde_json::json;

use crate::{config::Config, Host, KeyLookup};
pub use auth::ClientKeys;

/// The service's routes: `/v1/chat/completions`, `/v1/models`, `/admin/providers` and
/// `/admin/reload` (behind client auth when keys are configured), `/healthz` and
/// `/readyz`.
pub fn router(host: Arc<Host>) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/models", get(models))
        .route("/admin/providers", get(admin::providers))
        .route("/admin/reload", post(admin::reload))
        .layer(middleware::from_fn_with_state(
            host.clone(),
            auth::require_key,
        ));
    Router::new()
        .merge(api)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .with_state(host)
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
        .map(String::as_str)
        .chain(from_env.split(',').map(str::trim).filter(|k| !k.is_empty()))
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
    axum::serve(listener, router(host))
        .with_graceful_shutdown(shutdown)
        .await
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
