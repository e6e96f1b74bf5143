//! Joining and leaving: the topics' table, the connections of the hub and the
//! shard of each, joins answered by a numbering backplane.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio::sync::mpsc;

use super::{
    lock,
    shard::{self, Cmd},
    topic::{self, MemberEntry, Recovery, Topic},
    Hub, HubInner, JoinError, JoinOptions, Joined, Located, OnJoined, Position, PresenceKind,
    ShardHandle, TopicSettings,
};
use crate::{
    actor::state::{thread_token, Command},
    Conn, ConnId,
};

/// A join waiting for a numbering backplane's answer.
pub(super) struct PendingJoin {
    shard: usize,
    topic: Arc<str>,
    id: ConnId,
    /// It asked to recover (`since`).
    asked: bool,
    on_joined: Option<OnJoined>,
    settings: TopicSettings,
}

/// A connection of the hub.
pub(super) struct ConnEntry {
    pub(super) conn: Conn,
    pub(super) shard: usize,
    pub(super) topics: Vec<Arc<Topic>>,
}

impl Hub {
    /// The topics this server holds members of, each with the generation of the
    /// decision that subscribed it (see [`Backplane::subscribe`]): what a
    /// backplane should be subscribed to, to reconcile its subscriptions with.
    pub fn subscriptions(&self) -> Vec<(String, u64)> {
        let topics: Vec<Arc<Topic>> = lock(&self.inner.topics).values().cloned().collect();
        let mut out: Vec<(String, u64)> = topics
            .iter()
            .filter_map(|t| {
                let state = t.lock();
                (!state.members.is_empty()).then(|| (t.name.to_string(), state.generation))
            })
            .collect();
        out.sort();
        out
    }

    /// Set `topic`'s own settings (history, presence, slow-consumer policy); the
    /// topic is kept from now on, with no member. A topic not configured uses the
    /// hub's defaults and is forgotten when its last member leaves and it keeps no
    /// history.
    pub fn configure(&self, topic: &str, settings: TopicSettings) {
        let mut topics = lock(&self.inner.topics);
        match topics.get(topic) {
            Some(t) => {
                let mut state = t.lock();
                state.settings = settings;
                state.configured = true;
                while state.history.len() > state.settings.history_size {
                    state.history.pop_front();
                }
            }
            None => {
                let name: Arc<str> = topic.into();
                topics.insert(name.clone(), Arc::new(Topic::new(name, settings, true)));
            }
        }
    }

    /// The settings `configure` starts from: the hub's defaults.
    pub fn topic_defaults(&self) -> TopicSettings {
        TopicSettings::from(&self.inner.settings)
    }

    /// [`join_with`](Self::join_with) with the default options.
    pub fn join(&self, conn: &Conn, topic: &str) -> Result<Joined, JoinError> {
        self.join_with(conn, topic, JoinOptions::default())
    }

    /// Join `conn` to `topic`: it receives every publication made after this call
    /// (and, with [`JoinOptions::since`], what it missed before, first). Joining
    /// again updates the metadata. [`JoinOptions::on_joined`] answers the join
    /// before anything the topic delivers after it.
    pub fn join_with(
        &self,
        conn: &Conn,
        topic: &str,
        options: JoinOptions,
    ) -> Result<Joined, JoinError> {
        if !conn.ready_state().can_send() {
            return Err(JoinError::Closed);
        }
        let inner = &self.inner;
        let backplane = lock(&inner.backplane).clone();
        let numbered = backplane.as_ref().is_some_and(|b| b.numbers());
        let shard = inner.register(conn);
        let topic = inner.topic(topic);
        let JoinOptions {
            user,
            meta,
            since,
            mut on_joined,
        } = options;
        let user: Arc<str> = user
            .map(Into::into)
            .unwrap_or_else(|| conn.id().to_string().into());
        let meta: Option<Arc<str>> = meta.map(Into::into);
        let mut state = topic.lock();
        let position = state.position();
        if let Some(member) = state.members.get_mut(&conn.id()) {
            member.meta = meta;
            return Ok(Joined {
                position,
                recovered: since.map(|_| false),
                replayed: 0,
                already: true,
            });
        }
        // Recovery from the local history (without a numbering backplane): what
        // was missed, taken under the topic's lock, so that nothing published
        // meanwhile is lost or repeated.
        let local = if numbered {
            None
        } else {
            let (recovered, replay) = match &since {
                None => (None, Vec::new()),
                Some(since) => match state.recover(since, Instant::now()) {
                    Recovery::Complete(replay) => (Some(true), replay),
                    Recovery::Incomplete => (Some(false), Vec::new()),
                },
            };
            Some((recovered, replay))
        };
        let joined = Joined {
            position: position.clone(),
            recovered: local.as_ref().and_then(|(r, _)| *r),
            replayed: local.as_ref().map_or(0, |(_, replay)| replay.len()),
            already: false,
        };
        state.add_to_shard(shard);
        let first_anywhere = state.members.is_empty();
        if first_anywhere {
            state.generation = topic::next_generation();
        }
        let generation = state.generation;
        state.members.insert(
            conn.id(),
            MemberEntry {
                user: user.clone(),
                meta: meta.clone(),
                shard,
            },
        );
        let count = state.users.entry(user.clone()).or_insert(0);
        *count += 1;
        if *count == 1 && state.settings.presence {
            inner.presence(&topic.name, &user, &meta, PresenceKind::Joined);
        }
        let settings = state.settings.clone();
        // Subscribed now, in the topic's order; what the topic delivers is held
        // back until the answer (the greeting) and the replay are in front of it.
        inner.send(
            shard,
            Cmd::Subscribe {
                topic: topic.name.clone(),
                id: conn.id(),
                greeting: Vec::new(),
                replay: Vec::new(),
                pending: true,
            },
        );
        drop(state);
        if let Some((_, replay)) = local {
            // The greeting runs outside the topic's lock (it may read the hub).
            let greeting = on_joined
                .take()
                .map(|f| f(&joined))
                .unwrap_or_default()
                .into_iter()
                .map(|m| inner.delivery(m, &settings, 0))
                .collect();
            inner.send(
                shard,
                Cmd::Replay {
                    topic: topic.name.clone(),
                    id: conn.id(),
                    greeting,
                    replay,
                    after: position.offset,
                },
            );
        }
        if let Some(entry) = lock(&inner.conns).get_mut(&conn.id()) {
            entry.topics.push(topic.clone());
        }
        if let Some(backplane) = backplane {
            if first_anywhere {
                backplane.subscribe(&topic.name, generation);
            }
            if numbered {
                let hub = Arc::downgrade(inner);
                let (id, name) = (conn.id(), topic.name.clone());
                let asked = since.is_some();
                let pending = PendingJoin {
                    shard,
                    topic: name,
                    id,
                    asked,
                    on_joined,
                    settings,
                };
                backplane.locate(
                    &topic.name,
                    since,
                    Box::new(move |located| {
                        if let Some(hub) = hub.upgrade() {
                            hub.finish_join(pending, located);
                        }
                    }),
                );
            }
        }
        Ok(joined)
    }

    /// Take connection `id` out of `topic`; false when it was not a member.
    pub fn leave(&self, id: ConnId, topic: &str) -> bool {
        let topic = {
            let mut conns = lock(&self.inner.conns);
            let Some(entry) = conns.get_mut(&id) else {
                return false;
            };
            let Some(at) = entry.topics.iter().position(|t| &*t.name == topic) else {
                return false;
            };
            entry.topics.swap_remove(at)
        };
        self.inner.leave_topic(id, &topic);
        true
    }

    /// How many connections are in `topic`.
    pub fn count(&self, topic: &str) -> usize {
        lock(&self.inner.topics)
            .get(topic)
            .map_or(0, |t| t.lock().members.len())
    }

    /// The topics that exist (with members, a history, or configured), sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.inner.topics)
            .keys()
            .map(|k| k.to_string())
            .collect();
        names.sort();
        names
    }

    /// The position of `topic`'s latest publication (`None`: no such topic).
    pub fn position(&self, topic: &str) -> Option<Position> {
        lock(&self.inner.topics)
            .get(topic)
            .map(|t| t.lock().position())
    }
}

impl HubInner {
    /// The shard of `conn`'s thread (made when it has none), with `conn` in it.
    pub(super) fn register(self: &Arc<Self>, conn: &Conn) -> usize {
        let mut conns = lock(&self.conns);
        if let Some(entry) = conns.get(&conn.id()) {
            return entry.shard;
        }
        let remote = conn.remote();
        let shard = self.shard_for(remote.owner(), conn);
        conns.insert(
            conn.id(),
            ConnEntry {
                conn: conn.clone(),
                shard,
                topics: Vec::new(),
            },
        );
        drop(conns);
        self.send(
            shard,
            Cmd::Register {
                id: conn.id(),
                slot: remote.slot(),
            },
        );
        shard
    }

    /// The shard of thread `token`, started there (now, on that thread; or through
    /// `conn`, which lives there).
    pub(super) fn shard_for(self: &Arc<Self>, token: u64, conn: &Conn) -> usize {
        let mut shards = lock(&self.shards);
        let index = match shards.iter().position(|s| s.token == token) {
            Some(i) => i,
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                shards.push(ShardHandle {
                    token,
                    tx,
                    rx: Arc::new(Mutex::new(Some(rx))),
                });
                shards.len() - 1
            }
        };
        let rx = shards[index].rx.clone();
        drop(shards);
        if lock(&rx).is_none() {
            return index;
        }
        let hub = Arc::downgrade(self);
        let start = move || {
            if let Some(rx) = lock(&rx).take() {
                actix_rt::spawn(shard::run(hub, rx));
            }
        };
        if thread_token() == token {
            start();
        } else {
            let _ = conn.remote().push(Command::Run(Box::new(start)), 0);
        }
        index
    }

    pub(super) fn send(&self, shard: usize, cmd: Cmd) {
        if let Some(handle) = lock(&self.shards).get(shard) {
            let _ = handle.tx.send(cmd);
        }
    }

    pub(super) fn topic(&self, name: &str) -> Arc<Topic> {
        let mut topics = lock(&self.topics);
        if let Some(t) = topics.get(name) {
            return t.clone();
        }
        let name: Arc<str> = name.into();
        let topic = Arc::new(Topic::new(
            name.clone(),
            TopicSettings::from(&self.settings),
            false,
        ));
        topics.insert(name, topic.clone());
        topic
    }

    /// A numbering backplane answered a join: the greeting, what was missed, and
    /// from then on what the shard held back for the connection.
    pub(super) fn finish_join(&self, join: PendingJoin, located: Located) {
        let PendingJoin {
            shard,
            topic,
            id,
            asked,
            on_joined,
            settings,
        } = join;
        let (topic, settings) = (&topic, &settings);
        let recovered = asked.then_some(located.missed.is_some());
        let missed = located.missed.unwrap_or_default();
        let joined = Joined {
            position: located.position.clone(),
            recovered,
            replayed: missed.len(),
            already: false,
        };
        let greeting = on_joined
            .map(|f| f(&joined))
            .unwrap_or_default()
            .into_iter()
            .map(|m| self.delivery(m, settings, 0))
            .collect();
        let replay = missed
            .into_iter()
            .map(|(position, message)| {
                let message = self.render(topic, &position, message);
                self.delivery(message, settings, position.offset)
            })
            .collect();
        self.send(
            shard,
            Cmd::Replay {
                topic: topic.clone(),
                id,
                greeting,
                replay,
                after: located.position.offset,
            },
        );
    }

    /// Take `id` out of `topic` (its entry already updated).
    pub(super) fn leave_topic(&self, id: ConnId, topic: &Arc<Topic>) {
        let mut state = topic.lock();
        let Some(member) = state.members.remove(&id) else {
            return;
        };
        state.remove_from_shard(member.shard);
        let gone = match state.users.get_mut(&member.user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                state.users.remove(&member.user);
                true
            }
        };
        if gone && state.settings.presence {
            self.presence(&topic.name, &member.user, &member.meta, PresenceKind::Left);
        }
        self.send(
            member.shard,
            Cmd::Unsubscribe {
                topic: topic.name.clone(),
                id,
            },
        );
        let last = state.members.is_empty();
        if last {
            state.generation = topic::next_generation();
        }
        let generation = state.generation;
        if last {
            // Not held here any more: what the backplane said goes stale. The
            // leaving user's own leave will not come back (this server stops
            // listening): it is told here.
            if let Some(global) = state.global_users.take() {
                if gone && state.settings.presence && global.contains_key(&member.user) {
                    self.report_presence(
                        &topic.name,
                        &member.user,
                        &member.meta,
                        PresenceKind::Left,
                    );
                }
            }
        }
        let idle = state.is_idle();
        drop(state);
        if last {
            if let Some(backplane) = lock(&self.backplane).clone() {
                backplane.unsubscribe(&topic.name, generation);
            }
        }
        if idle {
            let mut topics = lock(&self.topics);
            // Still idle under the map's lock (no join in between): forget it.
            if topics
                .get(&topic.name)
                .is_some_and(|t| Arc::ptr_eq(t, topic) && t.lock().is_idle())
            {
                topics.remove(&topic.name);
            }
        }
    }

    /// Connection `id` closed: it leaves every topic and the hub.
    pub(super) fn connection_closed(&self, id: ConnId) {
        let Some(entry) = lock(&self.conns).remove(&id) else {
            return;
        };
        for topic in &entry.topics {
            self.leave_topic(id, topic);
        }
        self.send(entry.shard, Cmd::Unregister { id });
    }
}
