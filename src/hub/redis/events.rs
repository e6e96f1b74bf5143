//! What reaches the backplane's task: the hub's asks, and what its own
//! commands report back.

use std::time::Duration;

use super::{
    reply::{Fill, Snapshot},
    shared::Pending,
    subscriptions::Command,
};
use crate::hub::{
    backplane::Located,
    types::{Position, PresenceKind},
};

/// What the hub asks of the backplane's task.
pub(super) enum Ask {
    Subscribe(String, u64),
    Unsubscribe(String, u64),
    Locate(Pending, Option<Position>),
    Presence(String, String, Option<String>, PresenceKind),
    Stop(Duration),
    /// Panic, to test the supervisor.
    #[cfg(test)]
    Crash,
}

/// What the task's own commands report back.
pub(super) enum Event {
    /// A subscription command was answered.
    Confirmed {
        topic: String,
        command: Command,
        id: u64,
        ok: bool,
    },
    /// A topic's presence as Redis has it (numbered; `None`: the read failed).
    Snapshot(String, u64, Option<Snapshot>),
    /// What a topic's fill found (numbered; `None`: it failed).
    Filled(String, u64, Option<Fill>),
    /// Where a join's topic stands.
    Located(Pending, Located),
    /// Redis does not know this server (restarted, or swept it as dead): its
    /// presence is announced again and every topic's presence read again.
    Forgotten,
    /// An announcement of this server's presence failed (a timeout before it
    /// was written, a lost connection): made again if it still holds, after a
    /// back-off (its `attempt`).
    Unannounced(Announcement),
}

/// A presence change of this server's to write in Redis.
#[derive(Debug, Clone)]
pub(super) struct Announcement {
    pub topic: String,
    pub user: String,
    pub meta: Option<String>,
    pub kind: PresenceKind,
    /// The tries so far.
    pub attempt: u32,
}
