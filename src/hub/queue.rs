//! What reaches a shard: its commands ([`Cmd`]), in order, through one channel
//! per worker thread ([`ShardHandle`]) that holds at most a bounded number of
//! publications ([`Queue`]).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use tokio::sync::mpsc;

use super::{delivery::Delivery, subscribers::Floor, sync::lock};
use crate::actor::{Conn, ConnId, ThreadKey};

/// What a shard is asked to do, in order.
pub(super) enum Cmd {
    /// A connection of this thread joined the hub.
    Register { conn: Conn },
    /// It left the hub (closed).
    Unregister { id: ConnId },
    /// It joined a topic (join `join`): what the topic delivers is held back for it
    /// until that join's `Answer`.
    Subscribe {
        topic: Arc<str>,
        id: ConnId,
        join: u64,
    },
    /// The answer to join `join`: `greeting`, `replay`, then what was held back
    /// above `floor` (and above the replay).
    Answer {
        topic: Arc<str>,
        id: ConnId,
        join: u64,
        greeting: Vec<Arc<Delivery>>,
        replay: Vec<Arc<Delivery>>,
        floor: Floor,
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

impl Cmd {
    /// Whether it counts against the shard's bound on queued publications.
    pub(super) fn is_publication(&self) -> bool {
        matches!(
            self,
            Cmd::Publish { .. } | Cmd::Direct { .. } | Cmd::All { .. }
        )
    }
}

/// A shard's handle: its thread, its channel, and its receiver until its task
/// takes it.
pub(super) struct ShardHandle {
    pub(super) thread: ThreadKey,
    tx: mpsc::UnboundedSender<Cmd>,
    pub(super) rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Cmd>>>>,
    pub(super) queue: Arc<Queue>,
}

impl ShardHandle {
    /// The handle of a shard on `thread`, its task not started.
    pub(super) fn new(thread: ThreadKey) -> ShardHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        ShardHandle {
            thread,
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
            queue: Arc::new(Queue::default()),
        }
    }

    /// A shard whose commands a test takes itself (`rx`): no task is started
    /// for it.
    #[cfg(test)]
    pub(super) fn detached(thread: ThreadKey) -> (ShardHandle, mpsc::UnboundedReceiver<Cmd>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = ShardHandle {
            thread,
            tx,
            rx: Arc::new(Mutex::new(None)),
            queue: Arc::new(Queue::default()),
        };
        (handle, rx)
    }

    /// Queue `cmd`: a publication only while fewer than `max_queued` wait (past
    /// it, noted as missed, and false).
    pub(super) fn send(&self, cmd: Cmd, max_queued: usize) -> bool {
        if cmd.is_publication() {
            let queue = &self.queue;
            if queue.queued.fetch_add(1, Ordering::AcqRel) >= max_queued {
                queue.queued.fetch_sub(1, Ordering::AcqRel);
                queue.lose(cmd);
                return false;
            }
        }
        let _ = self.tx.send(cmd);
        true
    }
}

/// The bound on a shard's publications: the channel carries every command, but
/// holds at most [`max_queued_per_thread`](crate::settings::HubSettings::max_queued_per_thread)
/// publications; those that find it full are not queued but noted here, per
/// topic (or connection), and the shard applies the slow-consumer policy to the
/// subscribers that missed them before its next publication. The other commands
/// (joins, leaves, connections) are bounded by the hub's tables.
#[derive(Debug, Default)]
pub(super) struct Queue {
    /// Publications queued and not yet taken by the shard.
    queued: AtomicUsize,
    /// Whether `missed` holds anything.
    any_missed: AtomicBool,
    missed: Mutex<Missed>,
}

/// Publications that could not be queued for a shard.
#[derive(Debug, Default)]
pub(super) struct Missed {
    pub topics: HashMap<Arc<str>, Lost>,
    pub direct: HashMap<ConnId, Lost>,
    pub all: Option<Lost>,
}

/// Publications lost for one topic (or connection, or all) of a shard: the first
/// one (its policy), how many, and the subscriber they were not for (if they all
/// had the same).
#[derive(Debug)]
pub(super) struct Lost {
    pub delivery: Arc<Delivery>,
    pub count: u64,
    pub except: Option<ConnId>,
}

impl Lost {
    fn first(delivery: &Arc<Delivery>, except: Option<ConnId>) -> Lost {
        Lost {
            delivery: delivery.clone(),
            count: 0,
            except,
        }
    }

    fn one_more(&mut self, except: Option<ConnId>) {
        self.count += 1;
        if self.except != except {
            self.except = None;
        }
    }
}

impl Queue {
    /// The shard took a publication.
    pub(super) fn taken(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// What was lost since the last look (`None`: nothing).
    pub(super) fn take_missed(&self) -> Option<Missed> {
        // A load first: the common case writes nothing shared.
        if !self.any_missed.load(Ordering::Acquire)
            || !self.any_missed.swap(false, Ordering::AcqRel)
        {
            return None;
        }
        Some(std::mem::take(&mut *lock(&self.missed)))
    }

    /// Note `cmd`, a publication that found the queue full.
    fn lose(&self, cmd: Cmd) {
        let mut missed = lock(&self.missed);
        match cmd {
            Cmd::Publish {
                topic,
                delivery,
                except,
            } => missed
                .topics
                .entry(topic)
                .or_insert_with(|| Lost::first(&delivery, except))
                .one_more(except),
            Cmd::Direct { id, delivery } => missed
                .direct
                .entry(id)
                .or_insert_with(|| Lost::first(&delivery, None))
                .one_more(None),
            Cmd::All { delivery, except } => missed
                .all
                .get_or_insert_with(|| Lost::first(&delivery, except))
                .one_more(except),
            _ => {}
        }
        // Set under the lock, before the next publication is queued: the shard
        // sees it before it takes that one.
        self.any_missed.store(true, Ordering::Release);
    }
}
