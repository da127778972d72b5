//! The wire between the host and a worker process: length-prefixed frames on a Unix
//! socket, each `len: u32 LE | kind: u8 | id: u64 LE | payload` (`len` counts the
//! payload). Plugin calls already cross the ABI as JSON text and byte slices, so a
//! payload is those bytes with a few fixed-width fields in front, never re-encoded
//! (an HTTP body stays raw bytes, not a JSON array of numbers).

use std::io::{self, Read, Write};

use provider_sdk::{HttpRequest, LocalResponse, Outbound};

/// The bytes in front of every payload.
pub const HEADER_BYTES: usize = 13;

/// The largest payload either side accepts: an upstream answer the host reads whole
/// is at most 32 MiB (`transport::RESPONSE_BODY_CAP`), and the plugin's answer to it
/// must fit too. A peer announcing more is broken or hostile.
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// What a frame from the host asks the worker to do (and what the worker answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The first frame: the provider's config as JSON; answered with the plugin's auth
    /// scheme as JSON.
    Init = 1,
    /// `build_request`: the canonical request as JSON; answered with an [`Outbound`].
    BuildRequest = 2,
    /// `build_embedding_request`: the request as JSON; answered with an [`Outbound`].
    BuildEmbeddingRequest = 3,
    /// `parse_response`: an upstream answer (see [`put_response`]); answered with a
    /// `ChatResponse` as JSON.
    ParseResponse = 4,
    /// `parse_embedding_response`: an upstream answer; answered with an
    /// `EmbeddingResponse` as JSON.
    ParseEmbeddingResponse = 5,
    /// `classify_error`: an upstream answer; answered with a `ProviderError` as JSON.
    ClassifyError = 6,
    /// `native_request`: a `NativeQuery` as JSON; answered with an optional
    /// `NativeRequest` as JSON.
    NativeRequest = 7,
    /// `health_request`: no payload; answered with a flag and an [`Outbound`].
    HealthRequest = 8,
    /// A stream decoder call: decoder id, flags ([`FEED_OPEN`], [`FEED_FINISH`]), bytes;
    /// answered with a completion flag and the events as JSON.
    Feed = 9,
    /// Forget a decoder (the stream ended or was dropped). Not answered.
    DropDecoder = 10,
    /// The call succeeded; the payload is its answer.
    Ok = 128,
    /// The call failed; the payload is a `ProviderError` as JSON (for [`Kind::Feed`],
    /// with the events decoded before the failure).
    Err = 129,
}

impl Kind {
    fn from_u8(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Init,
            2 => Kind::BuildRequest,
            3 => Kind::BuildEmbeddingRequest,
            4 => Kind::ParseResponse,
            5 => Kind::ParseEmbeddingResponse,
            6 => Kind::ClassifyError,
            7 => Kind::NativeRequest,
            8 => Kind::HealthRequest,
            9 => Kind::Feed,
            10 => Kind::DropDecoder,
            128 => Kind::Ok,
            129 => Kind::Err,
            _ => return None,
        })
    }
}

/// A [`Kind::Feed`] flag: the first call of this decoder; the worker creates it.
pub const FEED_OPEN: u8 = 1;
/// A [`Kind::Feed`] flag: the body ended; finish the decoder instead of feeding it.
pub const FEED_FINISH: u8 = 2;

/// Why a frame or a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed or closed.
    #[error("the worker socket: {0}")]
    Io(#[from] io::Error),
    /// A length past [`MAX_PAYLOAD`].
    #[error("a frame of {0} bytes announced, more than the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    /// A kind byte no side sends.
    #[error("a frame of unknown kind {0}")]
    UnknownKind(u8),
    /// A payload shorter than its fields say.
    #[error("a truncated {0} in a frame")]
    Truncated(&'static str),
}

/// One frame, read.
#[derive(Debug)]
pub struct Frame {
    /// What it asks or answers.
    pub kind: Kind,
    /// The call it belongs to (chosen by the host; a reply carries its call's id).
    pub id: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Appends one frame to `out`.
pub fn encode(out: &mut Vec<u8>, kind: Kind, id: u64, payload: &[u8]) {
    out.reserve(HEADER_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Writes one frame.
pub fn write(out: &mut impl Write, kind: Kind, id: u64, payload: &[u8]) -> io::Result<()> {
    let mut header = [0u8; HEADER_BYTES];
    header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4] = kind as u8;
    header[5..].copy_from_slice(&id.to_le_bytes());
    out.write_all(&header)?;
    out.write_all(payload)
}

/// Reads one frame; `Ok(None)` at a clean end of the stream (before a header).
pub fn read(input: &mut impl Read) -> Result<Option<Frame>, FrameError> {
    let mut header = [0u8; HEADER_BYTES];
    let mut filled = 0;
    while filled < HEADER_BYTES {
        match input.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated("header")),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(len));
    }
    let kind = Kind::from_u8(header[4]).ok_or(FrameError::UnknownKind(header[4]))?;
    let id = u64::from_le_bytes(header[5..].try_into().expect("8 bytes"));
    let mut payload = vec![0u8; len];
    input.read_exact(&mut payload).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Truncated("payload"),
        _ => FrameError::Io(e),
    })?;
    Ok(Some(Frame { kind, id, payload }))
}

/// Builds a payload of fixed-width fields and length-prefixed byte strings.
#[derive(Debug, Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// One byte.
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }

    /// A `u16`, little-endian.
    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A `u32`, little-endian.
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A `u64`, little-endian.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// Bytes, prefixed with their length.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.u32(value.len() as u32);
        self.0.extend_from_slice(value);
        self
    }

    /// Name/value pairs, prefixed with their count.
    pub fn pairs<'a>(
        &mut self,
        pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        self.u32(pairs.len() as u32);
        for (name, value) in pairs {
            self.bytes(name.as_bytes()).bytes(value.as_bytes());
        }
        self
    }
}

/// Reads what a [`Writer`] wrote, failing on a short payload rather than panicking.
#[derive(Debug)]
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1, "byte")?[0])
    }

    /// A `u16`.
    pub fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(
            self.take(2, "u16")?.try_into().expect("2"),
        ))
    }

    /// A `u32`.
    pub fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(
            self.take(4, "u32")?.try_into().expect("4"),
        ))
    }

    /// A `u64`.
    pub fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(
            self.take(8, "u64")?.try_into().expect("8"),
        ))
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], FrameError> {
        let len = self.u32()? as usize;
        self.take(len, "byte string")
    }

    /// Length-prefixed UTF-8 text.
    pub fn str(&mut self) -> Result<&'a str, FrameError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| FrameError::Truncated("UTF-8 text"))
    }

    /// Counted name/value pairs.
    pub fn pairs(&mut self) -> Result<Vec<(String, String)>, FrameError> {
        let count = self.u32()? as usize;
        // Each pair takes at least 8 bytes: a count past that is a lie.
        if count > self.0.len() / 8 {
            return Err(FrameError::Truncated("pair list"));
        }
        (0..count)
            .map(|_| Ok((self.str()?.to_owned(), self.str()?.to_owned())))
            .collect()
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.0;
        self.0 = &[];
        rest
    }
}

/// An upstream answer for `parse_response`, `parse_embedding_response` and
/// `classify_error`: status, headers, body.
pub fn put_response(out: &mut Writer, status: u16, headers: &[(String, String)], body: &[u8]) {
    out.u16(status)
        .pairs(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    out.0.extend_from_slice(body);
}

/// An upstream answer as [`get_response`] reads it: status, headers, body.
pub type Response<'a> = (u16, Vec<(String, String)>, &'a [u8]);

/// Reads what [`put_response`] wrote.
pub fn get_response<'a>(input: &mut Reader<'a>) -> Result<Response<'a>, FrameError> {
    Ok((input.u16()?, input.pairs()?, input.rest()))
}

/// A plugin's outbound request.
pub fn put_outbound(out: &mut Writer, outbound: &Outbound) {
    fn pairs(h: &[(String, String)]) -> impl ExactSizeIterator<Item = (&str, &str)> {
        h.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
    match outbound {
        Outbound::Http(http) => {
            out.u8(0)
                .bytes(http.method.as_bytes())
                .bytes(http.url.as_bytes())
                .pairs(pairs(&http.headers))
                .bytes(&http.body);
        }
        Outbound::Local(local) => {
            out.u8(1)
                .u16(local.status)
                .pairs(pairs(&local.headers))
                .u32(local.interval_ms)
                .u32(local.chunks.len() as u32);
            for chunk in &local.chunks {
                out.bytes(chunk);
            }
        }
    }
}

/// Reads what [`put_outbound`] wrote.
pub fn get_outbound(input: &mut Reader<'_>) -> Result<Outbound, FrameError> {
    match input.u8()? {
        0 => Ok(Outbound::Http(HttpRequest {
            method: input.str()?.to_owned(),
            url: input.str()?.to_owned(),
            headers: input.pairs()?,
            body: input.bytes()?.to_vec(),
        })),
        1 => {
            let status = input.u16()?;
            let headers = input.pairs()?;
            let interval_ms = input.u32()?;
            let count = input.u32()? as usize;
            if count > input.0.len() / 4 {
                return Err(FrameError::Truncated("chunk list"));
            }
            let chunks = (0..count)
                .map(|_| input.bytes().map(<[u8]>::to_vec))
                .collect::<Result<_, _>>()?;
            Ok(Outbound::Local(LocalResponse {
                status,
                headers,
                chunks,
                interval_ms,
            }))
        }
        _ => Err(FrameError::Truncated("outbound tag")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reads_back_as_written() {
        let mut wire = Vec::new();
        encode(&mut wire, Kind::BuildRequest, 7, b"{\"model\":\"m\"}");
        write(&mut wire, Kind::Ok, 8, b"").unwrap();
        let mut input = &wire[..];
        let first = read(&mut input).unwrap().unwrap();
        assert_eq!(
            (first.kind, first.id, &first.payload[..]),
            (Kind::BuildRequest, 7, &b"{\"model\":\"m\"}"[..])
        );
        let second = read(&mut input).unwrap().unwrap();
        assert_eq!(
            (second.kind, second.id, second.payload.len()),
            (Kind::Ok, 8, 0)
        );
        assert!(read(&mut input).unwrap().is_none(), "a clean end");
    }

    #[test]
    fn a_length_past_the_limit_is_refused_before_anything_is_allocated() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&u32::MAX.to_le_bytes());
        wire.push(Kind::Ok as u8);
        wire.extend_from_slice(&1u64.to_le_bytes());
        assert!(matches!(
            read(&mut &wire[..]),
            Err(FrameError::TooLarge(n)) if n == u32::MAX as usize
        ));
    }

    #[test]
    fn a_cut_frame_and_an_unknown_kind_are_errors() {
        let mut wire = Vec::new();
        encode(&mut wire, Kind::Ok, 1, b"abcdef");
        assert!(matches!(
            read(&mut &wire[..wire.len() - 1]),
            Err(FrameError::Truncated("payload"))
        ));
        assert!(matches!(
            read(&mut &wire[..5]),
            Err(FrameError::Truncated("header"))
        ));
        wire[4] = 77;
        assert!(matches!(
            read(&mut &wire[..]),
            Err(FrameError::UnknownKind(77))
        ));
    }

    #[test]
    fn outbound_requests_keep_their_bytes() {
        let http = Outbound::Http(HttpRequest {
            method: "POST".into(),
            url: "https://api.example/v1/chat".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: vec![0, 159, 146, 150, b'{'],
        });
        let local = Outbound::Local(LocalResponse {
            status: 200,
            headers: vec![],
            chunks: vec![b"data: 1\n\n".to_vec(), b"data: [DONE]\n\n".to_vec()],
            interval_ms: 5,
        });
        for outbound in [http, local] {
            let mut out = Writer::default();
            put_outbound(&mut out, &outbound);
            assert_eq!(get_outbound(&mut Reader(&out.0)).unwrap(), outbound);
            // Every cut is an error, never a panic.
            for cut in 0..out.0.len() {
                assert!(get_outbound(&mut Reader(&out.0[..cut])).is_err());
            }
        }
    }

    #[test]
    fn an_upstream_answer_keeps_status_headers_and_body() {
        let mut out = Writer::default();
        let headers = vec![("x-request-id".to_owned(), "abc".to_owned())];
        put_response(&mut out, 429, &headers, b"{\"error\":1}");
        let (status, read_headers, body) = get_response(&mut Reader(&out.0)).unwrap();
        assert_eq!(
            (status, read_headers, body),
            (429, headers, &b"{\"error\":1}"[..])
        );
    }
}
