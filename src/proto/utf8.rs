//! Incremental UTF-8 validation for text that arrives in pieces.

use super::error::ProtocolError;

/// Checks UTF-8 piece by piece, failing at the first piece that holds an invalid byte.
///
/// RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds
/// that the byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST
/// _Fail the WebSocket Connection_." Checking each fragment (and each partial
/// payload) as it arrives fails such a message before the rest of it is received.
///
/// The bulk of each piece is checked with `simdutf8`. A code point split between
/// pieces leaves at most 3 bytes behind, kept here for the next piece.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    tail: [u8; 4],
    tail_len: u8,
}

/// Bytes in a code point, from its (already checked) lead byte.
#[inline]
fn width(lead: u8) -> usize {
    match lead {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        _ => 2,
    }
}

impl Utf8Validator {
    /// A validator at the start of a text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Check the next piece of the text.
    ///
    /// `Err(ProtocolError::InvalidUtf8)` as soon as the bytes so far cannot be the
    /// start of valid UTF-8; an incomplete code point at the end is not an error yet.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), ProtocolError> {
        if self.tail_len > 0 {
            let have = usize::from(self.tail_len);
            let need = width(self.tail[0]) - have;
            let take = need.min(data.len());
            self.tail[have..have + take].copy_from_slice(&data[..take]);
            match simdutf8::compat::from_utf8(&self.tail[..have + take]) {
                Ok(_) => {
                    self.tail_len = 0;
                    data = &data[take..];
                }
                Err(e) if e.error_len().is_some() => return Err(ProtocolError::InvalidUtf8),
                Err(_) => {
                    // Still incomplete: `data` was too short to finish the code point.
                    self.tail_len += take as u8;
                    return Ok(());
                }
            }
        }
        if simdutf8::basic::from_utf8(data).is_ok() {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(ProtocolError::InvalidUtf8),
            Err(e) => {
                let rest = &data[e.valid_up_to()..];
                self.tail[..rest.len()].copy_from_slice(rest);
                self.tail_len = rest.len() as u8;
                Ok(())
            }
        }
    }

    /// The text has ended: an incomplete code point left over is an error.
    /// The validator is ready for a new text afterwards.
    pub fn finish(&mut self) -> Result<(), ProtocolError> {
        let complete = self.tail_len == 0;
        self.tail_len = 0;
        if complete {
            Ok(())
        } else {
            Err(ProtocolError::InvalidUtf8)
        }
    }

    /// Forget any partial code point.
    pub fn reset(&mut self) {
        self.tail_len = 0;
    }

    /// Whether a partial code point is waiting for its next bytes.
    pub fn is_incomplete(&self) -> bool {
        self.tail_len != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_split(bytes: &[u8], cuts: &[usize]) -> Result<(), ProtocolError> {
        let mut v = Utf8Validator::new();
        let mut at = 0;
        for &c in cuts {
            v.feed(&bytes[at..c])?;
            at = c;
        }
        v.feed(&bytes[at..])?;
        v.finish()
    }

    #[test]
    fn four_byte_code_point_split_every_way() {
        let s = "a\u{1F600}b".as_bytes();
        for i in 0..=s.len() {
            for j in i..=s.len() {
                assert_eq!(check_split(s, &[i, j]), Ok(()), "cuts {i} {j}");
            }
        }
    }

    #[test]
    fn fails_at_first_invalid_piece() {
        // Autobahn 6.3.1's text: "κόσμε" followed by an invalid code point.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed("κόσμε".as_bytes()), Ok(()));
        assert_eq!(v.feed(&[0xed, 0xa0]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn surrogate_fails_before_its_last_byte() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xed]), Ok(()));
        assert_eq!(v.feed(&[0xa0]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn truncated_code_point_fails_at_finish() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[b'a', 0xe2, 0x82]), Ok(()));
        assert!(v.is_incomplete());
        assert_eq!(v.finish(), Err(ProtocolError::InvalidUtf8));
        assert!(!v.is_incomplete());
    }

    #[test]
    fn one_byte_pieces_of_a_three_byte_point() {
        let mut v = Utf8Validator::new();
        for b in "€".bytes() {
            assert_eq!(v.feed(&[b]), Ok(()));
        }
        assert_eq!(v.finish(), Ok(()));
    }
}
