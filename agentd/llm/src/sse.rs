//! An incremental Server-Sent Events parser (the `text/event-stream` format both LLM APIs
//! stream in). Bytes go in however the network chunked them; whole events come out. It
//! follows the WHATWG event-stream rules that matter here: LF, CRLF and CR line ends, a
//! leading BOM dropped, `:` comments, `event:` and multi-line `data:` fields, one space after
//! the colon stripped, and an event still open when the stream ends is dropped.
//! `id:` and `retry:` only matter to a browser reconnecting, which we never do; they are
//! ignored.

/// One dispatched event. `event` is `message` when the stream named none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub event: String,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct Parser {
    /// The bytes of the line being read (no line end yet).
    line: Vec<u8>,
    /// The last byte fed was a CR: a LF that comes next belongs to the same line end, even
    /// when it arrives in the next chunk.
    after_cr: bool,
    /// Whether the stream's first bytes were looked at for a BOM.
    started: bool,
    event: String,
    data: String,
    /// The event has at least one `data:` field (an empty one counts).
    has_data: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Feeds the next bytes of the stream; returns the events they completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        if !self.started {
            // The BOM may itself arrive split over chunks: hold its first bytes in `line`
            // until three bytes decide it.
            self.line.extend_from_slice(chunk);
            if self.line.len() < BOM.len() && BOM.starts_with(&self.line) {
                return events;
            }
            self.started = true;
            let held = std::mem::take(&mut self.line);
            let held = held.strip_prefix(BOM).unwrap_or(&held);
            self.scan(held, &mut events);
            return events;
        }
        self.scan(chunk, &mut events);
        events
    }

    /// Bytes held for an event not yet complete; the caller bounds this so that a server that
    /// never ends a line cannot fill memory.
    pub fn pending_len(&self) -> usize {
        self.line.len() + self.event.len() + self.data.len()
    }

    fn scan(&mut self, mut bytes: &[u8], events: &mut Vec<Event>) {
        while !bytes.is_empty() {
            let consumed = self.scan_once(bytes, events);
            bytes = &bytes[consumed..];
        }
    }

    /// Consumes up to and including the next line end (or everything); returns how much.
    fn scan_once(&mut self, bytes: &[u8], events: &mut Vec<Event>) -> usize {
        if self.after_cr {
            self.after_cr = false;
            if bytes.first() == Some(&b'\n') {
                return 1;
            }
        }
        match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            None => {
                self.line.extend_from_slice(bytes);
                bytes.len()
            }
            Some(end) => {
                self.line.extend_from_slice(&bytes[..end]);
                self.after_cr = bytes[end] == b'\r';
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, events);
                end + 1
            }
        }
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line[0] == b':' {
            return;
        }
        // Lines are split on ASCII bytes only, so decoding each line on its own gives the same
        // text as decoding the whole stream would (invalid UTF-8 becomes U+FFFD either way).
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<Event>) {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if std::mem::take(&mut self.has_data) {
            let event = if event.is_empty() {
                "message".to_owned()
            } else {
                event
            };
            events.push(Event { event, data });
        }
    }
}

/// Parses a whole stream (the reference the chunked parse must match; tests and fuzzing).
pub fn parse_all(stream: &[u8]) -> Vec<Event> {
    Parser::new().feed(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: &str, data: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
        }
    }

    /// Every split of `stream` into two or three chunks parses the same as the whole.
    fn same_at_every_split(stream: &[u8]) -> Vec<Event> {
        let whole = parse_all(stream);
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let mut parser = Parser::new();
                let mut events = parser.feed(&stream[..a]);
                events.extend(parser.feed(&stream[a..b]));
                events.extend(parser.feed(&stream[b..]));
                assert_eq!(events, whole, "split at {a} and {b} of {stream:?}");
            }
        }
        // And one byte at a time.
        let mut parser = Parser::new();
        let bytes: Vec<Event> = stream.iter().flat_map(|b| parser.feed(&[*b])).collect();
        assert_eq!(bytes, whole);
        whole
    }

    #[test]
    fn line_ends_lf_crlf_and_cr() {
        let expected = vec![event("message", "a"), event("ping", "b")];
        for end in ["\n", "\r\n", "\r"] {
            let stream = format!("data: a{end}{end}event: ping{end}data: b{end}{end}");
            assert_eq!(same_at_every_split(stream.as_bytes()), expected, "{end:?}");
        }
    }

    #[test]
    fn multi_line_data_comments_and_fields() {
        let stream = b": keep-alive\n\nevent: content_block_delta\ndata: {\"a\":\ndata:1}\nid: 7\nretry: 10\n\n";
        assert_eq!(
            same_at_every_split(stream),
            vec![event("content_block_delta", "{\"a\":\n1}")]
        );
    }

    #[test]
    fn only_one_space_is_stripped_and_a_bare_field_is_empty() {
        let stream = b"data:  two\ndata\ndata:x\n\n";
        assert_eq!(
            same_at_every_split(stream),
            vec![event("message", " two\n\nx")]
        );
    }

    #[test]
    fn an_event_with_no_data_is_not_dispatched_and_its_name_is_forgotten() {
        let stream = b"event: lonely\n\ndata: after\n\n";
        assert_eq!(same_at_every_split(stream), vec![event("message", "after")]);
    }

    #[test]
    fn an_unterminated_last_event_is_dropped() {
        let stream = b"data: kept\n\ndata: dropped\n";
        assert_eq!(same_at_every_split(stream), vec![event("message", "kept")]);
        assert_eq!(parse_all(b"data: dropped"), vec![]);
    }

    #[test]
    fn a_leading_bom_is_dropped_even_when_split() {
        let stream = b"\xEF\xBB\xBFdata: x\n\n";
        assert_eq!(same_at_every_split(stream), vec![event("message", "x")]);
        // A BOM later in the stream is data, not a marker.
        let later = b"data: x\n\n\xEF\xBB\xBFdata: y\n\n";
        let events = same_at_every_split(later);
        assert_eq!(
            events,
            vec![event("message", "x")],
            "the BOM makes an unknown field"
        );
    }

    #[test]
    fn a_short_stream_that_only_looks_like_a_bom_start_is_kept() {
        let mut parser = Parser::new();
        assert_eq!(parser.feed(b"\xEF"), vec![]);
        assert_eq!(parser.pending_len(), 1);
        assert_eq!(parser.feed(b"data: x\n\n"), vec![]);
        // "\xEFdata" is a field named "\u{FFFD}data", so nothing comes out; what matters is
        // that the bytes were not lost as a BOM.
        assert_eq!(parser.feed(b"data: y\n\n"), vec![event("message", "y")]);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let stream = b"data: \xFF\xC3\n\n";
        assert_eq!(
            same_at_every_split(stream),
            vec![event("message", "\u{FFFD}\u{FFFD}")]
        );
    }

    #[test]
    fn a_real_openai_stream_at_every_split() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n";
        let events = same_at_every_split(stream);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].data, "[DONE]");
    }

    #[test]
    fn pending_len_counts_what_is_held() {
        let mut parser = Parser::new();
        parser.feed(b"data: 12345");
        assert_eq!(parser.pending_len(), "data: 12345".len());
        parser.feed(b"\n");
        assert_eq!(parser.pending_len(), 5);
        parser.feed(b"\n");
        assert_eq!(parser.pending_len(), 0);
    }
}
