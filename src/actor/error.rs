//! The actor layer's two errors, one per job: [`Error`], the event a connection's
//! actor receives when the connection fails, and [`SendError`], what a refused send
//! returns.

use crate::proto::{self, CapacityError, CloseCode, ExtensionError, ProtocolError};

/// Why a connection failed : every variant can happen to
/// an open connection, and each knows the close code it was failed with. An actor
/// receives at most one, always followed by [`Close`](crate::Close).
///
/// Coming from actix-web-actors: its `ws::ProtocolError`, an `Err` in the message
/// stream, is this event (`on_error`, `Handler<ws::Error>`), sent after the Close
/// with [`close_code`](Self::close_code) went out; the [migration guide](https://github.com/websocket-driver/websocket-driver/blob/main/docs/migrating.md)
/// maps every piece.
#[doc(alias = "ProtocolError")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke RFC 6455 (close code 1002, or 1007 for invalid UTF-8).
    #[error("protocol error: {0}")]
    Protocol(ProtocolError),
    /// The peer sent more than a configured limit allows (close code 1009).
    #[error("limit exceeded: {0}")]
    Capacity(CapacityError),
    /// A negotiated extension failed on the peer's data (its own close code).
    #[error("extension error: {0}")]
    Extension(ExtensionError),
    /// Nothing arrived from the peer within `idle_timeout`, not even the Pong of a
    /// keep-alive ping (close code 1001).
    #[error("no input for {0:?}")]
    IdleTimeout(std::time::Duration),
    /// The send buffer reached `max_send_buffer` with `close_on_backpressure` on, or
    /// a hub's slow-consumer policy closed the connection: the peer does not read
    /// fast enough (close code 1008 unless the hub is configured otherwise).
    #[error("peer too slow: {buffered} bytes waiting, limit {limit}")]
    SlowPeer {
        /// Bytes waiting to be written.
        buffered: usize,
        /// The limit that was reached.
        limit: usize,
        /// The code the connection was closed with.
        code: CloseCode,
    },
    /// The user's actor panicked while handling an event of this connection (close
    /// code 1011).
    #[error("the connection's handler panicked")]
    HandlerPanicked,
    /// The peer sent more than its inbound rate limit allows, and the limit says to
    /// close (close code 1008; see [`RateLimit`](crate::RateLimit)).
    #[error("rate limit exceeded")]
    RateLimited,
}

impl Error {
    /// The close code the connection was failed with (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            Error::Protocol(e) => e.close_code(),
            Error::Capacity(_) => CloseCode::MESSAGE_TOO_BIG,
            Error::Extension(e) => e.close_code,
            Error::IdleTimeout(_) => CloseCode::GOING_AWAY,
            Error::SlowPeer { code, .. } => *code,
            Error::HandlerPanicked => CloseCode::INTERNAL_ERROR,
            Error::RateLimited => CloseCode::POLICY_VIOLATION,
        }
    }
}

impl From<proto::Error> for Error {
    fn from(err: proto::Error) -> Self {
        match err {
            proto::Error::Protocol(e) => Error::Protocol(e),
            proto::Error::Capacity(e) => Error::Capacity(e),
            proto::Error::Extension(e) => Error::Extension(e),
        }
    }
}

/// Why a send ([`Conn::send`](crate::Conn::send) and the others) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closing or closed: nothing more can be sent.
    #[error("connection is closed")]
    Closed,
    /// The send buffer already holds `max_send_buffer` bytes or more: the peer is
    /// not reading fast enough. Nothing was queued. With `close_on_backpressure`
    /// the connection is also failed with 1008.
    #[error("send buffer holds {buffered} bytes, at or over its limit of {limit}")]
    Backpressure {
        /// Bytes waiting to be written.
        buffered: usize,
        /// The configured high-water mark.
        limit: usize,
    },
    /// A control frame payload (ping, pong, close reason plus code) over 125 bytes
    /// (RFC 6455 §5.5).
    #[error("control frame payload of {0} bytes is over 125")]
    ControlPayloadTooLarge(usize),
    /// A close code that may not be sent on the wire (RFC 6455 §7.4.1; see
    /// [`CloseCode::is_allowed`]).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// The negotiated extension could not encode the message.
    #[error("extension error: {0}")]
    Extension(ExtensionError),
}

impl From<proto::SendError> for SendError {
    fn from(err: proto::SendError) -> Self {
        match err {
            proto::SendError::Closed => SendError::Closed,
            proto::SendError::ControlPayloadTooLarge(n) => SendError::ControlPayloadTooLarge(n),
            proto::SendError::InvalidCloseCode(c) => SendError::InvalidCloseCode(c),
            proto::SendError::Extension(e) => SendError::Extension(e),
        }
    }
}
