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
    cell::RefCell,
    collections::HashMap,
    rc::Rc,
    sync::{atomic::Ordering, Arc, Weak},
    time::Instant,
};

use tokio::sync::mpsc;

use super::{Delivery, HubInner};
use crate::{
    actor::{
        state::{local_at, Local, LocalRef},
        Error,
    },
    proto::CloseCode,
    settings::SlowConsumer,
    ConnId,
};

/// What a shard is asked to do, in order.
pub(super) enum Cmd {
    /// A connection of this thread joined the hub.
    Register { id: ConnId, slot: usize },
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
    list: Vec<(ConnId, LocalRef)>,
    index: HashMap<ConnId, usize>,
    /// Subscribers whose join is not answered yet: what they are held back.
    pending: HashMap<ConnId, Vec<Arc<Delivery>>>,
}

impl Subscribers {
    fn insert(&mut self, id: ConnId, local: LocalRef) -> bool {
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
    conns: HashMap<ConnId, LocalRef>,
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
            Cmd::Register { id, slot } => self.register(id, slot),
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
                                counts = counts.add(over_budget(local, &delivery));
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

    fn register(&mut self, id: ConnId, slot: usize) {
        let hub = self.hub.clone();
        let Some(local) = local_at(slot, id) else {
            // Closed before it could be registered: leave now.
            if let Some(hub) = hub.upgrade() {
                hub.connection_closed(id);
            }
            return;
        };
        {
            let Ok(mut l) = local.try_borrow_mut() else {
                return;
            };
            if l.driver_done {
                drop(l);
                if let Some(hub) = hub.upgrade() {
                    hub.connection_closed(id);
                }
                return;
            }
            // Leave everything, automatically, when the connection closes.
            l.on_close.push(Box::new(move |id| {
                if let Some(hub) = hub.upgrade() {
                    hub.connection_closed(id);
                }
            }));
        }
        self.conns.insert(id, local);
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

/// A subscriber over its budget: the policy.
fn over_budget(local: &Rc<RefCell<Local>>, delivery: &Delivery) -> (Outcome, bool) {
    let Ok(mut l) = local.try_borrow_mut() else {
        return (Outcome::Gone, false);
    };
    let policy = &delivery.policy;
    match policy.slow_consumer {
        SlowConsumer::Drop => (Outcome::Dropped, false),
        _ => {
            let queued = l.core.buffered_amount();
            l.fail_local(Error::SlowPeer {
                buffered: queued,
                limit: policy.budget_messages,
                code: CloseCode(policy.close_code),
            });
            (Outcome::Closed, false)
        }
    }
}

/// Queue `delivery` on one connection, within its budget; the flag says it was
/// compressed again for this connection.
fn deliver(local: &Rc<RefCell<Local>>, delivery: &Delivery) -> (Outcome, bool) {
    let Ok(mut l) = local.try_borrow_mut() else {
        return (Outcome::Gone, false);
    };
    if l.driver_done || !l.core.ready_state().can_send() {
        return (Outcome::Gone, false);
    }
    let policy = &delivery.policy;
    let queued = l.core.buffered_amount();
    // One publication is always taken below the marks, however large: a
    // connection holds at most its budget plus one publication.
    if queued >= policy.budget_bytes || l.hub_queued.len() >= policy.budget_messages {
        return match policy.slow_consumer {
            SlowConsumer::Drop => (Outcome::Dropped, false),
            _ => {
                let limit = if queued >= policy.budget_bytes {
                    policy.budget_bytes
                } else {
                    policy.budget_messages
                };
                l.fail_local(Error::SlowPeer {
                    buffered: queued,
                    limit,
                    code: CloseCode(policy.close_code),
                });
                (Outcome::Closed, false)
            }
        };
    }
    let again = l.core.compresses_prepared_again(&delivery.prepared);
    if l.core.send_prepared(&delivery.prepared).is_err() {
        return (Outcome::Gone, false);
    }
    let end = l.taken + l.core.buffered_amount() as u64;
    l.hub_queued.push_back(end);
    l.stats.message_sent();
    l.sync();
    l.wake_writer();
    (Outcome::Delivered, again)
}
