//! Joining, and the topics' life (see [`topic`](super::topic)):
//! every decision about a topic's membership (first member, last member) is made
//! under the topic's lock and told to the backplane there, stamped with its
//! generation, so that decisions reach it in the order they were made.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use super::{
    access::Action,
    auth,
    backplane::{Backplane, Located},
    delivery::Delivery,
    inner::{Hub, HubInner, Make},
    namespaces,
    queue::Cmd,
    sched,
    subscribers::Floor,
    sync::lock,
    topic::{self, Life, MemberEntry, Recovery, Topic, TopicState},
    types::{JoinError, JoinOptions, Joined, OnJoined, Position, PresenceKind, TopicSettings},
};
use crate::actor::{Conn, ConnId};

/// A join waiting for a numbering backplane's answer.
pub(super) struct PendingJoin {
    shard: usize,
    topic: Arc<str>,
    id: ConnId,
    /// The join's stamp.
    join: u64,
    /// It asked to recover (`since`).
    asked: bool,
    /// The answer is a cache topic's newest publication (nothing recovered).
    cached: bool,
    on_joined: Option<OnJoined>,
    settings: TopicSettings,
}

/// What a join decided under the topic's lock, for what follows outside it.
enum Decided {
    /// A member already: its metadata updated.
    Already(Joined),
    /// A new member.
    New {
        joined: Joined,
        /// The recovery from the local history (`None`: a numbering backplane
        /// answers the join).
        replay: Option<Vec<Arc<Delivery>>>,
        settings: TopicSettings,
        epoch: Arc<str>,
    },
}

impl Hub {
    /// Plug in a cross-server backplane; see [`Backplane`].
    pub fn set_backplane(&self, backplane: Arc<dyn Backplane>) {
        *lock(&self.inner.backplane) = Some(backplane.clone());
        // Topics with members already: the backplane learns them now, each under
        // the topic's lock (a join or leave that runs meanwhile tells it the next
        // decision, after this one).
        let topics: Vec<Arc<Topic>> = lock(&self.inner.topics).values().cloned().collect();
        for topic in topics {
            let state = topic.lock();
            if state.life == Life::Removed || state.members.is_empty() {
                continue;
            }
            backplane.subscribe(&topic.name, state.generation);
            if backplane.shares_presence() && state.settings.presence {
                for (user, meta) in state.user_metas() {
                    backplane.presence_changed(
                        &topic.name,
                        &user,
                        meta.as_deref(),
                        PresenceKind::Joined,
                    );
                }
            }
        }
    }

    /// The topics this server holds members of, each with the generation of the
    /// decision that subscribed it (see [`Backplane::subscribe`](super::Backplane::subscribe)): what a
    /// backplane should be subscribed to, to reconcile its subscriptions with.
    pub fn subscriptions(&self) -> Vec<(String, u64)> {
        let topics: Vec<Arc<Topic>> = lock(&self.inner.topics).values().cloned().collect();
        let mut out: Vec<(String, u64)> = topics
            .iter()
            .filter_map(|t| {
                let state = t.lock();
                (state.life == Life::Live && !state.members.is_empty())
                    .then(|| (t.name.to_string(), state.generation))
            })
            .collect();
        out.sort();
        out
    }

    /// Set `topic`'s own settings (history, presence, slow-consumer policy, ...),
    /// over any namespace's; the topic is kept from now on, with no member. A
    /// topic not configured uses its namespace's settings
    /// ([`set_namespace`](Self::set_namespace)) or the hub's defaults, and is
    /// forgotten when its last member leaves and it keeps no history.
    pub fn configure(&self, topic: &str, settings: TopicSettings) {
        let mut topics = lock(&self.inner.topics);
        match topics.get(topic) {
            Some(t) => {
                let mut state = t.lock();
                state.settings = settings;
                state.configured = true;
                self.inner
                    .histories
                    .edit(t, &mut state, TopicState::trim_history);
            }
            None => {
                let name: Arc<str> = topic.into();
                topics.insert(name.clone(), Arc::new(Topic::new(name, settings, true)));
            }
        }
    }

    /// Whether `name` can be a topic's: at most
    /// [`max_topic_bytes`](crate::HubSettings::max_topic_bytes), not empty, without
    /// `{` or `}`. A join to another name is refused with
    /// this error, and a publication to it is not made (counted in
    /// `ws_hub_publications_refused_total`).
    pub fn check_topic(&self, name: &str) -> Result<(), JoinError> {
        self.inner.check_topic(name)
    }

    /// The settings `configure` starts from: the hub's defaults.
    pub fn topic_defaults(&self) -> TopicSettings {
        TopicSettings::from(&self.inner.settings)
    }

    /// Give the topics `pattern` names the policy `settings` (start from
    /// [`topic_defaults`](Self::topic_defaults)), as namespace `name`: `pattern`
    /// is an exact topic name, or a prefix followed by `*` (`chat:*`). A topic
    /// takes the namespace that names it exactly, else the one with the longest
    /// prefix of its name, else the hub's defaults; this is decided when the
    /// topic is made (no lookup per publication), and live topics that are not
    /// [`configure`](Self::configure)d take it now. A namespace of the same
    /// pattern is replaced. `[hub.namespaces.NAME]` makes the same from the
    /// settings.
    pub fn set_namespace(&self, name: &str, pattern: &str, settings: TopicSettings) {
        lock(&self.inner.namespaces).set(name, pattern, settings);
        let topics: Vec<Arc<Topic>> = lock(&self.inner.topics).values().cloned().collect();
        for topic in topics {
            let settings = self.inner.settings_for(&topic.name);
            let mut state = topic.lock();
            if state.life == Life::Removed || state.configured || state.settings == settings {
                continue;
            }
            state.settings = settings;
            self.inner
                .histories
                .edit(&topic, &mut state, TopicState::trim_history);
        }
    }

    /// [`set_namespace`](Self::set_namespace) from a namespace's settings (as in
    /// `[hub.namespaces.NAME]`, over the hub's defaults).
    pub fn set_namespace_settings(
        &self,
        name: &str,
        namespace: &crate::settings::NamespaceSettings,
    ) {
        let settings = namespaces::apply(self.topic_defaults(), namespace);
        self.set_namespace(name, &namespace.pattern(name), settings);
    }

    /// [`join_with`](Self::join_with) with the default options.
    pub fn join(&self, conn: &Conn, topic: &str) -> Result<Joined, JoinError> {
        self.join_with(conn, topic, JoinOptions::default())
    }

    /// Join `conn` to `topic`: it receives every publication made after this call
    /// (and, with [`JoinOptions::since`], what it missed before, first). Joining
    /// again updates the metadata. [`JoinOptions::on_joined`] answers the join
    /// before anything the topic delivers after it.
    ///
    /// With an authorizer ([`set_authorizer`](Self::set_authorizer)) the join is
    /// asked first: refused with [`JoinError::Denied`] and its reason, or
    /// [`JoinError::Asynchronous`] when it answers with a future (then use
    /// [`join_async`](Self::join_async)).
    pub fn join_with(
        &self,
        conn: &Conn,
        topic: &str,
        options: JoinOptions,
    ) -> Result<Joined, JoinError> {
        self.join_conn(conn, topic, options, true)
    }

    /// [`join_with`](Self::join_with), asking the authorizer first if `check`.
    pub(super) fn join_conn(
        &self,
        conn: &Conn,
        topic: &str,
        options: JoinOptions,
        check: bool,
    ) -> Result<Joined, JoinError> {
        if !conn.ready_state().can_send() {
            return Err(JoinError::Closed);
        }
        // The join's user names a connection the hub knows by no name yet (one
        // too long is refused by the join itself).
        let user = options
            .user
            .as_deref()
            .filter(|u| u.len() <= self.inner.settings.max_user_bytes)
            .map(Arc::from);
        let shard = self
            .inner
            .register(conn, user, false)
            .map_err(|e| self.inner.refuse(e))?;
        if check {
            self.inner.join(conn.id(), shard, topic, options)
        } else {
            self.inner.join_unchecked(conn.id(), shard, topic, options)
        }
    }

    /// How many connections are in `topic` (hidden members too:
    /// [`JoinOptions::hidden`]).
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
    /// Count a refused join (not a closed connection's).
    pub(super) fn refuse(&self, error: JoinError) -> JoinError {
        if error != JoinError::Closed {
            self.metrics.joins_refused.fetch_add(1, Ordering::Relaxed);
        }
        error
    }

    /// Join connection `id` (of `shard`, in the hub's table) to topic `name`,
    /// if the authorizer allows it now.
    pub(super) fn join(
        self: &Arc<Self>,
        id: ConnId,
        shard: usize,
        name: &str,
        options: JoinOptions,
    ) -> Result<Joined, JoinError> {
        let decision = self.decide(Action::Join, id, name, options.user.as_deref());
        if let Err(e) = auth::settle_now(decision) {
            return Err(self.refuse(e.into()));
        }
        self.join_unchecked(id, shard, name, options)
    }

    /// Join connection `id` (of `shard`, in the hub's table) to topic `name`
    /// (authorized).
    pub(super) fn join_unchecked(
        self: &Arc<Self>,
        id: ConnId,
        shard: usize,
        name: &str,
        options: JoinOptions,
    ) -> Result<Joined, JoinError> {
        let JoinOptions {
            user,
            meta,
            since,
            on_joined,
            hidden,
        } = options;
        let limits = &self.settings;
        let refused = self
            .check_topic(name)
            .err()
            .or_else(|| {
                user.as_ref()
                    .filter(|u| u.len() > limits.max_user_bytes)
                    .map(|_| JoinError::UserTooLong {
                        limit: limits.max_user_bytes,
                    })
            })
            .or_else(|| {
                meta.as_ref()
                    .filter(|m| m.len() > limits.max_meta_bytes)
                    .map(|_| JoinError::MetaTooLong {
                        limit: limits.max_meta_bytes,
                    })
            });
        if let Some(refused) = refused {
            return Err(self.refuse(refused));
        }
        let user: Arc<str> = user
            .map(Into::into)
            .unwrap_or_else(|| id.to_string().into());
        let meta: Option<Arc<str>> = meta.map(Into::into);
        let join = topic::next_join();
        let mut fetched = None;
        let decided = self
            .with_live_topic(name, Make::Yes, |topic, state| {
                fetched = Some(topic.clone());
                let member = MemberEntry {
                    user,
                    meta,
                    shard,
                    hidden,
                };
                self.decide_join(topic, state, id, join, member, since.as_ref())
            })
            .unwrap_or(Err(JoinError::Closed));
        let Some(topic) = fetched else {
            return Err(JoinError::Closed);
        };
        let (joined, replay, settings, epoch) = match decided {
            Ok(Decided::Already(joined)) => return Ok(joined),
            Ok(Decided::New {
                joined,
                replay,
                settings,
                epoch,
            }) => (joined, replay, settings, epoch),
            Err(e) => {
                // A topic made for this join alone is not kept.
                self.remove_if_idle(&topic);
                return Err(self.refuse(e));
            }
        };
        sched::point("joined");
        match replay {
            Some(replay) => {
                // Answered here: the greeting runs outside the topic's lock (it may
                // read the hub), and reaches the shard before what it held back.
                let greeting = self.greeting(&topic.name, on_joined, &joined, &settings);
                self.send(
                    shard,
                    Cmd::Answer {
                        topic: topic.name.clone(),
                        id,
                        join,
                        greeting,
                        replay,
                        floor: Floor {
                            epoch,
                            offset: joined.position.offset,
                        },
                    },
                );
            }
            None => {
                // A numbering backplane answers, once this server is subscribed.
                let backplane = lock(&self.backplane).clone();
                if let Some(backplane) = backplane {
                    let hub = Arc::downgrade(self);
                    let asked = since.is_some();
                    // Recovery off: nothing is asked (answered `recovered: false`).
                    let since = since.filter(|_| settings.recovery);
                    let cache = settings.cache;
                    let pending = PendingJoin {
                        shard,
                        topic: topic.name.clone(),
                        id,
                        join,
                        asked,
                        cached: false,
                        on_joined,
                        settings,
                    };
                    let again = backplane.clone();
                    backplane.locate(
                        &topic.name,
                        since,
                        Box::new(move |located| {
                            let Some(hub) = hub.upgrade() else {
                                return;
                            };
                            if cache && located.missed.is_none() && located.position.offset > 0 {
                                hub.locate_newest(&*again, pending, &located.position);
                            } else {
                                hub.finish_join(pending, located);
                            }
                        }),
                    );
                }
            }
        }
        Ok(joined)
    }

    /// The part of a join made under the topic's lock: the member added, the
    /// connection's table entry, presence, the shard told, and a first member's
    /// subscription told to the backplane.
    #[allow(clippy::too_many_arguments)]
    fn decide_join(
        &self,
        topic: &Arc<Topic>,
        state: &mut TopicState,
        id: ConnId,
        join: u64,
        member: MemberEntry,
        since: Option<&Position>,
    ) -> Result<Decided, JoinError> {
        let position = state.position();
        let shard = member.shard;
        if let Some(already) = state.members.get_mut(&id) {
            already.meta = member.meta;
            return Ok(Decided::Already(Joined {
                position,
                recovered: since.map(|_| false),
                replayed: 0,
                already: true,
            }));
        }
        let limits = &self.settings;
        if state.members.len() >= state.settings.max_members {
            return Err(JoinError::TopicFull {
                limit: state.settings.max_members,
            });
        }
        // In the connection's entry under the topic's lock: a close that takes the
        // entry away before this finds no entry here (the join is refused), and one
        // after it finds the topic in the entry (and takes the member out).
        match lock(&self.conns).get_mut(&id) {
            Some(entry) if entry.topics.len() >= limits.max_topics_per_connection => {
                return Err(JoinError::TooManyTopics {
                    limit: limits.max_topics_per_connection,
                })
            }
            Some(entry) => entry.topics.push(topic.clone()),
            None => return Err(JoinError::Closed),
        }
        let backplane = lock(&self.backplane).clone();
        let numbered = backplane.as_ref().is_some_and(|b| b.numbers());
        // Recovery from the local history (without a numbering backplane): what
        // was missed, taken under the topic's lock, so that nothing published
        // meanwhile is lost or repeated.
        // A cache topic gives a joiner that recovers nothing its newest
        // publication.
        let cached = |state: &mut TopicState| {
            let newest = state.settings.cache.then(|| {
                self.histories.edit(topic, state, |s| {
                    s.expire(Instant::now());
                    s.history.back().map(|k| k.delivery.clone())
                })
            });
            newest.flatten().into_iter().collect::<Vec<_>>()
        };
        let (recovered, replay) = match (numbered, since) {
            (true, _) => (None, None),
            (false, None) => (None, Some(cached(state))),
            (false, Some(_)) if !state.settings.recovery => (Some(false), Some(cached(state))),
            (false, Some(since)) => {
                match self
                    .histories
                    .edit(topic, state, |s| s.recover(since, Instant::now()))
                {
                    Recovery::Complete(replay) => (Some(true), Some(replay)),
                    Recovery::Incomplete => (Some(false), Some(cached(state))),
                }
            }
        };
        let joined = Joined {
            position,
            recovered,
            replayed: replay.as_ref().map_or(0, Vec::len),
            already: false,
        };
        state.add_to_shard(shard);
        let first = state.members.is_empty();
        let (user, meta, hidden) = (member.user.clone(), member.meta.clone(), member.hidden);
        state.members.insert(id, member);
        // A hidden member makes no presence (and is not counted among users).
        if !hidden && state.add_user(&user, id) && state.settings.presence {
            self.presence(&topic.name, &user, &meta, PresenceKind::Joined, id);
        }
        // Subscribed now, in the topic's order; what the topic delivers is held
        // back until the answer (the greeting, the replay) is in front of it.
        self.send(
            shard,
            Cmd::Subscribe {
                topic: topic.name.clone(),
                id,
                join,
            },
        );
        if first {
            state.generation = topic::next_generation();
            if let Some(backplane) = &backplane {
                backplane.subscribe(&topic.name, state.generation);
            }
        }
        Ok(Decided::New {
            joined,
            replay,
            settings: state.settings.clone(),
            epoch: state.epoch.clone(),
        })
    }

    /// What `on_joined` answers, framed for the topic (nothing when it panicked:
    /// counted, and the join is answered all the same).
    fn greeting(
        &self,
        topic: &str,
        on_joined: Option<OnJoined>,
        joined: &Joined,
        settings: &TopicSettings,
    ) -> Vec<Arc<Delivery>> {
        on_joined
            .and_then(|f| self.guarded("on_joined callback", topic, || f(joined)))
            .unwrap_or_default()
            .into_iter()
            .map(|m| self.delivery(m, settings, 0, None))
            .collect()
    }

    /// A cache topic's join that recovers nothing: the newest publication (at
    /// `position`, the topic's latest), asked of the backplane as what came
    /// after the one before it; what was published since comes with it.
    fn locate_newest(
        self: &Arc<Self>,
        backplane: &dyn Backplane,
        mut join: PendingJoin,
        position: &Position,
    ) {
        let before = Position {
            epoch: position.epoch.clone(),
            offset: position.offset - 1,
        };
        join.cached = true;
        let topic = join.topic.clone();
        let hub = Arc::downgrade(self);
        backplane.locate(
            &topic,
            Some(before),
            Box::new(move |located| {
                if let Some(hub) = hub.upgrade() {
                    hub.finish_join(join, located);
                }
            }),
        );
    }

    /// A numbering backplane answered a join: the greeting, what was missed, and
    /// from then on what the shard held back for the connection (a shard ignores
    /// the answer to a join the connection left since).
    pub(super) fn finish_join(&self, join: PendingJoin, located: Located) {
        let PendingJoin {
            shard,
            topic,
            id,
            join,
            asked,
            cached,
            on_joined,
            settings,
        } = join;
        let epoch: Arc<str> = located.position.epoch.as_str().into();
        // What was missed, rendered: all of it, or (a renderer that panicked)
        // nothing and `recovered: false`, never a partial recovery.
        let replay: Option<Vec<Arc<Delivery>>> = located.missed.and_then(|missed| {
            missed
                .into_iter()
                .map(|(position, message)| {
                    let message = self.render(&topic, &position, message)?;
                    let epoch = if position.epoch == *epoch {
                        epoch.clone()
                    } else {
                        position.epoch.as_str().into()
                    };
                    Some(self.delivery(message, &settings, position.offset, Some(epoch)))
                })
                .collect()
        });
        let joined = Joined {
            position: located.position.clone(),
            recovered: asked.then_some(replay.is_some() && !cached),
            replayed: replay.as_ref().map_or(0, Vec::len),
            already: false,
        };
        let greeting = self.greeting(&topic, on_joined, &joined, &settings);
        let replay = replay.unwrap_or_default();
        self.send(
            shard,
            Cmd::Answer {
                topic,
                id,
                join,
                greeting,
                replay,
                floor: Floor {
                    epoch,
                    offset: located.position.offset,
                },
            },
        );
    }
}
