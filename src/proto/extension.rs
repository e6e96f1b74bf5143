//! The seam where an extension (permessage-deflate) claims the RSV bits.

use std::fmt;

use bytes::BytesMut;

use super::{
    error::{Error, ExtensionError},
    OpCode,
};

/// An extension negotiated in the opening handshake, applied per message.
///
/// RFC 6455 §5.2: RSV bits "MUST be 0 unless an extension is negotiated that defines
/// meanings for non-zero values". A connection with an extension accepts the bits
/// the extension claims on the first frame of a data message, and hands every frame
/// of such a message to [`decode`](Self::decode); it offers every outgoing data
/// message to [`encode`](Self::encode).
pub trait Extension: fmt::Debug + Send {
    /// The extension's token, as negotiated (`"permessage-deflate"`).
    fn name(&self) -> &str;

    /// The RSV bits the extension uses, as in [`FrameHeader::rsv`](super::FrameHeader::rsv)
    /// (`RSV1` = `0b100`).
    fn rsv(&self) -> u8;

    /// Decode one frame's payload of a message whose first frame carried the
    /// extension's bits, appending the result to `out`. `fin` marks the message's
    /// last frame. `limit` is how many more bytes `out` may receive for this
    /// message: going past it must stop the work and return
    /// [`CapacityError::MessageTooLarge`](super::CapacityError::MessageTooLarge).
    fn decode(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), Error>;

    /// Encode an outgoing data message by appending its encoded payload to `out`
    /// (the connection's output, so nothing is copied on the way): `Ok(true)` sends
    /// what was appended with the extension's bits on the first frame; `Ok(false)`,
    /// with `out` left as it was, sends the message as is.
    fn encode(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<bool, ExtensionError>;

    /// Whether a payload encoded once, on its own, with an LZ77 window of
    /// `window_bits` (a [`PreparedMessage`](super::PreparedMessage)), may be sent as is
    /// on this connection. Default `false`: the message is encoded again.
    fn accepts_prepared(&self, window_bits: u8) -> bool {
        let _ = window_bits;
        false
    }
}
