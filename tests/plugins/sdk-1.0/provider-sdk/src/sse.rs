//! An incremental Server-Sent Events parser, for providers whose streams are SSE.
//!
//! It follows the WHATWG event-stream rules: `\n`, `\r\n` and `\r` line endings,
//! comments, multi-line `data`, a leading BOM; bytes may be fed in pieces that end
//! anywhere, including between `\r` and `\n` or inside a UTF-8 character.

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if the event had one.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
}

/// The parser's state between two pieces of input.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: String,
    event: Option<String>,
    id: Option<String>,
    has_data: bool,
    after_cr: bool,
    started: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `bytes`, calling `on_event` for every event they complete.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_event: impl FnMut(SseEvent)) {
        if !self.started && !bytes.is_empty() {
            self.started = true;
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, tail) = bytes.split_at(pos);
            let mut next = &tail[1..];
            if tail[0] == b'\r' {
                match next.first() {
                    Some(b'\n') => next = &next[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            if self.line.is_empty() {
                self.process_line(line, &mut on_event);
            } else {
                let mut whole = std::mem::take(&mut self.line);
                whole.extend_from_slice(line);
                self.process_line(&whole, &mut on_event);
                whole.clear();
                self.line = whole;
            }
            bytes = next;
        }
        self.line.extend_from_slice(bytes);
    }

    /// Ends the stream: a last line without its newline still counts, and an event
    /// whose closing blank line never came is dispatched rather than lost.
    pub fn finish(&mut self, mut on_event: impl FnMut(SseEvent)) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut on_event);
        }
        self.dispatch(&mut on_event);
    }

    /// Whether bytes of an unfinished event are buffered.
    pub fn has_pending(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(value).into_owned())
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent)) {
        if !self.has_data {
            self.event = None;
            return;
        }
        self.has_data = false;
        on_event(SseEvent {
            event: self.event.take(),
            data: std::mem::take(&mut self.data),
            id: self.id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for chunk in input.chunks(piece) {
            parser.feed(chunk, |e| events.push(e));
        }
        parser.finish(|e| events.push(e));
        events
    }

    #[test]
    fn events_are_the_same_however_the_bytes_are_split() {
        let input = "\u{FEFF}: comment\r\nevent: message_start\r\ndata: {\"a\":\"é\"}\r\n\r\ndata: line one\rdata:line two\r\rid: 7\ndata: x\n\n".as_bytes();
        let whole = parse_in_pieces(input, input.len());
        assert_eq!(
            whole,
            vec![
                SseEvent {
                    event: Some("message_start".into()),
                    data: "{\"a\":\"é\"}".into(),
                    id: None
                },
                SseEvent {
                    event: None,
                    data: "line one\nline two".into(),
                    id: None
                },
                SseEvent {
                    event: None,
                    data: "x".into(),
                    id: Some("7".into())
                },
            ]
        );
        for piece in 1..input.len() {
            assert_eq!(
                parse_in_pieces(input, piece),
                whole,
                "split every {piece} bytes"
            );
        }
    }

    #[test]
    fn an_event_without_its_blank_line_is_still_delivered_at_the_end() {
        assert_eq!(parse_in_pieces(b"data: [DONE]", 4)[0].data, "[DONE]");
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        assert!(parse_in_pieces(b"event: ping\n\n: keepalive\n\n", 3).is_empty());
    }
}
