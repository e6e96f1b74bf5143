//! Drives a `Connection` with input in chunks and checks its invariants after every
//! chunk. Shared, as this one file, by the cargo-fuzz targets (`fuzz_targets/*.rs`,
//! `#[path = "../driver.rs"] mod driver;`) and by the stable smoke test
//! (`tests/fuzz_smoke.rs`, `#[path = "../fuzz/driver.rs"] mod driver;`).
//!
//! Invariants checked (a panic is a finding):
//!
//! - events come in the documented order: one `Open` first; then messages, pings and
//!   pongs; at most one `Error`, followed at once by `Close`; exactly one `Close`
//!   over the connection's life (end of input is fed as EOF); nothing after `Close`;
//! - the output always parses as whole, valid frames for our role (masked iff client,
//!   FIN, no RSV, minimal length, control payloads <= 125, a Close frame with an
//!   allowed code and a UTF-8 reason), with no frame after our Close frame; it holds
//!   one Pong per Ping received while open (same payloads, same order) when
//!   `auto_pong` is on and none otherwise; the messages the driver echoed, in order;
//!   and the Close frame the events call for (the peer's code echoed, 1000 for an
//!   empty Close, the error's code on a failure, 1000 when the driver closed);
//! - `send` succeeds exactly when the ready-state is `Open`;
//! - `buffered_input()` (plus what a `receive_buf` caller still holds) never exceeds
//!   `max_frame_size + 14 + max_message_size +` the length of the chunk just fed.
//!
//! The driver echoes every message it receives and starts the closing handshake
//! itself (`close(1000, "bye")`) after a message that begins with [`CLOSE_TRIGGER`],
//! so that sending and the `Closing` state are exercised too.

// Each user takes what it needs: the fuzz targets do not record events, for example.
#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::BytesMut;
use websocket_driver::{
    proto::{
        apply_mask_scalar, CloseCode, CloseFrame, Connection, Event, FrameHeader, Message, OpCode,
        ReadyState, Role,
    },
    ProtocolSettings,
};

/// The largest frame header.
pub const MAX_HEADER: usize = 14;
/// A message that begins with these bytes makes the driver call `close(1000, "bye")`.
pub const CLOSE_TRIGGER: &[u8] = b"!close";

/// The limits of a driven connection: small, so that they are hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message: usize,
    pub max_frame: usize,
    pub max_fragments: usize,
}

impl Limits {
    /// Messages of up to 64 KiB in up to 64 fragments of up to 16 KiB (the frame limit
    /// is below the message limit, so that both are hit).
    pub const SMALL: Limits = Limits {
        max_message: 64 * 1024,
        max_frame: 16 * 1024,
        max_fragments: 64,
    };
    /// Messages of up to 512 bytes in up to 8 fragments of up to 128 bytes: limits
    /// within reach of a fuzzer's short inputs.
    pub const TINY: Limits = Limits {
        max_message: 512,
        max_frame: 128,
        max_fragments: 8,
    };

    /// The configuration of a driven connection.
    pub fn config(self, auto_pong: bool) -> ProtocolSettings {
        ProtocolSettings::default()
            .max_message_size(self.max_message)
            .max_frame_size(self.max_frame)
            .max_fragments(self.max_fragments)
            .auto_pong(auto_pong)
    }
}

/// The events the driver saw, with their payloads copied, for a test to compare with
/// what a model of the protocol expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A message: text or binary, and its bytes.
    Message { text: bool, data: Vec<u8> },
    /// A Ping and its payload.
    Ping(Vec<u8>),
    /// A Pong and its payload.
    Pong(Vec<u8>),
    /// An error and the close code it fails the connection with.
    Error { code: u16 },
    /// The connection closed.
    Close { code: u16, clean: bool },
}

/// Counts over one or more connections.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub connections: u64,
    pub bytes: u64,
    pub chunks: u64,
    pub text: u64,
    pub binary: u64,
    pub pings: u64,
    pub pongs: u64,
    pub errors: u64,
    /// Errors by close code: 1002, 1007, 1009, other.
    pub errors_1002: u64,
    pub errors_1007: u64,
    pub errors_1009: u64,
    pub errors_other: u64,
    pub closes: u64,
    pub clean_closes: u64,
    /// Closes with 1006 (end of input without a Close frame).
    pub eof_closes: u64,
    /// Closing handshakes the driver started (after a [`CLOSE_TRIGGER`] message).
    pub closes_started: u64,
    pub frames_out: u64,
    pub max_buffered: usize,
    /// Errors by kind: the variant names of the error, as `Debug` shows them.
    pub error_kinds: BTreeMap<String, u64>,
}

impl Stats {
    /// Messages of both kinds.
    pub fn messages(&self) -> u64 {
        self.text + self.binary
    }

    /// Add `other` into `self`.
    pub fn add(&mut self, other: &Stats) {
        self.connections += other.connections;
        self.bytes += other.bytes;
        self.chunks += other.chunks;
        self.text += other.text;
        self.binary += other.binary;
        self.pings += other.pings;
        self.pongs += other.pongs;
        self.errors += other.errors;
        self.errors_1002 += other.errors_1002;
        self.errors_1007 += other.errors_1007;
        self.errors_1009 += other.errors_1009;
        self.errors_other += other.errors_other;
        self.closes += other.closes;
        self.clean_closes += other.clean_closes;
        self.eof_closes += other.eof_closes;
        self.closes_started += other.closes_started;
        self.frames_out += other.frames_out;
        self.max_buffered = self.max_buffered.max(other.max_buffered);
        for (kind, count) in &other.error_kinds {
            *self.error_kinds.entry(kind.clone()).or_default() += count;
        }
    }
}

/// How input reaches the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// `Connection::receive(&chunk)`: the connection copies.
    Receive,
    /// `Connection::receive_buf(&mut buf)`: the caller keeps the buffer.
    ReceiveBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No event yet: `Open` must come first.
    Start,
    Open,
    /// An `Error` was taken: `Close` must be next.
    Errored(u16),
    Closed,
}

/// One driven connection.
#[derive(Debug)]
pub struct Driver {
    conn: Connection,
    role: Role,
    limits: Limits,
    auto_pong: bool,
    feed: Feed,
    /// The caller's buffer in [`Feed::ReceiveBuf`] mode.
    buf: BytesMut,
    opened: bool,
    phase: Phase,
    /// The code of the Close frame the events so far call for us to send.
    close_due: Option<u16>,
    /// The code of the Close frame found in our output.
    close_sent: Option<u16>,
    record: Option<Vec<Seen>>,
    pub stats: Stats,
}

impl Driver {
    /// A connection in the `Connecting` state; call [`open`](Self::open).
    pub fn new(role: Role, limits: Limits, auto_pong: bool, feed: Feed, record: bool) -> Self {
        Driver {
            conn: Connection::new(role, limits.config(auto_pong)),
            role,
            limits,
            auto_pong,
            feed,
            buf: BytesMut::new(),
            opened: false,
            phase: Phase::Start,
            close_due: None,
            close_sent: None,
            record: record.then(Vec::new),
            stats: Stats {
                connections: 1,
                ..Stats::default()
            },
        }
    }

    /// Whether [`open`](Self::open) was called.
    pub fn is_open_called(&self) -> bool {
        self.opened
    }

    /// Whether the `Close` event was seen.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The events seen so far (when recording).
    pub fn seen(&self) -> &[Seen] {
        self.record.as_deref().unwrap_or(&[])
    }

    /// The handshake is done: open the connection, which processes any bytes fed
    /// before.
    pub fn open(&mut self) {
        assert!(!self.opened, "driver opened twice");
        self.opened = true;
        self.conn.open();
        if self.feed == Feed::ReceiveBuf {
            // The caller's buffer is not the connection's: hand it over again.
            self.conn.receive_buf(&mut self.buf);
        }
        self.check_buffered(0);
        self.drain(self.auto_pong);
    }

    /// Feed one chunk, then drain and check events and output.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.stats.bytes += chunk.len() as u64;
        self.stats.chunks += 1;
        let state = self.conn.ready_state();
        let was_closed = self.phase == Phase::Closed;
        match self.feed {
            Feed::Receive => self.conn.receive(chunk),
            Feed::ReceiveBuf => {
                self.buf.extend_from_slice(chunk);
                self.conn.receive_buf(&mut self.buf);
            }
        }
        self.check_buffered(chunk.len());
        if was_closed {
            assert_eq!(
                self.conn.info().buffered_input(),
                0,
                "input kept after Close"
            );
            assert!(self.buf.is_empty(), "receive_buf kept input after Close");
            assert!(
                self.conn.info().peek_event().is_none(),
                "event after Close: {:?}",
                self.conn.info().peek_event()
            );
            assert!(self.conn.take_output().is_empty(), "output after Close");
            return;
        }
        if !self.opened {
            assert!(self.conn.info().peek_event().is_none(), "event before open");
            assert!(self.conn.take_output().is_empty(), "output before open");
            return;
        }
        // Pongs are written as Pings are read, while the connection is open.
        self.drain(state == ReadyState::Open && self.auto_pong);
        self.check_buffered(chunk.len());
    }

    /// The transport reached end of file: the connection must be closed afterwards,
    /// with 1006 unless it was already.
    pub fn eof(&mut self) {
        if !self.opened {
            self.open();
        }
        self.conn.receive_eof();
        self.drain(false);
        assert_eq!(self.phase, Phase::Closed, "no Close event after EOF");
        assert_eq!(self.conn.ready_state(), ReadyState::Closed);
        assert_eq!(self.stats.closes, 1, "not exactly one Close event");
    }

    fn check_buffered(&mut self, chunk: usize) {
        let held = self.conn.info().buffered_input() + self.buf.len();
        let bound = self.limits.max_frame + MAX_HEADER + self.limits.max_message + chunk;
        assert!(
            !self.opened || held <= bound,
            "buffered input {held} over the bound {bound}"
        );
        self.stats.max_buffered = self.stats.max_buffered.max(held);
    }

    fn push_seen(&mut self, seen: impl FnOnce() -> Seen) {
        if let Some(record) = self.record.as_mut() {
            record.push(seen());
        }
    }

    /// Take every event and the output, and check them.
    fn drain(&mut self, pongs_due: bool) {
        let mut pings: Vec<Vec<u8>> = Vec::new();
        let mut echoes: Vec<Message> = Vec::new();
        while let Some(event) = self.conn.poll_event() {
            match (self.phase, &event) {
                (Phase::Closed, _) => panic!("event after Close: {event:?}"),
                (Phase::Start, Event::Open) => {
                    self.phase = Phase::Open;
                    continue;
                }
                (Phase::Start, _) => panic!("first event is not Open: {event:?}"),
                (_, Event::Open) => panic!("second Open"),
                (Phase::Errored(_), Event::Close(_)) => {}
                (Phase::Errored(_), _) => panic!("{event:?} after Error, not Close"),
                (Phase::Open, _) => {}
            }
            match event {
                Event::Open => unreachable!(),
                Event::Message(message) => {
                    let data = message.as_bytes();
                    if message.is_text() {
                        self.stats.text += 1;
                        assert!(std::str::from_utf8(data).is_ok(), "text is not UTF-8");
                    } else {
                        self.stats.binary += 1;
                    }
                    self.push_seen(|| Seen::Message {
                        text: message.is_text(),
                        data: data.to_vec(),
                    });
                    let open = self.conn.ready_state() == ReadyState::Open;
                    let sent = self.conn.send(&message);
                    let state = self.conn.ready_state();
                    assert_eq!(sent.is_ok(), open, "send in state {state:?}: {sent:?}");
                    if sent.is_ok() {
                        echoes.push(message.clone());
                    }
                    if open && data.starts_with(CLOSE_TRIGGER) {
                        self.conn
                            .close(CloseCode::NORMAL, "bye")
                            .expect("close while open");
                        assert_eq!(self.conn.ready_state(), ReadyState::Closing);
                        self.stats.closes_started += 1;
                        self.close_due.get_or_insert(CloseCode::NORMAL.0);
                    }
                }
                Event::Ping(payload) => {
                    assert!(payload.len() <= 125, "ping of {} bytes", payload.len());
                    self.stats.pings += 1;
                    self.push_seen(|| Seen::Ping(payload.to_vec()));
                    pings.push(payload.to_vec());
                }
                Event::Pong(payload) => {
                    assert!(payload.len() <= 125, "pong of {} bytes", payload.len());
                    self.stats.pongs += 1;
                    self.push_seen(|| Seen::Pong(payload.to_vec()));
                }
                Event::Error(err) => {
                    let code = err.close_code().0;
                    self.stats.errors += 1;
                    match code {
                        1002 => self.stats.errors_1002 += 1,
                        1007 => self.stats.errors_1007 += 1,
                        1009 => self.stats.errors_1009 += 1,
                        _ => self.stats.errors_other += 1,
                    }
                    // `Protocol(ReservedOpcode(3))` -> `Protocol::ReservedOpcode`.
                    let debug = format!("{err:?}");
                    let mut names = debug.split(|c: char| !c.is_alphanumeric());
                    let kind = match (names.next(), names.next()) {
                        (Some(outer), Some(inner)) if !inner.is_empty() => {
                            format!("{outer}::{inner}")
                        }
                        (Some(outer), _) => outer.to_owned(),
                        _ => debug.clone(),
                    };
                    *self.stats.error_kinds.entry(kind).or_default() += 1;
                    self.push_seen(|| Seen::Error { code });
                    self.phase = Phase::Errored(code);
                    // Taking the Error failed the connection, which sends a Close
                    // frame with its code unless one was sent already.
                    self.close_due.get_or_insert(code);
                    assert_eq!(self.conn.ready_state(), ReadyState::Closed);
                }
                Event::Close(close) => {
                    let code = close.code.0;
                    self.stats.closes += 1;
                    if close.was_clean {
                        self.stats.clean_closes += 1;
                        // The peer's Close, answered with its code unless we sent ours.
                        assert!(
                            code == CloseCode::NO_STATUS.0 || CloseCode(code).is_allowed(),
                            "clean close with code {code}"
                        );
                        let reply = if code == CloseCode::NO_STATUS.0 {
                            CloseCode::NORMAL.0
                        } else {
                            code
                        };
                        self.close_due.get_or_insert(reply);
                    } else if code == CloseCode::ABNORMAL.0 {
                        self.stats.eof_closes += 1;
                    }
                    if let Phase::Errored(error_code) = self.phase {
                        assert!(!close.was_clean, "clean close after an error");
                        assert_eq!(code, error_code, "close code is not the error's");
                    } else {
                        assert!(
                            close.was_clean || code == CloseCode::ABNORMAL.0,
                            "unclean close {code} without an error or EOF"
                        );
                    }
                    assert_eq!(self.conn.ready_state(), ReadyState::Closed);
                    self.push_seen(|| Seen::Close {
                        code,
                        clean: close.was_clean,
                    });
                    self.phase = Phase::Closed;
                }
            }
        }
        assert!(
            !matches!(self.phase, Phase::Errored(_)),
            "Error not followed by Close"
        );
        let output = self.conn.take_output();
        self.check_output(&output, if pongs_due { &pings } else { &[] }, &echoes);
    }

    /// The output must be whole valid frames: the Pongs due, then (interleaved with
    /// nothing else) the echoes, and at most one Close frame, last.
    fn check_output(&mut self, mut out: &[u8], pongs_due: &[Vec<u8>], echoes: &[Message]) {
        let mut pongs = Vec::new();
        let mut data = Vec::new();
        while !out.is_empty() {
            let (header, n) = FrameHeader::decode(out)
                .expect("our output has an invalid header")
                .expect("our output ends inside a header");
            assert!(self.close_sent.is_none(), "frame after our Close frame");
            assert!(header.fin, "fragmented output frame");
            assert_eq!(header.rsv, 0, "RSV bits in our output");
            assert_eq!(n, header.encoded_len(), "non-minimal header in our output");
            assert_eq!(
                header.mask.is_some(),
                self.role == Role::Client,
                "masking of our output"
            );
            let len = usize::try_from(header.payload_len).expect("length fits");
            assert!(out.len() - n >= len, "our output ends inside a payload");
            let mut payload = out[n..n + len].to_vec();
            if let Some(mask) = header.mask {
                apply_mask_scalar(&mut payload, mask, 0);
            }
            out = &out[n + len..];
            self.stats.frames_out += 1;
            match header.opcode {
                OpCode::Pong => {
                    assert!(len <= 125, "Pong of {len} bytes sent");
                    pongs.push(payload);
                }
                OpCode::Close => {
                    assert!(len <= 125, "Close of {len} bytes sent");
                    let frame = CloseFrame::decode(&payload)
                        .expect("our Close frame does not decode")
                        .expect("our Close frame has no code");
                    self.close_sent = Some(frame.code.0);
                }
                OpCode::Text => {
                    assert!(std::str::from_utf8(&payload).is_ok(), "sent text not UTF-8");
                    data.push((true, payload));
                }
                OpCode::Binary => data.push((false, payload)),
                other => panic!("unexpected {other} frame in our output"),
            }
        }
        assert!(
            pongs.len() == pongs_due.len() && pongs.iter().zip(pongs_due).all(|(a, b)| a == b),
            "Pongs sent {:?} are not the Pongs due {:?}",
            pongs.iter().map(Vec::len).collect::<Vec<_>>(),
            pongs_due.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(data.len(), echoes.len(), "echoed messages");
        for ((text, bytes), echo) in data.iter().zip(echoes) {
            assert_eq!(*text, echo.is_text(), "echo kind");
            assert!(bytes[..] == *echo.as_bytes(), "echo bytes differ");
        }
        assert_eq!(self.close_sent, self.close_due, "Close frame sent vs due");
    }
}

/// The length of a chunk from one byte of the fuzz input: 1..=128, or 64..=8192 in
/// steps of 64.
fn chunk_len(b: u8) -> usize {
    if b < 128 {
        usize::from(b) + 1
    } else {
        usize::from(b - 127) * 64
    }
}

/// The connection fuzz targets: `data` is
/// `[flags, n, n chunk-length bytes, stream...]`.
///
/// `flags` bit 0 turns `auto_pong` off, bit 1 opens the connection only after the
/// first chunk, bit 2 feeds with `receive_buf` instead of `receive`, bit 3 picks
/// [`Limits::TINY`] instead of [`Limits::SMALL`]. The stream is cut
/// into chunks whose lengths cycle through the chunk-length bytes ([`chunk_len`]); at
/// its end the driver feeds EOF.
pub fn fuzz_connection(role: Role, data: &[u8]) -> Stats {
    let [flags, n, rest @ ..] = data else {
        return Stats::default();
    };
    let n = usize::from(n % 16) + 1;
    if rest.len() < n {
        return Stats::default();
    }
    let (lens, mut stream) = rest.split_at(n);
    let feed = if flags & 4 != 0 {
        Feed::ReceiveBuf
    } else {
        Feed::Receive
    };
    let limits = if flags & 8 != 0 {
        Limits::TINY
    } else {
        Limits::SMALL
    };
    let mut driver = Driver::new(role, limits, flags & 1 == 0, feed, false);
    if flags & 2 == 0 {
        driver.open();
    }
    let mut i = 0;
    while !stream.is_empty() {
        let len = chunk_len(lens[i % n]).min(stream.len());
        i += 1;
        let (chunk, tail) = stream.split_at(len);
        driver.feed(chunk);
        if !driver.is_open_called() {
            driver.open();
        }
        stream = tail;
    }
    driver.eof();
    driver.stats
}

/// The header fuzz target: decode a header from arbitrary bytes; whatever decodes must
/// encode back to a header that decodes the same (and to the same bytes when the
/// input's length encoding was minimal).
pub fn fuzz_header(data: &[u8]) {
    let decoded = FrameHeader::decode(data);
    let (header, n) = match decoded {
        Ok(Some(ok)) => ok,
        Ok(None) => {
            assert!(data.len() < MAX_HEADER, "no header in {} bytes", data.len());
            return;
        }
        Err(_) => {
            // Only a 64-bit length with its top bit set is an error.
            assert!(data.len() >= 10 && data[1] & 0x7f == 127 && data[2] & 0x80 != 0);
            return;
        }
    };
    let (b0, b1) = (data[0], data[1]);
    assert!(n <= data.len() && n <= MAX_HEADER);
    assert_eq!(header.fin, b0 & 0x80 != 0);
    assert_eq!(header.rsv, (b0 >> 4) & 7);
    assert_eq!(header.opcode.bits(), b0 & 0x0f);
    assert_eq!(header.mask.is_some(), b1 & 0x80 != 0);
    assert!(header.payload_len < 1 << 63);
    // Every shorter prefix is incomplete.
    for cut in 0..n {
        assert_eq!(FrameHeader::decode(&data[..cut]), Ok(None), "cut {cut}");
    }
    let mut buf = [0u8; MAX_HEADER];
    let m = header.encode(&mut buf);
    assert_eq!(m, header.encoded_len());
    assert_eq!(FrameHeader::decode(&buf[..m]), Ok(Some((header, m))));
    let minimal = match b1 & 0x7f {
        126 => header.payload_len > 125,
        127 => header.payload_len > 0xffff,
        _ => true,
    };
    if minimal {
        assert_eq!(&buf[..m], &data[..n], "re-encoding differs");
    } else {
        assert!(m < n, "non-minimal input, re-encoded no shorter");
    }
}
