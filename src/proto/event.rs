//! What the core reports to the layer above.

use bytes::Bytes;

use super::{CloseCode, Error, Message};

/// Something that happened on a connection, drained with
/// [`Connection::poll_event`](super::Connection::poll_event).
///
/// The order is always: one `Open`; then messages, pings and pongs; then at most one
/// `Error`; then exactly one `Close`.
#[derive(Debug)]
pub enum Event {
    /// The connection is open (the Common Lisp websocket-driver's `open`).
    Open,
    /// A whole message arrived (the Common Lisp websocket-driver's `message`).
    Message(Message),
    /// A Ping arrived; with `auto_pong` on, its Pong is already queued.
    Ping(Bytes),
    /// A Pong arrived (solicited or not).
    Pong(Bytes),
    /// The peer broke the protocol or a limit; the connection is failing (the Common
    /// Lisp websocket-driver's `error`). A `Close` follows.
    Error(Error),
    /// The connection is closed (the Common Lisp websocket-driver's `close`); nothing
    /// follows.
    Close(CloseEvent),
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseEvent {
    /// The peer's code when it sent a Close frame ([`CloseCode::NO_STATUS`], 1005,
    /// when that frame had none); the code we sent when we failed the connection;
    /// [`CloseCode::ABNORMAL`], 1006, when the transport ended without a Close.
    pub code: CloseCode,
    /// The reason that came with `code`.
    pub reason: String,
    /// Whether both Close frames were exchanged (the browser's `wasClean`).
    pub was_clean: bool,
}
