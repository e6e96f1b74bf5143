//! The sans-I/O connection: bytes in, events and bytes out.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::{
    output::Output, CloseCode, CloseEvent, Event, Extension, FrameHeader, OpCode, ReadyState, Role,
    Utf8Validator,
};
use crate::settings::ProtocolSettings;

/// The protocol version string, as the Common Lisp websocket-driver's `version` returns
/// it.
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
/// That is the whole driver's seam: the handshake's outcome
/// ([`set_protocol`](Self::set_protocol), [`set_extension`](Self::set_extension),
/// [`open`](Self::open)), bytes in, events out, sends, bytes to write
/// ([`take_output`](Self::take_output), [`buffered_amount`](Self::buffered_amount),
/// [`release_buffers`](Self::release_buffers) once quiet) and the state. Two views
/// add the rest: [`output`](Self::output) / [`output_mut`](Self::output_mut), the
/// output queue for a transport that writes pieces without copying, and
/// [`info`](Self::info), what was agreed and what is held.
///
/// ```
/// use websocket_driver::proto::{Connection, Event, Message, Role};
/// use websocket_driver::ProtocolSettings;
///
/// let mut server = Connection::new(Role::Server, ProtocolSettings::default());
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
    pub(super) role: Role,
    pub(super) config: ProtocolSettings,
    pub(super) state: ReadyState,
    /// Bytes fed with [`receive`](Self::receive) and not decoded yet: boxed, made
    /// on first use (a caller that feeds its own buffer with
    /// [`receive_buf`](Self::receive_buf), as the actor layer does, never uses it).
    pub(super) read_buf: Option<Box<BytesMut>>,
    pub(super) frame: Option<InFrame>,
    pub(super) msg: Assembly,
    pub(super) events: Events,
    pub(super) output: Output,
    pub(super) protocol: Option<Box<str>>,
    pub(super) extension: Option<Box<dyn Extension>>,
    /// After the connection is closed or failed, input is dropped unread
    /// (RFC 6455 §7.1.7: "MUST NOT continue to attempt to process data").
    pub(super) discarding: bool,
    /// A failure found in the input, applied when its [`Event::Error`] is taken.
    /// Boxed: most connections never fail.
    pub(super) pending_failure: Option<Box<(CloseCode, String)>>,
    /// The peer's Close was read: the code of our reply (sent if we have not sent a
    /// Close yet), applied when its [`Event::Close`] is taken.
    pub(super) pending_close: Option<CloseCode>,
    pub(super) failed: bool,
    pub(super) eof_received: bool,
}

/// The events not taken yet, in order. The first waits in place: a connection
/// that gets one event at a time (the usual case: a read brings one message, which
/// is handed on before the next read) never allocates a queue; one that got
/// several at once keeps its queue until it goes quiet
/// ([`release_buffers`](Connection::release_buffers)).
#[derive(Debug, Default)]
pub(super) struct Events {
    first: Option<Event>,
    /// Made when a read brings several events, kept until the connection goes
    /// quiet.
    #[allow(
        clippy::box_collection,
        reason = "8 bytes on every idle connection rather than a deque's 32"
    )]
    rest: Option<Box<VecDeque<Event>>>,
}

impl Events {
    #[inline]
    pub(super) fn push_back(&mut self, event: Event) {
        if self.first.is_none() {
            // `rest` is empty whenever `first` is.
            self.first = Some(event);
        } else {
            self.rest.get_or_insert_with(Box::default).push_back(event);
        }
    }

    #[inline]
    fn pop_front(&mut self) -> Option<Event> {
        let event = self.first.take()?;
        if let Some(rest) = &mut self.rest {
            self.first = rest.pop_front();
        }
        Some(event)
    }

    #[inline]
    pub(super) fn front(&self) -> Option<&Event> {
        self.first.as_ref()
    }

    fn release(&mut self) {
        if self.rest.as_ref().is_some_and(|rest| rest.is_empty()) {
            self.rest = None;
        }
    }
}

/// A frame whose header is decoded and whose payload is still arriving.
#[derive(Debug)]
pub(super) struct InFrame {
    pub(super) header: FrameHeader,
    pub(super) len: usize,
    /// Payload bytes already unmasked (and checked, for inline UTF-8).
    pub(super) processed: usize,
    pub(super) kind: FrameKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// A control frame: handled once whole (at most 125 bytes).
    Control,
    /// A data frame: unmasked, and UTF-8 checked when `utf8`, as its bytes arrive.
    Data { utf8: bool },
    /// A data frame after our Close: skipped as it arrives, never buffered.
    Discard,
}

/// The message being assembled.
#[derive(Debug, Default)]
pub(super) struct Assembly {
    /// `Text` or `Binary` while a message is in progress.
    pub(super) opcode: Option<OpCode>,
    /// The first frame carried the extension's RSV bits.
    pub(super) compressed: bool,
    /// Payload bytes so far, as declared by the headers (uncompressed messages).
    pub(super) size: u64,
    pub(super) fragments: usize,
    /// The payload of a fragmented or compressed message so far: made on first
    /// use (most connections' messages are single uncompressed frames, whose
    /// payload is not copied) and kept until the connection goes quiet.
    pub(super) buf: Option<Box<BytesMut>>,
    pub(super) utf8: Utf8Validator,
}

impl Assembly {
    pub(super) fn reset(&mut self) {
        self.opcode = None;
        self.compressed = false;
        self.size = 0;
        self.fragments = 0;
        if let Some(buf) = &mut self.buf {
            buf.clear();
        }
        self.utf8.reset();
    }
}

impl Connection {
    /// A connection in the `Connecting` state: call [`open`](Self::open) once the
    /// opening handshake is done. Messages sent before that are queued.
    pub fn new(role: Role, config: ProtocolSettings) -> Self {
        Connection {
            role,
            config,
            state: ReadyState::Connecting,
            read_buf: None,
            frame: None,
            msg: Assembly::default(),
            events: Events::default(),
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
        self.protocol = protocol.map(String::into_boxed_str);
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
        if let Some(mut buf) = self.read_buf.take() {
            if !buf.is_empty() {
                self.run(&mut buf);
            }
            self.read_buf = Some(buf);
        }
    }

    /// The ready-state (the Common Lisp websocket-driver's `ready-state`).
    pub fn ready_state(&self) -> ReadyState {
        self.state
    }

    // ----- input -----

    /// Feed bytes read from the transport. Bytes received while `Connecting` wait
    /// for [`open`](Self::open); after the connection closed or failed they are
    /// dropped.
    pub fn receive(&mut self, data: &[u8]) {
        if self.discarding {
            return;
        }
        let mut buf = self.read_buf.take().unwrap_or_default();
        buf.extend_from_slice(data);
        if self.state != ReadyState::Connecting {
            self.run(&mut buf);
        }
        self.read_buf = Some(buf);
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
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event> {
        // Asked once more after each event (to learn that none is left): that
        // answer is inlined where it is asked, without moving an event around.
        self.events.front()?;
        self.take_event()
    }

    /// [`poll_event`](Self::poll_event) when an event waits.
    fn take_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        match event {
            Some(Event::Error(_)) => {
                if let Some((code, reason)) = self.pending_failure.take().map(|f| *f) {
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

    /// Take every pending event, in order, as [`poll_event`](Self::poll_event) does.
    pub fn events(&mut self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(move || self.poll_event())
    }

    // ----- output -----

    /// The bytes to write to the transport, in order, as one buffer. Empty while
    /// `Connecting` (queued frames go out after [`open`](Self::open)). Large
    /// payloads queued by reference are copied into it: a transport that can write
    /// pieces should take them from [`output_mut`](Self::output_mut)
    /// ([`OutputMut::take_chunk`](super::OutputMut::take_chunk)) or write
    /// [`output`](Self::output)'s [`chunks_vectored`](super::Output::chunks_vectored).
    pub fn take_output(&mut self) -> BytesMut {
        if self.state == ReadyState::Connecting {
            return BytesMut::new();
        }
        self.output.take_all()
    }

    /// Give back the memory of the output, event-queue and message-assembly buffers
    /// if they are empty: for a connection gone quiet, which then holds no buffer until it
    /// sends or receives again.
    pub fn release_buffers(&mut self) {
        self.output.release();
        self.events.release();
        if self.msg.opcode.is_none() && self.msg.buf.as_ref().is_some_and(|b| b.is_empty()) {
            self.msg.buf = None;
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
}
