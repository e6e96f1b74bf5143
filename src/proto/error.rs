//! The core's errors: why a connection failed ([`Error`], carried by
//! [`Event::Error`](super::Event::Error)) and why a send was refused ([`SendError`]).
//! Nothing here is about I/O: timeouts, back-pressure and transport errors belong to
//! the layers above.

use super::CloseCode;

/// Why the core failed a connection: the peer broke RFC 6455 or a limit, or a
/// negotiated extension could not decode the peer's data. Each variant knows its
/// close code ([`close_code`](Self::close_code)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke RFC 6455 (close code 1002, or 1007 for invalid UTF-8).
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The peer sent more than a configured limit allows (close code 1009).
    #[error("limit exceeded: {0}")]
    Capacity(#[from] CapacityError),
    /// A negotiated extension failed on the peer's data (its own close code: 1002
    /// for an invalid deflate stream, 1011 for an internal failure).
    #[error("extension error: {0}")]
    Extension(#[from] ExtensionError),
}

impl Error {
    /// The close code the connection fails with (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            Error::Protocol(e) => e.close_code(),
            Error::Capacity(_) => CloseCode::MESSAGE_TOO_BIG,
            Error::Extension(e) => e.close_code,
        }
    }
}

/// Why the core refused to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closing or closed: nothing more can be sent (RFC 6455
    /// §5.5.1: no data frame after a Close).
    #[error("connection is closed")]
    Closed,
    /// A control frame payload (ping, pong, close reason plus code) over 125 bytes
    /// (RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes
    /// or less").
    #[error("control frame payload of {0} bytes is over 125")]
    ControlPayloadTooLarge(usize),
    /// A close code that may not be sent on the wire (RFC 6455 §7.4.1: 1005, 1006
    /// and 1015 "MUST NOT be set"; see [`CloseCode::is_allowed`]).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// The negotiated extension failed to encode the message (a compressor that
    /// could not be allocated); nothing was queued.
    #[error("extension error: {0}")]
    Extension(#[from] ExtensionError),
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
    /// A message would grow past `max_message_size` (the Common Lisp websocket-driver's
    /// `max-length`).
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
