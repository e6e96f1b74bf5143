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
    collections::HashMap,
    sync::{atomic::Ordering, Arc, Weak},
    time::Instant,
};

use tokio::sync::mpsc;

use super::{Delivery, HubInner};
use crate::{
    actor::{Budget, Conn, ConnId, Error, OnThread, Refused},
    proto::CloseCode,
    settings::SlowConsumer,
};

/// What a shard is asked to do, in order.
pub(super) enum Cmd {
    /// A connection of this thread joined the hub.
    Register { conn: Conn },
    /// It left the hub (closed).
    Unregister { id: ConnId },
    /// It joined a topic: deliver `greeting` and `replay` first, then the topic's
    /// publications; while `pending`, hold those back until the `Replay`.
    Subscribe {
        topic: Arc<str>,
        id: ConnId,
        greeting: Vec<Arc<Delivery>>,
        replay: Vec<Arc<Delivery>>,
        pending: bool,
    },
    /// The join of a pending subscriber is answered: `greeting`, `replay`, then
    /// what was held back with an offset past `after` (and past the replay).
    Replay {
        topic: Arc<str>,
        id: ConnId,
        greeting: Vec<Arc<Delivery>>,
        replay: Vec<Arc<Delivery>>,
        after: u64,
    },
    /// It left a topic.
    Unsubscribe { topic: Arc<str>, id: ConnId },
    /// A publication for a topic's subscribers here.
    Publish {
        topic: Arc<str>,
        delivery: Arc<Delivery>,
        except: Option<ConnId>,
    },
    /// A publication for one connection.
    Direct { id: ConnId, delivery: Arc<Delivery> },
    /// A publication for every connection of the hub here.
    All {
        delivery: Arc<Delivery>,
        except: Option<ConnId>,
    },
}

/// A topic's subscribers here, in a list for the fan-out and an index for leaving.
#[derive(Default)]
struct Subscribers {
    list: Vec<(ConnId, OnThread)>,
    index: HashMap<ConnId, usize>,
    /// Subscribers whose join is not answered yet: what they are held back.
    pending: HashMap<ConnId, Vec<Arc<Delivery>>>,
}

impl Subscribers {
    fn insert(&mut self, id: ConnId, local: OnThread) -> bool {
        if self.index.contains_key(&id) {
            return false;
        }
        self.index.insert(id, self.list.len());
        self.list.push((id, local));
        true
    }

    fn remove(&mut self, id: ConnId) {
        self.pending.remove(&id);
        let Some(at) = self.index.remove(&id) else {
            return;
        };
        self.list.swap_remove(at);
        if let Some((moved, _)) = self.list.get(at) {
            self.index.insert(*moved, at);
        }
    }
}

/// The shard's state, owned by its task.
struct Shard {
    hub: Weak<HubInner>,
    conns: HashMap<ConnId, OnThread>,
    topics: HashMap<Arc<str>, Subscribers>,
}

/// Run the shard until the hub is gone (its channel closes).
pub(super) async fn run(hub: Weak<HubInner>, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut shard = Shard {
        hub,
        conns: HashMap::new(),
        topics: HashMap::new(),
    };
    while let Some(cmd) = rx.recv().await {
        shard.handle(cmd);
        // Everything already queued, before the writers get to run: what arrives
        // together for one connection leaves in one write.
        while let Ok(cmd) = rx.try_recv() {
            shard.handle(cmd);
        }
    }
}

/// What happened to one delivery.
enum Outcome {
    Delivered,
    Dropped,
    Closed,
    Gone,
}

impl Shard {
    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Register { conn } => self.register(&conn),
            Cmd::Unregister { id } => {
                self.conns.remove(&id);
            }
            Cmd::Subscribe {
                topic,
                id,
                greeting,
                replay,
                pending,
            } => {
                let Some(local) = self.conns.get(&id).cloned() else {
                    return;
                };
                let counts = greeting
                    .iter()
                    .chain(replay.iter())
                    .map(|d| deliver(&local, d))
                    .fold(Counts::default(), Counts::add);
                let subs = self.topics.entry(topic).or_default();
                if subs.insert(id, local) && pending {
                    subs.pending.insert(id, Vec::new());
                }
                self.report(counts);
            }
            Cmd::Replay {
                topic,
                id,
                greeting,
                replay,
                after,
            } => {
                let Some(subs) = self.topics.get_mut(&topic) else {
                    return;
                };
                let Some(held) = subs.pending.remove(&id) else {
                    return;
                };
                let Some(local) = subs.index.get(&id).map(|&at| subs.list[at].1.clone()) else {
                    return;
                };
                let last = replay.last().map_or(after, |d| d.offset.max(after));
                let later = held
                    .into_iter()
                    .filter(|d| d.offset == 0 || d.offset > last);
                let counts = greeting
                    .into_iter()
                    .chain(replay)
                    .chain(later)
                    .map(|d| deliver(&local, &d))
                    .fold(Counts::default(), Counts::add);
                self.report(counts);
            }
            Cmd::Unsubscribe { topic, id } => {
                if let Some(subs) = self.topics.get_mut(&topic) {
                    subs.remove(id);
                    if subs.list.is_empty() {
                        self.topics.remove(&topic);
                    }
                }
            }
            Cmd::Publish {
                topic,
                delivery,
                except,
            } => {
                let started = Instant::now();
                let mut counts = Counts::default();
                if let Some(subs) = self.topics.get_mut(&topic) {
                    for (id, local) in &subs.list {
                        if Some(*id) == except {
                            continue;
                        }
                        if let Some(held) = subs.pending.get_mut(id) {
                            // Bounded like a send buffer: past the budget, the
                            // policy applies as it would on delivery.
                            if held.len() < delivery.policy.budget_messages {
                                held.push(delivery.clone());
                            } else {
                                let buffered = local.buffered_amount();
                                let limit = delivery.policy.budget_messages;
                                counts = counts.add(over_budget(local, &delivery, buffered, limit));
                            }
                            continue;
                        }
                        counts = counts.add(deliver(local, &delivery));
                    }
                }
                self.report(counts);
                if let Some(hub) = self.hub.upgrade() {
                    hub.metrics.fanout.observe(started.elapsed().as_secs_f64());
                }
            }
            Cmd::Direct { id, delivery } => {
                let counts = match self.conns.get(&id) {
                    Some(local) => Counts::default().add(deliver(local, &delivery)),
                    None => Counts::default(),
                };
                self.report(counts);
            }
            Cmd::All { delivery, except } => {
                let mut counts = Counts::default();
                for (id, local) in &self.conns {
                    if Some(*id) != except {
                        counts = counts.add(deliver(local, &delivery));
                    }
                }
                self.report(counts);
            }
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

    fn report(&self, counts: Counts) {
        if counts.is_empty() {
            return;
        }
        if let Some(hub) = self.hub.upgrade() {
            let m = &hub.metrics;
            m.deliveries.fetch_add(counts.delivered, Ordering::Relaxed);
            m.dropped.fetch_add(counts.dropped, Ordering::Relaxed);
            m.slow_closes.fetch_add(counts.closed, Ordering::Relaxed);
            m.recompressions
                .fetch_add(counts.recompressed, Ordering::Relaxed);
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Counts {
    delivered: u64,
    dropped: u64,
    closed: u64,
    recompressed: u64,
}

impl Counts {
    fn add(mut self, outcome: (Outcome, bool)) -> Counts {
        match outcome.0 {
            Outcome::Delivered => self.delivered += 1,
            Outcome::Dropped => self.dropped += 1,
            Outcome::Closed => self.closed += 1,
            Outcome::Gone => {}
        }
        if outcome.1 {
            self.recompressed += 1;
        }
        self
    }

    fn is_empty(&self) -> bool {
        self.delivered + self.dropped + self.closed + self.recompressed == 0
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
        SlowConsumer::Drop => (Outcome::Dropped, false),
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
        Err(Refused::Bytes { buffered }) => {
            over_budget(local, delivery, buffered, policy.budget_bytes)
        }
        Err(Refused::Messages { .. }) => over_budget(
            local,
            delivery,
            local.buffered_amount(),
            policy.budget_messages,
        ),
        Err(_) => (Outcome::Gone, false),
    }
}
