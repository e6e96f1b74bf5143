//! Presence across servers.
//!
//! A user's first join and last leave on each server are counted per topic in
//! Redis (one script, so that two servers never both announce); only the first
//! server in and the last out publish the change, numbered, on the topic's
//! channel. A server that starts holding a topic reads who is there first
//! (changes that cross that read are ordered by their number). Every server
//! refreshes its entry in a sorted set each `presence_ttl / 3`; the users of one
//! that stopped refreshing for `presence_ttl` are taken out by the others, and a
//! server Redis forgot (restarted, or taken for dead) announces its users again.
//! A stop takes this server's users out at once.
//!
//! Every presence key has a time to live (`presence_keys_ttl`): the keys a script
//! empties are removed by it, and a live server gives its keys their time again
//! before a quarter of it has gone, so that what a server leaves behind when no
//! other one is there to sweep it goes too.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use fred::prelude::*;
use tokio::sync::mpsc;

use super::{
    events::{Announcement, Event},
    keys,
    reply::{self, PresenceChange, Snapshot},
    scripts,
    subscriptions::backoff,
};
use crate::hub::types::PresenceKind;

/// The Redis side of presence: what it sends, on which connection.
#[derive(Clone)]
pub(super) struct Presence {
    /// Reads, heartbeats and sweeps (each with the command timeout).
    pub control: Client,
    /// Announcements: on the publications' connection, in order with them.
    pub writer: Client,
    pub prefix: String,
    pub sharded: bool,
    pub origin: u64,
    pub presence_ttl: Duration,
    pub keys_ttl: Duration,
    /// The back-off of an announcement made again.
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Presence {
    fn args(&self, topic: &str) -> Vec<Value> {
        vec![
            keys::channel(&self.prefix, topic).into(),
            if self.sharded { "1" } else { "0" }.into(),
            (millis(self.keys_ttl)).into(),
        ]
    }

    /// This server's first join or last leave of a user in a topic, queued on
    /// the connection now; `last_in_topic`: the last of this server's users
    /// there left (the topic leaves this server's list). One that fails (timed
    /// out before it was written, its connection lost) comes back as an event
    /// after a back-off, to be made again if it still holds: a lost leave would
    /// leave the user present on the other servers until its key expires.
    pub fn announce(
        &self,
        change: Announcement,
        last_in_topic: bool,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        let keys = keys::presence(&self.prefix, &change.topic, self.origin);
        let mut args = self.args(&change.topic);
        args.push(change.user.clone().into());
        let client = self.writer.clone();
        let set = keys::server_topics(&self.prefix, self.origin);
        let topic = change.topic.clone();
        let (events, retry_initial, retry_max) =
            (events.clone(), self.retry_initial, self.retry_max);
        let again = move |change: Announcement| async move {
            let wait = backoff(retry_initial, retry_max, change.attempt + 1);
            tokio::time::sleep(wait).await;
            let _ = events.send(Event::Unannounced(Announcement {
                attempt: change.attempt + 1,
                ..change
            }));
        };
        match change.kind {
            PresenceKind::Joined => {
                args.push(if change.meta.is_some() { "1" } else { "0" }.into());
                args.push(change.meta.clone().unwrap_or_default().into());
                tokio::spawn(async move {
                    // Listed first, so that a crash after the join is swept; both
                    // queued at once (polled in this order).
                    let (listed, joined): (Result<i64, _>, Result<i64, _>) = tokio::join!(
                        client.sadd(&set, topic),
                        client.eval(scripts::PRESENCE_JOIN, keys, args)
                    );
                    if let Err(err) = listed.map(drop).and(joined.map(drop)) {
                        tracing::debug!(%err, "redis presence join failed (made again)");
                        again(change).await;
                    }
                });
            }
            PresenceKind::Left => {
                tokio::spawn(async move {
                    let left: Result<i64, _> =
                        client.eval(scripts::PRESENCE_LEAVE, keys, args).await;
                    let unlisted = if last_in_topic {
                        client.srem::<i64, _, _>(&set, topic).await.map(drop)
                    } else {
                        Ok(())
                    };
                    if let Err(err) = left.map(drop).and(unlisted) {
                        tracing::debug!(%err, "redis presence leave failed (made again)");
                        again(change).await;
                    }
                });
            }
        }
    }

    /// Read who is present in `topic`; the answer comes back as an event.
    pub fn snapshot(&self, topic: &str, number: u64, events: &mpsc::UnboundedSender<Event>) {
        let mut keys = keys::presence(&self.prefix, topic, self.origin);
        let k = keys::Keys::new(&self.prefix, topic);
        keys.extend([k.epoch, k.offset]);
        let args = self.args(topic);
        let (client, events, topic) = (self.control.clone(), events.clone(), topic.to_owned());
        tokio::spawn(async move {
            let answer: Result<Value, _> =
                client.eval(scripts::PRESENCE_SNAPSHOT, keys, args).await;
            let parsed = match answer {
                Ok(value) => reply::snapshot(value).or_else(|| {
                    tracing::warn!("unexpected answer from the presence snapshot script");
                    None
                }),
                Err(err) => {
                    tracing::debug!(%err, "redis presence snapshot failed");
                    None
                }
            };
            let _ = events.send(Event::Snapshot(topic, number, parsed));
        });
    }

    /// List this server among the live ones, on the announcements' connection
    /// (so before the announcements that follow).
    pub fn register(&self) {
        let p = self.clone();
        tokio::spawn(async move {
            let args: Vec<Value> = vec![
                p.origin.to_string().into(),
                millis(p.presence_ttl).into(),
                millis(p.keys_ttl).into(),
            ];
            let listed: Result<Value, _> = p
                .writer
                .eval(scripts::HEARTBEAT, p.server_keys(), args)
                .await;
            if let Err(err) = listed {
                tracing::debug!(%err, "redis: listing this server failed (listed again on reconnect)");
            }
        });
    }

    /// Say this server is alive (and keep its list of topics alive); sweep the
    /// servers that are not.
    pub fn heartbeat(&self, first: bool, events: &mpsc::UnboundedSender<Event>) {
        let (p, events) = (self.clone(), events.clone());
        tokio::spawn(async move {
            let args: Vec<Value> = vec![
                p.origin.to_string().into(),
                millis(p.presence_ttl).into(),
                millis(p.keys_ttl).into(),
            ];
            let answer: Result<Value, _> = p
                .control
                .eval(scripts::HEARTBEAT, p.server_keys(), args)
                .await;
            let _: Result<i64, _> = p
                .control
                .pexpire(
                    keys::server_topics(&p.prefix, p.origin),
                    millis(p.keys_ttl),
                    None,
                )
                .await;
            let Some(beat) = answer.ok().and_then(reply::heartbeat) else {
                return;
            };
            if beat.new && !first {
                tracing::info!("redis did not know this server: its presence is announced again");
                let _ = events.send(Event::Forgotten);
            }
            for origin in beat.dead.into_iter().filter(|o| *o != p.origin) {
                tracing::info!(
                    server = origin,
                    "a server stopped refreshing: its users leave"
                );
                p.sweep(origin).await;
            }
            // Sweeps cut short (a failure, a restart, a server stopped mid-way),
            // by whichever server: finished now. Scripts are idempotent, so two
            // servers finishing one sweep at once do no harm.
            for origin in beat.unswept.into_iter().filter(|o| *o != p.origin) {
                tracing::debug!(server = origin, "finishing the sweep of a server");
                p.sweep_users(origin).await;
            }
        });
    }

    /// The servers' sorted set and the set of servers to sweep (one slot).
    fn server_keys(&self) -> Vec<String> {
        vec![keys::servers(&self.prefix), keys::unswept(&self.prefix)]
    }

    /// This server's presence keys in `topics` get their time to live again.
    pub fn refresh(&self, topics: Vec<String>) {
        let p = self.clone();
        tokio::spawn(async move {
            for topic in topics {
                let keys = keys::presence(&p.prefix, &topic, p.origin);
                let refreshed: Result<i64, _> = p
                    .control
                    .eval(
                        scripts::PRESENCE_REFRESH,
                        keys,
                        vec![Value::from(millis(p.keys_ttl))],
                    )
                    .await;
                if let Err(err) = refreshed {
                    tracing::debug!(%err, "redis presence refresh failed");
                    return;
                }
            }
        });
    }

    /// Server `origin` is taken off the list of live servers (at once for this
    /// server's own stop, otherwise only if it still has not refreshed) and put on
    /// the set of servers to sweep, and then each of its users leaves every topic.
    /// False when not all its users could be taken out (a command failed): the
    /// rest is done at a later heartbeat, by any server, as the set of servers
    /// to sweep still lists it.
    pub async fn sweep(&self, origin: u64) -> bool {
        let ttl = if origin == self.origin {
            Duration::ZERO
        } else {
            self.presence_ttl
        };
        let args: Vec<Value> = vec![
            origin.to_string().into(),
            millis(ttl).into(),
            millis(self.keys_ttl).into(),
        ];
        let forgotten: Result<i64, _> = self
            .control
            .eval(scripts::SERVER_FORGET, self.server_keys(), args)
            .await;
        match forgotten {
            Ok(1) => self.sweep_users(origin).await,
            Ok(_) => true,
            Err(err) => {
                // Still listed: found among the dead again.
                tracing::debug!(%err, "redis presence sweep failed");
                true
            }
        }
    }

    /// Each user of server `origin` (taken off the list) leaves every topic it
    /// listed, and the server leaves the set of servers to sweep; true once
    /// done.
    pub async fn sweep_users(&self, origin: u64) -> bool {
        let set = keys::server_topics(&self.prefix, origin);
        let topics: Vec<String> = match self.control.smembers(&set).await {
            Ok(t) => t,
            Err(err) => {
                tracing::debug!(%err, "redis presence sweep failed (finished later)");
                return false;
            }
        };
        for topic in topics {
            let keys = keys::presence(&self.prefix, &topic, origin);
            let swept: Result<i64, _> = self
                .control
                .eval(scripts::PRESENCE_SWEEP, keys, self.args(&topic))
                .await;
            if let Err(err) = swept {
                tracing::debug!(%err, "redis presence sweep failed (finished later)");
                return false;
            }
        }
        let deleted: Result<i64, _> = self.control.del(&set).await;
        if deleted.is_err() {
            return false;
        }
        let done: Result<i64, _> = self
            .control
            .srem(keys::unswept(&self.prefix), origin.to_string())
            .await;
        done.is_ok()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// This server's users in a topic, as it announced them.
#[derive(Debug)]
struct Local {
    users: HashSet<String>,
    refreshed: Instant,
}

/// What the backplane's task knows of presence (without I/O).
#[derive(Debug, Default)]
pub(super) struct PresenceState {
    /// The version each topic's users are known at.
    at: HashMap<String, u64>,
    /// Snapshots on their way (numbered: an answer for a subscription since
    /// ended is not taken for the next one's), and the changes that came
    /// meanwhile.
    snapshotting: HashMap<String, (u64, Vec<PresenceChange>)>,
    snapshots: u64,
    local: HashMap<String, Local>,
}

impl PresenceState {
    /// A change from the channel: the one to apply now, if any.
    pub fn change(&mut self, topic: &str, change: PresenceChange) -> Option<PresenceChange> {
        if let Some((_, held)) = self.snapshotting.get_mut(topic) {
            held.push(change);
            return None;
        }
        let at = self.at.get_mut(topic)?;
        if change.version > *at {
            *at = change.version;
            return Some(change);
        }
        None
    }

    /// A snapshot of `topic` is to be read: its number (None: one is on its way).
    pub fn start_snapshot(&mut self, topic: &str) -> Option<u64> {
        if self.snapshotting.contains_key(topic) {
            return None;
        }
        self.snapshots += 1;
        self.snapshotting
            .insert(topic.to_owned(), (self.snapshots, Vec::new()));
        Some(self.snapshots)
    }

    /// Whether a snapshot of `topic` is on its way.
    pub fn snapshotting(&self, topic: &str) -> bool {
        self.snapshotting.contains_key(topic)
    }

    /// The answer to snapshot `number` of `topic`: `None` when it is stale.
    /// Otherwise the changes that came meanwhile and are newer than it, to apply
    /// after the snapshot itself (`Some(empty)` when it failed).
    pub fn snapshot_done(
        &mut self,
        topic: &str,
        number: u64,
        answer: Option<&Snapshot>,
    ) -> Option<Vec<PresenceChange>> {
        if self
            .snapshotting
            .get(topic)
            .is_none_or(|(n, _)| *n != number)
        {
            return None;
        }
        let (_, held) = self.snapshotting.remove(topic)?;
        let Some(snapshot) = answer else {
            // Unknown: this server's own users are shown until a snapshot
            // succeeds (after a reconnect).
            self.at.remove(topic);
            return Some(Vec::new());
        };
        let mut at = snapshot.version;
        let mut newer = Vec::new();
        for change in held {
            if change.version > at {
                at = change.version;
                newer.push(change);
            }
        }
        self.at.insert(topic.to_owned(), at);
        Some(newer)
    }

    /// `topic` is no longer subscribed: what was known of it goes.
    pub fn forget(&mut self, topic: &str) {
        self.at.remove(topic);
        self.snapshotting.remove(topic);
    }

    /// This server's user joined (`joined`) or left `topic`: for a leave,
    /// whether it was the last of this server's users there.
    pub fn local(&mut self, topic: &str, user: &str, joined: bool, now: Instant) -> bool {
        if joined {
            self.local
                .entry(topic.to_owned())
                .or_insert_with(|| Local {
                    users: HashSet::new(),
                    refreshed: now,
                })
                .users
                .insert(user.to_owned());
            false
        } else {
            let Some(local) = self.local.get_mut(topic) else {
                return false;
            };
            local.users.remove(user);
            let last = local.users.is_empty();
            if last {
                self.local.remove(topic);
            }
            last
        }
    }

    /// Whether `user` is one of this server's in `topic` (as last announced),
    /// and whether any is.
    pub fn is_local(&self, topic: &str, user: &str) -> (bool, bool) {
        self.local.get(topic).map_or((false, false), |l| {
            (l.users.contains(user), !l.users.is_empty())
        })
    }

    /// The topics whose keys were last given their time `every` ago or more
    /// (marked as given it now).
    pub fn due_refresh(&mut self, now: Instant, every: Duration) -> Vec<String> {
        let mut due = Vec::new();
        for (topic, local) in &mut self.local {
            if now.saturating_duration_since(local.refreshed) >= every {
                local.refreshed = now;
                due.push(topic.clone());
            }
        }
        due
    }
}
