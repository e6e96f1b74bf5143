//! The hub's table of connections: each one's shard and topics.

use std::{collections::HashMap, sync::Arc};

use super::topic::Topic;
use crate::actor::{Conn, ConnId};

/// A connection of the hub.
pub(super) struct ConnEntry {
    /// `None` only in the unit tests' connections without a socket.
    pub conn: Option<Conn>,
    pub shard: usize,
    /// The topics it is a member of (live ones: a topic with members is never
    /// removed).
    pub topics: Vec<Arc<Topic>>,
}

/// The connections, by id.
pub(super) type Conns = HashMap<ConnId, ConnEntry>;
