//! One attempt's I/O: the plugin builds the upstream request, the transport sends it,
//! the plugin reads the answer back, whole or as a stream of events.

use std::{collections::VecDeque, sync::Arc, time::Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use provider_sdk::{
    ChatResponse, EmbeddingResponse, ErrorKind, HttpRequest, Outbound, Protocol, ProviderError,
    StreamEvent,
};

use super::native_stream::{Seen, Watch};
use crate::{
    config::StreamLimits,
    plugin::Decoder,
    registry::ReadyProvider,
    transport::{self, BodyStream, Transport, UpstreamResponse, ERROR_BODY_CAP, RESPONSE_BODY_CAP},
};

/// What one target is sent: the canonical request for the plugin to translate, or the
/// client's own body for an upstream that speaks the client's protocol.
#[derive(Debug)]
pub(super) enum Prepared {
    /// The canonical request as JSON, model set to the target's.
    Canonical(String),
    /// The client's body, model rewritten, as the plugin's native request says.
    Native(HttpRequest),
    /// A canonical embeddings request as JSON, model set to the target's.
    Embedding(String),
}

impl Prepared {
    /// Whether the upstream's bytes are in the client's own protocol.
    pub(super) fn is_native(&self) -> bool {
        matches!(self, Prepared::Native(_))
    }
}

/// Sends the request to its provider and returns the upstream response, failing on
/// a non-2xx status with the plugin's classification of it.
pub(super) async fn send(
    transport: &Transport,
    provider: &Arc<ReadyProvider>,
    prepared: &Prepared,
    deadline: Instant,
) -> Result<UpstreamResponse, ProviderError> {
    // Plugin calls have a deadline, in-process and in workers (see crate::plugin).
    let outbound = match prepared {
        Prepared::Canonical(json) => provider.plugin.build_request(json).await?,
        Prepared::Native(http) => Outbound::Http(http.clone()),
        Prepared::Embedding(json) => provider.plugin.build_embedding_request(json).await?,
    };
    let response = transport.send(provider, outbound, deadline).await?;
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let (body, _) = transport::read_capped(response.body, ERROR_BODY_CAP).await?;
    Err(provider
        .plugin
        .classify_error(response.status, response.headers, body)
        .await)
}

/// Reads a whole answer (up to [`RESPONSE_BODY_CAP`]) and lets the plugin parse it;
/// the bytes come back too, for a caller that speaks the upstream's protocol. An answer
/// in the client's own `native` protocol that the host can read itself skips the plugin
/// (see [`super::native_answer`]).
pub(super) async fn read_answer(
    provider: &Arc<ReadyProvider>,
    response: UpstreamResponse,
    native: Option<Protocol>,
) -> Result<(ChatResponse, Bytes), ProviderError> {
    let (body, cut) = transport::read_capped(response.body, RESPONSE_BODY_CAP).await?;
    if cut {
        return Err(ProviderError::new(
            ErrorKind::ProviderService,
            format!("the upstream answer is larger than {RESPONSE_BODY_CAP} bytes"),
        ));
    }
    if let Some(read) = native.and_then(|protocol| super::native_answer::read(protocol, &body)) {
        return Ok((read, Bytes::from(body)));
    }
    let (parsed, body) = provider
        .plugin
        .parse_response(response.status, response.headers, body)
        .await?;
    Ok((parsed, Bytes::from(body)))
}

/// Reads a whole embeddings answer (up to [`RESPONSE_BODY_CAP`]) and lets the plugin
/// parse it; the bytes come back too, for a caller that speaks the upstream's protocol.
pub(super) async fn read_embeddings(
    provider: &Arc<ReadyProvider>,
    response: UpstreamResponse,
) -> Result<(EmbeddingResponse, Bytes), ProviderError> {
    let (body, cut) = transport::read_capped(response.body, RESPONSE_BODY_CAP).await?;
    if cut {
        return Err(ProviderError::new(
            ErrorKind::ProviderService,
            format!("the upstream answer is larger than {RESPONSE_BODY_CAP} bytes"),
        ));
    }
    let (parsed, body) = provider
        .plugin
        .parse_embedding_response(response.status, response.headers, body)
        .await?;
    Ok((parsed, Bytes::from(body)))
}

/// An upstream body run through the plugin's stream decoder, event by event (or, for a
/// passed-through stream, read by the host until something needs the plugin).
pub(super) struct Decoding {
    /// The plugin version this stream started on, kept alive until it ends.
    provider: Arc<ReadyProvider>,
    body: BodyStream,
    reader: Reader,
    pending: VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    /// Delivered after the events decoded before it.
    failure: Option<ProviderError>,
    done: bool,
    limits: StreamLimits,
    sizes: Sizes,
    /// A body item taken while gathering what had already arrived, delivered next.
    peeked: Option<Option<Result<Bytes, ProviderError>>>,
}

/// Who reads a stream's events.
enum Reader {
    /// The plugin's decoder, in this process or in a worker.
    Plugin(Decoder),
    /// The host, for a passed-through stream (see `native_stream`). The bytes read so
    /// far are kept so that the plugin can read them all when it takes over.
    Host { watch: Watch, read: Vec<u8> },
}

/// The most bytes of a stream the host reads itself, keeping them for a hand-over;
/// past that the plugin takes over (so a long stream holds no more than this).
const HOST_READ_BYTES: usize = 128 * 1024;

/// The most bytes gathered into one decoder call: what arrived together goes to the
/// plugin in one call (one hop to a plugin-call thread, not one per network read).
const GATHER_BYTES: usize = 64 * 1024;

/// How far into the current line, the current event and the stream the body is.
#[derive(Debug, Default)]
struct Sizes {
    line: usize,
    event: usize,
    total: u64,
}

impl Sizes {
    /// Takes in `bytes`; names the cap they break, if any. A line of only `\r` is blank.
    ///
    /// Line by line with SIMD searches rather than byte by byte: this runs over every
    /// byte of every stream (a branch per byte was ~1% of the host's CPU per stream).
    fn take(&mut self, bytes: &[u8], limits: &StreamLimits) -> Option<String> {
        self.total += bytes.len() as u64;
        if self.total > limits.max_stream_bytes {
            return Some(format!(
                "the stream is longer than {} bytes (stream_limits.max_stream_bytes)",
                limits.max_stream_bytes
            ));
        }
        let mut rest = bytes;
        loop {
            let (text, ended) = match memchr::memchr(b'\n', rest) {
                Some(at) => (&rest[..at], Some(at)),
                None => (rest, None),
            };
            // `\r` counts for nothing: a line of only `\r` is blank.
            let counted = text.len() - memchr::memchr_iter(b'\r', text).count();
            self.line += counted;
            self.event += counted;
            if self.line > limits.max_line_bytes {
                return Some(format!(
                    "a line of the stream is longer than {} bytes (stream_limits.max_line_bytes)",
                    limits.max_line_bytes
                ));
            }
            if self.event > limits.max_event_bytes {
                return Some(format!(
                    "an event of the stream is longer than {} bytes (stream_limits.max_event_bytes)",
                    limits.max_event_bytes
                ));
            }
            let at = ended?;
            // A blank line ends the event; any other line only itself.
            match self.line {
                0 => self.event = 0,
                _ => self.line = 0,
            }
            rest = &rest[at + 1..];
        }
    }
}

impl Decoding {
    /// Starts decoding `response`: by the host while `watch` reads it, by a fresh
    /// decoder of `provider`'s plugin without one.
    pub(super) fn start(
        provider: Arc<ReadyProvider>,
        response: UpstreamResponse,
        limits: StreamLimits,
        watch: Option<Watch>,
    ) -> Result<Decoding, ProviderError> {
        let reader = match watch {
            Some(watch) => Reader::Host {
                watch,
                read: Vec::new(),
            },
            None => Reader::Plugin(provider.plugin.stream_decoder()?),
        };
        Ok(Decoding {
            provider,
            body: response.body,
            reader,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            failure: None,
            done: false,
            limits,
            sizes: Sizes::default(),
            peeked: None,
        })
    }

    /// Puts an event back in front, to be delivered next.
    pub(super) fn unread(&mut self, event: StreamEvent) {
        self.pending.push_front(event);
    }

    /// The next event, or the failure that ends the stream (key redacted).
    pub(super) async fn next(&mut self) -> Option<Result<StreamEvent, ProviderError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if let Some(failure) = self.failure.take() {
                return Some(Err(redact(failure, &self.provider)));
            }
            if self.done {
                return None;
            }
            self.read().await;
        }
    }

    /// The next piece of the upstream body as it arrived, with the events decoded from
    /// it (for a caller that relays the bytes and only watches the events); then the
    /// failure that ends the stream, if any.
    pub(super) async fn next_piece(
        &mut self,
    ) -> Option<Result<(Bytes, Vec<StreamEvent>), ProviderError>> {
        if !self.pending.is_empty() {
            return Some(Ok((Bytes::new(), self.pending.drain(..).collect())));
        }
        if let Some(failure) = self.failure.take() {
            return Some(Err(redact(failure, &self.provider)));
        }
        if self.done {
            return None;
        }
        let bytes = self.read().await;
        Some(Ok((bytes, self.pending.drain(..).collect())))
    }

    /// Reads one piece of the body into the decoder; its events go to `pending`, a
    /// failure is kept for after them.
    async fn read(&mut self) -> Bytes {
        let next = match self.peeked.take() {
            Some(item) => item,
            None => self.body.next().await,
        };
        let (bytes, step) = match next {
            Some(Ok(first)) => {
                let bytes = self.gather(first);
                if let Some(broken) = self.sizes.take(&bytes, &self.limits) {
                    // Neither decoded nor relayed: the stream ends here, and dropping
                    // the body lets the upstream go.
                    tracing::warn!(provider = %self.provider.name, "{broken}: stream cut");
                    self.done = true;
                    self.body = Box::pin(futures_util::stream::empty());
                    self.failure = Some(ProviderError::new(ErrorKind::ProviderService, broken));
                    return Bytes::new();
                }
                let step = self.decode(Some(bytes.clone())).await;
                // At its terminator the answer is whole: end here rather than wait for
                // an upstream that keeps the connection open (it would end in an idle
                // timeout), and drop the body so the connection is let go.
                if matches!(step, Ok(true)) {
                    self.done = true;
                    self.body = Box::pin(futures_util::stream::empty());
                }
                (bytes, step.map(drop))
            }
            Some(Err(e)) => (Bytes::new(), Err(e)),
            None => {
                self.done = true;
                (Bytes::new(), self.decode(None).await.map(drop))
            }
        };
        self.pending.extend(self.scratch.drain(..));
        if let Err(error) = step {
            self.done = true;
            self.failure = Some(error);
        }
        bytes
    }

    /// `first` and whatever else of the body has already arrived (up to
    /// [`GATHER_BYTES`]), as one piece; an item that is not more bytes waits in
    /// `peeked`.
    fn gather(&mut self, first: Bytes) -> Bytes {
        use futures_util::FutureExt;
        let mut gathered: Option<bytes::BytesMut> = None;
        while gathered.as_ref().map_or(first.len(), |g| g.len()) < GATHER_BYTES {
            match self.body.next().now_or_never() {
                None => break,
                Some(Some(Ok(more))) => {
                    gathered
                        .get_or_insert_with(|| bytes::BytesMut::from(&first[..]))
                        .extend_from_slice(&more);
                }
                Some(other) => {
                    self.peeked = Some(other);
                    break;
                }
            }
        }
        match gathered {
            Some(all) => all.freeze(),
            None => first,
        }
    }

    /// Feeds `bytes` to the decoder (or finishes it, for `None`); its events land in
    /// `scratch`. `Ok(true)` when the decoder saw its stream's terminator after this
    /// piece: it is then finished too.
    ///
    /// In-process, inline, not on a plugin-call thread: a stream makes a decoder call
    /// per network read, and a hop to another thread and back for each cost more than
    /// the stream itself (measured: ~480 µs a 10-chunk stream with hops against ~330 µs
    /// without, a third of the samples in context switches). The calls made once per
    /// request (build_request, parse_response, classify_error) keep their watchdog; a
    /// decoder that never returns from `feed` would hold a runtime worker (see
    /// docs/architecture.md, "Containment"). In process isolation, one round trip to
    /// the worker that holds the decoder, with the call deadline.
    async fn decode(&mut self, bytes: Option<Bytes>) -> Result<bool, ProviderError> {
        let from = match &mut self.reader {
            Reader::Plugin(decoder) => {
                return decoder.decode(bytes.as_deref(), &mut self.scratch).await
            }
            Reader::Host { watch, read } => match &bytes {
                Some(piece) => {
                    read.extend_from_slice(piece);
                    match watch.feed(piece, &mut self.scratch) {
                        Seen::Done => return Ok(true),
                        Seen::More if read.len() <= HOST_READ_BYTES => return Ok(false),
                        Seen::More => watch.event_start(),
                        Seen::Unusual { at } => at,
                    }
                }
                None if watch.whole() => return Ok(false),
                None => watch.event_start(),
            },
        };
        let complete = self.hand_over(from).await?;
        match bytes {
            Some(_) => Ok(complete),
            None if complete => Ok(false),
            None => match &mut self.reader {
                Reader::Plugin(decoder) => decoder.decode(None, &mut self.scratch).await,
                Reader::Host { .. } => unreachable!("handed over"),
            },
        }
    }

    /// The plugin's decoder takes over from the host: it reads every byte so far, and
    /// what it makes of those from `from` on is what counts (the host read the events
    /// before, and gave what they said already). `Ok(true)` when it saw the
    /// terminator.
    async fn hand_over(&mut self, from: u64) -> Result<bool, ProviderError> {
        let decoder = self.provider.plugin.stream_decoder()?;
        let Reader::Host { read, .. } =
            std::mem::replace(&mut self.reader, Reader::Plugin(decoder))
        else {
            return Ok(false);
        };
        let Reader::Plugin(decoder) = &mut self.reader else {
            unreachable!("just set")
        };
        let (before, after) = read.split_at((from as usize).min(read.len()));
        tracing::debug!(
            provider = %self.provider.name,
            at = from,
            "the plugin's decoder reads the rest of a passed-through stream"
        );
        let mut already_given = Vec::new();
        if !before.is_empty() && decoder.decode(Some(before), &mut already_given).await? {
            return Ok(true);
        }
        match after.is_empty() {
            true => Ok(false),
            false => decoder.decode(Some(after), &mut self.scratch).await,
        }
    }
}

/// Upstreams sometimes quote the key they were sent (escaped in JSON, or in a URL);
/// it never goes further.
pub(super) fn redact(mut error: ProviderError, provider: &ReadyProvider) -> ProviderError {
    error.message = transport::redactor_for(provider).redact(&error.message);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(line: usize, event: usize) -> StreamLimits {
        StreamLimits {
            max_line_bytes: line,
            max_event_bytes: event,
            ..StreamLimits::default()
        }
    }

    /// Feeds `pieces` in order; the piece index at which a cap broke, if one did.
    fn broken_at(pieces: &[&[u8]], limits: &StreamLimits) -> Option<(usize, String)> {
        let mut sizes = Sizes::default();
        pieces
            .iter()
            .enumerate()
            .find_map(|(i, piece)| sizes.take(piece, limits).map(|why| (i, why)))
    }

    #[test]
    fn a_line_is_measured_across_pieces_and_crlf_and_blank_lines_count_nothing() {
        let caps = limits(10, 100);
        assert_eq!(broken_at(&[b"data: 1234", b"\r\n\r\n"], &caps), None);
        let (at, why) = broken_at(&[b"data: 12", b"345\r\n"], &caps).unwrap();
        assert_eq!(at, 1);
        assert!(why.contains("max_line_bytes"), "{why}");
    }

    #[test]
    fn an_event_is_its_lines_until_a_blank_one() {
        let caps = limits(100, 20);
        // 2 × 10 bytes, then a blank line: the next event starts from nothing.
        let fits: &[&[u8]] = &[
            b"data: 1234\ndata: 5678\n\n",
            b"data: 1234\ndata: 5678\r\n\r\n",
        ];
        assert_eq!(broken_at(fits, &caps), None);
        let (at, why) = broken_at(&[b"data: 1234\n", b"data: 5678\ndata: 9\n\n"], &caps).unwrap();
        assert_eq!(at, 1);
        assert!(why.contains("max_event_bytes"), "{why}");
    }
}
