//! A hub's part on one worker thread: the subscribers whose connections live on
//! that thread, and the delivery to them.
//!
//! Every change and every publication reaches a shard through one channel, in
//! order; the shard runs as a task on its thread and writes each publication into
//! each local subscriber's send buffer directly (the connection state is this
//! thread's: no lock), then wakes its writer. A publication therefore crosses each
//! thread once, however many subscribers it has there, and what several
//! publications queue for one connection leaves in one write.

use std::{
    cell::Cell,
    collections::HashMap,
    sync::{atomic::Ordering, Arc, Weak},
    time::Instant,
};

use tokio::sync::mpsc;

use super::{
    delivery::Delivery,
    inner::HubInner,
    queue::{Cmd, Queue},
    subscribers::{Counts, Many, Outcome, Sink, Subscribers, Whole},
};
use crate::{
    actor::{Budget, Conn, ConnId, Error, OnThread, Refused},
    proto::CloseCode,
    settings::SlowConsumer,
};

/// The shard's state, owned by its task; `L` is the handle of a connection.
pub(super) struct Shard<L> {
    hub: Weak<HubInner>,
    queue: Arc<Queue>,
    pub(super) conns: HashMap<ConnId, L>,
    topics: HashMap<Arc<str>, Subscribers<L>>,
    /// Whether a conflating policy keeps a publication for a subscriber here
    /// (then the shard tries to write it every `LATEST_RETRY`).
    latest: Cell<bool>,
}

/// How often a shard tries to write what a conflating policy kept.
pub(super) const LATEST_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// What a shard's loop waits for next.
pub(super) enum Next {
    Cmd(Cmd),
    /// The retry deadline of what conflating policies keep came.
    Retry,
    /// The hub is gone.
    Closed,
}

/// The next command, or, while a conflating policy keeps something (`latest`),
/// the retry deadline if it comes first: a deadline (`retry_at`), so that a busy
/// channel does not put it off. Shared by the WebSocket and event-stream shards.
pub(super) async fn next(
    rx: &mut mpsc::UnboundedReceiver<Cmd>,
    latest: bool,
    retry_at: &mut Option<tokio::time::Instant>,
) -> Next {
    let cmd = if latest {
        let at = *retry_at.get_or_insert_with(|| tokio::time::Instant::now() + LATEST_RETRY);
        tokio::select! {
            cmd = rx.recv() => cmd,
            () = tokio::time::sleep_until(at) => {
                *retry_at = None;
                return Next::Retry;
            }
        }
    } else {
        *retry_at = None;
        rx.recv().await
    };
    cmd.map_or(Next::Closed, Next::Cmd)
}

/// Run the shard until the hub is gone (its channel closes).
pub(super) async fn run(
    hub: Weak<HubInner>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    queue: Arc<Queue>,
) {
    let mut shard = Shard::<OnThread>::new(hub, queue);
    // When to try again what conflating policies keep: a deadline, so that a
    // busy channel does not put it off.
    let mut retry_at = None;
    let mut cmds = Vec::new();
    loop {
        let cmd = match next(&mut rx, shard.has_latest(), &mut retry_at).await {
            Next::Cmd(cmd) => cmd,
            Next::Retry => {
                shard.retry_latest();
                continue;
            }
            Next::Closed => break,
        };
        cmds.push(cmd);
        // Everything already queued, before the writers get to run: what arrives
        // together for one connection leaves in one write.
        while let Ok(cmd) = rx.try_recv() {
            cmds.push(cmd);
        }
        shard.handle_all(&mut cmds, Shard::take);
        // Publications lost to a full queue with nothing queued after them.
        shard.settle_missed();
    }
}

/// At most this many publications of one topic are fanned out together.
const MAX_GROUP: usize = 256;

impl Sink for OnThread {
    fn deliver(&self, delivery: &Delivery) -> (Outcome, bool) {
        deliver(self, delivery)
    }

    fn over_budget(&self, delivery: &Delivery) -> (Outcome, bool) {
        over_budget(
            self,
            delivery,
            self.buffered_amount(),
            delivery.policy.budget_messages,
        )
    }

    fn deliver_many(&self, group: &[&Arc<Delivery>], whole: Option<&Whole<'_>>) -> Many {
        let mut many = Many::default();
        if let (Some(whole), Some(first)) = (whole, group.first()) {
            let policy = &first.policy;
            let budget = Budget {
                bytes: policy.budget_bytes,
                messages: policy.budget_messages,
            };
            // Their frames in one copy, when this connection sends them as they
            // are (and they share one budget: a topic's publications do).
            if whole.one_budget {
                if let Some(sent) = self.send_batch_within(whole.batch(), budget) {
                    many.delivered = sent.taken;
                    if let Some(refusal) = sent.refused {
                        many.stopped = Some(refused(self, group[sent.taken], refusal));
                    }
                    return many;
                }
            }
        }
        let mut rest = group;
        while let Some(first) = rest.first() {
            // A run of one budget (a topic's publications share it).
            let policy = &first.policy;
            let run = rest
                .iter()
                .position(|d| !d.policy.same_budget(policy))
                .unwrap_or(rest.len());
            let budget = Budget {
                bytes: policy.budget_bytes,
                messages: policy.budget_messages,
            };
            let sent = self.send_many_within(rest[..run].iter().map(|d| &d.prepared), budget);
            many.delivered += sent.taken;
            many.recompressed += sent.recompressed as u64;
            if let Some(refusal) = sent.refused {
                many.stopped = Some(refused(self, rest[sent.taken], refusal));
                break;
            }
            rest = &rest[run..];
        }
        many
    }
}

impl<L: Sink + Clone> Shard<L> {
    pub(super) fn new(hub: Weak<HubInner>, queue: Arc<Queue>) -> Self {
        Shard {
            hub,
            queue,
            conns: HashMap::new(),
            topics: HashMap::new(),
            latest: Cell::new(false),
        }
    }

    /// Whether a conflating policy keeps a publication for a subscriber here.
    pub(super) fn has_latest(&self) -> bool {
        self.latest.get()
    }

    /// Write what conflating policies kept, to the subscribers with room now.
    pub(super) fn retry_latest(&mut self) {
        let mut counts = Counts::default();
        let mut any = false;
        for subs in self.topics.values_mut() {
            counts = counts.plus(subs.retry_latest());
            any = any || subs.has_latest();
        }
        self.latest.set(any);
        self.report(Counts {
            pending: 0,
            ..counts
        });
    }

    /// Take `cmds` (emptied) in order, each but the publications with `one`.
    /// Consecutive publications of one topic are fanned out together, subscriber
    /// by subscriber: each subscriber's connection is visited once for all of
    /// them (its state read into the cache once, not once per publication), and
    /// gets them in order.
    pub(super) fn handle_all(&mut self, cmds: &mut Vec<Cmd>, mut one: impl FnMut(&mut Self, Cmd)) {
        let mut topic: Option<Arc<str>> = None;
        let mut group = Vec::new();
        for cmd in cmds.drain(..) {
            match cmd {
                Cmd::Publish {
                    topic: name,
                    delivery,
                    except,
                } => {
                    if group.len() >= MAX_GROUP || topic.as_ref().is_some_and(|t| *t != name) {
                        self.publish_group(topic.as_ref(), &mut group);
                    }
                    topic = Some(name);
                    group.push((delivery, except));
                }
                cmd => {
                    self.publish_group(topic.as_ref(), &mut group);
                    one(self, cmd);
                }
            }
        }
        self.publish_group(topic.as_ref(), &mut group);
    }

    /// Fan out `group` (emptied), publications of `topic` in order.
    fn publish_group(
        &mut self,
        topic: Option<&Arc<str>>,
        group: &mut Vec<(Arc<Delivery>, Option<ConnId>)>,
    ) {
        let (Some(topic), false) = (topic, group.is_empty()) else {
            return;
        };
        let started = Instant::now();
        for _ in group.iter() {
            self.queue.taken();
        }
        // What found the queue full was noted before these were queued: its
        // subscribers get the policy first.
        self.settle_missed();
        if let Some(subs) = self.topics.get_mut(topic) {
            let counts = subs.publish_many(group);
            self.report(counts);
        }
        if let Some(hub) = self.hub.upgrade() {
            // Each publication's share of the time.
            let each = started.elapsed().as_secs_f64() / group.len() as f64;
            for _ in group.iter() {
                hub.metrics.fanout.observe(each);
            }
        }
        group.clear();
    }

    /// Everything but `Register` (which needs the connection's thread).
    pub(super) fn handle(&mut self, cmd: Cmd) {
        // A topic's publication: taken with its group.
        if matches!(cmd, Cmd::Direct { .. } | Cmd::All { .. }) {
            self.queue.taken();
            // What found the queue full was noted before this was queued: its
            // subscribers get the policy first.
            self.settle_missed();
        }
        match cmd {
            Cmd::Register { .. } => {}
            Cmd::Unregister { id } => {
                self.conns.remove(&id);
            }
            Cmd::Subscribe { topic, id, join } => {
                // A connection already gone (closed) is not subscribed: its close
                // takes it out of the topic too.
                if let Some(local) = self.conns.get(&id) {
                    let local = local.clone();
                    self.topics
                        .entry(topic)
                        .or_default()
                        .subscribe(id, local, join);
                }
            }
            Cmd::Answer {
                topic,
                id,
                join,
                greeting,
                replay,
                floor,
            } => {
                // Nothing for a topic no longer held here: no state made again.
                if let Some(subs) = self.topics.get_mut(&topic) {
                    let counts = subs.answer(id, join, greeting, replay, floor);
                    self.report(counts);
                }
            }
            Cmd::Unsubscribe { topic, id } => {
                if let Some(subs) = self.topics.get_mut(&topic) {
                    subs.unsubscribe(id);
                    if subs.is_empty() {
                        self.topics.remove(&topic);
                    }
                }
            }
            Cmd::Publish {
                topic,
                delivery,
                except,
            } => self.publish_group(Some(&topic), &mut vec![(delivery, except)]),
            Cmd::Direct { id, delivery } => {
                let counts = match self.conns.get(&id) {
                    Some(local) => Counts::default().add(local.deliver(&delivery)),
                    None => Counts::default(),
                };
                self.report(counts);
            }
            Cmd::All { delivery, except } => {
                let mut counts = Counts::default();
                for (id, local) in &self.conns {
                    if Some(*id) != except {
                        counts = counts.add(local.deliver(&delivery));
                    }
                }
                self.report(counts);
            }
        }
    }

    /// Apply the slow-consumer policy to the subscribers of publications that
    /// found the queue full (each missed them).
    pub(super) fn settle_missed(&mut self) {
        let Some(missed) = self.queue.take_missed() else {
            return;
        };
        let mut counts = Counts::default();
        for (topic, lost) in &missed.topics {
            if let Some(subs) = self.topics.get(topic) {
                counts = counts.plus(subs.missed(&lost.delivery, lost.except, lost.count));
            }
        }
        for (id, lost) in &missed.direct {
            if let Some(local) = self.conns.get(id) {
                counts = counts.plus(Counts::missed(local, &lost.delivery, lost.count));
            }
        }
        if let Some(lost) = &missed.all {
            for (id, local) in &self.conns {
                if Some(*id) != lost.except {
                    counts = counts.plus(Counts::missed(local, &lost.delivery, lost.count));
                }
            }
        }
        self.report(counts);
    }

    fn report(&self, counts: Counts) {
        if counts.is_empty() {
            return;
        }
        if counts.pending > 0 {
            self.latest.set(true);
        }
        if let Some(hub) = self.hub.upgrade() {
            let m = &hub.metrics;
            m.deliveries.fetch_add(counts.delivered, Ordering::Relaxed);
            m.dropped.fetch_add(counts.dropped, Ordering::Relaxed);
            m.conflated.fetch_add(counts.conflated, Ordering::Relaxed);
            m.slow_closes.fetch_add(counts.closed, Ordering::Relaxed);
            m.recompressions
                .fetch_add(counts.recompressed, Ordering::Relaxed);
        }
    }
}

impl Shard<OnThread> {
    fn take(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Register { conn } => self.register(&conn),
            cmd => self.handle(cmd),
        }
    }

    fn register(&mut self, conn: &Conn) {
        let id = conn.id();
        let hub = self.hub.clone();
        // Leave everything, automatically, when the connection closes.
        let leave = move |id| {
            if let Some(hub) = hub.upgrade() {
                hub.connection_closed(id);
            }
        };
        match conn.on_thread() {
            Some(local) if local.on_close(leave.clone()) => {
                self.conns.insert(id, local);
            }
            // Closed before it could be registered: leave now.
            _ => leave(id),
        }
    }
}

/// A subscriber over its budget (`buffered` bytes waiting, over `limit`): the
/// policy.
fn over_budget(
    local: &OnThread,
    delivery: &Delivery,
    buffered: usize,
    limit: usize,
) -> (Outcome, bool) {
    let policy = &delivery.policy;
    match policy.slow_consumer {
        // A conflating subscriber over its budget keeps the publication (see
        // `deliver`); one lost to a full queue is dropped.
        SlowConsumer::Drop | SlowConsumer::Latest => (Outcome::Dropped, false),
        _ => {
            local.fail(Error::SlowPeer {
                buffered,
                limit,
                code: CloseCode(policy.close_code),
            });
            (Outcome::Closed, false)
        }
    }
}

/// Queue `delivery` on one connection, within its budget (one publication is
/// always taken below the marks, however large: a connection holds at most its
/// budget plus one publication); the flag says it was compressed again for this
/// connection.
#[inline]
fn deliver(local: &OnThread, delivery: &Delivery) -> (Outcome, bool) {
    let policy = &delivery.policy;
    let budget = Budget {
        bytes: policy.budget_bytes,
        messages: policy.budget_messages,
    };
    match local.send_within(&delivery.prepared, budget) {
        Ok(accepted) => (Outcome::Delivered, accepted.recompressed),
        Err(refusal) => refused(local, delivery, refusal),
    }
}

/// What a refused delivery comes to: the policy's outcome.
fn refused(local: &OnThread, delivery: &Delivery, refusal: Refused) -> (Outcome, bool) {
    let policy = &delivery.policy;
    match refusal {
        Refused::Bytes { .. } | Refused::Messages { .. }
            if policy.slow_consumer == SlowConsumer::Latest =>
        {
            (Outcome::Conflated, false)
        }
        Refused::Bytes { buffered } => over_budget(local, delivery, buffered, policy.budget_bytes),
        Refused::Messages { .. } => over_budget(
            local,
            delivery,
            local.buffered_amount(),
            policy.budget_messages,
        ),
        _ => (Outcome::Gone, false),
    }
}
