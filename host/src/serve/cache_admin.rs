//! `GET /admin/cache` (what the response cache holds and how often it answers) and
//! `DELETE /admin/cache` (purge it). Behind the admin keys, like every `/admin/*`.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde_json::json;

use crate::Host;

/// Entries, bytes, hits, misses, the hit ratio and the saved cost.
pub async fn status(State(host): State<Arc<Host>>) -> impl IntoResponse {
    Json(host.cache().status())
}

/// Drops every cached answer (in Redis, the whole fleet's); answers with how many.
pub async fn purge(State(host): State<Arc<Host>>) -> axum::response::Response {
    match host.cache().purge().await {
        Ok(purged) => {
            Json(json!({"purged": purged, "cache": host.cache().status()})).into_response()
        }
        Err(unavailable) => super::error::ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            code: "shared_state_unavailable",
            message: format!("the cache was not purged: {unavailable}"),
            param: None,
        }
        .into_response(),
    }
}
