//! The worker's side: the host binary re-executed as `provider-host plugin-worker
//! <copy>` with its stdin a Unix socket to the host. It opens the plugin copy, builds
//! the provider from the config the first frame carries, then answers one frame at a
//! time until the host closes the socket (or dies: the kernel then kills it, see
//! [`super::spawn`]).
//!
//! One call at a time, on one thread: a plugin is sans-IO, so a call is pure CPU and
//! running two at once in one worker would only share its cores; parallelism comes
//! from the pool's several workers. A crash here costs the host the calls queued on
//! this worker, nothing else.

use std::{
    collections::HashMap,
    io::{BufReader, BufWriter, Write},
    os::unix::net::UnixStream,
    path::Path,
};

use provider_sdk::{
    abi::load::{PluginDecoder, PluginProvider},
    HttpResponse, NativeQuery, ProviderConfig, ProviderError, StreamEvent,
};

use super::frame::{self, Kind, Reader, Writer, FEED_FINISH, FEED_OPEN};

/// The most stream decoders one worker keeps: each stream in flight has one, and the
/// host drops them as streams end; past this, a new stream is refused.
const MAX_DECODERS: usize = 4096;

/// Runs the worker on `plugin` over the socket on stdin; returns the exit code.
pub fn main(plugin: &Path) -> i32 {
    super::spawn::die_with_parent();
    // SAFETY: fd 0 is the socket the host passed as stdin, owned by nobody else here.
    let socket = unsafe { <UnixStream as std::os::fd::FromRawFd>::from_raw_fd(0) };
    let Ok(writer) = socket.try_clone() else {
        return 2;
    };
    let mut input = BufReader::with_capacity(64 * 1024, socket);
    let mut output = BufWriter::with_capacity(64 * 1024, writer);
    let provider = match init(plugin, &mut input, &mut output) {
        Some(provider) => provider,
        None => return 3,
    };
    let mut worker = Worker {
        provider,
        decoders: HashMap::new(),
    };
    loop {
        let frame = match frame::read(&mut input) {
            Ok(Some(frame)) => frame,
            // The host closed the socket (a retired version, or the host exited).
            Ok(None) => return 0,
            Err(_) => return 4,
        };
        let Some((kind, payload)) = worker.answer(frame.kind, &frame.payload) else {
            continue;
        };
        if frame::write(&mut output, kind, frame.id, &payload).is_err() || output.flush().is_err() {
            return 0;
        }
    }
}

/// Reads the config frame, opens the plugin and builds the provider; answers the
/// auth scheme, or the error (then `None`).
fn init(
    plugin: &Path,
    input: &mut impl std::io::Read,
    output: &mut impl Write,
) -> Option<PluginProvider> {
    let frame = frame::read(input).ok()??;
    let built = (|| {
        if frame.kind != Kind::Init {
            return Err(ProviderError::plugin_fault(
                "the worker's first frame is not its config",
            ));
        }
        let config: ProviderConfig = serde_json::from_slice(&frame.payload)
            .map_err(|e| ProviderError::plugin_fault(format!("unreadable worker config: {e}")))?;
        // SAFETY: the host validated this copy (in the sandbox) before starting
        // workers on it; running its code is this process's job.
        let library = unsafe { provider_sdk::abi::load::open(plugin) }
            .map_err(|e| ProviderError::plugin_fault(e.to_string()))?;
        crate::validate::check_build(&library).map_err(ProviderError::plugin_fault)?;
        library.construct(&config)
    })();
    let (kind, payload, provider) = match built {
        Ok(provider) => {
            let auth = serde_json::to_vec(provider.auth()).unwrap_or_default();
            (Kind::Ok, auth, Some(provider))
        }
        Err(e) => (Kind::Err, error_json(&e), None),
    };
    frame::write(output, kind, frame.id, &payload).ok()?;
    output.flush().ok()?;
    provider
}

struct Worker {
    provider: PluginProvider,
    decoders: HashMap<u64, PluginDecoder>,
}

impl Worker {
    /// The answer to one frame; `None` for a frame that takes none.
    fn answer(&mut self, kind: Kind, payload: &[u8]) -> Option<(Kind, Vec<u8>)> {
        let result = match kind {
            Kind::BuildRequest | Kind::BuildEmbeddingRequest => {
                let json = std::str::from_utf8(payload).unwrap_or_default();
                let built = if kind == Kind::BuildRequest {
                    self.provider.build_request_json(json)
                } else {
                    self.provider.build_embedding_request_json(json)
                };
                built.map(|outbound| {
                    let mut out = Writer::default();
                    frame::put_outbound(&mut out, &outbound);
                    out.0
                })
            }
            Kind::ParseResponse | Kind::ParseEmbeddingResponse | Kind::ClassifyError => {
                self.upstream_answer(kind, payload)
            }
            Kind::NativeRequest => serde_json::from_slice::<NativeQuery>(payload)
                .map_err(|e| ProviderError::plugin_fault(format!("unreadable native query: {e}")))
                .and_then(|q| self.provider.native_request(q.protocol, &q.model, q.stream))
                .map(|native| serde_json::to_vec(&native).unwrap_or_default()),
            Kind::HealthRequest => self.provider.health_request().map(|outbound| {
                let mut out = Writer::default();
                match outbound {
                    Some(outbound) => {
                        out.u8(1);
                        frame::put_outbound(&mut out, &outbound);
                    }
                    None => {
                        out.u8(0);
                    }
                }
                out.0
            }),
            Kind::Feed => return Some(self.feed(payload)),
            Kind::DropDecoder => {
                if let Ok(id) = Reader(payload).u64() {
                    self.decoders.remove(&id);
                }
                return None;
            }
            Kind::Init | Kind::Ok | Kind::Err => Err(ProviderError::plugin_fault(format!(
                "the worker got an unexpected {kind:?} frame"
            ))),
        };
        Some(match result {
            Ok(payload) => (Kind::Ok, payload),
            Err(error) => (Kind::Err, error_json(&error)),
        })
    }

    fn upstream_answer(&self, kind: Kind, payload: &[u8]) -> Result<Vec<u8>, ProviderError> {
        let (status, headers, body) = frame::get_response(&mut Reader(payload))
            .map_err(|e| ProviderError::plugin_fault(e.to_string()))?;
        let views: Vec<provider_sdk::Header<'_>> = headers
            .iter()
            .map(|(n, v)| provider_sdk::Header::new(n, v))
            .collect();
        let response = HttpResponse::new(status, &views, body);
        let json = match kind {
            Kind::ParseResponse => serde_json::to_vec(&self.provider.parse_response(&response)?),
            Kind::ParseEmbeddingResponse => {
                serde_json::to_vec(&self.provider.parse_embedding_response(&response)?)
            }
            _ => serde_json::to_vec(&self.provider.classify_error(&response)),
        };
        json.map_err(|e| ProviderError::plugin_fault(format!("unencodable answer: {e}")))
    }

    /// A decoder call: feed (then, at the stream's terminator, finish) or finish;
    /// answers a completion flag and the events, or the failure with the events
    /// decoded before it.
    fn feed(&mut self, payload: &[u8]) -> (Kind, Vec<u8>) {
        let mut events: Vec<StreamEvent> = Vec::new();
        let result = self.decode(payload, &mut events);
        match result {
            Ok(complete) => {
                let mut out = Writer::default();
                out.u8(u8::from(complete));
                serde_json::to_writer(&mut out.0, &events).unwrap_or_default();
                (Kind::Ok, out.0)
            }
            Err(error) => {
                let failure = serde_json::json!({"error": error, "events": events});
                (Kind::Err, serde_json::to_vec(&failure).unwrap_or_default())
            }
        }
    }

    fn decode(
        &mut self,
        payload: &[u8],
        events: &mut Vec<StreamEvent>,
    ) -> Result<bool, ProviderError> {
        let mut input = Reader(payload);
        let fault = |e: frame::FrameError| ProviderError::plugin_fault(e.to_string());
        let id = input.u64().map_err(fault)?;
        let flags = input.u8().map_err(fault)?;
        let bytes = input.rest();
        if flags & FEED_OPEN != 0 {
            if self.decoders.len() >= MAX_DECODERS {
                return Err(ProviderError::plugin_fault(format!(
                    "the worker holds {MAX_DECODERS} open stream decoders already"
                )));
            }
            let decoder = self.provider.stream_decoder()?;
            self.decoders.insert(id, decoder);
        }
        let Some(decoder) = self.decoders.get_mut(&id) else {
            return Err(ProviderError::plugin_fault(
                "this stream's decoder is not in the worker (it was restarted)",
            ));
        };
        if flags & FEED_FINISH != 0 {
            return decoder.finish(events).map(|()| false);
        }
        decoder.feed(bytes, events)?;
        if decoder.is_complete() {
            decoder.finish(events)?;
            return Ok(true);
        }
        Ok(false)
    }
}

fn error_json(error: &ProviderError) -> Vec<u8> {
    serde_json::to_vec(error).unwrap_or_default()
}
