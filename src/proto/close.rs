//! Close codes and the Close frame payload (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::error::ProtocolError;

/// A close status code (RFC 6455 §7.4).
///
/// A plain `u16` with named constants, so that any code a peer sends can be carried
/// and matched. [`CloseCode::is_allowed`] tells which codes may appear on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the endpoint received a frame that breaks the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: the endpoint received a type of data it cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present. Never sent on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a Close frame. Never sent on the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message or close reason was not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message was too big to process (the seed's `max-length`).
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the server did not negotiate an extension the client requires.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: the TLS handshake failed. Never sent on the wire.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may be sent in, and accepted from, a Close frame.
    ///
    /// RFC 6455 §7.4.1-7.4.2 and the IANA registry: 1000-1003, 1007-1014 and the
    /// application range 3000-4999. 1004-1006 and 1015 are reserved or local-only
    /// ("MUST NOT be set as a status code in a Close control frame"), everything else
    /// is unassigned; a peer that sends one makes us fail with 1002.
    #[inline]
    pub fn is_allowed(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The most bytes a close reason can take: a control payload holds at most 125 bytes
/// (RFC 6455 §5.5), two of which are the code.
pub const MAX_REASON_LEN: usize = 123;

/// The payload of a Close frame: a code and a UTF-8 reason (RFC 6455 §5.5.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, at most [`MAX_REASON_LEN`] bytes; often empty.
    pub reason: String,
}

impl CloseFrame {
    /// A close frame with `code` and `reason`.
    pub fn new(code: impl Into<CloseCode>, reason: impl Into<String>) -> Self {
        CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }
    }

    /// Decode a received Close payload.
    ///
    /// `Ok(None)` for an empty payload (the peer gave no code). A 1-byte payload, a
    /// code that [`CloseCode::is_allowed`] rejects, or a reason that is not UTF-8
    /// (RFC 6455 §5.5.1: the body "MUST" begin with a 2-byte code and the rest is
    /// UTF-8) give the matching [`ProtocolError`].
    pub fn decode(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
        match payload {
            [] => Ok(None),
            [_] => Err(ProtocolError::OneByteClosePayload),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_allowed() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason =
                    simdutf8::basic::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(Some(CloseFrame {
                    code,
                    reason: reason.to_owned(),
                }))
            }
        }
    }

    /// Append the wire payload (code, then reason) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(2 + self.reason.len());
        dst.put_u16(self.code.0);
        dst.put_slice(self.reason.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_codes_match_the_registry() {
        let allowed: Vec<u16> = (0..=u16::MAX)
            .filter(|c| CloseCode(*c).is_allowed())
            .collect();
        let expected: Vec<u16> = (1000..=1003)
            .chain(1007..=1014)
            .chain(3000..=4999)
            .collect();
        assert_eq!(allowed, expected);
    }

    #[test]
    fn decode_empty_is_none() {
        assert_eq!(CloseFrame::decode(&[]), Ok(None));
    }

    #[test]
    fn decode_one_byte_is_protocol_error() {
        assert_eq!(
            CloseFrame::decode(&[0x03]),
            Err(ProtocolError::OneByteClosePayload)
        );
    }

    #[test]
    fn decode_code_and_reason() {
        assert_eq!(
            CloseFrame::decode(&[0x03, 0xe8, b'b', b'y', b'e']),
            Ok(Some(CloseFrame::new(1000, "bye")))
        );
    }

    #[test]
    fn decode_rejects_1005_and_bad_utf8() {
        assert_eq!(
            CloseFrame::decode(&[0x03, 0xed]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            CloseFrame::decode(&[0x03, 0xe8, 0xff]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn encode_writes_code_then_reason() {
        let mut dst = BytesMut::new();
        CloseFrame::new(4000, "x").encode(&mut dst);
        assert_eq!(&dst[..], &[0x0f, 0xa0, b'x']);
    }
}
