//! What Redis answers and publishes, read into values. Nothing here trusts the
//! data: a field missing, of another type, or a number out of range gives `None`
//! (the caller counts and logs it), never a panic.

use bytes::Bytes;
use fred::prelude::Value;

use super::super::{Located, Position, PresenceKind};
use crate::{actor::ConnId, hub_wire::decode_message as decode, proto::Message};

/// A numbered publication: from the channel, or from the stream.
#[derive(Debug, Clone)]
pub(super) struct Envelope {
    pub origin: u64,
    /// The origin's number for it (`0`: none).
    pub seq: u64,
    pub except: Option<ConnId>,
    pub position: Position,
    pub message: Message,
}

/// An envelope from the channel (`crate::hub_wire` parses it).
pub(super) fn envelope(raw: &Bytes) -> Option<Envelope> {
    let e = crate::hub_wire::parse_envelope_bytes(raw)?;
    Some(Envelope {
        origin: e.origin,
        seq: e.seq,
        except: (e.except != 0).then(|| ConnId::from_raw(e.except)),
        position: Position {
            epoch: e.epoch,
            offset: e.offset,
        },
        message: e.message,
    })
}

/// A presence change from the channel.
#[derive(Debug, Clone)]
pub(super) struct PresenceChange {
    pub version: u64,
    pub kind: PresenceKind,
    pub user: String,
    pub meta: Option<String>,
}

/// A presence change from the channel (`crate::hub_wire` parses it).
pub(super) fn presence_change(raw: &[u8]) -> Option<PresenceChange> {
    let c = crate::hub_wire::parse_presence(raw)?;
    Some(PresenceChange {
        version: c.version,
        kind: if c.joined {
            PresenceKind::Joined
        } else {
            PresenceKind::Left
        },
        user: c.user,
        meta: c.meta,
    })
}

/// What a fill found.
#[derive(Debug)]
pub(super) struct Fill {
    /// The epoch the topic is numbered in now.
    pub epoch: String,
    /// The topic's last offset.
    pub last: u64,
    /// The publications after the last delivered that the stream still had, in
    /// order.
    pub entries: Vec<Envelope>,
}

/// `{epoch, last, oldest kept, entries}` from the fill script.
pub(super) fn fill(value: Value) -> Option<Fill> {
    let Value::Array(parts) = value else {
        return None;
    };
    let epoch = string(parts.first()?)?;
    let last = u64_of(parts.get(1)?)?;
    let mut entries = Vec::new();
    if let Some(Value::Array(raw)) = parts.get(3) {
        for entry in raw {
            let (offset, fields) = stream_entry(entry)?;
            let field = |name: &[u8]| {
                fields
                    .iter()
                    .find(|(n, _)| &n[..] == name)
                    .map(|(_, v)| v.clone())
            };
            let message = decode(&field(b"k")?, field(b"p")?)?;
            let number = |v: Option<Bytes>| -> u64 {
                v.and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
                    .unwrap_or(0)
            };
            let except = number(field(b"x"));
            entries.push(Envelope {
                origin: number(field(b"o")),
                seq: number(field(b"s")),
                except: (except != 0).then(|| ConnId::from_raw(except)),
                position: Position {
                    epoch: epoch.clone(),
                    offset,
                },
                message,
            });
        }
    }
    Some(Fill {
        epoch,
        last,
        entries,
    })
}

/// `{epoch, last, recovered, entries}` from the locate script.
pub(super) fn located(value: Value) -> Option<Located> {
    let Value::Array(parts) = value else {
        return None;
    };
    let epoch = string(parts.first()?)?;
    let last = u64_of(parts.get(1)?)?;
    let recovered = u64_of(parts.get(2)?)? == 1;
    let position = Position {
        epoch: epoch.clone(),
        offset: last,
    };
    if !recovered {
        return Some(Located::new(position, None));
    }
    let mut missed = Vec::new();
    if let Some(Value::Array(entries)) = parts.get(3) {
        for entry in entries {
            let (offset, fields) = stream_entry(entry)?;
            let field = |name: &[u8]| {
                fields
                    .iter()
                    .find(|(n, _)| &n[..] == name)
                    .map(|(_, v)| v.clone())
            };
            missed.push((
                Position {
                    epoch: epoch.clone(),
                    offset,
                },
                decode(&field(b"k")?, field(b"p")?)?,
            ));
        }
    }
    Some(Located::new(position, Some(missed)))
}

/// A topic's presence, and where its publications stood.
#[derive(Debug)]
pub(super) struct Snapshot {
    pub version: u64,
    pub users: Vec<(String, Option<String>)>,
    pub position: Position,
}

/// `{version, {user, has metadata, metadata, ...}, epoch, offset}` from the
/// snapshot script.
pub(super) fn snapshot(value: Value) -> Option<Snapshot> {
    let Value::Array(parts) = value else {
        return None;
    };
    let version = u64_of(parts.first()?)?;
    let mut users = Vec::new();
    if let Some(Value::Array(flat)) = parts.get(1) {
        for triple in flat.chunks(3) {
            let user = string(triple.first()?)?;
            let has = bytes(triple.get(1)?)?;
            let meta = if &has[..] == b"1" {
                Some(string(triple.get(2)?)?)
            } else {
                None
            };
            users.push((user, meta));
        }
    }
    let epoch = string(parts.get(2)?)?;
    let offset = u64_of(parts.get(3)?)?;
    Some(Snapshot {
        version,
        users,
        position: Position { epoch, offset },
    })
}

/// `{new, dead, unswept}` from the heartbeat script (see [`Heartbeat`]).
pub(super) fn heartbeat(value: Value) -> Option<Heartbeat> {
    let Value::Array(parts) = value else {
        return None;
    };
    let servers = |part: Option<&Value>| match part {
        Some(Value::Array(list)) => list.iter().filter_map(u64_of).collect(),
        _ => Vec::new(),
    };
    Some(Heartbeat {
        new: u64_of(parts.first()?)? == 1,
        dead: servers(parts.get(1)),
        unswept: servers(parts.get(2)),
    })
}

/// The answer to a heartbeat (`heartbeat.lua`).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Heartbeat {
    /// This server was not listed (new, swept as dead, or forgotten by Redis).
    pub new: bool,
    /// Servers that stopped refreshing.
    pub dead: Vec<u64>,
    /// Servers taken off the list whose users have not all left yet.
    pub unswept: Vec<u64>,
}

/// A stream entry `0-OFFSET` and its fields.
fn stream_entry(entry: &Value) -> Option<(u64, Vec<(Bytes, Bytes)>)> {
    let Value::Array(entry) = entry else {
        return None;
    };
    let id = string(entry.first()?)?;
    let offset: u64 = id.strip_prefix("0-")?.parse().ok()?;
    let Value::Array(raw) = entry.get(1)? else {
        return None;
    };
    let fields = raw
        .chunks(2)
        .filter_map(|pair| Some((bytes(pair.first()?)?, bytes(pair.get(1)?)?)))
        .collect();
    Some((offset, fields))
}

/// The bytes of a string, bytes or integer value.
pub(super) fn bytes(v: &Value) -> Option<Bytes> {
    match v {
        Value::Bytes(b) => Some(b.clone()),
        Value::String(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
        Value::Integer(i) => Some(Bytes::from(i.to_string())),
        _ => None,
    }
}

fn string(v: &Value) -> Option<String> {
    String::from_utf8(bytes(v)?.to_vec()).ok()
}

/// A non-negative integer, given as one or as its decimal digits.
pub(super) fn u64_of(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => u64::try_from(*i).ok(),
        other => std::str::from_utf8(&bytes(other)?).ok()?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, fields: &[(&str, &str)]) -> Value {
        let mut flat = Vec::new();
        for (k, v) in fields {
            flat.push(Value::from(*k));
            flat.push(Value::from(*v));
        }
        Value::Array(vec![Value::from(id), Value::Array(flat)])
    }

    #[test]
    fn a_fill_reads_its_entries_in_order() {
        let value = Value::Array(vec![
            Value::from("e1"),
            Value::Integer(10),
            Value::Integer(8),
            Value::Array(vec![
                entry("0-8", &[("k", "t"), ("p", "h"), ("o", "3"), ("x", "0")]),
                entry("0-9", &[("k", "t"), ("p", "i"), ("o", "3"), ("x", "5")]),
                entry("0-10", &[("k", "b"), ("p", "j"), ("o", "4"), ("x", "0")]),
            ]),
        ]);
        let fill = fill(value).unwrap();
        let offsets: Vec<u64> = fill.entries.iter().map(|e| e.position.offset).collect();
        assert_eq!(offsets, [8, 9, 10]);
        assert_eq!((fill.epoch.as_str(), fill.last), ("e1", 10));
        assert_eq!(fill.entries[1].except, Some(ConnId::from_raw(5)));
        assert_eq!(fill.entries[2].origin, 4);
    }

    #[test]
    fn malformed_answers_are_none_not_a_panic() {
        let huge = Value::from("18446744073709551616");
        assert_eq!(u64_of(&huge), None);
        assert_eq!(u64_of(&Value::Integer(-1)), None);
        assert_eq!(u64_of(&Value::from("18446744073709551615")), Some(u64::MAX));
        assert!(fill(Value::Integer(3)).is_none());
        let bad_id = Value::Array(vec![
            Value::from("e"),
            Value::Integer(1),
            Value::Integer(1),
            Value::Array(vec![entry("1-x", &[("k", "t"), ("p", "a")])]),
        ]);
        assert!(fill(bad_id).is_none());
        assert!(located(Value::Array(vec![Value::from("e")])).is_none());
        assert!(snapshot(Value::Array(vec![Value::Integer(1)])).is_none());
        assert!(heartbeat(Value::Null).is_none());
        let beat = Value::Array(vec![
            Value::Integer(0),
            Value::Array(vec![Value::from("7")]),
            Value::Array(vec![Value::from("9"), Value::from("x")]),
        ]);
        assert_eq!(
            heartbeat(beat),
            Some(Heartbeat {
                new: false,
                dead: vec![7],
                unswept: vec![9],
            })
        );
        // An offset of u64::MAX is a value like any other here.
        let at_max = Value::Array(vec![
            Value::from("e"),
            Value::from("18446744073709551615"),
            Value::Integer(0),
            Value::Array(vec![]),
        ]);
        assert_eq!(fill(at_max).unwrap().last, u64::MAX);
    }
}
