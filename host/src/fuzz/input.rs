//! One fuzzed upstream answer: which plugin call it is for, and its bytes; how it is
//! given to the plugin, and how it is saved so that it can be replayed.
//!
//! The saved form is readable lines, a blank line, then the body exactly as fed:
//!
//! ```text
//! provider-host fuzz input 1
//! call: stream
//! status: 200
//! header: content-type: text/event-stream
//! pieces: 17 40 3
//!
//! <body bytes>
//! ```

use std::{fs::File, path::Path};

use provider_sdk::{abi::load::PluginProvider, Header, HttpResponse, ProviderError, StreamEvent};

/// The first line of a saved input.
const MAGIC: &str = "provider-host fuzz input 1";

/// The largest saved input [`Input::decode`] reads back.
pub const MAX_SAVED_BYTES: u64 = 64 << 20;

/// The plugin call an input is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `parse_response`, with a 2xx status.
    ParseResponse,
    /// A fresh stream decoder: `feed` for each piece, then `finish`.
    Stream,
    /// `classify_error`, with a non-2xx status.
    ClassifyError,
}

impl Call {
    /// The name used in reports and saved inputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Call::ParseResponse => "parse_response",
            Call::Stream => "stream",
            Call::ClassifyError => "classify_error",
        }
    }

    fn parse(name: &str) -> Option<Call> {
        [Call::ParseResponse, Call::Stream, Call::ClassifyError]
            .into_iter()
            .find(|c| c.as_str() == name)
    }
}

/// An upstream answer as the fuzzer made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Which call it goes to.
    pub call: Call,
    /// The HTTP status it stands for.
    pub status: u16,
    /// Its headers (no CR or LF in them).
    pub headers: Vec<(String, String)>,
    /// For a stream, the lengths of the pieces the body is fed in (they add up to the
    /// body's length); empty otherwise.
    pub pieces: Vec<usize>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a saved input could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be read.
    #[error("cannot read the fuzz input {path}: {error}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not a saved fuzz input.
    #[error("{path} is not a saved fuzz input ({what}); it must start with `{MAGIC}`")]
    Format {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// How a plugin met an input, when it did not simply answer or return an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked(pub String);

impl Input {
    /// The saved form (see the module docs), written to `out` (cleared first).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        out.clear();
        let _ = writeln!(out, "{MAGIC}");
        let _ = writeln!(out, "call: {}", self.call.as_str());
        let _ = writeln!(out, "status: {}", self.status);
        for (name, value) in &self.headers {
            let _ = writeln!(out, "header: {name}: {value}");
        }
        if self.call == Call::Stream {
            let _ = write!(out, "pieces:");
            for piece in &self.pieces {
                let _ = write!(out, " {piece}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out);
        out.extend_from_slice(&self.body);
    }

    /// Reads a saved input back.
    pub fn decode_file(path: &Path) -> Result<Input, DecodeError> {
        let read = |error| DecodeError::Read {
            path: path.to_owned(),
            error,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_SAVED_BYTES {
            return Err(DecodeError::Format {
                path: path.to_owned(),
                what: format!("{size} bytes, more than the {MAX_SAVED_BYTES} a fuzz input has"),
            });
        }
        let bytes = std::fs::read(path).map_err(read)?;
        Input::decode(&bytes).map_err(|what| DecodeError::Format {
            path: path.to_owned(),
            what,
        })
    }

    fn decode(bytes: &[u8]) -> Result<Input, String> {
        let end = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or("no blank line before the body")?;
        let head = std::str::from_utf8(&bytes[..end]).map_err(|_| "its header is not UTF-8")?;
        let mut lines = head.lines();
        if lines.next() != Some(MAGIC) {
            return Err("wrong first line".to_owned());
        }
        let mut input = Input {
            call: Call::ParseResponse,
            status: 0,
            headers: Vec::new(),
            pieces: Vec::new(),
            body: bytes[end + 2..].to_vec(),
        };
        let mut call = None;
        for line in lines {
            let (key, value) = line
                .split_once(": ")
                .or_else(|| line.split_once(':'))
                .ok_or_else(|| format!("line `{line}` is not `key: value`"))?;
            match key {
                "call" => call = Call::parse(value),
                "status" => {
                    input.status = value
                        .parse()
                        .map_err(|_| format!("status `{value}` is not a number"))?
                }
                "header" => {
                    let (name, value) = value
                        .split_once(": ")
                        .ok_or_else(|| format!("header `{value}` is not `name: value`"))?;
                    input.headers.push((name.to_owned(), value.to_owned()));
                }
                "pieces" => {
                    input.pieces = value
                        .split_whitespace()
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .map_err(|_| format!("pieces `{value}` are not numbers"))?
                }
                other => return Err(format!("unknown line `{other}`")),
            }
        }
        input.call = call.ok_or("no known `call:` line")?;
        if input.call == Call::Stream && input.pieces.iter().sum::<usize>() != input.body.len() {
            return Err("its pieces do not add up to the body's length".to_owned());
        }
        Ok(input)
    }

    /// Gives the input to the plugin as the host would: `Err` only when the plugin
    /// panicked (an error it returns is a fine answer to garbage).
    pub fn run(&self, provider: &PluginProvider) -> Result<(), Panicked> {
        let headers: Vec<Header<'_>> = self
            .headers
            .iter()
            .map(|(n, v)| Header::new(n, v))
            .collect();
        let response = HttpResponse::new(self.status, &headers, &self.body);
        match self.call {
            Call::ParseResponse => panicked(provider.parse_response(&response).err()),
            Call::ClassifyError => panicked(Some(provider.classify_error(&response))),
            Call::Stream => {
                let mut decoder = match provider.stream_decoder() {
                    Ok(decoder) => decoder,
                    Err(e) => return panicked(Some(e)),
                };
                let mut events: Vec<StreamEvent> = Vec::new();
                let mut at = 0;
                for &len in &self.pieces {
                    let piece = &self.body[at..at + len];
                    at += len;
                    if piece.is_empty() {
                        continue;
                    }
                    // The pipeline's sequence: feed, ask whether complete, finish there.
                    if let Err(e) = decoder.feed(piece, &mut events) {
                        return panicked(Some(e));
                    }
                    events.clear();
                    if decoder.is_complete() {
                        break;
                    }
                }
                panicked(decoder.finish(&mut events).err())
            }
        }
    }
}

fn panicked(error: Option<ProviderError>) -> Result<(), Panicked> {
    match error {
        Some(e) if is_panic(&e) => Err(Panicked(e.message)),
        _ => Ok(()),
    }
}

/// Whether an error is the SDK's report of a panic caught at the boundary (a decoder
/// used after it panicked says so too).
fn is_panic(error: &ProviderError) -> bool {
    error.kind == provider_sdk::ErrorKind::PluginFault
        && (error.message.starts_with("plugin panicked")
            || error
                .message
                .starts_with("stream decoder used after it panicked"))
}

/// Keeps the input being tried in a file, written before each call, so that when the
/// plugin crashes or hangs the process the file holds the input that did it.
#[derive(Debug)]
pub struct Recorder {
    file: File,
    buffer: Vec<u8>,
}

impl Recorder {
    /// Records into `path` (created or truncated).
    pub fn create(path: &Path) -> std::io::Result<Recorder> {
        Ok(Recorder {
            file: File::create(path)?,
            buffer: Vec::new(),
        })
    }

    /// Writes `input` as the file's whole content. Two system calls, no flush: the
    /// bytes are in the kernel's page cache when the plugin runs, and survive the
    /// process.
    pub fn record(&mut self, input: &Input) -> std::io::Result<()> {
        input.encode_into(&mut self.buffer);
        #[cfg(unix)]
        std::os::unix::fs::FileExt::write_all_at(&self.file, &self.buffer, 0)?;
        #[cfg(not(unix))]
        {
            use std::io::{Seek, Write};
            self.file.seek(std::io::SeekFrom::Start(0))?;
            self.file.write_all(&self.buffer)?;
        }
        self.file.set_len(self.buffer.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_input_reads_back_byte_for_byte() {
        let input = Input {
            call: Call::Stream,
            status: 200,
            headers: vec![("content-type".to_owned(), "text/event-stream".to_owned())],
            pieces: vec![3, 0, 5],
            body: b"dat\x00\xff\n\nx".to_vec(),
        };
        let mut saved = Vec::new();
        input.encode_into(&mut saved);
        assert!(saved.starts_with(b"provider-host fuzz input 1\ncall: stream\n"));
        assert_eq!(Input::decode(&saved), Ok(input));
    }

    #[test]
    fn pieces_that_do_not_cover_the_body_are_refused() {
        let saved = b"provider-host fuzz input 1\ncall: stream\nstatus: 200\npieces: 1\n\nabc";
        assert_eq!(
            Input::decode(saved),
            Err("its pieces do not add up to the body's length".to_owned())
        );
    }
}
