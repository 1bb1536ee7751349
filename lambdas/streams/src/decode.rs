//! From the stream's bytes to events: server-sent events and newline-delimited JSON.
//!
//! Hand-written rather than `eventsource-stream`: the identity `field:id` needs each
//! event's *own* `id:` line, and that crate only exposes the last event ID, which an
//! event without an `id:` line inherits from its predecessor (it would look like a
//! repeat and be collapsed as a duplicate). The rules are few (WHATWG HTML, "Server-sent
//! events", section "Interpreting an event stream"), and NDJSON shares the line
//! splitting.
//!
//! A decoder is fed whatever chunks the connection yields; lines may be split anywhere
//! between chunks. On a new connection [`Decoder::reset`] drops what the old one left
//! unfinished: a partial line or an event without its closing blank line is incomplete,
//! and the spec says to discard it (the server sends it again after `Last-Event-ID`, or
//! it was never complete).

use airflow_stack_contract::streams::Format;

/// One event read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// Its data: the `data:` lines joined by `\n` (SSE) or the line (NDJSON).
    pub data: String,
    /// Its own `id:` line, if it had one (SSE only).
    pub id: Option<String>,
    /// The last event ID after it (its own, or the one before it inherited): what a
    /// reconnect sends as `Last-Event-ID`. `None` when the server never gave one.
    pub last_event_id: Option<String>,
}

/// A stream decoder.
pub trait Decoder: Send {
    /// The events completed by `bytes`.
    fn feed(&mut self, bytes: &[u8]) -> Vec<StreamEvent>;
    /// A new connection: forget any unfinished line or event, keep the last event ID.
    fn reset(&mut self);
    /// The last event ID, to send as `Last-Event-ID`.
    fn last_event_id(&self) -> Option<&str>;
}

/// The decoder of a format, resuming after `last_event_id` (SSE).
pub fn decoder(format: Format, last_event_id: Option<String>) -> Box<dyn Decoder> {
    match format {
        Format::Sse => Box::new(Sse {
            last_event_id: last_event_id.filter(|id| !id.is_empty()),
            ..Sse::default()
        }),
        Format::Ndjson => Box::new(Ndjson::default()),
    }
}

/// Splits bytes into lines ending in `\r\n`, `\n` or a lone `\r` (SSE accepts all
/// three), across chunk boundaries.
#[derive(Debug, Default)]
struct Lines {
    partial: Vec<u8>,
    /// The last byte seen was `\r`: a `\n` right after it belongs to the same line end.
    after_cr: bool,
}

impl Lines {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    // Line ends are ASCII, so a line never splits a UTF-8 sequence;
                    // invalid bytes become U+FFFD rather than failing the stream.
                    lines.push(String::from_utf8_lossy(&self.partial).into_owned());
                    self.partial.clear();
                }
                _ => self.partial.push(b),
            }
        }
        lines
    }

    fn reset(&mut self) {
        self.partial.clear();
        self.after_cr = false;
    }
}

/// Server-sent events.
#[derive(Debug, Default)]
struct Sse {
    lines: Lines,
    /// A line of this connection was seen (a byte-order mark may open the first).
    started: bool,
    /// The `data:` lines of the event being read.
    data: Vec<String>,
    /// Its own `id:` line.
    own_id: Option<String>,
    last_event_id: Option<String>,
}

impl Sse {
    fn line(&mut self, line: &str) -> Option<StreamEvent> {
        let line = if std::mem::replace(&mut self.started, true) {
            line
        } else {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        };
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None; // a comment: keepalives are sent this way
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => self.data.push(value.to_owned()),
            // Takes effect when the event is dispatched: an event cut off by a dropped
            // connection must not move the resume point past itself.
            "id" if !value.contains('\0') => self.own_id = Some(value.to_owned()),
            // `event:` (the type) and `retry:` (the reconnection delay: the manager has
            // its own backoff) change nothing that is stored.
            _ => {}
        }
        None
    }

    /// A blank line ends the event; without `data:` lines there is none to dispatch.
    fn dispatch(&mut self) -> Option<StreamEvent> {
        let own_id = self.own_id.take();
        if let Some(id) = &own_id {
            // An empty `id:` resets the last event ID (nothing to resume from).
            self.last_event_id = (!id.is_empty()).then(|| id.clone());
        }
        if self.data.is_empty() {
            return None;
        }
        Some(StreamEvent {
            data: std::mem::take(&mut self.data).join("\n"),
            id: own_id.filter(|id| !id.is_empty()),
            last_event_id: self.last_event_id.clone(),
        })
    }
}

impl Decoder for Sse {
    fn feed(&mut self, bytes: &[u8]) -> Vec<StreamEvent> {
        let lines = self.lines.push(bytes);
        lines.iter().filter_map(|l| self.line(l)).collect()
    }

    fn reset(&mut self) {
        self.lines.reset();
        self.started = false;
        self.data.clear();
        self.own_id = None;
    }

    fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }
}

/// Newline-delimited JSON: every non-blank line is an event (its text, not checked to
/// be JSON: a vendor's odd line is still an event, stored as text).
#[derive(Debug, Default)]
struct Ndjson {
    lines: Lines,
}

impl Decoder for Ndjson {
    fn feed(&mut self, bytes: &[u8]) -> Vec<StreamEvent> {
        self.lines
            .push(bytes)
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .map(|data| StreamEvent {
                data,
                id: None,
                last_event_id: None,
            })
            .collect()
    }

    fn reset(&mut self) {
        self.lines.reset();
    }

    fn last_event_id(&self) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse() -> Box<dyn Decoder> {
        decoder(Format::Sse, None)
    }

    fn data(events: &[StreamEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn sse_multi_line_data_comments_and_ids() {
        let mut d = sse();
        let events = d.feed(
            b": keepalive\n\nid: 1\ndata: {\"a\":\ndata: 1}\n\ndata: no id\n\nevent: x\nid: 3\ndata:tight\nretry: 5\n\n",
        );
        assert_eq!(data(&events), ["{\"a\":\n1}", "no id", "tight"]);
        assert_eq!(events[0].id.as_deref(), Some("1"));
        assert_eq!(events[1].id, None, "its own id only");
        assert_eq!(events[1].last_event_id.as_deref(), Some("1"), "inherited");
        assert_eq!(events[2].id.as_deref(), Some("3"));
        assert_eq!(d.last_event_id(), Some("3"));
    }

    #[test]
    fn sse_lines_split_across_chunks_and_every_line_end() {
        let mut d = sse();
        let mut all = Vec::new();
        for chunk in [
            &b"\xef\xbb\xbfda"[..],
            b"ta: one\r",
            b"\n\r\ndata: two\r\rdata",
            b": th",
            b"ree\n\n",
        ] {
            all.extend(d.feed(chunk));
        }
        assert_eq!(data(&all), ["one", "two", "three"]);
    }

    #[test]
    fn sse_events_without_data_and_empty_id_reset() {
        let mut d = decoder(Format::Sse, Some("7".into()));
        assert_eq!(d.last_event_id(), Some("7"));
        assert!(d.feed(b"id: 8\n\n").is_empty(), "no data, no event");
        assert_eq!(d.last_event_id(), Some("8"), "but the id counts");
        let events = d.feed(b"id\ndata: x\n\n");
        assert_eq!(events[0].last_event_id, None);
        assert_eq!(d.last_event_id(), None);
    }

    #[test]
    fn a_partial_event_at_a_dropped_connection_is_discarded() {
        let mut d = sse();
        assert_eq!(
            data(&d.feed(b"id: 1\ndata: whole\n\nid: 2\ndata: half")),
            ["whole"]
        );
        d.reset();
        let events = d.feed(b"data: after\n\n");
        assert_eq!(
            data(&events),
            ["after"],
            "the half event is gone, not glued on"
        );
        assert_eq!(
            events[0].last_event_id.as_deref(),
            Some("1"),
            "the cut-off event's id does not move the resume point"
        );

        let mut n = decoder(Format::Ndjson, None);
        assert_eq!(data(&n.feed(b"{\"a\":1}\n{\"a\":")), ["{\"a\":1}"]);
        n.reset();
        assert_eq!(data(&n.feed(b"{\"a\":2}\n")), ["{\"a\":2}"]);
    }

    #[test]
    fn ndjson_lines_skip_blanks_and_accept_crlf() {
        let mut n = decoder(Format::Ndjson, Some("ignored".into()));
        let events = n.feed(b"{\"id\":1}\r\n\n  \n{\"id\"");
        assert_eq!(data(&events), ["{\"id\":1}"]);
        assert_eq!(data(&n.feed(b":2}\n")), ["{\"id\":2}"]);
        assert_eq!(n.last_event_id(), None);
        assert_eq!(events[0].id, None);
    }
}
