//! The hub's Redis backplane wire format, parsed and written without any I/O: the
//! publication envelope and the presence change that the backplane's Lua scripts
//! publish on a topic's channel (`ws::hub::redis`, feature `redis`), and the
//! message kinds its streams keep.
//!
//! It is part of the sans-I/O core (built without any feature) so that it can be
//! fuzzed without actix (`fuzz/fuzz_targets/hub_wire.rs`); the backplane is its
//! only user in the library. The writers do what the scripts do, byte for byte,
//! so that `parse(write(x)) == x`.
//!
//! - Envelope: `v2\nORIGIN\nSEQ\nEXCEPT\nEPOCH\nOFFSET\nKIND\nPAYLOAD`, the
//!   numbers in decimal, `KIND` `t` (text, UTF-8) or `b` (binary), the payload the
//!   rest. `SEQ` numbers the origin's publications (from 1), so that the origin
//!   can tell its own publication when it comes back. The earlier
//!   `v1\nORIGIN\nEXCEPT\nEPOCH\nOFFSET\nKIND\nPAYLOAD` (no sequence, read as
//!   `0`) is still read, and written for a sequence of `0`.
//! - Presence change: `p1\nVERSION\nJ|L\nLEN\nUSER` then, for a join, `1` and the
//!   metadata, or `0` without; nothing for a leave. `LEN` is the user's length in
//!   bytes, so that a user may hold any byte.

use bytes::Bytes;

use crate::proto::{Message, Utf8Bytes};

/// The kind and the bytes a message is kept and published as: `t` for text,
/// `b` for binary.
pub fn encode_message(message: &Message) -> (&'static str, Bytes) {
    match message {
        Message::Text(t) => ("t", t.as_bytes().clone()),
        Message::Binary(b) => ("b", b.clone()),
    }
}

/// The message of a kind and its bytes; `None` for another kind, or a text that
/// is not UTF-8.
pub fn decode_message(kind: &[u8], payload: Bytes) -> Option<Message> {
    match kind {
        // Checked in place (simdutf8), not copied into a String.
        b"t" => Utf8Bytes::try_from(payload).ok().map(Message::Text),
        b"b" => Some(Message::Binary(payload)),
        _ => None,
    }
}

/// A numbered publication as the backplane publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The server that published it (its backplane's id).
    pub origin: u64,
    /// The origin's number for it (from 1; `0`: none, an earlier version's).
    pub seq: u64,
    /// The connection it is not delivered to on the origin (`0`: none).
    pub except: u64,
    /// The topic's epoch (no `\n`).
    pub epoch: String,
    /// Its offset in the epoch.
    pub offset: u64,
    /// The message.
    pub message: Message,
}

/// Split off the bytes before the next `\n` (and the `\n`).
fn field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let at = rest.iter().position(|b| *b == b'\n')?;
    let (head, tail) = rest.split_at(at);
    *rest = &tail[1..];
    Some(head)
}

fn number(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// An envelope from a channel; `None` when it is not one (another version,
/// a field missing or not a number, an unknown kind, a text that is not UTF-8).
/// The payload is copied out of `raw`; [`parse_envelope_bytes`] shares it.
pub fn parse_envelope(raw: &[u8]) -> Option<Envelope> {
    parse_envelope_with(raw, |at| Bytes::copy_from_slice(&raw[at..]))
}

/// [`parse_envelope`] of bytes held in a `Bytes` (as the subscription delivers
/// them): the message's payload is a slice of `raw`, not a copy.
pub fn parse_envelope_bytes(raw: &Bytes) -> Option<Envelope> {
    parse_envelope_with(raw, |at| raw.slice(at..))
}

/// The parser; `payload(at)` gives the bytes of `raw` from `at` on.
fn parse_envelope_with(raw: &[u8], payload: impl FnOnce(usize) -> Bytes) -> Option<Envelope> {
    let mut rest = raw;
    let v2 = match field(&mut rest)? {
        b"v1" => false,
        b"v2" => true,
        _ => return None,
    };
    let origin = number(field(&mut rest)?)?;
    let seq = if v2 { number(field(&mut rest)?)? } else { 0 };
    let except = number(field(&mut rest)?)?;
    let epoch = std::str::from_utf8(field(&mut rest)?).ok()?.to_owned();
    let offset = number(field(&mut rest)?)?;
    let kind = field(&mut rest)?;
    let message = decode_message(kind, payload(raw.len() - rest.len()))?;
    Some(Envelope {
        origin,
        seq,
        except,
        epoch,
        offset,
        message,
    })
}

/// The bytes the publish script sends for `envelope` (its epoch must not hold a
/// `\n`: the scripts' epochs are 16 hex digits); `v1` for a sequence of `0`.
pub fn write_envelope(envelope: &Envelope) -> Vec<u8> {
    let (kind, payload) = encode_message(&envelope.message);
    let e = envelope;
    let mut out = if e.seq == 0 {
        format!("v1\n{}\n", e.origin)
    } else {
        format!("v2\n{}\n{}\n", e.origin, e.seq)
    };
    out += &format!("{}\n{}\n{}\n{kind}\n", e.except, e.epoch, e.offset);
    let mut out = out.into_bytes();
    out.extend_from_slice(&payload);
    out
}

/// A user's first join or last leave of a topic, numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    /// The topic's presence version after the change (it only goes up).
    pub version: u64,
    /// A join (`J`), or a leave (`L`).
    pub joined: bool,
    /// The user.
    pub user: String,
    /// The user's metadata, when it joined with some.
    pub meta: Option<String>,
}

/// A presence change from a channel; `None` when it is not one.
pub fn parse_presence(raw: &[u8]) -> Option<PresenceChange> {
    let mut rest = raw.strip_prefix(b"p1\n")?;
    let version = number(field(&mut rest)?)?;
    let joined = match field(&mut rest)? {
        b"J" => true,
        b"L" => false,
        _ => return None,
    };
    let len: usize = std::str::from_utf8(field(&mut rest)?).ok()?.parse().ok()?;
    let user = std::str::from_utf8(rest.get(..len)?).ok()?.to_owned();
    let tail = &rest[len..];
    let meta = match tail.first() {
        Some(b'1') => Some(std::str::from_utf8(&tail[1..]).ok()?.to_owned()),
        _ => None,
    };
    Some(PresenceChange {
        version,
        joined,
        user,
        meta,
    })
}

/// The bytes the presence scripts send for `change`: the metadata as `1` and
/// its bytes, or, without, `0` for a join and nothing for a leave.
pub fn write_presence(change: &PresenceChange) -> Vec<u8> {
    let kind = if change.joined { 'J' } else { 'L' };
    let mut out = format!(
        "p1\n{}\n{kind}\n{}\n{}",
        change.version,
        change.user.len(),
        change.user
    )
    .into_bytes();
    match &change.meta {
        Some(meta) => {
            out.push(b'1');
            out.extend_from_slice(meta.as_bytes());
        }
        None if change.joined => out.push(b'0'),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_taken_only_when_it_is_utf8_and_a_binary_as_it_is() {
        let text = decode_message(b"t", Bytes::from_static("héllo".as_bytes()));
        assert_eq!(text, Some(Message::from("héllo")));
        assert_eq!(decode_message(b"t", Bytes::from_static(b"\xc3(")), None);
        let binary = decode_message(b"b", Bytes::from_static(b"\xc3("));
        assert_eq!(binary, Some(Message::Binary(Bytes::from_static(b"\xc3("))));
        assert_eq!(decode_message(b"x", Bytes::new()), None);
    }

    #[test]
    fn an_envelope_as_the_publish_script_writes_it_parses_back() {
        let envelope = Envelope {
            origin: 7,
            seq: 9,
            except: 0,
            epoch: "00000000deadbeef".into(),
            offset: 42,
            message: Message::from("a\nb".to_owned()),
        };
        let raw = write_envelope(&envelope);
        assert_eq!(raw, b"v2\n7\n9\n0\n00000000deadbeef\n42\nt\na\nb");
        assert_eq!(parse_envelope(&raw).as_ref(), Some(&envelope));
        let shared = Bytes::from(raw);
        let parsed = parse_envelope_bytes(&shared).unwrap();
        assert_eq!(parsed, envelope);
        // The payload is the end of the received buffer itself.
        assert_eq!(
            parsed.message.as_bytes().as_ptr(),
            shared[shared.len() - 3..].as_ptr()
        );
        assert_eq!(parse_envelope(b"v3\n7\n0\n0\ne\n42\nt\nx"), None);
        assert_eq!(parse_envelope(b"v2\n7\n0\ne\n42\nt\nx"), None);
        assert_eq!(parse_envelope(b"v1\n7\n0\ne\n42\nt\n\xff"), None);
        // An earlier version's envelope: no sequence; written back as it was.
        let v1 = parse_envelope(b"v1\n7\n3\ne\n42\nt\nx").unwrap();
        assert_eq!((v1.origin, v1.seq, v1.except, v1.offset), (7, 0, 3, 42));
        assert_eq!(write_envelope(&v1), b"v1\n7\n3\ne\n42\nt\nx");
        assert_eq!(parse_envelope(b"v1\n7\n0\ne\n42\nz\nx"), None);
    }

    #[test]
    fn a_presence_change_as_the_scripts_write_it_parses_back() {
        let join = PresenceChange {
            version: 1_700_000_000_000_001,
            joined: true,
            user: "al\nice".into(),
            meta: Some("{\"a\":1}".into()),
        };
        let raw = write_presence(&join);
        assert_eq!(raw, b"p1\n1700000000000001\nJ\n6\nal\nice1{\"a\":1}");
        assert_eq!(parse_presence(&raw), Some(join));
        let leave = PresenceChange {
            version: 2,
            joined: false,
            user: "bob".into(),
            meta: None,
        };
        assert_eq!(write_presence(&leave), b"p1\n2\nL\n3\nbob");
        assert_eq!(parse_presence(&write_presence(&leave)), Some(leave));
        assert_eq!(parse_presence(b"p1\n2\nJ\n4\nbob"), None);
    }
}
