//! A loaded plugin version, wherever its code runs: in this process (calls on the
//! plugin-call threads, with a deadline that faults the version) or in worker
//! processes (`"isolation": "process"`, calls over a socket, with a deadline that
//! kills and replaces the worker). The pipeline, health checks and the transport call
//! a [`Plugin`] the same way in both modes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use provider_sdk::{
    abi::load::{PluginDecoder, PluginProvider},
    AuthScheme, ChatResponse, EmbeddingResponse, ErrorKind, Header, HttpResponse, Manifest,
    NativeRequest, Outbound, Protocol, ProviderError, StreamEvent,
};

use crate::{
    config::Isolation,
    plugin_pool::{self, CallError},
    worker::{self, RemoteDecoder, WorkerStats},
};

/// A plugin version that serves requests.
#[derive(Debug)]
pub struct Plugin {
    /// The provider's routing name (for messages and logs).
    name: String,
    /// How long one call may take.
    call_timeout: Duration,
    /// Why this version stopped being served (an in-process call overran its deadline).
    faulted: OnceLock<String>,
    runs: Runs,
    /// `native_request`'s answers, when the plugin says they can be reused.
    native_requests: Option<NativeRequests>,
}

/// `native_request`'s answers by protocol, stream flag and model: a plugin that says
/// they can be reused (SDK 1.4) is asked once per model rather than per request, which
/// saves a JSON round trip across the boundary (~8 µs a passed-through request on the
/// bench machine). Bounded: past [`NativeRequests::MAX`] entries it starts over.
#[derive(Debug, Default)]
struct NativeRequests(Mutex<HashMap<(Protocol, bool, String), Option<NativeRequest>>>);

impl NativeRequests {
    /// More distinct models than a config routes to: only requests naming arbitrary
    /// models (`provider/anything`) could fill it.
    const MAX: usize = 1024;

    fn get(&self, protocol: Protocol, model: &str, stream: bool) -> Option<Option<NativeRequest>> {
        let answers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        answers.get(&(protocol, stream, model.to_owned())).cloned()
    }

    fn keep(&self, protocol: Protocol, model: &str, stream: bool, answer: &Option<NativeRequest>) {
        let mut answers = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if answers.len() >= Self::MAX {
            answers.clear();
        }
        answers.insert((protocol, stream, model.to_owned()), answer.clone());
    }
}

#[derive(Debug)]
enum Runs {
    InProcess(Arc<PluginProvider>),
    Process {
        pool: worker::Pool,
        embeddings: bool,
    },
}

impl Plugin {
    /// A plugin instance built in this process.
    pub fn in_process(name: &str, provider: PluginProvider, call_timeout: Duration) -> Plugin {
        // Asked once, here: a plugin that fails to answer is asked every time.
        let reusable = provider.native_requests_reusable().unwrap_or(false);
        Plugin {
            name: name.to_owned(),
            call_timeout,
            faulted: OnceLock::new(),
            runs: Runs::InProcess(Arc::new(provider)),
            native_requests: reusable.then(NativeRequests::default),
        }
    }

    /// A plugin running in `pool`'s worker processes, with `manifest`.
    pub fn in_workers(
        name: &str,
        pool: worker::Pool,
        manifest: &Manifest,
        call_timeout: Duration,
    ) -> Plugin {
        let minor = manifest
            .sdk_version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse::<u64>().ok())
            .unwrap_or(0);
        Plugin {
            name: name.to_owned(),
            call_timeout,
            faulted: OnceLock::new(),
            runs: Runs::Process {
                pool,
                embeddings: minor >= provider_sdk::abi::extension::EMBEDDINGS_SINCE_MINOR,
            },
            // Asked over the socket every time: a worker's round trip is the cost of
            // isolation anyway.
            native_requests: None,
        }
    }

    /// Where its code runs.
    pub fn isolation(&self) -> Isolation {
        match self.runs {
            Runs::InProcess(_) => Isolation::InProcess,
            Runs::Process { .. } => Isolation::Process,
        }
    }

    /// Its worker processes, in process isolation.
    pub fn workers(&self) -> Option<WorkerStats> {
        match &self.runs {
            Runs::InProcess(_) => None,
            Runs::Process { pool, .. } => Some(pool.stats()),
        }
    }

    /// The process ids of its running workers (none in-process).
    pub fn worker_pids(&self) -> Vec<u32> {
        match &self.runs {
            Runs::InProcess(_) => Vec::new(),
            Runs::Process { pool, .. } => pool.pids(),
        }
    }

    /// Why this version is faulted, if it is: it is no longer routed to, until a new
    /// version replaces it.
    pub fn faulted(&self) -> Option<&str> {
        self.faulted.get().map(String::as_str)
    }

    /// Marks this version faulted; the first reason stays.
    pub fn mark_faulted(&self, reason: &str) {
        let _ = self.faulted.set(reason.to_owned());
    }

    /// Where the host must put the API key.
    pub fn auth(&self) -> &AuthScheme {
        match &self.runs {
            Runs::InProcess(p) => p.auth(),
            Runs::Process { pool, .. } => pool.auth(),
        }
    }

    /// Whether the plugin was built against an SDK with embeddings (1.2 or later).
    pub fn has_embeddings(&self) -> bool {
        match &self.runs {
            Runs::InProcess(p) => p.has_embeddings(),
            Runs::Process { embeddings, .. } => *embeddings,
        }
    }

    /// `build_request`, the request given as JSON.
    pub async fn build_request(&self, json: &str) -> Result<Outbound, ProviderError> {
        match &self.runs {
            Runs::InProcess(p) => {
                let json = json.to_owned();
                self.on_thread(p, "build_request", move |p| p.build_request_json(&json))
                    .await?
            }
            Runs::Process { pool, .. } => pool.build_request(json).await,
        }
    }

    /// `build_embedding_request`, the request given as JSON.
    pub async fn build_embedding_request(&self, json: &str) -> Result<Outbound, ProviderError> {
        match &self.runs {
            Runs::InProcess(p) => {
                let json = json.to_owned();
                self.on_thread(p, "build_embedding_request", move |p| {
                    p.build_embedding_request_json(&json)
                })
                .await?
            }
            Runs::Process { pool, .. } => pool.build_embedding_request(json).await,
        }
    }

    /// `parse_response` of an upstream answer; the body comes back too.
    pub async fn parse_response(
        &self,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<(ChatResponse, Vec<u8>), ProviderError> {
        match &self.runs {
            Runs::InProcess(p) => {
                let (parsed, body) = self
                    .on_thread(p, "parse_response", move |p| {
                        let views = header_views(&headers);
                        (
                            p.parse_response(&HttpResponse::new(status, &views, &body)),
                            body,
                        )
                    })
                    .await?;
                Ok((parsed?, body))
            }
            Runs::Process { pool, .. } => {
                let parsed = pool.parse_response(status, &headers, &body).await?;
                Ok((parsed, body))
            }
        }
    }

    /// `parse_embedding_response` of an upstream answer; the body comes back too.
    pub async fn parse_embedding_response(
        &self,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<(EmbeddingResponse, Vec<u8>), ProviderError> {
        match &self.runs {
            Runs::InProcess(p) => {
                let (parsed, body) = self
                    .on_thread(p, "parse_embedding_response", move |p| {
                        let views = header_views(&headers);
                        let response = HttpResponse::new(status, &views, &body);
                        (p.parse_embedding_response(&response), body)
                    })
                    .await?;
                Ok((parsed?, body))
            }
            Runs::Process { pool, .. } => {
                let parsed = pool
                    .parse_embedding_response(status, &headers, &body)
                    .await?;
                Ok((parsed, body))
            }
        }
    }

    /// `classify_error` of an upstream answer; a failed call is its own error.
    pub async fn classify_error(
        &self,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> ProviderError {
        match &self.runs {
            Runs::InProcess(p) => self
                .on_thread(p, "classify_error", move |p| {
                    let views = header_views(&headers);
                    p.classify_error(&HttpResponse::new(status, &views, &body))
                })
                .await
                .unwrap_or_else(|fault| fault),
            Runs::Process { pool, .. } => pool.classify_error(status, &headers, &body).await,
        }
    }

    /// `native_request` (inline in-process: it is cheap, and made while routing), or
    /// its earlier answer when the plugin says answers can be reused.
    pub async fn native_request(
        &self,
        protocol: Protocol,
        model: &str,
        stream: bool,
    ) -> Result<Option<NativeRequest>, ProviderError> {
        if let Some(answer) = self
            .native_requests
            .as_ref()
            .and_then(|kept| kept.get(protocol, model, stream))
        {
            return Ok(answer);
        }
        let answer = match &self.runs {
            Runs::InProcess(p) => p.native_request(protocol, model, stream)?,
            Runs::Process { pool, .. } => pool.native_request(protocol, model, stream).await?,
        };
        if let Some(kept) = &self.native_requests {
            kept.keep(protocol, model, stream, &answer);
        }
        Ok(answer)
    }

    /// Whether `native_request`'s answers are reused (the plugin says they can be,
    /// SDK 1.4, and it runs in this process).
    pub fn reuses_native_requests(&self) -> bool {
        self.native_requests.is_some()
    }

    /// `health_request` (inline in-process).
    pub async fn health_request(&self) -> Result<Option<Outbound>, ProviderError> {
        match &self.runs {
            Runs::InProcess(p) => p.health_request(),
            Runs::Process { pool, .. } => pool.health_request().await,
        }
    }

    /// A fresh stream decoder.
    pub fn stream_decoder(&self) -> Result<Decoder, ProviderError> {
        match &self.runs {
            Runs::InProcess(p) => p.stream_decoder().map(Decoder::InProcess),
            Runs::Process { pool, .. } => Ok(Decoder::Process(pool.stream_decoder())),
        }
    }

    /// Runs an in-process call on a plugin-call thread; past the deadline, this
    /// version is faulted.
    async fn on_thread<T: Send + 'static>(
        &self,
        provider: &Arc<PluginProvider>,
        what: &'static str,
        call: impl FnOnce(&PluginProvider) -> T + Send + 'static,
    ) -> Result<T, ProviderError> {
        match plugin_pool::run(provider, self.call_timeout, call).await {
            Ok(value) => Ok(value),
            Err(CallError::Overran(limit)) => {
                let reason = format!(
                    "{what} did not return within {:.1} s (it hangs): this plugin version is faulted and no longer served; replace the file",
                    limit.as_secs_f64()
                );
                self.mark_faulted(&reason);
                tracing::error!(provider = %self.name, %reason, "plugin call past its deadline");
                Err(ProviderError::new(ErrorKind::PluginFault, reason))
            }
            Err(CallError::NoAnswer) => Err(ProviderError::plugin_fault(format!(
                "the plugin's {what} ended without an answer"
            ))),
        }
    }
}

/// A stream decoder, in this process or in a worker.
#[derive(Debug)]
pub enum Decoder {
    /// Called inline: a stream makes one decoder call per network read, and a hop to
    /// another thread and back for each cost more than the stream itself (see
    /// docs/architecture.md).
    InProcess(PluginDecoder),
    /// In the worker that created it.
    Process(RemoteDecoder),
}

impl Decoder {
    /// Feeds `bytes` (or, for `None`, finishes the decoder); its events are appended
    /// to `events`. `Ok(true)` when the decoder saw its stream's terminator after
    /// this piece: it is then finished too.
    pub async fn decode(
        &mut self,
        bytes: Option<&[u8]>,
        events: &mut Vec<StreamEvent>,
    ) -> Result<bool, ProviderError> {
        match self {
            Decoder::InProcess(decoder) => match bytes {
                Some(bytes) => {
                    decoder
                        .feed(bytes, events)
                        .and_then(|()| match decoder.is_complete() {
                            true => decoder.finish(events).map(|()| true),
                            false => Ok(false),
                        })
                }
                None => decoder.finish(events).map(|()| false),
            },
            Decoder::Process(decoder) => decoder.decode(bytes, events).await,
        }
    }
}

fn header_views(headers: &[(String, String)]) -> Vec<Header<'_>> {
    headers.iter().map(|(n, v)| Header::new(n, v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_native_requests_are_per_protocol_model_and_stream_flag_and_bounded() {
        let kept = NativeRequests::default();
        let request = |url: &str| Some(NativeRequest::post_json(url));
        kept.keep(
            Protocol::OpenAiChat,
            "gpt-4o",
            true,
            &request("https://up/stream"),
        );
        kept.keep(Protocol::OpenAiChat, "gpt-4o", false, &None);
        assert_eq!(
            kept.get(Protocol::OpenAiChat, "gpt-4o", true),
            Some(request("https://up/stream"))
        );
        assert_eq!(
            kept.get(Protocol::OpenAiChat, "gpt-4o", false),
            Some(None),
            "a `None` answer (translate instead) is kept too"
        );
        assert_eq!(kept.get(Protocol::AnthropicMessages, "gpt-4o", true), None);
        assert_eq!(kept.get(Protocol::OpenAiChat, "gpt-4o-mini", true), None);
        for i in 0..NativeRequests::MAX {
            kept.keep(Protocol::OpenAiChat, &format!("m{i}"), true, &None);
        }
        let held = kept.0.lock().unwrap().len();
        assert!(held <= NativeRequests::MAX, "{held}");
    }
}
