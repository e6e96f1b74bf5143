//! The hub's threads: a shard per worker thread with connections in the hub, its
//! channel, and the connections' table entry (which shard, which topics).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use tokio::sync::mpsc;

use super::{
    lock,
    shard::{self, Cmd},
    topic::Topic,
    Delivery, HubInner,
};
use crate::actor::{Conn, ConnId, ThreadKey};

/// A shard's handle: its channel, and its receiver until its task takes it.
pub(super) struct ShardHandle {
    thread: ThreadKey,
    tx: mpsc::UnboundedSender<Cmd>,
    rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Cmd>>>>,
    queue: Arc<Queue>,
}

/// The bound on a shard's publications: the channel carries every command, but
/// holds at most [`max_queued_per_thread`](crate::HubSettings::max_queued_per_thread)
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

/// A connection of the hub.
pub(super) struct ConnEntry {
    /// `None` only in the unit tests' connections without a socket.
    pub(super) conn: Option<Conn>,
    pub(super) shard: usize,
    /// The topics it is a member of (live ones: a topic with members is never
    /// removed).
    pub(super) topics: Vec<Arc<Topic>>,
}

impl HubInner {
    /// The shard of `conn`'s thread (made when it has none), with `conn` in it.
    pub(super) fn register(self: &Arc<Self>, conn: &Conn) -> usize {
        let mut conns = lock(&self.conns);
        if let Some(entry) = conns.get(&conn.id()) {
            return entry.shard;
        }
        let shard = self.shard_for(conn);
        conns.insert(
            conn.id(),
            ConnEntry {
                conn: Some(conn.clone()),
                shard,
                topics: Vec::new(),
            },
        );
        drop(conns);
        self.send(shard, Cmd::Register { conn: conn.clone() });
        shard
    }

    /// The shard of `conn`'s thread, started there (now, on that thread; or
    /// through `conn`, which lives there).
    fn shard_for(self: &Arc<Self>, conn: &Conn) -> usize {
        let thread = conn.thread();
        let mut shards = lock(&self.shards);
        let index = match shards.iter().position(|s| s.thread == thread) {
            Some(i) => i,
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let queue = Arc::new(Queue::default());
                shards.push(ShardHandle {
                    thread,
                    tx,
                    rx: Arc::new(Mutex::new(Some(rx))),
                    queue,
                });
                shards.len() - 1
            }
        };
        let (rx, queue) = (shards[index].rx.clone(), shards[index].queue.clone());
        drop(shards);
        if lock(&rx).is_none() {
            return index;
        }
        let hub = Arc::downgrade(self);
        let start = move || {
            if let Some(rx) = lock(&rx).take() {
                if let Some(hub) = hub.upgrade() {
                    hub.start_sweeping();
                }
                actix_rt::spawn(shard::run(hub, rx, queue));
            }
        };
        if conn.run_on_thread(start).is_err() {
            // The connection is gone: the next connection of that thread starts
            // the shard.
            tracing::debug!(id = %conn.id(), "hub: shard not started, the connection is gone");
        }
        index
    }

    /// Queue `cmd` on `shard`: a publication only within the shard's bound
    /// (past it, noted as missed and counted in `ws_hub_queue_full_total`).
    pub(super) fn send(&self, shard: usize, cmd: Cmd) {
        let shards = lock(&self.shards);
        let Some(handle) = shards.get(shard) else {
            return;
        };
        if cmd.is_publication() {
            let queue = &handle.queue;
            if queue.queued.fetch_add(1, Ordering::AcqRel) >= self.settings.max_queued_per_thread {
                queue.queued.fetch_sub(1, Ordering::AcqRel);
                queue.lose(cmd);
                self.metrics.queue_full.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let _ = handle.tx.send(cmd);
    }

    /// A shard whose commands the test takes itself.
    #[cfg(test)]
    pub(super) fn test_shard(&self) -> (usize, mpsc::UnboundedReceiver<Cmd>, Arc<Queue>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut shards = lock(&self.shards);
        let thread = ThreadKey::new(u64::MAX - shards.len() as u64);
        let queue = Arc::new(Queue::default());
        shards.push(ShardHandle {
            thread,
            tx,
            rx: Arc::new(Mutex::new(None)),
            queue: queue.clone(),
        });
        (shards.len() - 1, rx, queue)
    }

    /// A connection without a socket on `shard` (a test's).
    #[cfg(test)]
    pub(super) fn test_conn(&self, id: ConnId, shard: usize) {
        lock(&self.conns).insert(
            id,
            ConnEntry {
                conn: None,
                shard,
                topics: Vec::new(),
            },
        );
    }
}
