//! Frame header decode and encode (RFC 6455 §5.2).

use bytes::{BufMut, BytesMut};

use super::error::ProtocolError;
use super::OpCode;

/// The largest header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// RSV1 as it sits in [`FrameHeader::rsv`] (bit 2): the bit permessage-deflate uses.
pub const RSV1: u8 = 0b100;
/// RSV2 as it sits in [`FrameHeader::rsv`] (bit 1).
pub const RSV2: u8 = 0b010;
/// RSV3 as it sits in [`FrameHeader::rsv`] (bit 0).
pub const RSV3: u8 = 0b001;

/// Every field of a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// FIN: this is the last frame of a message.
    pub fin: bool,
    /// RSV1, RSV2, RSV3 as the three low bits (`RSV1 = 0b100`).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length, as declared.
    pub payload_len: u64,
}

impl FrameHeader {
    /// A header with FIN set, no RSV bits and no mask.
    pub fn new(opcode: OpCode, payload_len: u64) -> Self {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Decode a header from the start of `src`.
    ///
    /// Returns `Ok(None)` when `src` does not yet hold the whole header; nothing is
    /// consumed and the caller retries with more bytes. On success returns the header
    /// and how many bytes it took. The only error is a 64-bit length with its most
    /// significant bit set (RFC 6455 §5.2: "the most significant bit MUST be 0").
    /// Non-minimal length encodings are accepted. Limits on the length are the
    /// caller's to check with the returned header, before reading any payload.
    #[inline]
    pub fn decode(src: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let (b0, b1) = match src {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(None),
        };
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut at) = match b1 & 0x7f {
            126 => match src.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match src.get(2..10) {
                Some(b) => {
                    let mut len = [0u8; 8];
                    len.copy_from_slice(b);
                    let len = u64::from_be_bytes(len);
                    if len >> 63 != 0 {
                        return Err(ProtocolError::InvalidPayloadLength);
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            match src.get(at..at + 4) {
                Some(b) => {
                    at += 4;
                    Some([b[0], b[1], b[2], b[3]])
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        let header = FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x07,
            opcode: OpCode::from_bits(b0),
            mask,
            payload_len,
        };
        Ok(Some((header, at)))
    }

    /// How many bytes [`encode`](Self::encode) writes for this header.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xffff => 4,
            _ => 10,
        };
        len + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encode into `dst` with the minimal length encoding; returns the bytes written.
    #[inline]
    pub fn encode(&self, dst: &mut [u8; MAX_HEADER_LEN]) -> usize {
        dst[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x07) << 4) | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = match self.payload_len {
            n @ 0..=125 => {
                dst[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xffff => {
                dst[1] = mask_bit | 126;
                dst[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                dst[1] = mask_bit | 127;
                dst[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(mask) = self.mask {
            dst[at..at + 4].copy_from_slice(&mask);
            at += 4;
        }
        at
    }

    /// Append the encoded header to `dst`.
    #[inline]
    pub fn encode_into(&self, dst: &mut BytesMut) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = self.encode(&mut buf);
        dst.put_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_rfc_single_frame_unmasked_text() {
        // RFC 6455 §5.7: a single-frame unmasked text message "Hello".
        let bytes = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (h, n) = FrameHeader::decode(&bytes).unwrap().unwrap();
        assert_eq!(n, 2);
        assert_eq!(h, FrameHeader::new(OpCode::Text, 5));
    }

    #[test]
    fn decodes_rfc_masked_text() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = FrameHeader::decode(&bytes).unwrap().unwrap();
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.payload_len, 5);
    }

    #[test]
    fn decodes_16_and_64_bit_lengths() {
        // RFC 6455 §5.7: 256 bytes binary, and 64 KiB binary, unmasked.
        let (h, n) = FrameHeader::decode(&[0x82, 0x7e, 0x01, 0x00])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        let b = [0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0, 0];
        let (h, n) = FrameHeader::decode(&b).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn short_input_is_none_at_every_cut() {
        let b = [0x82, 0xff, 0, 0, 0, 0, 0, 0x01, 0, 0, 1, 2, 3, 4];
        for cut in 0..b.len() {
            assert_eq!(FrameHeader::decode(&b[..cut]), Ok(None), "cut {cut}");
        }
        assert!(FrameHeader::decode(&b).unwrap().is_some());
    }

    #[test]
    fn top_bit_of_64_bit_length_is_an_error() {
        let b = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::decode(&b),
            Err(ProtocolError::InvalidPayloadLength)
        );
    }

    #[test]
    fn non_minimal_length_is_accepted() {
        let (h, n) = FrameHeader::decode(&[0x82, 0x7e, 0x00, 0x05])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (5, 4));
    }

    #[test]
    fn encode_is_minimal_and_sets_every_field() {
        let h = FrameHeader {
            fin: false,
            rsv: RSV1 | RSV3,
            opcode: OpCode::Binary,
            mask: Some([1, 2, 3, 4]),
            payload_len: 126,
        };
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut buf);
        assert_eq!(&buf[..n], &[0x52, 0xfe, 0x00, 0x7e, 1, 2, 3, 4]);
        assert_eq!(n, h.encoded_len());
        assert_eq!(FrameHeader::decode(&buf[..n]).unwrap(), Some((h, n)));
    }
}
