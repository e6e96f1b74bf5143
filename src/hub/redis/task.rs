//! The backplane's task: it serves the hub's asks and Redis's messages with one
//! `select!` over its parts, none preferred (publications, the subscription's
//! messages, the answers of its own commands, heartbeats, reconnections and the
//! reconciliation each get their turn under any backlog). The supervisor runs it
//! (and runs it again).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use fred::{
    clients::SubscriberClient,
    prelude::*,
    types::{scripts::Script, Message as RedisMessage},
};
use tokio::sync::{broadcast::error::RecvError, mpsc};

use super::{
    conns::Conns,
    counters::add,
    events::{Announcement, Ask, Event},
    keys,
    ordering::{Caught, FillRequest, Ordering, Outcome},
    presence::{Presence, PresenceState},
    publish::{fresh_epoch, Publisher},
    reply::{self, Snapshot},
    scripts,
    shared::{lock, Pending, Shared, STOPPING},
    subscriptions::{Command, Effect, Subscriptions, Tally},
};
use crate::{
    hub::{
        backplane::{Located, Publication},
        types::{Position, PresenceKind},
    },
    settings::RedisSettings,
};

mod requests;

/// How a task ended.
pub(super) enum Exit {
    /// Stopped (asked, or the backplane was dropped).
    Stopped,
    /// Redis could not be reached at start: `start` was told.
    NotStarted,
    /// Redis could not be reached for a restart.
    ConnectFailed,
    /// It ended without being asked to.
    Lost(&'static str),
}

/// Tries of a presence announcement before it is left to its keys' time to
/// live (the back-off between them grows to `reconnect_max`).
const MAX_ANNOUNCE_ATTEMPTS: u32 = 20;

/// One run of the backplane's task: its connections and its parts.
pub(super) struct Task {
    shared: Arc<Shared>,
    origin: u64,
    prefix: String,
    sharded: bool,
    topic_ttl_ms: i64,
    presence_ttl: Duration,
    keys_ttl: Duration,
    reconcile_every: Duration,
    watch_every: Duration,
    /// Since when each connection (control, writer, subscriber) is down.
    down_since: [Option<Instant>; 3],
    /// Publications Redis took when the writer was last seen to work: one taken
    /// since means it works (fred reports a connection as connecting while it
    /// sends what it held back), whatever its state says.
    writer_took: u64,
    /// How long one may stay down while another is up.
    stuck_after: Duration,
    command_timeout: Duration,
    control: Client,
    writer: Client,
    subscriber: SubscriberClient,
    locate: Script,
    publisher: Publisher,
    presence: Presence,
    subs: Subscriptions,
    order: Ordering,
    pstate: PresenceState,
    /// Joins waiting for their topic's subscription and presence.
    waiting: HashMap<String, Vec<(Option<Position>, Pending)>>,
    /// Joins located, waiting for this server to deliver up to their position.
    catching_up: HashMap<String, Vec<(Pending, Located)>>,
    events: mpsc::UnboundedSender<Event>,
    events_rx: Option<mpsc::UnboundedReceiver<Event>>,
    tally: Tally,
    pub stopping: Option<Instant>,
}

impl Task {
    pub fn new(
        conns: Conns,
        s: &RedisSettings,
        origin: u64,
        shared: &Arc<Shared>,
    ) -> (Task, tokio::task::JoinHandle<()>) {
        let topic_ttl_ms = s
            .topic_ttl
            .map_or(0, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX));
        // What a task before this one had on its way is abandoned.
        lock(&shared.own).restart();
        let (publisher, answers) = Publisher::start(
            conns.writer.clone(),
            s.prefix.clone(),
            origin,
            s.sharded,
            topic_ttl_ms,
            s.command_timeout,
            shared.clone(),
        );
        let presence = Presence {
            control: conns.control.clone(),
            writer: conns.writer.clone(),
            prefix: s.prefix.clone(),
            sharded: s.sharded,
            origin,
            presence_ttl: s.presence_ttl,
            keys_ttl: s.presence_keys_ttl,
            retry_initial: s.reconnect_initial,
            retry_max: s.reconnect_max,
        };
        let (events, events_rx) = mpsc::unbounded_channel();
        let task = Task {
            shared: shared.clone(),
            origin,
            prefix: s.prefix.clone(),
            sharded: s.sharded,
            topic_ttl_ms,
            presence_ttl: s.presence_ttl,
            keys_ttl: s.presence_keys_ttl,
            reconcile_every: s.reconcile_interval,
            watch_every: s.reconnect_max.max(Duration::from_millis(10)),
            down_since: [None; 3],
            writer_took: 0,
            command_timeout: s.command_timeout,
            stuck_after: s
                .reconnect_max
                .saturating_mul(4)
                .saturating_add(s.command_timeout),
            control: conns.control,
            writer: conns.writer,
            subscriber: conns.subscriber,
            locate: Script::from_lua(scripts::LOCATE),
            publisher,
            presence,
            subs: Subscriptions::new(
                s.reconnect_initial,
                s.reconnect_max,
                // A late decision is told from a new one for this long.
                s.reconcile_interval.saturating_mul(6),
            ),
            order: Ordering::new(s.subscription_buffer.max(16)),
            pstate: PresenceState::default(),
            waiting: HashMap::new(),
            catching_up: HashMap::new(),
            events,
            events_rx: Some(events_rx),
            tally: Tally::default(),
            stopping: None,
        };
        (task, answers)
    }

    /// After a restart: subscribed to what the hub wants (with its decisions'
    /// generations), presence announced again.
    pub fn restarted(&mut self) {
        if let Some(hub) = self.shared.hub.upgrade() {
            for (topic, generation) in hub.subscriptions() {
                self.subs.ask(&topic, true, generation);
            }
        }
        let _ = self.events.send(Event::Forgotten);
    }

    pub async fn run(
        &mut self,
        asks: &mut mpsc::UnboundedReceiver<Ask>,
        pubs: &mut mpsc::UnboundedReceiver<Publication>,
        mut answers: tokio::task::JoinHandle<()>,
    ) -> Exit {
        let Some(mut events) = self.events_rx.take() else {
            return Exit::Lost("no events");
        };
        let mut messages = self.subscriber.message_rx();
        let mut resubscribed = self.subscriber.reconnect_rx();
        let mut reconnected = self.writer.reconnect_rx();
        // Listed among the live servers before any presence of this server's is
        // written (on the same connection, so in this order): a server that dies
        // at once is still swept by the others.
        self.presence.register();
        let mut heartbeat =
            tokio::time::interval((self.presence_ttl / 3).max(Duration::from_millis(10)));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reconcile = tokio::time::interval(self.reconcile_every);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch = tokio::time::interval(self.watch_every);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first_beat = true;
        let mut batch = Vec::with_capacity(64);
        let never = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            let now = Instant::now();
            if self.subs.has_work() {
                let effects = self.subs.flush(now);
                self.apply(effects);
            }
            self.sync_tally();
            if let Some(deadline) = self.stopping {
                if self.shared.in_flight() == 0 || now >= deadline {
                    return self.finish(asks).await;
                }
            }
            // (Timers armed only when needed: not one per message.)
            let retry = self.subs.next_retry();
            let retry_at = retry.map_or(never, tokio::time::Instant::from_std);
            let stop_at = self.stopping.map_or(never, tokio::time::Instant::from_std);
            tokio::select! {
                message = messages.recv() => match message {
                    Ok(message) => self.on_message(message),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "redis backplane fell behind its subscription: filling from the streams");
                        self.resync();
                    }
                    Err(RecvError::Closed) => return Exit::Lost("the subscription's messages ended"),
                },
                n = pubs.recv_many(&mut batch, 64) => {
                    if n == 0 {
                        return Exit::Lost("the publications' queue closed");
                    }
                    for publication in batch.drain(..) {
                        self.publisher.send(publication);
                    }
                }
                ask = asks.recv() => {
                    let Some(ask) = ask else {
                        // The backplane was dropped: a stop.
                        return self.finish(asks).await;
                    };
                    self.on_ask(ask);
                    // Batched: the decisions queued now are taken before one
                    // SUBSCRIBE is sent for them all.
                    for _ in 0..256 {
                        let Ok(ask) = asks.try_recv() else { break };
                        self.on_ask(ask);
                    }
                }
                Some(event) = events.recv() => self.on_event(event),
                _ = heartbeat.tick() => {
                    self.presence.heartbeat(std::mem::take(&mut first_beat), &self.events);
                    let due = self.pstate.due_refresh(Instant::now(), self.keys_ttl / 4);
                    if !due.is_empty() {
                        self.presence.refresh(due);
                    }
                }
                _ = reconcile.tick() => self.reconcile(),
                _ = watch.tick() => {
                    if self.nudge() {
                        return Exit::Lost("a connection to Redis did not come back");
                    }
                }
                _ = tokio::time::sleep_until(retry_at), if retry.is_some() => {}
                _ = tokio::time::sleep_until(stop_at), if self.stopping.is_some() => {}
                Ok(_) = resubscribed.recv() => {
                    add(&self.shared.counters.reconnects, 1);
                    tracing::info!("redis backplane's subscription reconnected: subscribing again");
                    self.subs.connection_lost();
                }
                Ok(_) = reconnected.recv() => {
                    add(&self.shared.counters.reconnects, 1);
                    tracing::info!("redis backplane reconnected");
                    let _ = self.events.send(Event::Forgotten);
                }
                _ = &mut answers => return Exit::Lost("the publications' answers ended"),
            }
        }
    }

    fn on_ask(&mut self, ask: Ask) {
        match ask {
            Ask::Subscribe(topic, generation) => {
                self.subs.ask(&topic, true, generation);
            }
            Ask::Unsubscribe(topic, generation) => {
                // Checked against the hub now: a topic it holds members of is
                // not let go (the decision was overtaken, or came from a topic
                // the hub no longer holds); a later one settles it.
                let held = self
                    .shared
                    .hub
                    .upgrade()
                    .is_some_and(|hub| hub.count(&topic) > 0);
                if held {
                    self.subs.overtaken(&topic, generation);
                } else {
                    self.subs.ask(&topic, false, generation);
                }
            }
            Ask::Locate(pending, since) => {
                let topic = pending.topic.clone();
                if !self.subs.wants(&topic) {
                    // Left already: nothing to wait for.
                    pending.answer_here();
                } else if self.subs.is_ready(&topic) && !self.pstate.snapshotting(&topic) {
                    self.locate(pending, since);
                } else {
                    self.waiting
                        .entry(topic)
                        .or_default()
                        .push((since, pending));
                }
            }
            Ask::Presence(topic, user, meta, kind) => {
                let last =
                    self.pstate
                        .local(&topic, &user, kind == PresenceKind::Joined, Instant::now());
                let change = Announcement {
                    topic,
                    user,
                    meta,
                    kind,
                    attempt: 0,
                };
                self.presence.announce(change, last, &self.events);
            }
            Ask::Stop(drain) => {
                let deadline = Instant::now() + drain;
                self.stopping = Some(self.stopping.map_or(deadline, |d| d.min(deadline)));
            }
            #[cfg(test)]
            Ask::Crash => panic!("a crash asked for by a test"),
        }
    }

    fn on_message(&mut self, message: RedisMessage) {
        let counters = &self.shared.counters;
        let (Some(topic), Some(raw)) = (
            keys::topic_of(&self.prefix, &message.channel),
            reply::bytes(&message.value),
        ) else {
            add(&counters.malformed, 1);
            return;
        };
        let presence = raw.starts_with(b"p1\n");
        if !presence {
            add(&counters.received, 1);
        }
        if !self.subs.wants(&topic) {
            // Not for this server any more: dropped, its order left alone.
            add(&counters.unwanted, 1);
            return;
        }
        if presence {
            let Some(change) = reply::presence_change(&raw) else {
                add(&counters.malformed, 1);
                tracing::warn!(channel = %message.channel, "unreadable presence on the backplane");
                return;
            };
            if let Some(change) = self.pstate.change(&topic, change) {
                self.apply_presence(&topic, &change);
            }
            return;
        }
        let Some(envelope) = reply::envelope(&raw) else {
            add(&counters.malformed, 1);
            tracing::warn!(channel = %message.channel, "unreadable envelope on the backplane");
            return;
        };
        let out = self.order.message(&topic, envelope);
        self.outcome(&topic, out);
    }

    /// Deliver what ordering let through; ask for the fill it asked for.
    fn outcome(&mut self, topic: &str, out: Outcome) {
        let c = &self.shared.counters;
        add(&c.filled, out.filled);
        add(&c.lost, out.lost);
        add(&c.resets, out.resets);
        if out.lost > 0 {
            tracing::warn!(%topic, lost = out.lost, "publications missed and no longer in the stream");
        }
        if let Some(request) = out.fill {
            self.fill(topic, request);
        }
        if out.deliver.is_empty() {
            return;
        }
        if let Some(hub) = self.shared.hub.upgrade() {
            for e in out.deliver {
                let own = e.origin == self.origin;
                if own && e.seq != 0 && !lock(&self.shared.own).came_back(e.seq) {
                    // Delivered here already, in its place.
                    add(&c.duplicates_avoided, 1);
                    continue;
                }
                // The sender is skipped on the server it is on.
                let except = e.except.filter(|_| own);
                self.shared.guarded(|| {
                    hub.deliver_numbered(topic, &e.position, e.message, except);
                });
            }
        }
        self.release(topic, false);
    }

    /// Answer the joins of `topic` whose position was delivered up to (all of
    /// them, `anyway`).
    fn release(&mut self, topic: &str, anyway: bool) {
        let Some(waiting) = self.catching_up.remove(topic) else {
            return;
        };
        let mut rest = Vec::new();
        for (pending, located) in waiting {
            if anyway {
                pending.answer(located);
            } else if let Some((pending, located)) = self.answer_if_caught_up(pending, located) {
                rest.push((pending, located));
            }
        }
        if !rest.is_empty() {
            self.catching_up.insert(topic.to_owned(), rest);
        }
    }

    /// Answer a join if this server has delivered everything up to its
    /// position (see [`Ordering::catch_up`]); else give it back.
    fn answer_if_caught_up(
        &mut self,
        pending: Pending,
        located: Located,
    ) -> Option<(Pending, Located)> {
        match self.order.catch_up(&pending.topic, &located.position) {
            Caught::Up => pending.answer(located),
            Caught::At(position) => pending.answer(Located::new(position, None)),
            Caught::Behind => return Some((pending, located)),
        }
        None
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Confirmed {
                topic,
                command,
                id,
                ok,
            } => self.subs.confirmed(&topic, command, id, ok, Instant::now()),
            Event::Snapshot(topic, number, answer) => {
                let Some(newer) = self.pstate.snapshot_done(&topic, number, answer.as_ref()) else {
                    return;
                };
                if let Some(Snapshot {
                    users, position, ..
                }) = answer
                {
                    if let Some(hub) = self.shared.hub.upgrade() {
                        hub.set_presence(&topic, users);
                    }
                    self.order.set_baseline(&topic, position);
                }
                // A baseline may settle joins that waited.
                self.release(&topic, false);
                for change in newer {
                    self.apply_presence(&topic, &change);
                }
                self.serve_waiting(&topic);
            }
            Event::Filled(topic, number, fill) => {
                if fill.is_none() {
                    tracing::debug!(%topic, "redis fill failed: delivered as they come");
                }
                let out = self.order.filled(&topic, number, fill);
                self.outcome(&topic, out);
                // What the fill could not bring will not come: the joins
                // waiting for it are answered.
                self.release(&topic, true);
            }
            Event::Located(pending, located) => {
                // Answered once this server has delivered everything up to the
                // join's position (after it, the member gets each publication
                // once, in order); what may still be on its way is filled.
                let topic = pending.topic.clone();
                if !self.subs.wants(&topic) {
                    pending.answer(located);
                    return;
                }
                let Some((pending, located)) = self.answer_if_caught_up(pending, located) else {
                    return;
                };
                if let Some(request) = self.order.missed(&topic) {
                    self.fill(&topic, request);
                }
                self.catching_up
                    .entry(topic)
                    .or_default()
                    .push((pending, located));
            }
            Event::Unannounced(change) => {
                // Made again only if it still holds (a later change of the
                // same user was announced after it, and is the one to keep).
                let (here, any) = self.pstate.is_local(&change.topic, &change.user);
                if here != (change.kind == PresenceKind::Joined) {
                    return;
                }
                if change.attempt > MAX_ANNOUNCE_ATTEMPTS {
                    add(&self.shared.counters.presence_unannounced, 1);
                    tracing::warn!(
                        topic = %change.topic,
                        "a presence change could not be written in Redis: it is left to its keys' time to live"
                    );
                    return;
                }
                self.presence.announce(change, !any, &self.events);
            }
            Event::Forgotten => {
                // Listed again, announced again (idempotent), then read again:
                // what changed while Redis did not know this server is told.
                self.presence.register();
                if let Some(hub) = self.shared.hub.upgrade() {
                    let now = Instant::now();
                    for (topic, users) in hub.local_presence() {
                        for (user, meta) in users {
                            self.pstate.local(&topic, &user, true, now);
                            let change = Announcement {
                                topic: topic.clone(),
                                user,
                                meta,
                                kind: PresenceKind::Joined,
                                attempt: 0,
                            };
                            self.presence.announce(change, false, &self.events);
                        }
                    }
                }
                let topics: Vec<String> = self.subs.subscribed().map(str::to_owned).collect();
                for topic in topics {
                    if self.subs.is_ready(&topic) {
                        self.snapshot(&topic);
                    }
                }
            }
        }
    }

    /// Watch the three connections: one that is down gets a `PING` (a client
    /// with nothing to send may not try again); one down for long while
    /// another is up (Redis answers) is taken as stuck: true, and the task is
    /// started again with new connections.
    fn nudge(&mut self) -> bool {
        let now = Instant::now();
        let up = [
            self.control.is_connected(),
            self.writer.is_connected(),
            self.subscriber.is_connected(),
        ];
        for (i, up) in up.iter().enumerate() {
            if *up {
                self.down_since[i] = None;
                continue;
            }
            self.down_since[i].get_or_insert(now);
            let (control, writer, subscriber) = (
                self.control.clone(),
                self.writer.clone(),
                self.subscriber.clone(),
            );
            tokio::spawn(async move {
                let _: Result<(), _> = match i {
                    0 => control.ping(None).await,
                    1 => writer.ping(None).await,
                    _ => subscriber.ping(None).await,
                };
            });
        }
        // Publications wait for a connection that blinks; not for one that is
        // out for longer than a command may take (and took none meanwhile).
        let took = (self.shared.counters.published).load(std::sync::atomic::Ordering::Relaxed);
        if took != self.writer_took {
            self.writer_took = took;
            if self.down_since[1].is_some() {
                self.down_since[1] = Some(now);
            }
        }
        let out = self.down_since[1]
            .is_some_and(|t| now.saturating_duration_since(t) > self.command_timeout);
        self.publisher.set_out(out);
        let stuck = self.down_since.iter().any(|since| {
            since.is_some_and(|t| now.saturating_duration_since(t) > self.stuck_after)
        });
        stuck && up.iter().any(|u| *u)
    }

    /// Add what the state machine counted since the last call to the counters.
    fn sync_tally(&mut self) {
        let (now, was) = (self.subs.tally, self.tally);
        let c = &self.shared.counters;
        add(&c.stale_asks, now.stale_asks - was.stale_asks);
        add(
            &c.stale_confirmations,
            now.stale_confirmations - was.stale_confirmations,
        );
        add(&c.subscription_failures, now.failures - was.failures);
        add(&c.reconciled, now.reconciled - was.reconciled);
        self.tally = now;
    }

    /// A clean stop: joins answered, subscriptions ended, this server's users
    /// taken out of presence at once, connections closed.
    async fn finish(&mut self, asks: &mut mpsc::UnboundedReceiver<Ask>) -> Exit {
        self.shared.set_state(STOPPING);
        for (_, waiting) in self.waiting.drain() {
            for (_, pending) in waiting {
                pending.answer_here();
            }
        }
        for (_, located) in self.catching_up.drain() {
            for (pending, located) in located {
                pending.answer(located);
            }
        }
        while let Ok(ask) = asks.try_recv() {
            if let Ask::Locate(pending, _) = ask {
                pending.answer_here();
            }
        }
        let limit = self
            .presence_ttl
            .min(Duration::from_secs(5))
            .max(Duration::from_secs(1));
        let _ = tokio::time::timeout(limit, self.subscriber.unsubscribe_all()).await;
        let _ = tokio::time::timeout(limit, self.presence.sweep(self.origin)).await;
        for client in [&self.control, &self.writer] {
            let _ = tokio::time::timeout(limit, client.quit()).await;
        }
        let _ = tokio::time::timeout(limit, self.subscriber.quit()).await;
        add_gauge(&self.shared, 0);
        Exit::Stopped
    }
}

fn add_gauge(shared: &Shared, subscribed: usize) {
    shared
        .counters
        .subscriptions
        .store(subscribed as u64, std::sync::atomic::Ordering::Relaxed);
}
