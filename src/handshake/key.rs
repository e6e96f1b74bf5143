//! The `Sec-WebSocket-Key` nonce and its `Sec-WebSocket-Accept` answer.

use base64::{engine::general_purpose::STANDARD, Engine};
use sha1::{Digest, Sha1};

/// The GUID appended to the key before hashing (RFC 6455 §1.3, §4.2.2).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: base64 of the SHA-1 of
/// the key (as sent, not base64-decoded) followed by [`GUID`] (RFC 6455 §4.2.2 step
/// 5.4). The key should be trimmed of surrounding whitespace first, as
/// [`validate_request`](super::validate_request) does.
///
/// ```
/// use websocket_driver::handshake::accept_key;
///
/// // The sample of RFC 6455 §1.3.
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID.as_bytes());
    STANDARD.encode(sha1.finalize())
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64-encoded (RFC 6455 §4.1 item
/// 7: "a nonce consisting of a randomly selected 16-byte value that has been
/// base64-encoded"; "The nonce MUST be selected randomly for each connection"). The
/// bytes come from `rand`'s thread-local generator, a CSPRNG.
///
/// ```
/// use websocket_driver::handshake::generate_key;
///
/// let key = generate_key();
/// assert_eq!(key.len(), 24);
/// assert_ne!(key, generate_key());
/// ```
pub fn generate_key() -> String {
    STANDARD.encode(rand::random::<[u8; 16]>())
}

/// Whether `key` (trimmed by the caller) is the base64 encoding of exactly 16 bytes
/// (RFC 6455 §4.2.1 item 5). Padding is required and the unused bits of the last
/// character must be zero (canonical encoding, RFC 4648 §3.5).
pub(crate) fn is_valid_key(key: &[u8]) -> bool {
    // 16 bytes encode to 24 characters; checking the length first bounds the work.
    key.len() == 24 && STANDARD.decode(key).is_ok_and(|bytes| bytes.len() == 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_sample() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn generated_keys_are_valid_and_differ() {
        let a = generate_key();
        let b = generate_key();
        assert!(is_valid_key(a.as_bytes()));
        assert!(is_valid_key(b.as_bytes()));
        assert_ne!(a, b);
    }

    #[test]
    fn key_validity() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_valid_key(b"AAAAAAAAAAAAAAAAAAAAAA=="));
        // 15 bytes, 17 bytes, 18 bytes, unpadded, non-canonical last character, not
        // base64.
        assert!(!is_valid_key(b"AAAAAAAAAAAAAAAAAAAA"));
        assert!(!is_valid_key(b"AAAAAAAAAAAAAAAAAAAAAAA="));
        assert!(!is_valid_key(b"AAAAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!is_valid_key(b"AAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZR=="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZ!=="));
    }
}
