//! Live health checks: one cheap call to a provider's upstream (the plugin's own probe,
//! such as listing models, or else a one-token chat), reporting latency or the
//! classified error.

use std::time::{Duration, Instant};

use provider_sdk::{ChatRequest, Message, Outbound};
use serde::Serialize;

use crate::{
    registry::State,
    snapshot::Snapshot,
    transport::{self, ERROR_BODY_CAP},
};

/// What a check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The provider.
    pub provider: String,
    /// Whether the upstream answered with success.
    pub healthy: bool,
    /// What was sent: `GET https://.../models`, or `one-token chat to <model>`.
    pub probe: String,
    /// Round trip, in milliseconds.
    pub latency_ms: f64,
    /// The upstream's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The error's kind, when unhealthy.
    pub kind: Option<String>,
    /// The error's message, when unhealthy.
    pub message: Option<String>,
}

/// The longest a check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks the provider called `name`; `None` when there is no such provider.
pub async fn check(snapshot: &Snapshot, name: &str) -> Option<HealthReport> {
    let status = snapshot.registry.provider(name)?;
    let mut report = HealthReport {
        provider: name.to_owned(),
        healthy: false,
        probe: String::new(),
        latency_ms: 0.0,
        status: None,
        kind: None,
        message: None,
    };
    let Some(provider) = &status.ready else {
        report.message = Some(format!("not serving: {}", status.state));
        report.kind = Some(
            match status.state {
                State::Disabled => "disabled",
                State::Unavailable(_) => "unavailable",
                _ => "failed",
            }
            .to_owned(),
        );
        return Some(report);
    };
    let started = Instant::now();
    let outbound = match provider.plugin.health_request().await {
        Ok(Some(outbound)) => Ok(outbound),
        Ok(None) => {
            let model = provider
                .manifest
                .models
                .first()
                .map(|m| m.id.clone())
                .unwrap_or_default();
            let request = ChatRequest {
                max_tokens: Some(1),
                ..ChatRequest::new(model, vec![Message::user("ping")])
            };
            match serde_json::to_string(&request) {
                Ok(json) => provider.plugin.build_request(&json).await,
                Err(e) => Err(provider_sdk::ProviderError::invalid_request(format!(
                    "unencodable request: {e}"
                ))),
            }
        }
        Err(e) => Err(e),
    };
    let result = match outbound {
        Ok(outbound) => {
            report.probe = describe(
                &outbound,
                provider.manifest.models.first().map(|m| m.id.as_str()),
            );
            let deadline = Instant::now() + CHECK_TIMEOUT.min(snapshot.config.timeouts.total());
            match snapshot.transport.send(provider, outbound, deadline).await {
                Ok(response) => {
                    report.status = Some(response.status);
                    let success = (200..300).contains(&response.status);
                    match transport::read_capped(response.body, ERROR_BODY_CAP).await {
                        Ok((body, _)) if success => {
                            let _ = body;
                            Ok(())
                        }
                        Ok((body, _)) => Err(provider
                            .plugin
                            .classify_error(response.status, response.headers, body)
                            .await),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    report.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(()) => report.healthy = true,
        Err(mut error) => {
            error.message = transport::redactor_for(provider).redact(&error.message);
            report.kind = Some(error.kind.as_str().to_owned());
            report.message = Some(error.message);
        }
    }
    Some(report)
}

/// A description of the probe without credentials (the key is never in the plugin's
/// request: the transport adds it).
fn describe(outbound: &Outbound, model: Option<&str>) -> String {
    match outbound {
        Outbound::Http(http) if http.method == "GET" => format!("GET {}", http.url),
        Outbound::Http(_) | Outbound::Local(_) => {
            format!("one-token chat to {}", model.unwrap_or("the default model"))
        }
    }
}
