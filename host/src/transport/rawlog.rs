//! Raw logging of upstream traffic: one record per request and per response, with
//! credentials redacted and bodies cut to a size, written as JSON lines to a file or
//! stderr and/or handed to an embedder's callback.
//!
//! Redaction comes before the cut: a key that straddles the cut would otherwise be
//! seen only in part, missed, and leave its first characters in the log.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::Path,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use futures_util::Stream;
use provider_sdk::ProviderError;
use serde::Serialize;

use super::redact::Redactor;

/// One upstream request or response.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamRecord {
    /// `request` or `response`.
    pub direction: &'static str,
    /// The provider entry.
    pub provider: String,
    /// Pairs a response with its request.
    pub exchange: u64,
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// Request method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Request URL, key redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Response status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Headers, credentials redacted.
    pub headers: Vec<(String, String)>,
    /// The body as text, cut to the configured size.
    pub body: String,
    /// Whether the body was cut.
    pub truncated: bool,
}

/// A callback that receives every record.
pub type RecordCallback = dyn Fn(&UpstreamRecord) + Send + Sync;

/// Where records go.
pub struct RawLog {
    file: Option<Mutex<Box<dyn Write + Send>>>,
    callback: Option<Arc<RecordCallback>>,
    max_body: usize,
}

/// Headers that carry credentials, whatever the provider.
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
];

impl RawLog {
    /// A log to `to` (`stderr` or a file, appended to) and/or `callback`; `None` when
    /// neither is set.
    pub fn new(
        to: Option<&Path>,
        max_body: usize,
        callback: Option<Arc<RecordCallback>>,
    ) -> std::io::Result<Option<RawLog>> {
        let file: Option<Box<dyn Write + Send>> = match to {
            None => None,
            Some(p) if p.as_os_str() == "stderr" => Some(Box::new(std::io::stderr())),
            Some(p) => {
                let f: File = OpenOptions::new().create(true).append(true).open(p)?;
                Some(Box::new(f))
            }
        };
        if file.is_none() && callback.is_none() {
            return Ok(None);
        }
        Ok(Some(RawLog {
            file: file.map(Mutex::new),
            callback,
            max_body,
        }))
    }

    /// A new exchange id.
    pub fn exchange() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Builds a record: masks what `redactor` finds and credential headers, then cuts
    /// the body.
    pub fn record(
        &self,
        direction: &'static str,
        provider: &str,
        exchange: u64,
        headers: &[(String, String)],
        body: &[u8],
        redactor: &Redactor,
    ) -> UpstreamRecord {
        let (body, truncated) = redactor.redact_capped(body, self.max_body);
        UpstreamRecord {
            direction,
            provider: provider.to_owned(),
            exchange,
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            method: None,
            url: None,
            status: None,
            headers: headers
                .iter()
                .map(|(n, v)| {
                    let secret = SECRET_HEADERS.iter().any(|s| n.eq_ignore_ascii_case(s))
                        || redactor.finds_in(v);
                    (n.clone(), if secret { "***".to_owned() } else { v.clone() })
                })
                .collect(),
            body,
            truncated,
        }
    }

    /// Writes a record to the file and hands it to the callback.
    pub fn emit(&self, record: &UpstreamRecord) {
        if let Some(file) = &self.file {
            if let (Ok(line), Ok(mut out)) = (serde_json::to_string(record), file.lock()) {
                let _ = writeln!(out, "{line}");
            }
        }
        if let Some(callback) = &self.callback {
            callback(record);
        }
    }

    /// The body cap.
    pub fn max_body(&self) -> usize {
        self.max_body
    }
}

/// A body stream that copies what passes (up to the cap, and as far past it as a
/// secret starting before the cut can reach) and emits the response record when the
/// body ends or is dropped.
pub struct Teed<S> {
    inner: S,
    log: Arc<RawLog>,
    record: Option<UpstreamRecord>,
    seen: Vec<u8>,
    /// How many bytes to keep: the cap plus the reach of a secret across it.
    keep: usize,
    /// Bytes that passed, kept or not.
    total: usize,
    redactor: Redactor,
}

impl<S> Teed<S> {
    /// Tees `inner` into `record`'s body.
    pub fn new(inner: S, log: Arc<RawLog>, record: UpstreamRecord, redactor: Redactor) -> Self {
        let keep = log
            .max_body()
            .saturating_add(redactor.longest().saturating_sub(1));
        Teed {
            inner,
            log,
            record: Some(record),
            seen: Vec::new(),
            keep,
            total: 0,
            redactor,
        }
    }

    fn finish(&mut self) {
        if let Some(mut record) = self.record.take() {
            let (body, _) = self.redactor.redact_capped(&self.seen, self.log.max_body());
            record.body = body;
            record.truncated = self.total > self.log.max_body();
            self.log.emit(&record);
        }
    }
}

impl<S: Stream<Item = Result<Bytes, ProviderError>> + Unpin> Stream for Teed<S> {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(bytes))) => {
                let room = self.keep.saturating_sub(self.seen.len());
                let take = room.min(bytes.len());
                self.seen.extend_from_slice(&bytes[..take]);
                self.total += bytes.len();
            }
            Poll::Ready(_) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }
}

impl<S> Drop for Teed<S> {
    fn drop(&mut self) {
        self.finish();
    }
}
