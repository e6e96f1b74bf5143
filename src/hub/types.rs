//! The hub's value types: positions, topic settings, join options and answers,
//! members, presence events, what a publication was.

use std::{fmt, time::Duration};

use crate::{
    actor::ConnId,
    proto::Message,
    settings::{HubSettings, SlowConsumer},
};

/// Where a subscriber is in a topic's stream: the topic's epoch (which changes
/// when the history's continuity is lost, a restart) and the offset of a
/// publication (offsets increase by one per publication; 0 is before the first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub struct Position {
    /// The topic's epoch.
    pub epoch: String,
    /// A publication's offset.
    pub offset: u64,
}

impl Position {
    /// Before any publication of an unknown epoch: offset 0, an empty epoch (a
    /// recovery from it is never complete).
    pub fn start() -> Position {
        Position {
            epoch: String::new(),
            offset: 0,
        }
    }
}

/// A topic's own settings (defaults from the [`HubSettings`]); set with
/// [`Hub::configure`](super::Hub::configure) for one topic, or with
/// [`Hub::set_namespace`](super::Hub::set_namespace) (or `[hub.namespaces]`) for
/// the topics a pattern names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicSettings {
    /// Publications kept for recovery; 0 keeps none.
    pub history_size: usize,
    /// How long a publication is kept; `None`: until pushed out by size.
    pub history_ttl: Option<Duration>,
    /// Bytes of history kept at most ([`HubSettings::history_bytes`]).
    pub history_bytes: usize,
    /// Report first joins and last leaves of its users
    /// ([`Hub::on_presence`](super::Hub::on_presence)).
    pub presence: bool,
    /// What to do with a subscriber over its budget.
    pub slow_consumer: SlowConsumer,
    /// Under [`SlowConsumer::Latest`], the values a subscriber keeps at most, one
    /// per conflation key ([`HubSettings::conflation_keys`]).
    pub conflation_keys: usize,
    /// The close code of [`SlowConsumer::Close`].
    pub slow_close_code: u16,
    /// Bytes a subscriber may have queued ([`HubSettings::send_budget_bytes`]).
    pub send_budget_bytes: usize,
    /// Publications a subscriber may have queued
    /// ([`HubSettings::send_budget_messages`]).
    pub send_budget_messages: usize,
    /// Whether a join with [`JoinOptions::since`] recovers what was missed; off,
    /// it is answered `recovered: Some(false)` with nothing replayed. Default on.
    pub recovery: bool,
    /// A cache topic: each joiner gets the newest publication (with its
    /// position) right after its answer, as a normal delivery; at least one
    /// publication is kept. Default off.
    pub cache: bool,
    /// Members the topic may have on this server
    /// ([`HubSettings::max_members_per_topic`]).
    pub max_members: usize,
    /// The largest message a client may publish through
    /// [`Hub::publish_from`](super::Hub::publish_from), in bytes; `None`: no
    /// bound beyond the connection's own. Default `None`.
    pub max_message_bytes: Option<usize>,
    /// Whether clients may publish ([`Hub::publish_from`](super::Hub::publish_from)).
    /// Default `true`.
    pub client_publish: bool,
}

impl TopicSettings {
    /// Set [`history_size`](Self::history_size).
    pub fn history_size(mut self, publications: usize) -> Self {
        self.history_size = publications;
        self
    }

    /// Set [`history_ttl`](Self::history_ttl).
    pub fn history_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.history_ttl = ttl;
        self
    }

    /// Set [`history_bytes`](Self::history_bytes).
    pub fn history_bytes(mut self, bytes: usize) -> Self {
        self.history_bytes = bytes;
        self
    }

    /// Set [`presence`](Self::presence).
    pub fn presence(mut self, on: bool) -> Self {
        self.presence = on;
        self
    }

    /// Set [`slow_consumer`](Self::slow_consumer).
    pub fn slow_consumer(mut self, policy: SlowConsumer) -> Self {
        self.slow_consumer = policy;
        self
    }

    /// Set [`conflation_keys`](Self::conflation_keys) (at least 1).
    pub fn conflation_keys(mut self, keys: usize) -> Self {
        self.conflation_keys = keys.max(1);
        self
    }

    /// Set [`slow_close_code`](Self::slow_close_code).
    pub fn slow_close_code(mut self, code: u16) -> Self {
        self.slow_close_code = code;
        self
    }

    /// Set [`send_budget_bytes`](Self::send_budget_bytes) and
    /// [`send_budget_messages`](Self::send_budget_messages).
    pub fn send_budget(mut self, bytes: usize, messages: usize) -> Self {
        self.send_budget_bytes = bytes;
        self.send_budget_messages = messages;
        self
    }

    /// Set [`recovery`](Self::recovery).
    pub fn recovery(mut self, on: bool) -> Self {
        self.recovery = on;
        self
    }

    /// Set [`cache`](Self::cache) (on: a history of at least one).
    pub fn cache(mut self, on: bool) -> Self {
        self.cache = on;
        self
    }

    /// Set [`max_members`](Self::max_members).
    pub fn max_members(mut self, members: usize) -> Self {
        self.max_members = members;
        self
    }

    /// Set [`max_message_bytes`](Self::max_message_bytes).
    pub fn max_message_bytes(mut self, bytes: Option<usize>) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Set [`client_publish`](Self::client_publish).
    pub fn client_publish(mut self, allowed: bool) -> Self {
        self.client_publish = allowed;
        self
    }

    /// The publications kept: [`history_size`](Self::history_size), at least one
    /// for a [`cache`](Self::cache) topic.
    pub(super) fn kept(&self) -> usize {
        if self.cache {
            self.history_size.max(1)
        } else {
            self.history_size
        }
    }
}

impl From<&HubSettings> for TopicSettings {
    fn from(s: &HubSettings) -> Self {
        TopicSettings {
            history_size: s.history_size,
            history_ttl: s.history_ttl,
            history_bytes: s.history_bytes,
            presence: s.presence,
            slow_consumer: s.slow_consumer,
            conflation_keys: s.conflation_keys,
            slow_close_code: s.slow_close_code,
            send_budget_bytes: s.send_budget_bytes,
            send_budget_messages: s.send_budget_messages,
            recovery: true,
            cache: false,
            max_members: s.max_members_per_topic,
            max_message_bytes: None,
            client_publish: true,
        }
    }
}

/// What runs when a join is done, with its answer: the messages it returns (an
/// answer to the client, say) go to the connection before anything the topic
/// delivers after the join (its recovered publications, then live ones).
pub type OnJoined = Box<dyn FnOnce(&Joined) -> Vec<Message> + Send>;

/// How a connection joins a topic ([`Hub::join_with`](super::Hub::join_with)).
#[derive(Default)]
#[non_exhaustive]
pub struct JoinOptions {
    /// The user the connection belongs to: several connections (tabs) of one user
    /// make one presence (first join, last leave). Default: the connection alone.
    /// It also names the connection in the hub ([`Hub::send_to_user`](super::Hub::send_to_user))
    /// when the hub knows it by no name yet ([`Hub::register`](super::Hub::register)).
    pub user: Option<String>,
    /// Anything the application keeps with the member (a display name, JSON).
    pub meta: Option<String>,
    /// Recover from here: the position of the last publication the connection
    /// received (or its `joined` position if none came).
    pub since: Option<Position>,
    /// Called with the answer once the join is done (at once without a
    /// numbering backplane; when the backplane answered, with one, on its
    /// thread). A panic in it is caught and counted
    /// (`ws_hub_callback_panics_total`): the join is answered without a greeting.
    pub on_joined: Option<OnJoined>,
    /// Out of presence: the member receives the topic as any other, counts
    /// against [`TopicSettings::max_members`] and in [`Hub::count`](super::Hub::count)
    /// and the metrics, but makes no presence event (no first join, no last
    /// leave, here or through a backplane that shares presence), and is in
    /// neither [`Hub::members`](super::Hub::members) nor
    /// [`Hub::users`](super::Hub::users). For readers that are not
    /// participants: a feed's event stream, a monitor. A member already keeps the
    /// visibility of its first join. Default `false` (event streams: see
    /// [`Events`](super::Events)).
    pub hidden: bool,
}

impl fmt::Debug for JoinOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinOptions")
            .field("user", &self.user)
            .field("meta", &self.meta)
            .field("since", &self.since)
            .field("on_joined", &self.on_joined.is_some())
            .field("hidden", &self.hidden)
            .finish()
    }
}

impl JoinOptions {
    /// Set [`user`](Self::user).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Set [`meta`](Self::meta).
    pub fn meta(mut self, meta: impl Into<String>) -> Self {
        self.meta = Some(meta.into());
        self
    }

    /// Set [`since`](Self::since).
    pub fn since(mut self, since: Position) -> Self {
        self.since = Some(since);
        self
    }

    /// Set [`hidden`](Self::hidden).
    pub fn hidden(mut self, hidden: bool) -> Self {
        self.hidden = hidden;
        self
    }

    /// Set [`on_joined`](Self::on_joined).
    pub fn on_joined(mut self, f: impl FnOnce(&Joined) -> Vec<Message> + Send + 'static) -> Self {
        self.on_joined = Some(Box::new(f));
        self
    }
}

/// The answer to a join.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Joined {
    /// The position of the topic's latest publication when the join was made: the
    /// connection receives every later one, in order. With a numbering backplane,
    /// `join_with` returns before it is known: then it is the [`OnJoined`]'s
    /// answer that holds it.
    pub position: Position,
    /// With [`JoinOptions::since`]: whether everything after it was recovered (it
    /// is delivered before any later publication) or not (nothing is replayed:
    /// never a partial recovery). `None` without `since`, or not known yet.
    pub recovered: Option<bool>,
    /// How many publications are replayed.
    pub replayed: usize,
    /// Whether the connection was a member already (its metadata is updated).
    pub already: bool,
}

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The connection is closing or closed.
    #[error("connection is closed")]
    Closed,
    /// The topic's name is empty or holds `{` or `}` (a
    /// Redis cluster places a topic's keys by the part of their name between
    /// braces: [`HubSettings::max_topic_bytes`]).
    #[error("invalid topic name (empty, or with a brace)")]
    InvalidTopic,
    /// The topic's name is longer than [`HubSettings::max_topic_bytes`].
    #[error("topic name longer than {limit} bytes")]
    TopicTooLong {
        /// The bound.
        limit: usize,
    },
    /// The user key is longer than [`HubSettings::max_user_bytes`].
    #[error("user key longer than {limit} bytes")]
    UserTooLong {
        /// The bound.
        limit: usize,
    },
    /// The metadata is longer than [`HubSettings::max_meta_bytes`].
    #[error("metadata longer than {limit} bytes")]
    MetaTooLong {
        /// The bound.
        limit: usize,
    },
    /// The connection is a member of [`HubSettings::max_topics_per_connection`]
    /// topics already.
    #[error("member of {limit} topics already")]
    TooManyTopics {
        /// The bound.
        limit: usize,
    },
    /// The topic has [`HubSettings::max_members_per_topic`] members on this server
    /// already.
    #[error("topic has {limit} members already")]
    TopicFull {
        /// The bound.
        limit: usize,
    },
    /// The user has [`HubSettings::max_connections_per_user`] connections in the
    /// hub already (a [`Hub::register`](super::Hub::register), or the first
    /// join of a connection that names its user).
    #[error("user has {limit} connections already")]
    TooManyConnections {
        /// The bound.
        limit: usize,
    },
    /// The authorizer ([`Hub::set_authorizer`](super::Hub::set_authorizer))
    /// refused the join.
    #[error("join denied: {reason}")]
    Denied {
        /// The authorizer's reason (for the client).
        reason: String,
    },
    /// The authorizer answers asynchronously: join with
    /// [`Hub::join_async`](super::Hub::join_async).
    #[error("authorization is asynchronous: use join_async")]
    Asynchronous,
    /// The authorizer did not answer within
    /// [`HubSettings::authorize_timeout`].
    #[error("authorization timed out")]
    AuthorizationTimedOut,
}

/// Why a client's publication ([`Hub::publish_from`](super::Hub::publish_from))
/// was refused: nothing was published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// No topic can have this name ([`Hub::check_topic`](super::Hub::check_topic)).
    #[error("invalid topic: {0}")]
    InvalidTopic(JoinError),
    /// The topic's [`TopicSettings::client_publish`] is off.
    #[error("clients may not publish to this topic")]
    NotAllowed,
    /// Longer than the topic's [`TopicSettings::max_message_bytes`].
    #[error("message longer than {limit} bytes")]
    TooLarge {
        /// The bound.
        limit: usize,
    },
    /// The authorizer refused it.
    #[error("publication denied: {reason}")]
    Denied {
        /// The authorizer's reason.
        reason: String,
    },
    /// The authorizer answers asynchronously: publish with
    /// [`Hub::publish_from_async`](super::Hub::publish_from_async).
    #[error("authorization is asynchronous: use publish_from_async")]
    Asynchronous,
    /// The authorizer did not answer within
    /// [`HubSettings::authorize_timeout`].
    #[error("authorization timed out")]
    AuthorizationTimedOut,
}

/// A member of a topic ([`Hub::members`](super::Hub::members)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member {
    /// The connection.
    pub id: ConnId,
    /// Its user key (the connection's id when it joined without one).
    pub user: String,
    /// Its metadata.
    pub meta: Option<String>,
}

/// A presence change (topics with presence on; see [`Hub::on_presence`](super::Hub::on_presence)
/// and [`Hub::on_presence_fn`](super::Hub::on_presence_fn)): the first connection
/// of a user joined, or its last one left.
#[derive(Debug, Clone, PartialEq, Eq, actix::Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub struct Presence {
    /// The topic.
    pub topic: String,
    /// The user.
    pub user: String,
    /// The metadata of the connection that joined or left.
    pub meta: Option<String>,
    /// Joined or left.
    pub kind: PresenceKind,
    /// The connection on this server that joined (the user's first) or left
    /// (its last): to tell everyone but it. With a backplane that shares
    /// presence, a change comes back from it: then a connection of the user on
    /// this server if it has one in the topic, `None` if not (a change made on
    /// another server, or a last leave).
    pub conn: Option<ConnId>,
}

/// What a [`Presence`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceKind {
    /// The user's first connection joined.
    Joined,
    /// The user's last connection left (or closed).
    Left,
}

/// What a publication was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Its position in the topic; `None` with a numbering backplane (it numbers
    /// the publication on its way), and when it was not made: a name no topic
    /// can have (`Hub::check_topic`), or a renderer that panicked.
    pub position: Option<Position>,
    /// How many threads (shards) it went to.
    pub shards: usize,
}

/// Open connections of a hub by ready-state ([`Hub::connections`](super::Hub::connections)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadyStateCounts {
    /// Connecting.
    pub connecting: usize,
    /// Open.
    pub open: usize,
    /// Closing.
    pub closing: usize,
    /// Closed (their last work in progress).
    pub closed: usize,
}

/// Stamps each publication with its position before it is framed: see
/// [`Hub::set_renderer`](super::Hub::set_renderer).
pub type Renderer = dyn Fn(&str, &Position, Message) -> Message + Send + Sync;

/// A user key and its presence metadata.
pub type UserMeta = (String, Option<String>);
