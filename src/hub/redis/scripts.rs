//! The Lua scripts the backplane runs on Redis, each kept in its own `.lua` file
//! beside this one. Every key a script writes gets a time to live (or is removed
//! by the script that empties it).

/// Numbers a publication (an epoch per topic, an offset that goes up by one),
/// keeps it in the topic's stream (`XADD ... MAXLEN ~`, the offset as the entry's
/// id `0-OFFSET`) and publishes it on the topic's channel, all at once. KEYS:
/// epoch, offset, stream. ARGV: channel, fresh epoch, history size, origin,
/// except, kind, payload, `1` for sharded pub/sub, the keys' time to live in ms
/// (`0`: none), the origin's sequence number for it. Returns the offset. Sent with `EVAL` (not `EVALSHA`): a script
/// missing from a restarted Redis's cache would fail and be retried out of the
/// topic's order.
pub(super) const PUBLISH: &str = include_str!("scripts/publish.lua");

/// Where a topic stands and, for a `since`, everything after it from the stream
/// (or nothing when the stream no longer reaches back: never a partial recovery).
pub(super) const LOCATE: &str = include_str!("scripts/locate.lua");

/// What the subscription missed of a topic after the last delivered publication,
/// from its stream.
pub(super) const FILL: &str = include_str!("scripts/fill.lua");

/// A user's first connection on this server joined a topic.
pub(super) const PRESENCE_JOIN: &str = concat!(
    include_str!("scripts/presence_lib.lua"),
    include_str!("scripts/presence_join.lua")
);

/// A user's last connection on this server left a topic.
pub(super) const PRESENCE_LEAVE: &str = concat!(
    include_str!("scripts/presence_lib.lua"),
    include_str!("scripts/presence_leave.lua")
);

/// Every user of one server leaves a topic (a server that stopped refreshing, or
/// this one at its stop).
pub(super) const PRESENCE_SWEEP: &str = concat!(
    include_str!("scripts/presence_lib.lua"),
    include_str!("scripts/presence_sweep.lua")
);

/// Who is present in a topic, at which version, and where its publications stand.
pub(super) const PRESENCE_SNAPSHOT: &str = concat!(
    include_str!("scripts/presence_lib.lua"),
    include_str!("scripts/presence_snapshot.lua")
);

/// A live server's presence keys in a topic get their time to live again.
pub(super) const PRESENCE_REFRESH: &str = include_str!("scripts/presence_refresh.lua");

/// This server is alive; which servers stopped refreshing.
pub(super) const HEARTBEAT: &str = include_str!("scripts/heartbeat.lua");

/// A server that stopped refreshing leaves the list of live servers, unless it
/// refreshed meanwhile (checked and done at once, so that a sweep never undoes
/// a server that came back).
pub(super) const SERVER_FORGET: &str = include_str!("scripts/server_forget.lua");
