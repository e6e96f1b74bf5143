//! The hub's connections: a connection is registered on its first use (the
//! shard of its thread made and started when it has none), with its user;
//! reached by id, by user or all together; it leaves the hub when it closes.

use std::sync::Arc;

use super::{
    conns::UserFull,
    inner::{Hub, HubInner},
    queue::{Cmd, ShardHandle},
    shard,
    sync::lock,
    types::{JoinError, ReadyStateCounts},
};
use crate::{
    actor::{Conn, ConnId},
    proto::{Message, ReadyState},
};

impl Hub {
    /// Make `conn` known to the hub as a connection of `user`, before (or
    /// without) joining a topic: [`send_to_user`](Self::send_to_user),
    /// [`send_to`](Self::send_to) and [`broadcast`](Self::broadcast) reach it
    /// from now until it closes. A connection the hub knows already takes `user`
    /// instead of the one it had. A connection's first use (`register`, or a join)
    /// makes it known; one that joined with a [`JoinOptions::user`](super::JoinOptions::user)
    /// and was never registered is that user's, and one without any user is its
    /// own (its id, `conn-N`).
    ///
    /// Refused when the connection is closing or closed
    /// ([`JoinError::Closed`]), when `user` is longer than
    /// [`max_user_bytes`](crate::settings::HubSettings::max_user_bytes), or when
    /// `user` has [`max_connections_per_user`](crate::settings::HubSettings::max_connections_per_user)
    /// connections in the hub already ([`JoinError::TooManyConnections`]); a
    /// refused register changes nothing (a connection the hub did not know stays
    /// unknown; one it knew keeps its user).
    pub fn register(&self, conn: &Conn, user: impl Into<String>) -> Result<(), JoinError> {
        if !conn.ready_state().can_send() {
            return Err(JoinError::Closed);
        }
        let user = user.into();
        let limit = self.inner.settings.max_user_bytes;
        if user.len() > limit {
            return Err(JoinError::UserTooLong { limit });
        }
        self.inner.register(conn, Some(user.into()), true)?;
        Ok(())
    }

    /// The connections of `user` in the hub (on this server), in the order they
    /// became its.
    pub fn connections_of(&self, user: &str) -> Vec<ConnId> {
        lock(&self.inner.conns).of_user(user).to_vec()
    }

    /// Send `message` to every connection of `user` in the hub (on this server),
    /// each through its budget like a publication; returns how many it went to.
    pub fn send_to_user(&self, user: &str, message: impl Into<Message>) -> usize {
        let targets: Vec<(ConnId, usize)> = {
            let conns = lock(&self.inner.conns);
            conns
                .of_user(user)
                .iter()
                .filter_map(|id| conns.get(id).map(|e| (*id, e.shard)))
                .collect()
        };
        if targets.is_empty() {
            return 0;
        }
        let delivery = self
            .inner
            .delivery(message.into(), &self.topic_defaults(), 0, None);
        for (id, shard) in &targets {
            let delivery = delivery.clone();
            self.inner.send(*shard, Cmd::Direct { id: *id, delivery });
        }
        targets.len()
    }

    /// Send `message` to connection `id` through its budget (false when the hub
    /// does not know it: never registered, never joined, or closed).
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

    /// Send `message` to every connection the hub knows (but `except`): each one
    /// registered or that joined a topic, member of a topic now or not, until it
    /// closes.
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

    /// The hub's WebSocket connections, by ready-state (event streams:
    /// [`event_streams`](Self::event_streams)).
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
    /// The shard of `conn`'s thread (made when it has none), with `conn` in the
    /// hub: as `user` when it is new, or (a connection known already) when
    /// `rename` or when it has no user of its own yet.
    pub(super) fn register(
        self: &Arc<Self>,
        conn: &Conn,
        user: Option<Arc<str>>,
        rename: bool,
    ) -> Result<usize, JoinError> {
        let id = conn.id();
        let limit = self.settings.max_connections_per_user;
        let full = |UserFull { limit }| JoinError::TooManyConnections { limit };
        let mut conns = lock(&self.conns);
        if let Some(entry) = conns.get(&id) {
            let shard = entry.shard;
            if let Some(user) = user.filter(|_| rename || !entry.named) {
                conns.set_user(id, user, limit).map_err(full)?;
            }
            return Ok(shard);
        }
        if let Some(user) = &user {
            if conns.of_user(user).len() >= limit {
                return Err(full(UserFull { limit }));
            }
        }
        let shard = self.shard_for(conn);
        conns
            .insert(id, Some(conn.clone()), shard, user, limit)
            .map_err(full)?;
        drop(conns);
        self.send(shard, Cmd::Register { conn: conn.clone() });
        Ok(shard)
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
        let _ = lock(&self.conns).insert(id, None, shard, None, usize::MAX);
    }
}
