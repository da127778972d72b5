//! What every ingress adapter does the same way: who is calling, ids for answers, and
//! how a body that does not parse is explained.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::{
    extract::Extension,
    http::{header, HeaderMap},
};

use super::{auth::ClientName, RequestId};
use crate::{cache::Directive, pipeline::Caller};

/// The caller of a request, from what the auth and request-id layers put in its
/// extensions and the cache directives of its headers, arriving now.
pub(super) fn caller(
    client: Option<Extension<ClientName>>,
    id: Option<Extension<RequestId>>,
    headers: &HeaderMap,
) -> Caller {
    Caller {
        client: client
            .map(|c| c.0 .0)
            .unwrap_or_else(|| "anonymous".to_owned()),
        request_id: id.map(|i| i.0 .0).unwrap_or_default(),
        received: Instant::now(),
        cache: Directive::parse(
            headers
                .get_all(header::CACHE_CONTROL)
                .iter()
                .chain(headers.get_all("x-cache-control"))
                .filter_map(|v| v.to_str().ok()),
        ),
    }
}

/// A unique id with `prefix` (`chatcmpl-`, `msg_`, `resp_`, ...): time and a
/// process-wide counter.
pub(crate) fn unique_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{prefix}{nanos:x}{:06x}",
        NEXT.fetch_add(1, Ordering::Relaxed) & 0xff_ffff
    )
}

/// Parses a request body as `T`. The common case, a body that parses, takes the plain
/// deserializer: tracking the path of every field costs a few microseconds per request,
/// so only a body that fails is parsed again with its path tracked, for the message.
pub(super) fn deserialize<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    if let Ok(parsed) = serde_json::from_slice(bytes) {
        return Ok(parsed);
    }
    let mut json = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut json)
}

/// Why a body did not parse, in one line: not JSON at all, or the field at fault.
pub(super) fn body_error(e: serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        format!("the body is not valid JSON: {inner}")
    } else if path == "." {
        format!("invalid request: {inner}")
    } else {
        format!("invalid request at `{path}`: {inner}")
    }
}
