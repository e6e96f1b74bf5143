//! A topic's state, behind its own lock: members, presence by user, the shards
//! that hold subscribers, and the history for recovery.
//!
//! A topic's life: absent (not in the hub's table), live (in the table), removed
//! (taken out of the table: its last member left and it keeps nothing). A topic
//! is made live and removed under the table's lock and then its own (always in
//! that order), so a topic in the table is never removed, and whoever holds an
//! `Arc<Topic>` fetched earlier sees [`Life::Removed`] under the topic's lock and
//! fetches the live one again: no member ever joins a removed topic.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Instant,
};

use super::{
    delivery::Delivery,
    types::{Position, TopicSettings},
};
use crate::actor::ConnId;

/// One member: a connection in the topic.
#[derive(Debug, Clone)]
pub(super) struct MemberEntry {
    pub user: Arc<str>,
    pub meta: Option<Arc<str>>,
    pub shard: usize,
    /// Out of presence ([`JoinOptions::hidden`](super::JoinOptions::hidden)):
    /// not in `users`, not listed.
    pub hidden: bool,
}

/// A publication in a topic's history.
#[derive(Debug)]
pub(super) struct Kept {
    pub at: Instant,
    /// Its place in the hub's history, all topics together (oldest first).
    pub seq: u64,
    pub bytes: usize,
    pub delivery: Arc<Delivery>,
}

/// A user's connections in a topic, on this server.
#[derive(Debug, Clone, Copy)]
pub(super) struct UserHere {
    pub count: usize,
    /// One of them (the first, until it leaves).
    pub conn: ConnId,
}

#[derive(Debug)]
pub(super) struct Topic {
    pub name: Arc<str>,
    state: Mutex<TopicState>,
}

/// Where a topic is in its life (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// In the hub's table.
    Live,
    /// Taken out of the table: a join or a publication that meets it fetches the
    /// live topic of its name instead.
    Removed,
}

#[derive(Debug)]
pub(super) struct TopicState {
    pub life: Life,
    pub settings: TopicSettings,
    /// Set by `Hub::configure`: the topic stays when it has no member.
    pub configured: bool,
    /// Changes whenever the history's continuity is lost: a new topic (a new
    /// process), or a history that could not be kept.
    pub epoch: Arc<str>,
    /// The offset of the latest publication (0: none yet).
    pub last_offset: u64,
    /// The latest publications, oldest first, at most `settings.history_size` of
    /// them and `settings.history_bytes` in all; their offsets are consecutive,
    /// ending at `last_offset`.
    pub history: VecDeque<Kept>,
    /// The bytes of `history` (see [`Delivery::memory`]).
    pub history_bytes: usize,
    /// Members in the order they joined.
    pub members: HashMap<ConnId, MemberEntry>,
    /// The users of the members that are not hidden, with their connections here.
    pub users: HashMap<Arc<str>, UserHere>,
    /// Subscribers per shard (index = shard).
    pub per_shard: Vec<usize>,
    /// The users across servers (from a backplane that shares presence), with
    /// their metadata; `None` without one.
    pub global_users: Option<std::collections::BTreeMap<Arc<str>, Option<Arc<str>>>>,
    /// The generation of the latest subscribe or unsubscribe decision (see
    /// [`Backplane::subscribe`](super::Backplane::subscribe)); 0 before any.
    pub generation: u64,
    /// The epoch of the latest numbered delivery (see [`numbered_epoch`](Self::numbered_epoch)).
    numbered_epoch: Option<Arc<str>>,
}

impl Topic {
    pub fn new(name: Arc<str>, settings: TopicSettings, configured: bool) -> Topic {
        Topic {
            name,
            state: Mutex::new(TopicState {
                life: Life::Live,
                settings,
                configured,
                epoch: new_epoch(),
                last_offset: 0,
                history: VecDeque::new(),
                history_bytes: 0,
                members: HashMap::new(),
                users: HashMap::new(),
                per_shard: Vec::new(),
                global_users: None,
                generation: 0,
                numbered_epoch: None,
            }),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, TopicState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The next subscription generation: increasing across every topic of every hub
/// of the process, so that a later decision about a topic always carries a larger
/// one, even after the topic was forgotten and made again.
pub(super) fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A stamp for one join: a shard releases a subscriber held back for its join's
/// answer only on the answer of that join, never on a late one for an earlier join
/// of the same connection.
pub(super) fn next_join() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A fresh epoch: 16 random hex digits (a string, so that a browser's JSON keeps
/// every digit).
fn new_epoch() -> Arc<str> {
    format!("{:016x}", rand::random::<u64>()).into()
}

/// What a recovery found.
#[derive(Debug)]
pub(super) enum Recovery {
    /// Everything after `since` is in the history: these, in order (maybe none).
    Complete(Vec<Arc<Delivery>>),
    /// The history does not reach back to `since` (or the epoch changed): nothing
    /// is replayed.
    Incomplete,
}

impl TopicState {
    /// The position of the latest publication.
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch.to_string(),
            offset: self.last_offset,
        }
    }

    /// Drop what the age bound pushes out.
    pub fn expire(&mut self, now: Instant) {
        if let Some(ttl) = self.settings.history_ttl {
            while self
                .history
                .front()
                .is_some_and(|k| now.saturating_duration_since(k.at) > ttl)
            {
                self.pop_oldest();
            }
        }
    }

    /// Keep `delivery` (offset `last_offset`; `seq` in the hub's order) in the
    /// history, within its bounds. One larger than the byte bound empties the
    /// history (it cannot be kept, and what came before it no longer ends at the
    /// latest offset).
    pub fn remember(&mut self, now: Instant, seq: u64, delivery: &Arc<Delivery>) {
        let bytes = delivery.memory();
        if self.settings.kept() == 0 || bytes > self.settings.history_bytes {
            self.clear_history();
            return;
        }
        while !self.history.is_empty()
            && (self.history.len() >= self.settings.kept()
                || self.history_bytes + bytes > self.settings.history_bytes)
        {
            self.pop_oldest();
        }
        self.history.push_back(Kept {
            at: now,
            seq,
            bytes,
            delivery: delivery.clone(),
        });
        self.history_bytes += bytes;
        self.expire(now);
    }

    /// Drop the oldest publication kept.
    pub fn pop_oldest(&mut self) {
        if let Some(k) = self.history.pop_front() {
            self.history_bytes -= k.bytes;
        }
    }

    /// Drop what the settings' bounds no longer admit (after a change of them).
    pub fn trim_history(&mut self) {
        while self.history.len() > self.settings.kept()
            || self.history_bytes > self.settings.history_bytes
        {
            self.pop_oldest();
        }
    }

    /// Drop the whole history.
    pub fn clear_history(&mut self) {
        self.history.clear();
        self.history_bytes = 0;
    }

    /// The hub-wide sequence of the oldest publication kept.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.history.front().map(|k| k.seq)
    }

    /// What a subscriber that last saw `since` missed: all of it or nothing
    /// (never a partial recovery).
    pub fn recover(&mut self, since: &Position, now: Instant) -> Recovery {
        self.expire(now);
        if *since.epoch != *self.epoch || since.offset > self.last_offset {
            return Recovery::Incomplete;
        }
        if since.offset == self.last_offset {
            return Recovery::Complete(Vec::new());
        }
        // Offsets in the history are consecutive, ending at `last_offset`.
        let oldest = self.last_offset + 1 - self.history.len() as u64;
        if since.offset + 1 < oldest {
            return Recovery::Incomplete;
        }
        let skip = (since.offset + 1 - oldest) as usize;
        Recovery::Complete(
            self.history
                .iter()
                .skip(skip)
                .map(|k| k.delivery.clone())
                .collect(),
        )
    }

    /// Each user present, with the metadata of one of its connections.
    pub fn user_metas(&self) -> Vec<(String, Option<String>)> {
        let mut seen: HashMap<&str, Option<&str>> = HashMap::with_capacity(self.users.len());
        for m in self.members.values().filter(|m| !m.hidden) {
            seen.entry(&m.user).or_insert(m.meta.as_deref());
        }
        let mut users: Vec<(String, Option<String>)> = seen
            .into_iter()
            .map(|(u, m)| (u.to_owned(), m.map(str::to_owned)))
            .collect();
        users.sort();
        users
    }

    /// The epoch of a numbered delivery, shared with the topic's earlier ones
    /// (no allocation while the epoch stays the same).
    pub fn numbered_epoch(&mut self, epoch: &str) -> Arc<str> {
        match &self.numbered_epoch {
            Some(e) if **e == *epoch => e.clone(),
            _ => {
                let e: Arc<str> = epoch.into();
                self.numbered_epoch = Some(e.clone());
                e
            }
        }
    }

    /// Count `id`, a new member of `user`; true when it is the user's first.
    pub fn add_user(&mut self, user: &Arc<str>, id: ConnId) -> bool {
        let here = self
            .users
            .entry(user.clone())
            .or_insert(UserHere { count: 0, conn: id });
        here.count += 1;
        here.count == 1
    }

    /// Uncount `id`, a member of `user` that left (out of `members` already);
    /// true when it was the user's last.
    pub fn remove_user(&mut self, user: &Arc<str>, id: ConnId) -> bool {
        let Some(here) = self.users.get_mut(user) else {
            return true;
        };
        if here.count <= 1 {
            self.users.remove(user);
            return true;
        }
        here.count -= 1;
        if here.conn == id {
            // Another of the user's connections (it has one here).
            if let Some((other, _)) = self
                .members
                .iter()
                .find(|(_, m)| m.user == *user && !m.hidden)
            {
                here.conn = *other;
            }
        }
        false
    }

    /// Count a subscriber on `shard`.
    pub fn add_to_shard(&mut self, shard: usize) {
        if self.per_shard.len() <= shard {
            self.per_shard.resize(shard + 1, 0);
        }
        self.per_shard[shard] += 1;
    }

    /// Uncount a subscriber on `shard`.
    pub fn remove_from_shard(&mut self, shard: usize) {
        if let Some(n) = self.per_shard.get_mut(shard) {
            *n = n.saturating_sub(1);
        }
    }

    /// The shards that hold subscribers.
    pub fn shards(&self) -> impl Iterator<Item = usize> + '_ {
        self.per_shard
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, _)| i)
    }

    /// Whether the topic can be forgotten: live, no member, nothing kept.
    pub fn is_idle(&self) -> bool {
        self.life == Life::Live
            && !self.configured
            && self.members.is_empty()
            && self.history.is_empty()
    }
}
