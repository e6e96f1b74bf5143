//! The crate's one error type, and its parts.

use crate::{handshake::HandshakeError, proto::CloseCode};

/// Everything that can go wrong in this crate.
///
/// Errors caused by the peer ([`Error::Protocol`], [`Error::Capacity`]) know the close
/// code the connection fails with: see [`Error::close_code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke RFC 6455 (close code 1002, or 1007 for invalid UTF-8).
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The peer sent more than a configured limit allows (close code 1009).
    #[error("limit exceeded: {0}")]
    Capacity(#[from] CapacityError),
    /// The opening handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// A negotiated extension failed on the peer's data (close code 1002 unless the
    /// extension says otherwise).
    #[error("extension error: {0}")]
    Extension(#[from] ExtensionError),
    /// The connection is closing or closed: nothing more can be sent.
    #[error("connection is closed")]
    ConnectionClosed,
    /// A control frame payload (ping, pong, close reason plus code) over 125 bytes
    /// was asked to be sent (RFC 6455 §5.5).
    #[error("control frame payload of {0} bytes is over 125")]
    ControlPayloadTooLarge(usize),
    /// A close code that may not be sent on the wire was asked to be sent
    /// (RFC 6455 §7.4.1: 1005, 1006 and 1015 "MUST NOT be set"; see
    /// [`CloseCode::is_allowed`]).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// The send buffer already holds `max_send_buffer` bytes or more: the peer is not
    /// reading fast enough (close code 1008 when the connection is set to close on
    /// back-pressure).
    #[error("send buffer holds {buffered} bytes, at or over its limit of {limit}")]
    Backpressure {
        /// Bytes waiting to be written.
        buffered: usize,
        /// The configured high-water mark.
        limit: usize,
    },
    /// A timer of the connection ran out.
    #[error("{0} timed out")]
    Timeout(Timeout),
    /// An I/O error from the transport (used by the I/O layers, never by the core).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The close code this error fails the connection with, if the peer caused it.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(e) => Some(e.close_code()),
            Error::Capacity(_) => Some(CloseCode::MESSAGE_TOO_BIG),
            Error::Extension(e) => Some(e.close_code),
            Error::Backpressure { .. } => Some(CloseCode::POLICY_VIOLATION),
            Error::Timeout(_) => Some(CloseCode::GOING_AWAY),
            _ => None,
        }
    }
}

/// Which timer ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// Nothing arrived from the peer within `idle_timeout` (pings included).
    Idle,
    /// The peer did not finish the closing handshake within `close_timeout`.
    Close,
    /// The opening handshake did not finish within `handshake_timeout`.
    Handshake,
    /// The transport could not be connected within `connect_timeout`.
    Connect,
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Timeout::Idle => "idle connection",
            Timeout::Close => "closing handshake",
            Timeout::Handshake => "opening handshake",
            Timeout::Connect => "connect",
        })
    }
}

/// A frame or message that breaks RFC 6455, named for what was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A server received an unmasked frame (RFC 6455 §5.1).
    #[error("unmasked frame from client")]
    UnmaskedFrameFromClient,
    /// A client received a masked frame (RFC 6455 §5.1).
    #[error("masked frame from server")]
    MaskedFrameFromServer,
    /// RSV bits set that no negotiated extension defines (RFC 6455 §5.2), or RSV1 set
    /// where the extension does not allow it (a continuation or control frame).
    #[error("reserved bits {0:#05b} set")]
    ReservedBitsSet(u8),
    /// An opcode RFC 6455 reserves (3-7, 11-15) (RFC 6455 §5.2).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A 64-bit length with its most significant bit set (RFC 6455 §5.2).
    #[error("payload length has its most significant bit set")]
    InvalidPayloadLength,
    /// A control frame without FIN (RFC 6455 §5.5: "MUST NOT be fragmented").
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload (RFC 6455 §5.5).
    #[error("control frame payload of {0} bytes")]
    ControlFrameTooLarge(u64),
    /// A continuation frame with no message in progress (RFC 6455 §5.4).
    #[error("continuation frame with no message in progress")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress
    /// (RFC 6455 §5.4).
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A Close frame with a 1-byte payload (RFC 6455 §5.5.1).
    #[error("close frame with a 1-byte payload")]
    OneByteClosePayload,
    /// A Close frame with a code that may not be sent (RFC 6455 §7.4).
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A text message or close reason that is not UTF-8 (RFC 6455 §8.1).
    #[error("invalid utf-8")]
    InvalidUtf8,
}

impl ProtocolError {
    /// 1007 for invalid UTF-8, 1002 for everything else (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// A configured limit that the peer's data went past; the connection fails with 1009.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityError {
    /// A frame declared a payload over `max_frame_size`.
    #[error("frame of {size} bytes is over the limit of {max}")]
    FrameTooLarge {
        /// The declared payload length.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A message would grow past `max_message_size` (the seed's `max-length`).
    #[error("message of at least {size} bytes is over the limit of {max}")]
    MessageTooLarge {
        /// The size the message would reach.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A message has more fragments than `max_fragments`.
    #[error("message has more than {max} fragments")]
    TooManyFragments {
        /// The limit.
        max: usize,
    },
}

/// An error from a negotiated extension (for example an invalid deflate stream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExtensionError {
    /// The close code to fail the connection with.
    pub close_code: CloseCode,
    /// What went wrong, lowercase, no trailing period.
    pub message: String,
}
