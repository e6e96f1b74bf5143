//! The connection manager: [`Hub`], topics with presence, publish-once fan-out on
//! each connection's own thread, slow-consumer policies, history and recovery,
//! cache topics, namespaces of topics, authorization, metrics, and the seam for
//! a cross-server backplane ([`Backplane`]).
//!
//! The modules, from the bottom up (each imports only those below it):
//! - the values: `types` (the public ones), `access` (authorization's public
//!   ones), `delivery` (a publication framed once), `topic` (a topic's state),
//!   `namespaces` (topic policies by pattern), `subscribers` (a shard's
//!   subscribers of one topic), `queue` (a shard's commands and their bounded
//!   channel), `conns` (the table of connections, by id and by user),
//!   `listeners` (who hears of presence changes), `history` (the bytes and the
//!   oldest publication of all topics), `counters`, `backplane` (the seam),
//!   `sync`, `sched`;
//! - `inner`: the hub's state, whose fields are those values, the [`Hub`]
//!   handle, and the operations the rest builds on;
//! - the hub's operations on it: `leave`, `expiry` (eviction and the sweep),
//!   `shard` (a worker thread's part, which leaves a connection's topics when it
//!   closes), `connections` (registering, which starts shards), `auth` (asking
//!   the authorizer), `join`, `publish`, `presence`, `metrics`; `sse` (event
//!   streams: members whose deliveries go to an HTTP response, on shards of
//!   their own);
//! - `redis`, a backplane on the public seam only.

mod access;
mod auth;
mod backplane;
mod connections;
mod conns;
mod counters;
mod delivery;
mod expiry;
mod history;
mod inner;
mod join;
mod leave;
mod listeners;
mod metrics;
mod namespaces;
mod presence;
mod publish;
mod queue;
#[cfg(feature = "redis")]
pub mod redis;
mod sched;
mod shard;
#[cfg(feature = "web")]
pub mod sse;
mod subscribers;
mod sync;
#[cfg(test)]
mod tests;
mod topic;
mod types;

pub use self::{
    access::{Access, AccessError, Action, Authorizer, Claims, Decision, Verdict},
    backplane::{Backplane, Located, Publication},
    inner::{Hub, WeakHub},
    types::{
        JoinError, JoinOptions, Joined, Member, OnJoined, Position, Presence, PresenceKind,
        PublishError, Published, ReadyStateCounts, Renderer, TopicSettings, UserMeta,
    },
};

#[cfg(feature = "web")]
pub use self::sse::{EventStream, Events, StreamError};
