//! What the host reads itself from a stream in the client's own protocol (exact
//! passthrough). Such a stream is relayed byte for byte, so the pipeline needs only
//! what it counts and decides on: that an answer started (the attempt succeeded), its
//! usage, its finish, and whether it ended whole. Reading them here instead of through
//! the plugin's decoder saves, per event, a parse into JSON values, canonical events
//! and their JSON across the plugin boundary and back (about 3 µs an event on the bench
//! machine, a sixth of the host's CPU per passed-through stream).
//!
//! The plugin stays the authority on its provider's streams: only plain events are read
//! here. At the first event the host does not read itself (an error, a usage figure it
//! does not know, anything that does not parse as a plain event of its protocol), or a
//! stream that ends before its terminator, the pipeline hands the stream to the
//! plugin's decoder, which reads it from the start (see `upstream::Decoding`), so the
//! plugin sees every byte in order and its verdict is the one that counts.
//!
//! Sans I/O: [`Watch::feed`] takes bytes split anywhere and says what it saw. This
//! module frames the server-sent events; `chat` and `messages` read them.

mod chat;
mod messages;

use provider_sdk::{Protocol, StreamEvent};

/// What a piece of the stream left the watcher with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Read; the stream goes on.
    More,
    /// The stream's terminator: the answer is whole, and nothing after it is read.
    Done,
    /// An event the host does not read itself: the plugin's decoder reads the stream,
    /// with what it makes of the bytes from `at` (counted from the stream's first byte)
    /// on being what counts. The events before `at` were read here already.
    Unusual {
        /// Where the event the host does not read starts.
        at: u64,
    },
}

/// What one event's data says to a protocol's reader.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// Read; the stream goes on.
    More,
    /// The protocol's terminator.
    Done,
    /// Not an event the host reads itself.
    Unusual,
}

/// Reads a passed-through stream of one protocol; see the module docs.
#[derive(Debug)]
pub(super) struct Watch {
    /// Bytes of the stream taken in so far.
    taken: u64,
    /// Where the event being read starts.
    event_start: u64,
    /// The start of a line that continues in the next piece.
    line: Vec<u8>,
    /// The current event's `data:` text, once it has one.
    data: Vec<u8>,
    has_data: bool,
    reader: Reader,
}

/// The protocol side: what the events so far said.
#[derive(Debug)]
enum Reader {
    Chat(chat::Chat),
    Messages(messages::Messages),
}

impl Watch {
    /// A watcher for streams in `protocol`, when the host reads that protocol's
    /// streams itself (OpenAI chat completions, Anthropic Messages).
    pub(super) fn for_protocol(protocol: Protocol) -> Option<Watch> {
        let reader = match protocol {
            Protocol::OpenAiChat => Reader::Chat(chat::Chat::default()),
            Protocol::AnthropicMessages => Reader::Messages(messages::Messages::default()),
            _ => return None,
        };
        Some(Watch {
            taken: 0,
            event_start: 0,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            reader,
        })
    }

    /// Takes in the next piece of the stream; the events read from it are appended to
    /// `out`. After [`Seen::Done`] or [`Seen::Unusual`] nothing more is fed.
    pub(super) fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) -> Seen {
        let mut rest = bytes;
        while let Some(at) = memchr::memchr(b'\n', rest) {
            let line_end = self.taken + at as u64 + 1;
            let seen = if self.line.is_empty() {
                self.on_line(&rest[..at], line_end, out)
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..at]);
                let seen = self.on_line(&line, line_end, out);
                line.clear();
                self.line = line;
                seen
            };
            self.taken = line_end;
            rest = &rest[at + 1..];
            if seen != Seen::More {
                return seen;
            }
        }
        self.line.extend_from_slice(rest);
        self.taken += rest.len() as u64;
        Seen::More
    }

    /// Whether the stream ended whole where it was fed up to: its protocol says the
    /// answer ended, and no event was left half-read. A stream that did not is the
    /// plugin's to judge.
    pub(super) fn whole(&self) -> bool {
        let ended = match &self.reader {
            Reader::Chat(chat) => chat.ended(),
            Reader::Messages(messages) => messages.ended(),
        };
        ended && self.line.is_empty() && !self.has_data
    }

    /// Where the event being read starts: the plugin reads from there when it takes
    /// over at the end.
    pub(super) fn event_start(&self) -> u64 {
        self.event_start
    }

    /// One line, without its `\n`; `line_end` is where the next one starts.
    fn on_line(&mut self, line: &[u8], line_end: u64, out: &mut Vec<StreamEvent>) -> Seen {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // A blank line ends the event.
            let read = match std::mem::take(&mut self.has_data) {
                true => {
                    let data = std::mem::take(&mut self.data);
                    let read = self.on_data(&data, out);
                    self.data = data;
                    self.data.clear();
                    read
                }
                false => Read::More,
            };
            return match read {
                Read::More => {
                    self.event_start = line_end;
                    Seen::More
                }
                Read::Done => Seen::Done,
                Read::Unusual => self.unusual(),
            };
        }
        if line[0] == b':' {
            return Seen::More; // a comment (keep-alive)
        }
        if let Some(text) = line.strip_prefix(b"data:") {
            // One `data:` line per event is what both protocols send; more are joined
            // by the plugin's SSE parser.
            if self.has_data {
                return self.unusual();
            }
            self.has_data = true;
            self.data.extend_from_slice(text);
            return Seen::More;
        }
        // Anthropic names every event; its data says the same in `type`, which is what
        // is read. OpenAI names none: a named event there is the plugin's to read.
        match (&self.reader, line.starts_with(b"event:")) {
            (Reader::Messages(_), true) => Seen::More,
            // `id:`, `retry:`, an `event:` line in a chat stream, anything else.
            _ => self.unusual(),
        }
    }

    fn unusual(&self) -> Seen {
        Seen::Unusual {
            at: self.event_start,
        }
    }

    /// One event's data.
    fn on_data(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Read {
        let data = data.trim_ascii();
        if data.is_empty() {
            return Read::More;
        }
        match &mut self.reader {
            Reader::Chat(chat) => chat.on_data(data, out),
            Reader::Messages(messages) => messages.on_data(data, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in pieces cut at `cuts`; what the watcher saw last, and its events.
    pub(super) fn watch(
        protocol: Protocol,
        stream: &str,
        cuts: &[usize],
    ) -> (Seen, Vec<StreamEvent>, Watch) {
        let mut watch = Watch::for_protocol(protocol).unwrap();
        let mut events = Vec::new();
        let mut from = 0;
        let mut seen = Seen::More;
        for &to in cuts.iter().chain([&stream.len()]) {
            seen = watch.feed(&stream.as_bytes()[from..to], &mut events);
            from = to;
            if seen != Seen::More {
                break;
            }
        }
        (seen, events, watch)
    }

    #[test]
    fn protocols_without_a_reader_here_are_left_to_the_plugin() {
        assert!(Watch::for_protocol(Protocol::OpenAiChat).is_some());
        assert!(Watch::for_protocol(Protocol::AnthropicMessages).is_some());
        assert!(Watch::for_protocol(Protocol::OpenAiEmbeddings).is_none());
    }
}
