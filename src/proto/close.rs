//! The Close frame payload (RFC 6455 §5.5.1): a close code and a reason.

use bytes::{BufMut, BytesMut};

use super::{close_code::CloseCode, error::ProtocolError};

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
