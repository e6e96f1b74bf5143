//! The hub's threads: a shard per worker thread with connections in the hub, its
//! channel, and the connections' table entry (which shard, which topics).

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{
    lock,
    shard::{self, Cmd},
    topic::Topic,
    HubInner,
};
use crate::{
    actor::state::{thread_token, Command},
    Conn,
};

/// A shard's handle: its channel, and its receiver until its task takes it.
pub(super) struct ShardHandle {
    token: u64,
    tx: mpsc::UnboundedSender<Cmd>,
    rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Cmd>>>>,
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
        let remote = conn.remote();
        let shard = self.shard_for(remote.owner(), conn);
        conns.insert(
            conn.id(),
            ConnEntry {
                conn: Some(conn.clone()),
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
    fn shard_for(self: &Arc<Self>, token: u64, conn: &Conn) -> usize {
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

    /// Queue `cmd` on `shard`.
    pub(super) fn send(&self, shard: usize, cmd: Cmd) {
        if let Some(handle) = lock(&self.shards).get(shard) {
            let _ = handle.tx.send(cmd);
        }
    }

    /// A shard whose commands the test takes itself, and a connection on it.
    #[cfg(test)]
    pub(super) fn test_shard(&self) -> (usize, mpsc::UnboundedReceiver<Cmd>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut shards = lock(&self.shards);
        let token = u64::MAX - shards.len() as u64;
        shards.push(ShardHandle {
            token,
            tx,
            rx: Arc::new(Mutex::new(None)),
        });
        (shards.len() - 1, rx)
    }

    /// A connection without a socket on `shard` (a test's).
    #[cfg(test)]
    pub(super) fn test_conn(&self, id: crate::ConnId, shard: usize) {
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
