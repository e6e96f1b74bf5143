//! The seam where a cross-server backplane plugs in: [`Backplane`], what it is
//! told ([`Publication`]) and answers ([`Located`]).

use super::types::{Position, PresenceKind};
use crate::{actor::ConnId, proto::Message};

/// A publication for the other servers ([`Backplane::publish`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Publication {
    /// The topic.
    pub topic: String,
    /// The message, as the application published it (before the renderer).
    pub message: Message,
    /// The member not to deliver it to (its sender), on this server.
    pub except: Option<ConnId>,
    /// How many of the topic's publications to keep for recovery
    /// ([`TopicSettings::history_size`](super::TopicSettings::history_size)).
    pub history: usize,
}

/// Where a topic stands, and what a joining connection missed
/// ([`Backplane::locate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Located {
    /// The position of the topic's latest publication.
    pub position: Position,
    /// Everything after the `since` asked for, in order (`None`: not recovered,
    /// or no `since` was asked).
    pub missed: Option<Vec<(Position, Message)>>,
}

impl Located {
    /// `position`, and `missed`.
    pub fn new(position: Position, missed: Option<Vec<(Position, Message)>>) -> Self {
        Located { position, missed }
    }
}

/// The seam where a cross-server backplane (the Redis one: `hub::redis::RedisBackplane`, with
/// the `redis` feature) plugs in; the hub's users do not change.
///
/// A backplane is told of each publication made here and of the topics this server
/// holds. One that does not number publications ([`numbers`](Self::numbers) false)
/// sends them to the other servers, which deliver them with
/// [`Hub::deliver_remote`](super::Hub::deliver_remote); this server has delivered it already. One that numbers
/// them (and keeps their history) delivers every publication, this server's
/// included, back through [`Hub::deliver_numbered`](super::Hub::deliver_numbered), in the topic's order, and
/// answers joins through [`locate`](Self::locate).
///
/// [`subscribe`](Self::subscribe), [`unsubscribe`](Self::unsubscribe) and
/// [`presence_changed`](Self::presence_changed) are called under the topic's
/// lock, in the order the hub decided them: they must return quickly (queue the
/// work) and must not call the hub. The other methods are called without a lock
/// of the hub's held.
pub trait Backplane: Send + Sync + 'static {
    /// A publication was made on this server.
    fn publish(&self, publication: Publication);
    /// This server has a first subscriber of `topic`.
    ///
    /// `generation` stamps the decision: the hub's decisions about subscriptions
    /// (this one and [`unsubscribe`](Self::unsubscribe), for every topic) carry
    /// increasing generations, so a backplane that keeps, per topic, the latest
    /// generation it was told can ignore an older decision that reaches it late,
    /// and tell a confirmation for an earlier subscription from the current one.
    /// [`Hub::subscriptions`](super::Hub::subscriptions) lists what the hub wants now, for reconciliation.
    fn subscribe(&self, topic: &str, generation: u64);
    /// This server's last subscriber of `topic` left (stamped as in
    /// [`subscribe`](Self::subscribe)).
    fn unsubscribe(&self, topic: &str, generation: u64);
    /// Whether publications come back numbered, through `Hub::deliver_numbered`.
    fn numbers(&self) -> bool {
        false
    }
    /// Whether presence is shared across servers through this backplane: the hub
    /// then tells it of each user's first join and last leave on this server
    /// ([`presence_changed`](Self::presence_changed)) instead of reporting them,
    /// and reports what comes back through [`Hub::deliver_presence`](super::Hub::deliver_presence). Default false.
    fn shares_presence(&self) -> bool {
        false
    }
    /// A user's first connection on this server joined `topic`, or its last one
    /// left (when [`shares_presence`](Self::shares_presence)).
    fn presence_changed(&self, topic: &str, user: &str, meta: Option<&str>, kind: PresenceKind) {
        let _ = (topic, user, meta, kind);
    }
    /// For a join (when [`numbers`](Self::numbers)): where `topic` stands and,
    /// with `since`, what came after it, passed to `done` once this server is
    /// subscribed to `topic` (so that nothing published from then on is missed).
    fn locate(&self, topic: &str, since: Option<Position>, done: Box<dyn FnOnce(Located) + Send>) {
        let _ = (topic, since);
        done(Located::new(Position::start(), None));
    }
}
