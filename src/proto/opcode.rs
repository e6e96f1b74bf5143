//! Frame opcodes (RFC 6455 §5.2, §11.8).

use std::fmt;

/// A frame opcode: 4 bits of the first header byte.
///
/// Every 4-bit value decodes to an `OpCode`; the reserved ones (3-7 and 11-15) come
/// out as [`OpCode::Reserved`] so that the connection can fail with 1002 naming the
/// value it received (RFC 6455 §5.2: "If an unknown opcode is received, the receiving
/// endpoint MUST _Fail the WebSocket Connection_").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continuation of a fragmented message.
    Continuation,
    /// 0x1: first (or only) frame of a text message.
    Text,
    /// 0x2: first (or only) frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
    /// 0x3-0x7 and 0xB-0xF: reserved for future use.
    Reserved(u8),
}

impl OpCode {
    /// Decode the low 4 bits of `bits`.
    #[inline]
    pub fn from_bits(bits: u8) -> OpCode {
        match bits & 0x0f {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xa => OpCode::Pong,
            other => OpCode::Reserved(other),
        }
    }

    /// The 4-bit wire value.
    #[inline]
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xa,
            OpCode::Reserved(b) => b & 0x0f,
        }
    }

    /// Close, Ping or Pong: opcodes with the high bit set (RFC 6455 §5.5).
    #[inline]
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }

    /// Whether the opcode is one of the six defined by RFC 6455.
    #[inline]
    pub fn is_reserved(self) -> bool {
        matches!(self, OpCode::Reserved(_))
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpCode::Continuation => f.write_str("continuation"),
            OpCode::Text => f.write_str("text"),
            OpCode::Binary => f.write_str("binary"),
            OpCode::Close => f.write_str("close"),
            OpCode::Ping => f.write_str("ping"),
            OpCode::Pong => f.write_str("pong"),
            OpCode::Reserved(b) => write!(f, "reserved opcode {b:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nibble_round_trips() {
        for b in 0u8..16 {
            let op = OpCode::from_bits(b);
            assert_eq!(op.bits(), b);
            assert_eq!(op.is_control(), b >= 8);
            assert_eq!(op.is_reserved(), matches!(b, 3..=7 | 11..=15));
        }
    }
}
