//! The HTTP service: OpenAI-compatible ingress, health, and graceful shutdown.
//!
//! `router` gives an axum `Router` an embedder can mount under any prefix; `serve`
//! runs it on a listener until a shutdown signal, letting requests in flight finish.

mod admin;
mod auth;
pub mod body;
mod cache_admin;
mod chat;
mod console;
mod embeddings;
pub mod error;
mod ingress;
mod listener;
mod messages;
mod relay;
mod responses;
mod wire;

use std::{future::Future, sync::Arc};

use axum::{
    extract::{Path, Request, State},
    http::{header, HeaderValue, Method, StatusCode, Uri},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use tracing::Instrument;

pub use crate::clients::ClientKeys;
use crate::{
    limits::RateLimits,
    pipeline::{DispatchError, Route},
    Host,
};
pub use auth::{ClientName, Listener};
use error::ApiError;

/// The service's routes: `/v1/chat/completions`, `/v1/embeddings`, `/v1/messages`,
/// `/v1/responses`, `/v1/models` and `/metrics` (behind client keys when configured),
/// `/admin/*` and the `/console` page (behind `auth.admin_keys`, or on a loopback
/// [`Listener`] only), `/healthz` and `/readyz`.
pub fn router(host: Arc<Host>) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/responses", post(responses::create))
        .route(
            "/v1/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(
            (
                host.clone(),
                body::BodyBudget::new(host.config().server.max_inflight_body_bytes),
            ),
            admit,
        ));
    let admin_routes = Router::new()
        .route("/admin/providers", get(admin::providers))
        .route("/admin/reload", post(admin::reload))
        .route("/admin/providers/{name}/check", post(admin::check))
        .route("/admin/usage", get(admin::usage))
        .route("/admin/usage/series", get(admin::usage_series))
        .route("/admin/usage/reset", post(admin::reset_usage))
        .route("/admin/limits", get(admin::limits))
        .route("/admin/reloads", get(admin::reloads))
        .route("/admin/traffic", get(admin::traffic))
        .route("/admin/budgets", get(admin::budgets))
        .route(
            "/admin/cache",
            get(cache_admin::status).delete(cache_admin::purge),
        )
        .route("/admin/cache/purge", post(cache_admin::purge))
        .layer(middleware::from_fn_with_state(
            host.clone(),
            auth::require_admin,
        ));
    let console_routes = Router::new()
        .route("/console", get(console::page))
        .route("/console/{file}", get(console::file))
        .layer(middleware::from_fn_with_state(
            host.clone(),
            auth::require_admin_page,
        ));
    Router::new()
        .merge(api)
        .merge(admin_routes)
        .merge(console_routes)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn(request_id))
        .with_state(host)
}

/// Admission to the API routes, in one layer (each layer costs a boxed future and a
/// clone of the routes below it per request): the client's key, then its body's share
/// of the in-flight budget ([`body::BodyBudget::reserve`]), held until the response.
async fn admit(
    State((host, budget)): State<(Arc<Host>, body::BodyBudget)>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = match auth::client_of(&host, &request) {
        Ok(client) => client,
        Err(refused) => return refused.into_response(),
    };
    request.extensions_mut().insert(client);
    let held = match budget
        .reserve(&host, request.method(), request.headers())
        .await
    {
        Ok(held) => held,
        Err(full) => return full.into_response(),
    };
    let response = next.run(request).await;
    drop(held);
    response
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

/// `/metrics`: OpenMetrics when the scraper asks for it (`Accept:
/// application/openmetrics-text`), Prometheus text 0.0.4 otherwise; each body is what
/// its content type says.
async fn metrics(
    State(host): State<Arc<Host>>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let text = host.render_metrics_live().await;
    match openmetrics {
        true => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        false => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::to_prometheus_text(&text),
        ),
    }
}

/// Serves `host` on `listener` until `shutdown` resolves; requests in flight finish.
pub async fn serve(
    host: Arc<Host>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let scope = Listener {
        loopback: address.ip().is_loopback(),
    };
    if !scope.loopback && !host.snapshot().admin_keys.enabled() {
        tracing::warn!(%address, "admin endpoints are off on this listener: set `auth.admin_keys` to use /admin/*");
    }
    let open = !host.snapshot().client_keys.enabled();
    if open && !address.ip().is_loopback() {
        tracing::warn!(%address, "listening beyond loopback with client authentication off: anyone who can reach this address can spend your provider keys; set `auth.keys` in the config");
    }
    for p in host.registry().providers() {
        match (&p.state, &p.manifest) {
            // An operator must see a provider that will not serve, not find it in a list.
            (crate::registry::State::Failed(reason), _) => {
                tracing::warn!(provider = %p.name, library = %p.library.display(), %reason, "provider failed to load and will not serve")
            }
            (_, Some(m)) => {
                tracing::info!(provider = %p.name, plugin = %m.name, version = %m.version, state = %p.state, "provider")
            }
            (_, None) => tracing::info!(provider = %p.name, state = %p.state, "provider"),
        }
    }
    tracing::info!(%address, "serving");
    let app = router(host.clone()).layer(axum::Extension(scope));
    let limits = host.config().server;
    let served = listener::run(listener, app, limits, shutdown).await;
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
    // A failing ledger does not stop serving (answers matter more than their
    // accounting, and records wait for it), but it is shown here for monitors.
    let ledger = host.usage().ledger_status();
    (
        status,
        Json(json!({
            "ready": !ready.is_empty(),
            "providers": ready,
            "degraded": ledger.state == "degraded",
            "ledger": ledger,
        })),
    )
}

/// Every routable model: `provider/model` of each ready provider, and each alias with
/// at least one ready target.
fn model_list(host: &Host) -> Vec<Value> {
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
        let ready = targets.iter().any(|t| {
            registry
                .provider(&t.provider)
                .is_some_and(|p| p.ready.is_some())
        });
        if ready {
            data.push(json!({"id": alias, "object": "model", "created": 0, "owned_by": "alias"}));
        }
    }
    data
}

async fn models(State(host): State<Arc<Host>>) -> impl IntoResponse {
    Json(json!({"object": "list", "data": model_list(&host)}))
}

/// `GET /v1/models/{id}`; the id may contain `/` (`provider/model`).
async fn model(State(host): State<Arc<Host>>, Path(id): Path<String>) -> Response {
    match model_list(&host)
        .into_iter()
        .find(|m| m["id"] == id.as_str())
    {
        Some(found) => Json(found).into_response(),
        None => ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: "model_not_found",
            message: format!("the model `{id}` does not exist or no provider serves it"),
            param: None,
        }
        .into_response(),
    }
}

async fn no_route(method: Method, uri: Uri) -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        code: "unknown_url",
        message: format!(
            "no route for {method} {}: see /v1/chat/completions, /v1/embeddings, /v1/messages, /v1/responses and /v1/models",
            uri.path()
        ),
        param: None,
    }
    .into_response()
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        kind: "invalid_request_error",
        code: "method_not_allowed",
        message: format!("{method} is not allowed on {}", uri.path()),
        param: None,
    }
    .into_response()
}

/// Tells the client which provider and model answered, which target of the fallback
/// chain that was, and how many attempts it took.
pub(crate) fn annotate(response: &mut Response, route: &Route) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&route.target.provider) {
        headers.insert("x-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(&route.target.model) {
        headers.insert("x-model", v);
    }
    headers.insert("x-fallback-index", HeaderValue::from(route.fallback_index));
    headers.insert("x-attempts", HeaderValue::from(route.attempts));
    if let Some(outcome) = route.cache {
        headers.insert("x-cache", HeaderValue::from_static(outcome.as_str()));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    rate_limit_headers(headers, &route.rate_limits);
}

/// The `x-ratelimit-*` headers of the tightest limits that applied.
fn rate_limit_headers(headers: &mut axum::http::HeaderMap, limits: &RateLimits) {
    for (name, value) in limits.headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

/// An error response, with `retry-after` and the refusing limit's `x-ratelimit-*`
/// headers when rate limits refused the call (every ingress renders its own body).
pub(crate) fn with_limit_headers(mut response: Response, error: &DispatchError) -> Response {
    if let DispatchError::RateLimited(exceeded) = error {
        let headers = response.headers_mut();
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(exceeded.retry_after_secs()),
        );
        rate_limit_headers(headers, &exceeded.quotas());
    }
    response
}
