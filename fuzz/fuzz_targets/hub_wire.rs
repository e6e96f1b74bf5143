//! The hub's Redis backplane wire format (`websocket_driver::hub_wire`): what a
//! channel may carry, parsed, and values built from the input, written and parsed
//! back. A panic is a finding; the invariants:
//!
//! - any bytes: `parse_envelope` and `parse_presence` return or refuse, never
//!   panic; what parses has an epoch without `\n`, a payload that is the input's
//!   tail, a user and metadata that are in the input; written back it parses to
//!   the same value, and is no longer than the input (the writers' numbers are
//!   the shortest decimal; one byte more for a join without metadata, whose `0`
//!   the parser does not need);
//! - a value built from the input (any user, metadata, payload; an epoch without
//!   `\n`, as the scripts' are): `parse(write(x)) == x`.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use websocket_driver::{
    hub_wire::{
        decode_message, encode_message, parse_envelope, parse_presence, write_envelope,
        write_presence, Envelope, PresenceChange,
    },
    proto::Message,
};

/// The input taken apart: numbers, then strings split at 0xff bytes.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u64(&mut self) -> u64 {
        let n = self.0.len().min(8);
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        u64::from_le_bytes(b)
    }

    fn bytes(&mut self) -> &[u8] {
        let at = self
            .0
            .iter()
            .position(|b| *b == 0xff)
            .unwrap_or(self.0.len());
        let (head, tail) = self.0.split_at(at);
        self.0 = tail.get(1..).unwrap_or(&[]);
        head
    }

    fn string(&mut self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

fn check_envelope(data: &[u8]) {
    let Some(e) = parse_envelope(data) else {
        return;
    };
    assert!(!e.epoch.contains('\n'), "{e:?}");
    assert!(data.ends_with(e.message.as_bytes()), "{e:?}");
    let kind = encode_message(&e.message).0;
    assert_eq!(
        decode_message(
            kind.as_bytes(),
            Bytes::copy_from_slice(e.message.as_bytes())
        ),
        Some(e.message.clone())
    );
    let written = write_envelope(&e);
    assert!(
        written.len() <= data.len(),
        "{} > {}",
        written.len(),
        data.len()
    );
    assert_eq!(parse_envelope(&written).as_ref(), Some(&e));
    // Presence and envelopes share a channel, told apart by their first bytes.
    assert_eq!(parse_presence(data), None);
}

fn check_presence(data: &[u8]) {
    let Some(c) = parse_presence(data) else {
        return;
    };
    assert!(
        c.user.len() + c.meta.as_ref().map_or(0, String::len) <= data.len(),
        "{c:?}"
    );
    let written = write_presence(&c);
    assert!(
        written.len() <= data.len() + 1,
        "{} > {} + 1",
        written.len(),
        data.len()
    );
    assert_eq!(parse_presence(&written).as_ref(), Some(&c));
    assert_eq!(parse_envelope(data), None);
}

fn round_trip(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.u64();
    let origin = input.u64();
    let seq = input.u64();
    let except = input.u64();
    let offset = input.u64();
    let epoch = input.string().replace('\n', "");
    let payload = input.bytes().to_vec();
    let message = if flags & 1 == 0 {
        Message::Binary(Bytes::from(payload))
    } else {
        Message::from(String::from_utf8_lossy(&payload).into_owned())
    };
    let envelope = Envelope {
        origin,
        seq,
        except,
        epoch,
        offset,
        message,
    };
    assert_eq!(
        parse_envelope(&write_envelope(&envelope)).as_ref(),
        Some(&envelope)
    );

    let user = input.string();
    let meta = (flags & 2 != 0).then(|| input.string());
    let change = PresenceChange {
        version: origin,
        joined: flags & 4 != 0,
        user,
        meta,
    };
    assert_eq!(
        parse_presence(&write_presence(&change)).as_ref(),
        Some(&change)
    );
}

fuzz_target!(|data: &[u8]| {
    check_envelope(data);
    check_presence(data);
    round_trip(data);
});
