//! The sans-I/O connection: bytes in, events and bytes out.

use std::{collections::VecDeque, io::IoSlice, mem};

use bytes::{Buf, Bytes, BytesMut};

use super::{
    apply_mask, generate_mask,
    output::{Output, SHARE_MIN},
    CloseCode, CloseEvent, CloseFrame, Event, Extension, FrameHeader, Message, OpCode,
    PreparedMessage, ReadyState, Role, Utf8Bytes, Utf8Validator, MAX_HEADER_LEN, MAX_REASON_LEN,
};
use crate::{
    error::{CapacityError, ProtocolError},
    Config, Error,
};

/// The protocol version string, as the seed's `version` returns it.
pub const VERSION: &str = "hybi-13";

/// The largest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// One WebSocket connection's protocol state, without any I/O.
///
/// Feed it what the transport read with [`receive`](Self::receive) (or
/// [`receive_buf`](Self::receive_buf)) and [`receive_eof`](Self::receive_eof); ask it
/// to send with the `send_*` methods, [`close`](Self::close) and [`fail`](Self::fail).
/// After each of these calls:
///
/// 1. write out [`take_output`](Self::take_output) to the transport;
/// 2. if [`should_close_transport`](Self::should_close_transport), close the
///    transport once that output is written;
/// 3. else if [`close_expected`](Self::close_expected), arm a timer that closes the
///    transport if the peer has not closed it by then;
/// 4. handle every event from [`poll_event`](Self::poll_event).
///
/// Timers (keep-alive, close and handshake timeouts) belong to the I/O layer.
///
/// ```
/// use websocket_driver::proto::{Connection, Event, Message, Role};
/// use websocket_driver::Config;
///
/// let mut server = Connection::new(Role::Server, Config::default());
/// server.open();
/// // A masked text frame "Hello" (RFC 6455 §5.7).
/// server.receive(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// assert!(matches!(server.poll_event(), Some(Event::Open)));
/// match server.poll_event() {
///     Some(Event::Message(Message::Text(text))) => assert_eq!(text, "Hello"),
///     other => panic!("unexpected {other:?}"),
/// }
/// server.send_text("Hello").unwrap();
/// assert_eq!(&server.take_output()[..], b"\x81\x05Hello");
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    state: ReadyState,
    read_buf: BytesMut,
    frame: Option<InFrame>,
    msg: Assembly,
    events: VecDeque<Event>,
    output: Output,
    protocol: Option<String>,
    extension: Option<Box<dyn Extension>>,
    /// After the connection is closed or failed, input is dropped unread
    /// (RFC 6455 §7.1.7: "MUST NOT continue to attempt to process data").
    discarding: bool,
    /// A failure found in the input, applied when its [`Event::Error`] is taken.
    pending_failure: Option<(CloseCode, String)>,
    /// The peer's Close was read: the code of our reply (sent if we have not sent a
    /// Close yet), applied when its [`Event::Close`] is taken.
    pending_close: Option<CloseCode>,
    failed: bool,
    eof_received: bool,
}

/// A frame whose header is decoded and whose payload is still arriving.
#[derive(Debug)]
struct InFrame {
    header: FrameHeader,
    len: usize,
    /// Payload bytes already unmasked (and checked, for inline UTF-8).
    processed: usize,
    kind: FrameKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    /// A control frame: handled once whole (at most 125 bytes).
    Control,
    /// A data frame: unmasked, and UTF-8 checked when `utf8`, as its bytes arrive.
    Data { utf8: bool },
    /// A data frame after our Close: skipped as it arrives, never buffered.
    Discard,
}

/// The message being assembled.
#[derive(Debug, Default)]
struct Assembly {
    /// `Text` or `Binary` while a message is in progress.
    opcode: Option<OpCode>,
    /// The first frame carried the extension's RSV bits.
    compressed: bool,
    /// Payload bytes so far, as declared by the headers (uncompressed messages).
    size: u64,
    fragments: usize,
    buf: BytesMut,
    utf8: Utf8Validator,
}

impl Assembly {
    fn reset(&mut self) {
        self.opcode = None;
        self.compressed = false;
        self.size = 0;
        self.fragments = 0;
        self.buf.clear();
        self.utf8.reset();
    }
}

impl Connection {
    /// A connection in the `Connecting` state: call [`open`](Self::open) once the
    /// opening handshake is done. Messages sent before that are queued.
    pub fn new(role: Role, config: Config) -> Self {
        Connection {
            role,
            config,
            state: ReadyState::Connecting,
            read_buf: BytesMut::new(),
            frame: None,
            msg: Assembly::default(),
            events: VecDeque::new(),
            output: Output::default(),
            protocol: None,
            extension: None,
            discarding: false,
            pending_failure: None,
            pending_close: None,
            failed: false,
            eof_received: false,
        }
    }

    /// Record the subprotocol the handshake agreed on.
    pub fn set_protocol(&mut self, protocol: Option<String>) {
        self.protocol = protocol;
    }

    /// Install the extension the handshake agreed on (before [`open`](Self::open)).
    pub fn set_extension(&mut self, extension: Box<dyn Extension>) {
        self.extension = Some(extension);
    }

    /// The handshake is done: emit [`Event::Open`], release queued output and process
    /// any bytes received so far. Does nothing unless the state is `Connecting`.
    pub fn open(&mut self) {
        if self.state != ReadyState::Connecting {
            return;
        }
        self.state = ReadyState::Open;
        self.events.push_back(Event::Open);
        tracing::debug!(role = ?self.role, protocol = ?self.protocol, "websocket open");
        if !self.read_buf.is_empty() {
            let mut buf = mem::take(&mut self.read_buf);
            self.run(&mut buf);
            self.read_buf = buf;
        }
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ready-state (the seed's `ready-state`).
    pub fn ready_state(&self) -> ReadyState {
        self.state
    }

    /// The subprotocol agreed in the handshake, if any (the seed's `protocol`).
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// `"hybi-13"` (the seed's `version`).
    pub fn version(&self) -> &'static str {
        VERSION
    }

    /// The negotiated extension, if any.
    pub fn extension(&self) -> Option<&dyn Extension> {
        self.extension.as_deref()
    }

    // ----- input -----

    /// Feed bytes read from the transport. Bytes received while `Connecting` wait
    /// for [`open`](Self::open); after the connection closed or failed they are
    /// dropped.
    pub fn receive(&mut self, data: &[u8]) {
        if self.discarding {
            return;
        }
        self.read_buf.extend_from_slice(data);
        if self.state == ReadyState::Connecting {
            return;
        }
        let mut buf = mem::take(&mut self.read_buf);
        self.run(&mut buf);
        self.read_buf = buf;
    }

    /// Feed bytes from a buffer the caller keeps (a codec's read buffer), without
    /// copying them: whole frames are split off `buf` and the bytes of an incomplete
    /// frame stay in it, already unmasked and checked as far as they go. The caller
    /// must pass the same buffer, with whatever this call left in it, next time, and
    /// must not also call [`receive`](Self::receive).
    pub fn receive_buf(&mut self, buf: &mut BytesMut) {
        match self.state {
            _ if self.discarding => buf.clear(),
            ReadyState::Connecting => {}
            _ => self.run(buf),
        }
    }

    /// The transport reached end of file. If the connection was not closed yet, it
    /// is now, with code 1006 (RFC 6455 §7.1.5: "If _The WebSocket Connection is
    /// Closed_ and no Close control frame was received by the endpoint ... the
    /// WebSocket Connection Close Code is considered to be 1006").
    pub fn receive_eof(&mut self) {
        self.eof_received = true;
        if self.state != ReadyState::Closed && self.pending_close.is_none() {
            self.finish(CloseEvent {
                code: CloseCode::ABNORMAL,
                reason: String::new(),
                was_clean: false,
            });
        }
    }

    /// Bytes of input held: an incomplete frame plus the message being assembled.
    /// Bounded by `max_frame_size` + 14 + `max_message_size` plus the last chunk fed.
    pub fn buffered_input(&self) -> usize {
        self.read_buf.len() + self.msg.buf.len()
    }

    // ----- events -----

    /// The next event, if any.
    ///
    /// When the input breaks the protocol, the core stops reading at the bad frame
    /// and queues [`Event::Error`] after the events of the frames before it; the
    /// failure takes effect (the Close frame is queued for output and the state
    /// becomes `Closed`) when that `Error` is taken here. Replies sent while handling
    /// the earlier events therefore go out before the Close frame, as a strict
    /// endpoint must. In the same way, the peer's Close is answered (and the state
    /// becomes `Closed`) when its [`Event::Close`] is taken, so that replies to the
    /// messages it followed precede the answering Close.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        match event {
            Some(Event::Error(_)) => {
                if let Some((code, reason)) = self.pending_failure.take() {
                    self.fail(code, &reason);
                }
            }
            Some(Event::Close(_)) => {
                if let Some(code) = self.pending_close.take() {
                    // RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did
                    // not previously send a Close frame, the endpoint MUST send a
                    // Close frame in response", echoing the code (1000 when none was
                    // given).
                    if self.state == ReadyState::Open {
                        self.write_close(code, "");
                    }
                    self.state = ReadyState::Closed;
                }
            }
            _ => {}
        }
        event
    }

    /// The next event, without taking it (an `Error` does not take effect yet).
    pub fn peek_event(&self) -> Option<&Event> {
        self.events.front()
    }

    /// Take every pending event, in order, as [`poll_event`](Self::poll_event) does.
    pub fn events(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.poll_event())
    }

    // ----- output -----

    /// The bytes to write to the transport, in order, as one buffer. Empty while
    /// `Connecting` (queued frames go out after [`open`](Self::open)). Large
    /// payloads queued by reference are copied into it: a transport that can write
    /// pieces should use [`take_output_chunk`](Self::take_output_chunk) or
    /// [`output_vectored`](Self::output_vectored).
    pub fn take_output(&mut self) -> BytesMut {
        if self.state == ReadyState::Connecting {
            return BytesMut::new();
        }
        self.output.take_all()
    }

    /// The next piece of the output, without copying: the frames written since the
    /// last piece, or a large payload queued by reference. Empty when there is
    /// nothing to write (or while `Connecting`).
    pub fn take_output_chunk(&mut self) -> Bytes {
        if self.state == ReadyState::Connecting {
            return Bytes::new();
        }
        self.output.take_chunk()
    }

    /// The first contiguous piece of the output, without taking it: write what the
    /// transport accepts straight from here, then
    /// [`advance_output`](Self::advance_output) by that much. Empty while
    /// `Connecting`.
    pub fn output(&self) -> &[u8] {
        if self.state == ReadyState::Connecting {
            return &[];
        }
        self.output.front()
    }

    /// Fill `dst` with the output's pieces, in order, for one vectored write;
    /// returns how many were filled (0 while `Connecting`). Then
    /// [`advance_output`](Self::advance_output) by what the transport took.
    pub fn output_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        if self.state == ReadyState::Connecting {
            return 0;
        }
        self.output.chunks_vectored(dst)
    }

    /// Drop the first `n` bytes of the output: the transport took them. `n` is
    /// capped at the output's length.
    pub fn advance_output(&mut self, n: usize) {
        if self.state != ReadyState::Connecting {
            self.output.advance(n);
        }
    }

    /// Drop everything queued for the transport: it is being closed without writing
    /// it (the peer stopped reading and the closing handshake timed out).
    pub fn discard_output(&mut self) {
        self.output.clear();
        self.output.release();
    }

    /// How many more input bytes the frame being read needs to be whole (0 between
    /// frames): a transport can make room for that much before its next read, instead
    /// of growing its buffer piece by piece.
    pub fn frame_remaining(&self) -> usize {
        match &self.frame {
            Some(f) if f.kind != FrameKind::Discard => f.len - f.processed,
            _ => 0,
        }
    }

    /// Give back the memory of the output and message-assembly buffers if they are
    /// empty: for a connection gone quiet, which then holds no buffer until it
    /// sends or receives again.
    pub fn release_buffers(&mut self) {
        self.output.release();
        if self.msg.opcode.is_none() && self.msg.buf.is_empty() {
            self.msg.buf = BytesMut::new();
        }
    }

    /// Move the output into `dst` (an encoder's write buffer), without copying when
    /// `dst` is empty.
    pub fn write_output_into(&mut self, dst: &mut BytesMut) {
        if self.state == ReadyState::Connecting || self.output.is_empty() {
            return;
        }
        let all = self.output.take_all();
        if dst.is_empty() {
            *dst = all;
        } else {
            dst.extend_from_slice(&all);
        }
    }

    /// Bytes queued for the transport and not taken yet, including frames queued
    /// while `Connecting`.
    pub fn buffered_amount(&self) -> usize {
        self.output.len()
    }

    /// Whether the transport should be closed once the output is written: the
    /// connection is closed and, for a client after a clean close, the server has
    /// closed its side (RFC 6455 §7.1.1: the server closes the TCP connection first;
    /// a client waits for it, with a timeout).
    pub fn should_close_transport(&self) -> bool {
        self.state == ReadyState::Closed
            && (self.role == Role::Server || self.eof_received || self.failed)
    }

    /// Whether the peer is expected to close the transport soon: the I/O layer should
    /// arm a timer that closes it if the peer does not.
    pub fn close_expected(&self) -> bool {
        match self.state {
            ReadyState::Closing => true,
            ReadyState::Closed => !self.eof_received,
            _ => false,
        }
    }

    // ----- sending -----

    /// Send a text message (the seed's `send-text`).
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send_data(OpCode::Text, text.as_bytes())
    }

    /// Send a binary message (the seed's `send-binary`).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send_data(OpCode::Binary, data)
    }

    /// Send a message (the seed's `send`).
    pub fn send(&mut self, message: &Message) -> Result<(), Error> {
        let (opcode, payload) = match message {
            Message::Text(t) => (OpCode::Text, t.as_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        if self.extension.is_none() && self.state.can_send() {
            // The message's own bytes can go out as they are: no copy when large.
            self.write_frame_shared(opcode, payload);
            return Ok(());
        }
        self.send_data(opcode, payload)
    }

    /// Send a Ping with up to 125 bytes of payload (the seed's `send-ping`).
    pub fn send_ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Send a Pong with up to 125 bytes of payload (an unsolicited Pong is a
    /// one-way heartbeat, RFC 6455 §5.5.3).
    pub fn send_pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Pong, payload)
    }

    /// Start the closing handshake (the seed's `close-connection`): send a Close
    /// frame with `code` and `reason` and wait for the peer's. Before the connection
    /// opened, it closes at once and the queued frames are dropped.
    ///
    /// `code` must be one that [`CloseCode::is_allowed`] accepts and `reason` at most
    /// 123 bytes.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !code.is_allowed() {
            return Err(Error::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(Error::ControlPayloadTooLarge(2 + reason.len()));
        }
        match self.state {
            ReadyState::Connecting => {
                self.output.clear();
                self.finish(CloseEvent {
                    code,
                    reason: reason.to_owned(),
                    was_clean: false,
                });
                Ok(())
            }
            ReadyState::Open => {
                self.write_close(code, reason);
                self.state = ReadyState::Closing;
                tracing::debug!(code = code.0, "websocket closing");
                Ok(())
            }
            _ => Err(Error::ConnectionClosed),
        }
    }

    /// Fail the connection (RFC 6455 §7.1.7): send a Close frame with `code` if the
    /// connection is open, stop reading, and close. Use it for conditions the I/O
    /// layer detects (1001 on shutdown or idle timeout, 1008 on a policy, 1011 on an
    /// internal error). `code` should be one that [`CloseCode::is_allowed`] accepts;
    /// any other code closes without sending a Close frame. The reason is cut to 123
    /// bytes.
    pub fn fail(&mut self, code: CloseCode, reason: &str) {
        let reason = truncate_reason(reason);
        if self.state == ReadyState::Closed || self.pending_close.is_some() {
            return;
        }
        if self.state == ReadyState::Open && code.is_allowed() {
            self.write_close(code, reason);
        }
        if self.state == ReadyState::Connecting {
            self.output.clear();
        }
        self.failed = true;
        self.finish(CloseEvent {
            code,
            reason: reason.to_owned(),
            was_clean: false,
        });
    }

    /// Send a message prepared once for many connections (a broadcast): the
    /// prepared compressed frame when this connection's agreement allows it
    /// ([`Extension::accepts_prepared`]: permessage-deflate without context takeover
    /// on our side, a window at least as large), else the message compressed for this
    /// connection, or the plain frame when this connection does not compress. A
    /// server copies the prepared frame's bytes as they are; a client masks them.
    pub fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        if !self.state.can_send() {
            return Err(Error::ConnectionClosed);
        }
        let opcode = prepared.opcode();
        match (&self.extension, prepared.compressed_payload()) {
            (Some(ext), Some((payload, bits))) if ext.accepts_prepared(bits) => {
                let rsv = ext.rsv();
                match (self.role, prepared.compressed_frame()) {
                    (Role::Server, Some(frame)) => self.output.push_frame(frame),
                    _ => self.write_frame(opcode, rsv, payload),
                }
                Ok(())
            }
            (Some(_), Some(_)) => self.send_data(opcode, prepared.payload()),
            _ => {
                // Uncompressed (RSV1 clear) is valid whatever was negotiated.
                match self.role {
                    Role::Server => self.output.push_frame(prepared.frame()),
                    Role::Client => self.write_frame(opcode, 0, prepared.payload()),
                }
                Ok(())
            }
        }
    }

    fn send_data(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        if !self.state.can_send() {
            return Err(Error::ConnectionClosed);
        }
        if let Some(ext) = self.extension.as_mut() {
            // The extension writes its payload into the output after room for the
            // largest header; the header goes in front once the length is known and
            // the payload moves up against it (no buffer of the extension's own).
            let out = self.output.tail_mut();
            let frame_start = out.len();
            let payload_start = frame_start + MAX_HEADER_LEN;
            out.resize(payload_start, 0);
            let encoded = match ext.encode(opcode, payload, out) {
                Ok(encoded) => encoded,
                Err(err) => {
                    out.truncate(frame_start);
                    return Err(err);
                }
            };
            if encoded {
                let rsv = ext.rsv();
                let len = out.len() - payload_start;
                let mask = self.role.masks_outgoing().then(generate_mask);
                let header = FrameHeader {
                    fin: true,
                    rsv,
                    opcode,
                    mask,
                    payload_len: len as u64,
                };
                let mut bytes = [0u8; MAX_HEADER_LEN];
                let header_len = header.encode(&mut bytes);
                out.copy_within(payload_start.., frame_start + header_len);
                out.truncate(frame_start + header_len + len);
                out[frame_start..frame_start + header_len].copy_from_slice(&bytes[..header_len]);
                if let Some(mask) = mask {
                    apply_mask(&mut out[frame_start + header_len..], mask, 0);
                }
                return Ok(());
            }
            out.truncate(frame_start);
        }
        self.write_frame(opcode, 0, payload);
        Ok(())
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::ControlPayloadTooLarge(payload.len()));
        }
        if !self.state.can_send() {
            return Err(Error::ConnectionClosed);
        }
        self.write_frame(opcode, 0, payload);
        Ok(())
    }

    fn write_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&code.0.to_be_bytes());
        payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
        self.write_frame(OpCode::Close, 0, &payload[..2 + reason.len()]);
    }

    /// Append one whole frame to the output; a client masks it with a fresh key
    /// (RFC 6455 §5.3: "The masking key ... MUST" be fresh for each frame).
    fn write_frame(&mut self, opcode: OpCode, rsv: u8, payload: &[u8]) {
        let mask = self.role.masks_outgoing().then(generate_mask);
        let header = FrameHeader {
            fin: true,
            rsv,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let out = self.output.tail_mut();
        out.reserve(header.encoded_len() + payload.len());
        header.encode_into(out);
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(mask) = mask {
            apply_mask(&mut out[start..], mask, 0);
        }
    }

    /// [`write_frame`](Self::write_frame) for a payload held in `Bytes`: a large one
    /// that needs no mask (RFC 6455 §5.1: a server's frames are not masked) is
    /// queued by reference after its header, not copied.
    fn write_frame_shared(&mut self, opcode: OpCode, payload: &Bytes) {
        if self.role.masks_outgoing() || payload.len() < SHARE_MIN {
            return self.write_frame(opcode, 0, payload);
        }
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        header.encode_into(self.output.tail_mut());
        self.output.push_shared(payload.clone());
    }

    // ----- receiving -----

    fn run(&mut self, buf: &mut BytesMut) {
        if let Err(err) = self.process(buf) {
            self.fail_with(err);
        }
        if self.discarding {
            buf.clear();
        }
    }

    fn process(&mut self, buf: &mut BytesMut) -> Result<(), Error> {
        while !self.discarding {
            if self.frame.is_none() {
                let Some((header, header_len)) = FrameHeader::decode(buf)? else {
                    return Ok(());
                };
                let kind = self.check_header(&header)?;
                buf.advance(header_len);
                // `check_header` bounded the length by `max_frame_size`, a `usize`.
                let len = header.payload_len as usize;
                self.frame = Some(InFrame {
                    header,
                    len,
                    processed: 0,
                    kind,
                });
            }
            let Some(frame) = self.frame.as_mut() else {
                return Ok(());
            };
            let avail = buf.len().min(frame.len);
            match frame.kind {
                FrameKind::Discard => {
                    // Skipped bytes leave the buffer at once: `buf` starts past them.
                    let skip = buf.len().min(frame.len - frame.processed);
                    buf.advance(skip);
                    frame.processed += skip;
                    if frame.processed < frame.len {
                        return Ok(());
                    }
                    self.frame = None;
                }
                FrameKind::Control => {
                    if avail < frame.len {
                        return Ok(());
                    }
                    let header = frame.header;
                    self.frame = None;
                    let mut payload = buf.split_to(header.payload_len as usize);
                    if let Some(mask) = header.mask {
                        apply_mask(&mut payload, mask, 0);
                    }
                    self.handle_control(header.opcode, payload.freeze())?;
                }
                FrameKind::Data { utf8 } => {
                    if avail > frame.processed {
                        let new = &mut buf[frame.processed..avail];
                        if let Some(mask) = frame.header.mask {
                            apply_mask(new, mask, frame.processed);
                        }
                        if utf8 {
                            // RFC 6455 §8.1, checked on partial payloads as they arrive.
                            self.msg.utf8.feed(new)?;
                        }
                        frame.processed = avail;
                    }
                    if frame.processed < frame.len {
                        return Ok(());
                    }
                    let (header, len) = (frame.header, frame.len);
                    self.frame = None;
                    let payload = buf.split_to(len).freeze();
                    self.handle_data(header.fin, payload)?;
                }
            }
        }
        Ok(())
    }

    /// Check a header before any of its payload is read, and start or continue the
    /// message it belongs to.
    fn check_header(&mut self, h: &FrameHeader) -> Result<FrameKind, Error> {
        // RFC 6455 §5.1: "a server MUST close the connection upon receiving a frame
        // that is not masked"; "A client MUST close a connection if it detects a
        // masked frame".
        match self.role {
            Role::Server if h.mask.is_none() => {
                return Err(ProtocolError::UnmaskedFrameFromClient.into())
            }
            Role::Client if h.mask.is_some() => {
                return Err(ProtocolError::MaskedFrameFromServer.into())
            }
            _ => {}
        }
        // RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint
        // MUST _Fail the WebSocket Connection_."
        if let OpCode::Reserved(op) = h.opcode {
            return Err(ProtocolError::ReservedOpcode(op).into());
        }
        if h.opcode.is_control() {
            // RFC 6455 §5.2: RSV bits "MUST be 0 unless an extension is negotiated
            // that defines meanings"; no extension we know uses them on control frames
            // (RFC 7692 §6: RSV1 only on the first frame of a data message).
            if h.rsv != 0 {
                return Err(ProtocolError::ReservedBitsSet(h.rsv).into());
            }
            // RFC 6455 §5.5: "All control frames MUST have a payload length of 125
            // bytes or less and MUST NOT be fragmented."
            if !h.fin {
                return Err(ProtocolError::FragmentedControlFrame.into());
            }
            if h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLarge(h.payload_len).into());
            }
            return Ok(FrameKind::Control);
        }
        let allowed_rsv = match (h.opcode, &self.extension) {
            (OpCode::Text | OpCode::Binary, Some(ext)) => ext.rsv(),
            _ => 0,
        };
        if h.rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBitsSet(h.rsv).into());
        }
        if h.payload_len > self.config.max_frame_size as u64 {
            return Err(CapacityError::FrameTooLarge {
                size: h.payload_len,
                max: self.config.max_frame_size,
            }
            .into());
        }
        if self.state == ReadyState::Closing {
            // RFC 6455 §5.5.1: after sending a Close frame we wait for the peer's
            // Close; data that comes first is dropped, unbuffered.
            return Ok(FrameKind::Discard);
        }
        // RFC 6455 §5.4: fragments are a first frame, then continuations, then FIN.
        match (h.opcode, self.msg.opcode) {
            (OpCode::Continuation, None) => {
                return Err(ProtocolError::UnexpectedContinuation.into())
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation.into())
            }
            (OpCode::Text | OpCode::Binary, None) => {
                self.msg.opcode = Some(h.opcode);
                self.msg.compressed = h.rsv != 0;
            }
            _ => {}
        }
        self.msg.fragments += 1;
        if self.msg.fragments > self.config.max_fragments {
            return Err(CapacityError::TooManyFragments {
                max: self.config.max_fragments,
            }
            .into());
        }
        // The message limit, before the payload is buffered; compressed messages are
        // held to it on their inflated size by the extension.
        if !self.msg.compressed {
            let size = self.msg.size + h.payload_len;
            if size > self.config.max_message_size as u64 {
                return Err(CapacityError::MessageTooLarge {
                    size,
                    max: self.config.max_message_size,
                }
                .into());
            }
            self.msg.size = size;
        }
        let utf8 = self.msg.opcode == Some(OpCode::Text) && !self.msg.compressed;
        Ok(FrameKind::Data { utf8 })
    }

    fn handle_data(&mut self, fin: bool, payload: Bytes) -> Result<(), Error> {
        let text = self.msg.opcode == Some(OpCode::Text);
        if self.msg.compressed {
            let start = self.msg.buf.len();
            let limit = self.config.max_message_size.saturating_sub(start);
            if let Some(ext) = self.extension.as_mut() {
                ext.decode(&payload, fin, &mut self.msg.buf, limit)?;
            }
            if text {
                self.msg.utf8.feed(&self.msg.buf[start..])?;
            }
        } else if fin && self.msg.fragments == 1 {
            // A single-frame message: its payload is the message, not copied.
            if text {
                self.msg.utf8.finish()?;
            }
            self.msg.reset();
            self.events.push_back(Event::Message(if text {
                Message::Text(Utf8Bytes::from_validated(payload))
            } else {
                Message::Binary(payload)
            }));
            return Ok(());
        } else {
            self.msg.buf.extend_from_slice(&payload);
        }
        if fin {
            if text {
                self.msg.utf8.finish()?;
            }
            let data = self.msg.buf.split().freeze();
            self.msg.reset();
            self.events.push_back(Event::Message(if text {
                Message::Text(Utf8Bytes::from_validated(data))
            } else {
                Message::Binary(data)
            }));
        }
        Ok(())
    }

    fn handle_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), Error> {
        match opcode {
            OpCode::Ping => {
                // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send
                // a Pong frame in response ... with identical Application data", in
                // order with the frames already queued.
                if self.state == ReadyState::Open && self.config.auto_pong {
                    self.write_frame(OpCode::Pong, 0, &payload);
                }
                self.events.push_back(Event::Ping(payload));
            }
            OpCode::Pong => self.events.push_back(Event::Pong(payload)),
            OpCode::Close => {
                let frame = CloseFrame::decode(&payload)?;
                // The reply (RFC 6455 §5.5.1) is written when the Close event is
                // taken, after any reply to the messages before it.
                self.pending_close = Some(frame.as_ref().map_or(CloseCode::NORMAL, |f| f.code));
                let (code, reason) = match frame {
                    Some(f) => (f.code, f.reason),
                    None => (CloseCode::NO_STATUS, String::new()),
                };
                tracing::debug!(code = code.0, "websocket close received");
                // RFC 6455 §5.5.1: after the Close frame nothing more is read.
                self.discarding = true;
                self.frame = None;
                self.msg.reset();
                self.read_buf = BytesMut::new();
                self.events.push_back(Event::Close(CloseEvent {
                    code,
                    reason,
                    was_clean: true,
                }));
            }
            _ => {}
        }
        Ok(())
    }

    /// Fail the connection because of `err`: stop reading (RFC 6455 §7.1.7: "MUST NOT
    /// continue to attempt to process data ... after being instructed to _Fail the
    /// WebSocket Connection_") and queue [`Event::Error`]; [`poll_event`](Self::poll_event)
    /// applies the failure, with `err.close_code()` (1011 when it has none), when it
    /// takes that event. The core calls it for what the peer sent; the I/O layer for
    /// what it detects (an idle timeout, back-pressure). Does nothing once closed or
    /// already failing.
    pub fn fail_with(&mut self, err: Error) {
        if self.state == ReadyState::Closed
            || self.pending_failure.is_some()
            || self.pending_close.is_some()
        {
            return;
        }
        let code = err.close_code().unwrap_or(CloseCode::INTERNAL_ERROR);
        tracing::debug!(error = %err, code = code.0, "failing websocket connection");
        self.pending_failure = Some((code, err.to_string()));
        self.discarding = true;
        self.frame = None;
        self.msg.reset();
        self.read_buf = BytesMut::new();
        self.events.push_back(Event::Error(err));
    }

    /// Enter `Closed`, report it once, and drop whatever input follows.
    fn finish(&mut self, event: CloseEvent) {
        tracing::debug!(
            code = event.code.0,
            clean = event.was_clean,
            "websocket closed"
        );
        self.state = ReadyState::Closed;
        self.discarding = true;
        self.frame = None;
        self.msg.reset();
        self.read_buf = BytesMut::new();
        self.events.push_back(Event::Close(event));
    }
}

/// Cut a reason to at most 123 bytes, on a character boundary.
fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}
