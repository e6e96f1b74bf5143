//! The hub's connections: a connection is registered on its first use (the
//! shard of its thread made and started when it has none), reached by id or all
//! together, and leaves the hub when it closes.

use std::sync::Arc;

use super::{
    conns::ConnEntry,
    inner::{Hub, HubInner},
    queue::{Cmd, ShardHandle},
    shard,
    sync::lock,
    types::ReadyStateCounts,
};
use crate::{
    actor::{Conn, ConnId},
    proto::{Message, ReadyState},
};

impl Hub {
    /// Send `message` to connection `id` through its budget (false when it is not
    /// in the hub).
    pub fn send_to(&self, id: ConnId, message: impl Into<Message>) -> bool {
        let shard = match lock(&self.inner.conns).get(&id) {
            Some(entry) => entry.shard,
            None => return false,
        };
        let delivery = self
            .inner
            .delivery(message.into(), &self.topic_defaults(), 0, None);
        self.inner.send(shard, Cmd::Direct { id, delivery });
        true
    }

    /// Send `message` to every connection of the hub (but `except`).
    pub fn broadcast(&self, message: impl Into<Message>, except: Option<ConnId>) {
        let delivery = self
            .inner
            .delivery(message.into(), &self.topic_defaults(), 0, None);
        let n = lock(&self.inner.shards).len();
        for shard in 0..n {
            self.inner.send(
                shard,
                Cmd::All {
                    delivery: delivery.clone(),
                    except,
                },
            );
        }
    }

    /// The hub's connections, by ready-state.
    pub fn connections(&self) -> ReadyStateCounts {
        let mut counts = ReadyStateCounts::default();
        for entry in lock(&self.inner.conns).values() {
            let Some(conn) = &entry.conn else {
                continue;
            };
            match conn.ready_state() {
                ReadyState::Connecting => counts.connecting += 1,
                ReadyState::Open => counts.open += 1,
                ReadyState::Closing => counts.closing += 1,
                ReadyState::Closed => counts.closed += 1,
            }
        }
        counts
    }
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
                shards.push(ShardHandle::new(thread));
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

    /// A shard whose commands the test takes itself.
    #[cfg(test)]
    pub(super) fn test_shard(
        &self,
    ) -> (
        usize,
        tokio::sync::mpsc::UnboundedReceiver<Cmd>,
        Arc<super::queue::Queue>,
    ) {
        let mut shards = lock(&self.shards);
        let thread = crate::actor::ThreadKey::new(u64::MAX - shards.len() as u64);
        let (handle, rx) = ShardHandle::detached(thread);
        let queue = handle.queue.clone();
        shards.push(handle);
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
