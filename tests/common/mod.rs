//! Shared helpers for the sans-I/O scenario tests: a frame DSL that builds the exact
//! bytes a peer sends, an independent decoder for what the core writes, and a
//! comparable form of [`Event`].
//!
//! Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use websocket_driver::{
    proto::Error,
    proto::{CapacityError, ProtocolError},
    proto::{
        CloseCode, CloseEvent, Connection, Event, FrameHeader, Message, OpCode, ReadyState, Role,
    },
    ProtocolSettings,
};

/// The masking key of RFC 6455 §5.7's masked "Hello" example; the default key for
/// frames a client sends to the server under test.
pub const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Opcode values (RFC 6455 §5.2), raw so that reserved ones can be built too.
pub mod op {
    /// Continuation.
    pub const CONT: u8 = 0x0;
    /// Text.
    pub const TEXT: u8 = 0x1;
    /// Binary.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xa;
    /// Every opcode RFC 6455 §5.2 reserves.
    pub const RESERVED: [u8; 10] = [0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf];
}

// ----- frame DSL -----

/// Whether a frame is masked when encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masking {
    /// As the sender's role demands: masked with [`KEY`] when sent to a server (by a
    /// client), unmasked when sent to a client.
    Peer,
    /// Masked with this key, whoever receives it.
    With([u8; 4]),
    /// Unmasked, whoever receives it.
    Without,
}

/// How the payload length is written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// The shortest encoding (7, 16 or 64 bits), as RFC 6455 §5.2 says a sender uses.
    Minimal,
    /// Always the 16-bit form (126 + 2 bytes).
    Bits16,
    /// Always the 64-bit form (127 + 8 bytes).
    Bits64,
    /// The 64-bit form declaring this length, whatever the payload holds (to send a
    /// header that declares more than will follow).
    Declared(u64),
}

/// One frame as a peer puts it on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// FIN bit.
    pub fin: bool,
    /// RSV1-3 as the three low bits (RSV1 = 0b100).
    pub rsv: u8,
    /// The 4-bit opcode.
    pub opcode: u8,
    /// Masking.
    pub masking: Masking,
    /// Length encoding.
    pub length: Length,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

impl Frame {
    /// A final frame with no RSV bits, masked as the peer's role demands.
    pub fn new(opcode: u8, payload: impl AsRef<[u8]>) -> Self {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            masking: Masking::Peer,
            length: Length::Minimal,
            payload: payload.as_ref().to_vec(),
        }
    }

    /// Set FIN.
    pub fn fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    /// Set the RSV bits (RSV1 = 0b100, RSV2 = 0b010, RSV3 = 0b001).
    pub fn rsv(mut self, rsv: u8) -> Self {
        self.rsv = rsv;
        self
    }

    /// Mask with `key`, whoever receives the frame.
    pub fn masked(mut self, key: [u8; 4]) -> Self {
        self.masking = Masking::With(key);
        self
    }

    /// Leave unmasked, whoever receives the frame.
    pub fn unmasked(mut self) -> Self {
        self.masking = Masking::Without;
        self
    }

    /// Write the length in the given form.
    pub fn length(mut self, length: Length) -> Self {
        self.length = length;
        self
    }

    /// The header bytes, masked with `default_mask` when the masking is
    /// [`Masking::Peer`].
    pub fn encode_header(&self, default_mask: Option<[u8; 4]>) -> Vec<u8> {
        let mask = self.mask_key(default_mask);
        let mut out = vec![(u8::from(self.fin) << 7) | ((self.rsv & 7) << 4) | (self.opcode & 0xf)];
        let mask_bit = if mask.is_some() { 0x80 } else { 0 };
        let len = self.payload.len() as u64;
        match self.length {
            Length::Minimal if len < 126 => out.push(mask_bit | len as u8),
            Length::Minimal if len <= 0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            Length::Minimal | Length::Bits64 => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
            Length::Bits16 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
            }
            Length::Declared(n) => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        if let Some(key) = mask {
            out.extend_from_slice(&key);
        }
        out
    }

    /// Header and payload, masked with `default_mask` when the masking is
    /// [`Masking::Peer`].
    pub fn encode_with(&self, default_mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = self.encode_header(default_mask);
        let mut payload = self.payload.clone();
        if let Some(key) = self.mask_key(default_mask) {
            xor(&mut payload, key, 0);
        }
        out.extend_from_slice(&payload);
        out
    }

    /// The bytes the peer of an endpoint in `role` sends: masked with [`KEY`] when
    /// `role` is the server.
    pub fn to(&self, role: Role) -> Vec<u8> {
        self.encode_with(peer_mask(role))
    }

    /// Only the header of [`to`](Self::to).
    pub fn header_to(&self, role: Role) -> Vec<u8> {
        self.encode_header(peer_mask(role))
    }

    /// The frame as [`out_frames`] decodes it from an endpoint's output.
    pub fn out(&self) -> OutFrame {
        OutFrame {
            fin: self.fin,
            rsv: self.rsv,
            opcode: self.opcode,
            payload: self.payload.clone(),
        }
    }

    fn mask_key(&self, default_mask: Option<[u8; 4]>) -> Option<[u8; 4]> {
        match self.masking {
            Masking::Peer => default_mask,
            Masking::With(key) => Some(key),
            Masking::Without => None,
        }
    }
}

/// The key a peer of `role` masks with: [`KEY`] for frames sent to a server.
pub fn peer_mask(role: Role) -> Option<[u8; 4]> {
    (role == Role::Server).then_some(KEY)
}

/// The frames, one after the other, as the peer of `role` sends them.
pub fn wire(role: Role, frames: &[Frame]) -> Vec<u8> {
    frames.iter().flat_map(|f| f.to(role)).collect()
}

/// A final text frame.
pub fn text(s: &str) -> Frame {
    Frame::new(op::TEXT, s)
}

/// A final text frame from raw (possibly invalid UTF-8) bytes.
pub fn text_bytes(b: &[u8]) -> Frame {
    Frame::new(op::TEXT, b)
}

/// A final binary frame.
pub fn binary(b: &[u8]) -> Frame {
    Frame::new(op::BINARY, b)
}

/// A final continuation frame.
pub fn cont(b: &[u8]) -> Frame {
    Frame::new(op::CONT, b)
}

/// A ping.
pub fn ping(b: &[u8]) -> Frame {
    Frame::new(op::PING, b)
}

/// A pong.
pub fn pong(b: &[u8]) -> Frame {
    Frame::new(op::PONG, b)
}

/// A Close frame with a code and a reason.
pub fn close_frame(code: u16, reason: &str) -> Frame {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    Frame::new(op::CLOSE, payload)
}

/// A Close frame with no payload.
pub fn close_empty() -> Frame {
    Frame::new(op::CLOSE, [])
}

/// The bytes of a text frame masked with [`KEY`], as a client sends it.
pub fn masked_text(s: &str) -> Vec<u8> {
    text(s).masked(KEY).encode_with(None)
}

/// XOR with a key, as RFC 6455 §5.3 describes it (independent of the crate's code).
pub fn xor(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) % 4];
    }
}

// ----- connections and events -----

/// A connection with the default configuration, opened; its `Open` event is taken
/// (and checked).
pub fn open_conn(role: Role) -> Connection {
    open_conn_with(role, ProtocolSettings::default())
}

/// A connection with `config`, opened; its `Open` event is taken (and checked).
pub fn open_conn_with(role: Role, config: ProtocolSettings) -> Connection {
    let mut conn = Connection::new(role, config);
    assert_eq!(conn.ready_state(), ReadyState::Connecting);
    conn.open();
    assert_eq!(drain(&mut conn), vec![Ev::Open]);
    assert_eq!(conn.ready_state(), ReadyState::Open);
    conn
}

/// Every pending event, in order (taking an `Error` applies the failure).
pub fn drain_events(conn: &mut Connection) -> Vec<Event> {
    conn.events().collect()
}

/// [`drain_events`], comparable.
pub fn drain(conn: &mut Connection) -> Vec<Ev> {
    drain_events(conn).into_iter().map(Ev::from).collect()
}

/// An [`Event`] in a form that implements `PartialEq` (`Error` does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// `Event::Open`.
    Open,
    /// `Event::Message(Message::Text(_))`.
    Text(String),
    /// `Event::Message(Message::Binary(_))`.
    Binary(Vec<u8>),
    /// `Event::Ping`.
    Ping(Vec<u8>),
    /// `Event::Pong`.
    Pong(Vec<u8>),
    /// `Event::Error(Error::Protocol(_))`.
    Protocol(ProtocolError),
    /// `Event::Error(Error::Capacity(_))`.
    Capacity(CapacityError),
    /// Any other `Event::Error`, by its `Debug` form.
    OtherError(String),
    /// `Event::Close`.
    Close(CloseEvent),
}

impl From<Event> for Ev {
    fn from(event: Event) -> Self {
        match event {
            Event::Open => Ev::Open,
            Event::Message(Message::Text(t)) => Ev::Text(t.as_str().to_owned()),
            Event::Message(Message::Binary(b)) => Ev::Binary(b.to_vec()),
            Event::Ping(b) => Ev::Ping(b.to_vec()),
            Event::Pong(b) => Ev::Pong(b.to_vec()),
            Event::Error(Error::Protocol(e)) => Ev::Protocol(e),
            Event::Error(Error::Capacity(e)) => Ev::Capacity(e),
            Event::Error(e) => Ev::OtherError(format!("{e:?}")),
            Event::Close(c) => Ev::Close(c),
        }
    }
}

impl Ev {
    /// The text event of `s`.
    pub fn text(s: &str) -> Ev {
        Ev::Text(s.to_owned())
    }

    /// The [`Error`] of an error event.
    pub fn error(&self) -> Error {
        match self {
            Ev::Protocol(e) => Error::Protocol(*e),
            Ev::Capacity(e) => Error::Capacity(*e),
            other => panic!("{other:?} is not a protocol or capacity error"),
        }
    }
}

/// `Close { code, reason, was_clean }`.
pub fn close_ev(code: u16, reason: &str, was_clean: bool) -> Ev {
    Ev::Close(CloseEvent {
        code: CloseCode(code),
        reason: reason.to_owned(),
        was_clean,
    })
}

// ----- output -----

/// Decode the frames the connection wrote, independently of the crate's decoder.
///
/// Panics unless every frame's MASK bit is `expect_masked`, its length uses the
/// minimal encoding, and the bytes end exactly at a frame boundary. Payloads come
/// back unmasked; the header keeps the key.
pub fn decode_output_frames(bytes: &[u8], expect_masked: bool) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        assert!(rest.len() >= 2, "truncated header at {at}: {rest:02x?}");
        let (b0, b1) = (rest[0], rest[1]);
        let masked = b1 & 0x80 != 0;
        assert_eq!(
            masked, expect_masked,
            "MASK bit of the frame at {at}: {rest:02x?}"
        );
        let (len, mut n) = match b1 & 0x7f {
            126 => {
                let len = u64::from(u16::from_be_bytes([rest[2], rest[3]]));
                assert!(len >= 126, "non-minimal 16-bit length {len} at {at}");
                (len, 4)
            }
            127 => {
                let len = u64::from_be_bytes(rest[2..10].try_into().unwrap());
                assert!(len > 0xffff, "non-minimal 64-bit length {len} at {at}");
                assert_eq!(len >> 63, 0, "64-bit length with its top bit set at {at}");
                (len, 10)
            }
            len => (u64::from(len), 2),
        };
        let mask = masked.then(|| {
            let key: [u8; 4] = rest[n..n + 4].try_into().unwrap();
            n += 4;
            key
        });
        let len = usize::try_from(len).unwrap();
        assert!(rest.len() >= n + len, "truncated payload at {at}");
        let mut payload = rest[n..n + len].to_vec();
        if let Some(key) = mask {
            xor(&mut payload, key, 0);
        }
        let header = FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode: OpCode::from_bits(b0),
            mask,
            payload_len: len as u64,
        };
        frames.push((header, payload));
        at += n + len;
    }
    frames
}

/// A written frame without its (random) key: what is compared across runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    /// FIN.
    pub fin: bool,
    /// RSV bits.
    pub rsv: u8,
    /// The 4-bit opcode.
    pub opcode: u8,
    /// The unmasked payload.
    pub payload: Vec<u8>,
}

/// Decode what an endpoint in `role` wrote (masked iff `role` is the client).
pub fn out_frames(role: Role, bytes: &[u8]) -> Vec<OutFrame> {
    decode_output_frames(bytes, role == Role::Client)
        .into_iter()
        .map(|(h, payload)| OutFrame {
            fin: h.fin,
            rsv: h.rsv,
            opcode: h.opcode.bits(),
            payload,
        })
        .collect()
}

/// Take the output and check it is exactly `expected`, in order.
///
/// A server's output is compared byte for byte with the unmasked encoding. A
/// client's is decoded to find each frame's key, and then compared byte for byte
/// with the expected frames masked with those keys: every header bit, the length
/// encoding, the key's place and the masked payload.
pub fn assert_output(conn: &mut Connection, expected: &[Frame]) {
    let out = conn.take_output().to_vec();
    match conn.info().role() {
        Role::Server => {
            let want: Vec<u8> = expected.iter().flat_map(|f| f.encode_with(None)).collect();
            assert_eq!(
                out,
                want,
                "server output\n got: {:?}\nwant: {:?}",
                out_frames(Role::Server, &out),
                expected
            );
        }
        Role::Client => {
            let decoded = decode_output_frames(&out, true);
            assert_eq!(
                decoded.len(),
                expected.len(),
                "client output frames\n got: {decoded:?}\nwant: {expected:?}"
            );
            let want: Vec<u8> = decoded
                .iter()
                .zip(expected)
                .flat_map(|((h, _), f)| f.encode_with(h.mask))
                .collect();
            assert_eq!(
                out, want,
                "client output\n got: {decoded:?}\nwant: {expected:?}"
            );
        }
    }
}

/// Take the output and check it is empty.
pub fn assert_no_output(conn: &mut Connection) {
    let out = conn.take_output();
    assert!(
        out.is_empty(),
        "unexpected output {:?}",
        out_frames(conn.info().role(), &out)
    );
}

/// Check that the connection fails: the events are `before`, then `err`, then
/// `Close { code, reason: err's text, was_clean: false }`; the output is
/// `output_before` then a Close frame with `code` and that reason; the state is
/// `Closed` and the transport is to be closed. Then a valid frame and a ping fed
/// afterwards are discarded: no event, no output.
pub fn assert_fails(
    conn: &mut Connection,
    before: &[Ev],
    output_before: &[Frame],
    err: Ev,
    code: u16,
) {
    let reason = err.error().to_string();
    let mut want = before.to_vec();
    want.push(err);
    want.push(close_ev(code, &reason, false));
    assert_eq!(drain(conn), want);
    let mut frames = output_before.to_vec();
    frames.push(close_frame(code, &reason));
    assert_output(conn, &frames);
    assert_eq!(conn.ready_state(), ReadyState::Closed);
    assert!(conn.should_close_transport());
    assert_discards_input(conn);
}

/// Feed a valid text frame, a ping and a Close: none of them has any effect.
pub fn assert_discards_input(conn: &mut Connection) {
    let role = conn.info().role();
    let state = conn.ready_state();
    conn.receive(&wire(
        role,
        &[text("late"), ping(b"p"), close_frame(1000, "")],
    ));
    assert_eq!(drain(conn), vec![]);
    assert_no_output(conn);
    assert_eq!(conn.ready_state(), state);
    assert_eq!(conn.info().buffered_input(), 0);
}

// ----- feeding in pieces -----

/// What a run of a connection produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Every event after `Open`.
    pub events: Vec<Ev>,
    /// Every frame written, without keys.
    pub output: Vec<OutFrame>,
    /// The ready-state at the end.
    pub state: ReadyState,
}

/// Open a connection with `config`, feed it `chunks` one `receive` at a time, taking
/// events and output after each.
pub fn run_chunks(role: Role, config: &ProtocolSettings, chunks: &[&[u8]]) -> Run {
    let mut conn = Connection::new(role, config.clone());
    conn.open();
    let mut events = drain(&mut conn);
    assert_eq!(events.remove(0), Ev::Open);
    let mut output = Vec::new();
    for chunk in chunks {
        conn.receive(chunk);
        events.extend(drain(&mut conn));
        output.extend(out_frames(role, &conn.take_output()));
    }
    Run {
        events,
        output,
        state: conn.ready_state(),
    }
}

/// Feed `input` whole, then split in two at every point, then byte by byte, each on
/// a fresh connection; every run must produce the same events, output and state.
/// Returns the run.
pub fn assert_every_split(role: Role, config: &ProtocolSettings, input: &[u8]) -> Run {
    let whole = run_chunks(role, config, &[input]);
    for at in 1..input.len() {
        let (a, b) = input.split_at(at);
        assert_eq!(run_chunks(role, config, &[a, b]), whole, "split at {at}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_chunks(role, config, &bytes), whole, "byte by byte");
    whole
}

// ----- whole scenarios -----

/// Feed `input` to a fresh connection with `config` (opened, `Open` taken) in one
/// `receive`, and check the events and the exact output; then check that feeding it
/// split at every point, and byte by byte, gives the same events, output and state.
/// Returns the connection fed whole, for further checks.
pub fn check_receive(
    role: Role,
    config: &ProtocolSettings,
    input: &[u8],
    events: &[Ev],
    output: &[Frame],
) -> Connection {
    let mut conn = open_conn_with(role, config.clone());
    conn.receive(input);
    assert_eq!(drain(&mut conn), events, "events, input fed whole");
    assert_output(&mut conn, output);
    let run = assert_every_split(role, config, input);
    assert_eq!(run.events, events, "events, input fed in pieces");
    let want: Vec<OutFrame> = output.iter().map(Frame::out).collect();
    assert_eq!(run.output, want, "output, input fed in pieces");
    assert_eq!(run.state, conn.ready_state());
    conn
}

/// [`check_receive`] for an input that fails the connection: the events are
/// `before`, `err`, then `Close { code, reason: err's text, was_clean: false }`; the
/// output `out_before` then a Close frame with `code` and that reason. Then the state
/// is `Closed`, the transport is to be closed, and later input is discarded.
pub fn check_fails(
    role: Role,
    config: &ProtocolSettings,
    input: &[u8],
    before: &[Ev],
    out_before: &[Frame],
    err: Ev,
    code: u16,
) {
    let reason = err.error().to_string();
    let mut events = before.to_vec();
    events.push(err);
    events.push(close_ev(code, &reason, false));
    let mut output = out_before.to_vec();
    output.push(close_frame(code, &reason));
    let mut conn = check_receive(role, config, input, &events, &output);
    assert_eq!(conn.ready_state(), ReadyState::Closed);
    assert!(conn.should_close_transport());
    assert_discards_input(&mut conn);
}
