//! `GET /admin/providers` (status of every provider and of reloads),
//! `POST /admin/reload` (the same reload the watcher and SIGHUP run), and what the
//! console draws: `/admin/reloads`, `/admin/traffic`, `/admin/usage/series`,
//! `/admin/budgets`. Each is documented for scripts in docs/operations.md.

use std::{
    sync::{atomic::Ordering, Arc},
    time::UNIX_EPOCH,
};

use axum::{
    extract::{Path, Query, State},
    response::IntoResponse,
    Json,
};
use serde_json::{json, Value};

use crate::{
    registry::{Origin, State as ProviderState},
    Host,
};

/// Every provider with its plugin, file, hash, generation, state and last reload error.
pub async fn providers(State(host): State<Arc<Host>>) -> impl IntoResponse {
    let snapshot = host.snapshot();
    let providers: Vec<Value> = snapshot
        .registry
        .providers()
        .map(|p| {
            let (state, reason) = match &p.state {
                ProviderState::Ready => ("ready", None),
                ProviderState::Disabled => ("disabled", None),
                ProviderState::Unavailable(why) => ("unavailable", Some(why.as_str())),
                ProviderState::Failed(why) => ("failed", Some(why.as_str())),
            };
            json!({
                "name": p.name,
                "origin": if p.origin == Origin::PluginDir { "plugin_dir" } else { "config" },
                "state": state,
                "reason": reason,
                "plugin": p.manifest.as_ref().map(|m| json!({"name": m.name, "version": m.version, "sdk_version": m.sdk_version})),
                "library": p.library,
                "sha256": p.sha256,
                "generation": p.generation,
                "loaded_at": p.loaded_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
                "last_reload_error": p.last_reload_error,
                "circuit": host.breakers().state(&p.name).to_string(),
                "faulted": p.ready.as_ref().and_then(|r| r.faulted()),
                "isolation": p.entry.isolation().to_string(),
                "workers": p.ready.as_ref().and_then(|r| r.plugin.workers()),
                "last_error": host.last_errors().of(&p.name),
            })
        })
        .collect();
    let stats = host.reload_stats();
    let last = stats.last.lock().map(|l| l.clone()).unwrap_or(None);
    let aliases: serde_json::Map<String, Value> = snapshot
        .registry
        .aliases()
        .iter()
        .map(|(alias, targets)| {
            let targets: Vec<String> = targets
                .iter()
                .map(|t| format!("{}/{}", t.provider, t.model))
                .collect();
            (alias.clone(), json!(targets))
        })
        .collect();
    Json(json!({
        "generation": snapshot.generation,
        "providers": providers,
        "aliases": aliases,
        "problems": snapshot.registry.problems(),
        "reloads": stats.reloads.load(Ordering::Relaxed),
        "reload_failures": stats.failures.load(Ordering::Relaxed),
        "last_reload": last,
        "circuit_breakers": host.breakers().statuses(std::time::Instant::now()),
        "mapped_libraries": host.loader().mapped_libraries(),
        "retired_libraries": host.retired_libraries(),
    }))
}

/// Reloads now and answers with what changed and what failed.
pub async fn reload(State(host): State<Arc<Host>>) -> impl IntoResponse {
    Json(host.reload_async("admin").await)
}

/// The usage summary: totals, and per provider, model and client.
pub async fn usage(State(host): State<Arc<Host>>) -> impl IntoResponse {
    Json(host.usage().summary())
}

/// Starts the usage summary over.
pub async fn reset_usage(State(host): State<Arc<Host>>) -> impl IntoResponse {
    let meter_host = host.clone();
    let _ = tokio::task::spawn_blocking(move || meter_host.usage().reset()).await;
    Json(host.usage().summary())
}

/// Every configured limit: its window, what is used and what remains, and where the
/// counts live (`memory` or `redis`, with the Redis's health).
pub async fn limits(State(host): State<Arc<Host>>) -> impl IntoResponse {
    Json(host.limits_report().await)
}

/// Checks one provider with a cheap live call.
pub async fn check(
    State(host): State<Arc<Host>>,
    Path(name): Path<String>,
) -> axum::response::Response {
    match host.check_provider(&name).await {
        Some(report) => Json(report).into_response(),
        None => super::error::ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: "provider_not_found",
            message: format!("no provider is called `{name}`"),
            param: None,
        }
        .into_response(),
    }
}

/// The last reloads, newest first: the first load (`start`) and every reload since
/// (`watch`, `sighup`, `admin`), with what each added, reloaded, removed and refused.
pub async fn reloads(State(host): State<Arc<Host>>) -> impl IntoResponse {
    let mut history = host.reload_stats().history();
    history.reverse();
    Json(json!({ "reloads": history }))
}

/// The last hour of traffic in 10-second buckets.
pub async fn traffic(State(host): State<Arc<Host>>) -> impl IntoResponse {
    Json(host.traffic().series(host.usage().now()))
}

/// Each configured budget with what is spent of it in its current period.
pub async fn budgets(State(host): State<Arc<Host>>) -> impl IntoResponse {
    let config = host.config();
    Json(json!({ "budgets": host.usage().budgets(&config.budgets) }))
}

/// The query string of `/admin/usage/series`.
#[derive(Debug, serde::Deserialize)]
pub struct SeriesParams {
    bucket: Option<String>,
    by: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// Usage over time from the ledger: `?bucket=hour|day|month&by=provider|model|client
/// &since=<unix>&until=<unix>`.
pub async fn usage_series(
    State(host): State<Arc<Host>>,
    Query(params): Query<SeriesParams>,
) -> axum::response::Response {
    use crate::usage::series::{SeriesError, SeriesQuery};
    let query = match SeriesQuery::parse(
        params.bucket.as_deref(),
        params.by.as_deref(),
        params.since.as_deref(),
        params.until.as_deref(),
        host.usage().now(),
    ) {
        Ok(query) => query,
        Err(e) => return series_error(axum::http::StatusCode::BAD_REQUEST, e),
    };
    let reading = host.clone();
    match tokio::task::spawn_blocking(move || reading.usage().series(query)).await {
        Ok(Ok(series)) => Json(series).into_response(),
        Ok(Err(e @ SeriesError::NoLedger)) => series_error(axum::http::StatusCode::NOT_FOUND, e),
        Ok(Err(e)) => series_error(axum::http::StatusCode::SERVICE_UNAVAILABLE, e),
        Err(_) => series_error(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            SeriesError::Unreadable("the query's thread failed".to_owned()),
        ),
    }
}

fn series_error(
    status: axum::http::StatusCode,
    error: crate::usage::series::SeriesError,
) -> axum::response::Response {
    super::error::ApiError {
        status,
        kind: "invalid_request_error",
        code: "usage_series",
        message: error.to_string(),
        param: None,
    }
    .into_response()
}
