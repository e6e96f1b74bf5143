//! The connection manager: [`Hub`], topics with presence, publish-once fan-out on
//! each connection's own thread, slow-consumer policies, history and recovery,
//! metrics, and the seam for a cross-server backplane ([`Backplane`]).

#[cfg(feature = "redis")]
pub mod redis;
mod shard;
mod topic;

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
    time::{Duration, Instant},
};

use actix::Recipient;
use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{
        gauge::ConstGauge,
        histogram::{exponential_buckets, Histogram},
        MetricType,
    },
};
use tokio::sync::mpsc;

use self::{
    shard::Cmd,
    topic::{MemberEntry, Recovery, Topic},
};
use crate::{
    actor::ThreadKey,
    proto::{Message, PreparedMessage, ReadyState},
    settings::{DeflateSettings, HubSettings, Settings, SlowConsumer},
    Conn, ConnId,
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
/// [`Hub::configure`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicSettings {
    /// Publications kept for recovery; 0 keeps none.
    pub history_size: usize,
    /// How long a publication is kept; `None`: until pushed out by size.
    pub history_ttl: Option<Duration>,
    /// Report first joins and last leaves of its users ([`Hub::on_presence`]).
    pub presence: bool,
    /// What to do with a subscriber over its budget.
    pub slow_consumer: SlowConsumer,
    /// The close code of [`SlowConsumer::Close`].
    pub slow_close_code: u16,
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

    /// Set [`slow_close_code`](Self::slow_close_code).
    pub fn slow_close_code(mut self, code: u16) -> Self {
        self.slow_close_code = code;
        self
    }
}

impl From<&HubSettings> for TopicSettings {
    fn from(s: &HubSettings) -> Self {
        TopicSettings {
            history_size: s.history_size,
            history_ttl: s.history_ttl,
            presence: s.presence,
            slow_consumer: s.slow_consumer,
            slow_close_code: s.slow_close_code,
        }
    }
}

/// What runs when a join is done, with its answer: the messages it returns (an
/// answer to the client, say) go to the connection before anything the topic
/// delivers after the join (its recovered publications, then live ones).
pub type OnJoined = Box<dyn FnOnce(&Joined) -> Vec<Message> + Send>;

/// How a connection joins a topic ([`Hub::join_with`]).
#[derive(Default)]
#[non_exhaustive]
pub struct JoinOptions {
    /// The user the connection belongs to: several connections (tabs) of one user
    /// make one presence (first join, last leave). Default: the connection alone.
    pub user: Option<String>,
    /// Anything the application keeps with the member (a display name, JSON).
    pub meta: Option<String>,
    /// Recover from here: the position of the last publication the connection
    /// received (or its `joined` position if none came).
    pub since: Option<Position>,
    /// Called with the answer once the join is done (at once without a
    /// numbering backplane; when the backplane answered, with one).
    pub on_joined: Option<OnJoined>,
}

impl fmt::Debug for JoinOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinOptions")
            .field("user", &self.user)
            .field("meta", &self.meta)
            .field("since", &self.since)
            .field("on_joined", &self.on_joined.is_some())
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
}

/// A member of a topic ([`Hub::members`]).
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

/// A presence change (topics with presence on; see [`Hub::on_presence`]): the
/// first connection of a user joined, or its last one left.
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
    /// the publication on its way).
    pub position: Option<Position>,
    /// How many threads (shards) it went to.
    pub shards: usize,
}

/// Open connections of a hub by ready-state ([`Hub::connections`]).
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
    /// ([`TopicSettings::history_size`]).
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
/// [`Hub::deliver_remote`]; this server has delivered it already. One that numbers
/// them (and keeps their history) delivers every publication, this server's
/// included, back through [`Hub::deliver_numbered`], in the topic's order, and
/// answers joins through [`locate`](Self::locate).
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
    /// [`Hub::subscriptions`] lists what the hub wants now, for reconciliation.
    fn subscribe(&self, topic: &str, generation: u64);
    /// This server's last subscriber of `topic` left (stamped as in
    /// [`subscribe`](Self::subscribe)).
    fn unsubscribe(&self, topic: &str, generation: u64);
    /// Whether publications come back numbered, through `Hub::deliver_numbered`.
    fn numbers(&self) -> bool {
        false
    }
    /// For a join (when [`numbers`](Self::numbers)): where `topic` stands and,
    /// with `since`, what came after it, passed to `done` once this server is
    /// subscribed to `topic` (so that nothing published from then on is missed).
    /// Whether presence is shared across servers through this backplane: the hub
    /// then tells it of each user's first join and last leave on this server
    /// ([`presence_changed`](Self::presence_changed)) instead of reporting them,
    /// and reports what comes back through [`Hub::deliver_presence`]. Default false.
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

/// Stamps each publication with its position before it is framed: see
/// [`Hub::set_renderer`].
pub type Renderer = dyn Fn(&str, &Position, Message) -> Message + Send + Sync;

/// What a shard needs of a publication: the frame prepared once, the topic's
/// policy for slow subscribers.
#[derive(Debug)]
pub(crate) struct Delivery {
    prepared: PreparedMessage,
    policy: Policy,
    /// The publication's offset (0: unnumbered).
    offset: u64,
}

#[derive(Debug, Clone, Copy)]
struct Policy {
    budget_bytes: usize,
    budget_messages: usize,
    slow_consumer: SlowConsumer,
    close_code: u16,
}

/// A user key and its presence metadata.
pub type UserMeta = (String, Option<String>);

/// A join waiting for a numbering backplane's answer.
struct PendingJoin {
    shard: usize,
    topic: Arc<str>,
    id: ConnId,
    /// It asked to recover (`since`).
    asked: bool,
    on_joined: Option<OnJoined>,
    settings: TopicSettings,
}

/// A shard's handle: its channel, and its receiver until its task takes it.
struct ShardHandle {
    thread: ThreadKey,
    tx: mpsc::UnboundedSender<Cmd>,
    rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Cmd>>>>,
}

/// A connection of the hub.
struct ConnEntry {
    conn: Conn,
    shard: usize,
    topics: Vec<Arc<Topic>>,
}

/// The counters a hub keeps.
#[derive(Debug)]
struct HubCounters {
    publications: AtomicU64,
    deliveries: AtomicU64,
    dropped: AtomicU64,
    slow_closes: AtomicU64,
    encodes: AtomicU64,
    recompressions: AtomicU64,
    backplane_published: AtomicU64,
    remote_delivered: AtomicU64,
    fanout: Histogram,
}

pub(crate) struct HubInner {
    name: String,
    settings: HubSettings,
    deflate: DeflateSettings,
    topics: Mutex<HashMap<Arc<str>, Arc<Topic>>>,
    shards: Mutex<Vec<ShardHandle>>,
    conns: Mutex<HashMap<ConnId, ConnEntry>>,
    presence: Mutex<Vec<Recipient<Presence>>>,
    backplane: Mutex<Option<Arc<dyn Backplane>>>,
    renderer: Mutex<Option<Arc<Renderer>>>,
    metrics: HubCounters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connection manager: topics, presence, publish-once fan-out, slow-consumer
/// policies, history and recovery, metrics. A `Clone + Send` handle; several hubs
/// may live in one process.
///
/// - **Join and leave** topics ([`join`](Self::join), [`join_with`](Self::join_with):
///   a user key for presence, metadata, a position to recover from;
///   [`leave`](Self::leave)); a connection leaves everything when it closes.
/// - **Publish** to a topic ([`publish`](Self::publish), [`publish_except`](Self::publish_except)
///   the sender, [`publish_with`](Self::publish_with) to put the publication's
///   position in the message), to one connection ([`send_to`](Self::send_to)), to
///   all ([`broadcast`](Self::broadcast)). A publication is framed (and, with
///   permessage-deflate without context takeover, compressed) once; each worker
///   thread with subscribers gets it once, and writes it into each local
///   subscriber's send buffer without a lock; what is queued together for one
///   connection leaves in one write, in publication order.
/// - **Slow consumers**: a subscriber with [`send_budget_bytes`](HubSettings::send_budget_bytes)
///   or [`send_budget_messages`](HubSettings::send_budget_messages) queued gets the
///   topic's policy: its publications are dropped (counted), or it is closed with
///   1008. It never delays the others, and holds at most its budget plus one
///   publication.
/// - **Presence**: members with their metadata ([`members`](Self::members),
///   [`users`](Self::users)), and first-join / last-leave events per user
///   ([`on_presence`](Self::on_presence)) for topics with presence on.
/// - **History and recovery**: a topic with a history ([`configure`](Self::configure))
///   keeps its latest publications; a connection that comes back with the
///   [`Position`] of the last one it received gets exactly what it missed, in
///   order, before any later publication, or is told it was not recovered.
/// - **Metrics** in [`crate::metrics`] (`ws_hub_*{hub="NAME"}`).
///
/// ```no_run
/// use websocket_driver as ws;
///
/// struct Chat { hub: ws::Hub }
///
/// impl ws::Endpoint for Chat {
///     fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
///         let _ = self.hub.join(conn, "lobby");
///     }
///     fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
///         self.hub.publish_except("lobby", msg, conn.id());
///     }
/// }
///
/// # async fn main_() -> std::io::Result<()> {
/// let hub = ws::Hub::new();
/// actix_web::HttpServer::new(move || {
///     let hub = hub.clone();
///     actix_web::App::new().route("/ws", actix_web::web::get().to(move |req: ws::Upgrade| {
///         let chat = Chat { hub: hub.clone() };
///         async move { ws::start(ws::endpoint(chat), &req) }
///     }))
/// })
/// .bind("127.0.0.1:8080")?
/// .run()
/// .await
/// # }
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// A [`Hub`] that does not keep it alive (what a backplane's task holds):
/// [`upgrade`](Self::upgrade) it to use it.
#[derive(Clone, Debug)]
pub struct WeakHub(Weak<HubInner>);

impl WeakHub {
    /// The hub, if it still exists.
    pub fn upgrade(&self) -> Option<Hub> {
        self.0.upgrade().map(|inner| Hub { inner })
    }
}

impl fmt::Debug for HubInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubInner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("name", &self.inner.name)
            .field("connections", &lock(&self.inner.conns).len())
            .field("topics", &lock(&self.inner.topics).len())
            .finish()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// A hub with the default [`HubSettings`], and no compression of its
    /// publications.
    pub fn new() -> Hub {
        Hub::with_settings(&Settings::default())
    }

    /// A hub with the `hub` section of `settings`; publications are compressed as
    /// its `deflate` section says (pass the server's settings, so that the frames
    /// prepared once fit its connections).
    pub fn with_settings(settings: &Settings) -> Hub {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Hub::named(&format!("hub-{n}"), settings)
    }

    /// [`with_settings`](Self::with_settings) with a name: the `hub` label of its
    /// metrics.
    pub fn named(name: &str, settings: &Settings) -> Hub {
        let inner = Arc::new(HubInner {
            name: name.to_owned(),
            settings: settings.hub.clone(),
            deflate: settings.deflate.clone(),
            topics: Mutex::new(HashMap::new()),
            shards: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            presence: Mutex::new(Vec::new()),
            backplane: Mutex::new(None),
            renderer: Mutex::new(None),
            metrics: HubCounters {
                publications: AtomicU64::new(0),
                deliveries: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                slow_closes: AtomicU64::new(0),
                encodes: AtomicU64::new(0),
                recompressions: AtomicU64::new(0),
                backplane_published: AtomicU64::new(0),
                remote_delivered: AtomicU64::new(0),
                // 1 µs to about 1 s.
                fanout: Histogram::new(exponential_buckets(0.000_001, 4.0, 11)),
            },
        });
        let weak: Weak<dyn crate::metrics::HubMetrics> = Arc::downgrade(&inner) as _;
        crate::metrics::register_hub(weak);
        Hub { inner }
    }

    /// The hub's name (its metrics' `hub` label).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// A handle that does not keep the hub alive.
    pub fn downgrade(&self) -> WeakHub {
        WeakHub(Arc::downgrade(&self.inner))
    }

    /// The topics this server holds members of, each with the generation of the
    /// decision that subscribed it (see [`Backplane::subscribe`]): what a
    /// backplane should be subscribed to, to reconcile its subscriptions with.
    pub fn subscriptions(&self) -> Vec<(String, u64)> {
        let topics: Vec<Arc<Topic>> = lock(&self.inner.topics).values().cloned().collect();
        let mut out: Vec<(String, u64)> = topics
            .iter()
            .filter_map(|t| {
                let state = t.lock();
                (!state.members.is_empty()).then(|| (t.name.to_string(), state.generation))
            })
            .collect();
        out.sort();
        out
    }

    /// The users present on this server, per topic with presence on (each with
    /// the metadata of one of its connections): what a backplane that shares
    /// presence announces again after its store lost it.
    pub fn local_presence(&self) -> Vec<(String, Vec<UserMeta>)> {
        self.inner.local_presence()
    }

    /// Set `topic`'s own settings (history, presence, slow-consumer policy); the
    /// topic is kept from now on, with no member. A topic not configured uses the
    /// hub's defaults and is forgotten when its last member leaves and it keeps no
    /// history.
    pub fn configure(&self, topic: &str, settings: TopicSettings) {
        let mut topics = lock(&self.inner.topics);
        match topics.get(topic) {
            Some(t) => {
                let mut state = t.lock();
                state.settings = settings;
                state.configured = true;
                while state.history.len() > state.settings.history_size {
                    state.history.pop_front();
                }
            }
            None => {
                let name: Arc<str> = topic.into();
                topics.insert(name.clone(), Arc::new(Topic::new(name, settings, true)));
            }
        }
    }

    /// The settings `configure` starts from: the hub's defaults.
    pub fn topic_defaults(&self) -> TopicSettings {
        TopicSettings::from(&self.inner.settings)
    }

    /// Send [`Presence`] events to `recipient` (an actor of the application's), in
    /// order per topic.
    pub fn on_presence(&self, recipient: Recipient<Presence>) {
        lock(&self.inner.presence).push(recipient);
    }

    /// Plug in a cross-server backplane; see [`Backplane`].
    pub fn set_backplane(&self, backplane: Arc<dyn Backplane>) {
        *lock(&self.inner.backplane) = Some(backplane);
        // Topics with subscribers already: the backplane learns them now.
        let names = self.subscriptions();
        if let Some(backplane) = lock(&self.inner.backplane).clone() {
            for (name, generation) in names {
                backplane.subscribe(&name, generation);
            }
            if backplane.shares_presence() {
                for (topic, users) in self.inner.local_presence() {
                    for (user, meta) in users {
                        backplane.presence_changed(
                            &topic,
                            &user,
                            meta.as_deref(),
                            PresenceKind::Joined,
                        );
                    }
                }
            }
        }
    }

    /// [`join_with`](Self::join_with) with the default options.
    pub fn join(&self, conn: &Conn, topic: &str) -> Result<Joined, JoinError> {
        self.join_with(conn, topic, JoinOptions::default())
    }

    /// Join `conn` to `topic`: it receives every publication made after this call
    /// (and, with [`JoinOptions::since`], what it missed before, first). Joining
    /// again updates the metadata. [`JoinOptions::on_joined`] answers the join
    /// before anything the topic delivers after it.
    pub fn join_with(
        &self,
        conn: &Conn,
        topic: &str,
        options: JoinOptions,
    ) -> Result<Joined, JoinError> {
        if !conn.ready_state().can_send() {
            return Err(JoinError::Closed);
        }
        let inner = &self.inner;
        let backplane = lock(&inner.backplane).clone();
        let numbered = backplane.as_ref().is_some_and(|b| b.numbers());
        let shard = inner.register(conn);
        let topic = inner.topic(topic);
        let JoinOptions {
            user,
            meta,
            since,
            mut on_joined,
        } = options;
        let user: Arc<str> = user
            .map(Into::into)
            .unwrap_or_else(|| conn.id().to_string().into());
        let meta: Option<Arc<str>> = meta.map(Into::into);
        let mut state = topic.lock();
        let position = state.position();
        if let Some(member) = state.members.get_mut(&conn.id()) {
            member.meta = meta;
            return Ok(Joined {
                position,
                recovered: since.map(|_| false),
                replayed: 0,
                already: true,
            });
        }
        // Recovery from the local history (without a numbering backplane): what
        // was missed, taken under the topic's lock, so that nothing published
        // meanwhile is lost or repeated.
        let local = if numbered {
            None
        } else {
            let (recovered, replay) = match &since {
                None => (None, Vec::new()),
                Some(since) => match state.recover(since, Instant::now()) {
                    Recovery::Complete(replay) => (Some(true), replay),
                    Recovery::Incomplete => (Some(false), Vec::new()),
                },
            };
            Some((recovered, replay))
        };
        let joined = Joined {
            position: position.clone(),
            recovered: local.as_ref().and_then(|(r, _)| *r),
            replayed: local.as_ref().map_or(0, |(_, replay)| replay.len()),
            already: false,
        };
        state.add_to_shard(shard);
        let first_anywhere = state.members.is_empty();
        if first_anywhere {
            state.generation = topic::next_generation();
        }
        let generation = state.generation;
        state.members.insert(
            conn.id(),
            MemberEntry {
                user: user.clone(),
                meta: meta.clone(),
                shard,
            },
        );
        let count = state.users.entry(user.clone()).or_insert(0);
        *count += 1;
        if *count == 1 && state.settings.presence {
            inner.presence(&topic.name, &user, &meta, PresenceKind::Joined);
        }
        let settings = state.settings.clone();
        // Subscribed now, in the topic's order; what the topic delivers is held
        // back until the answer (the greeting) and the replay are in front of it.
        inner.send(
            shard,
            Cmd::Subscribe {
                topic: topic.name.clone(),
                id: conn.id(),
                greeting: Vec::new(),
                replay: Vec::new(),
                pending: true,
            },
        );
        drop(state);
        if let Some((_, replay)) = local {
            // The greeting runs outside the topic's lock (it may read the hub).
            let greeting = on_joined
                .take()
                .map(|f| f(&joined))
                .unwrap_or_default()
                .into_iter()
                .map(|m| inner.delivery(m, &settings, 0))
                .collect();
            inner.send(
                shard,
                Cmd::Replay {
                    topic: topic.name.clone(),
                    id: conn.id(),
                    greeting,
                    replay,
                    after: position.offset,
                },
            );
        }
        if let Some(entry) = lock(&inner.conns).get_mut(&conn.id()) {
            entry.topics.push(topic.clone());
        }
        if let Some(backplane) = backplane {
            if first_anywhere {
                backplane.subscribe(&topic.name, generation);
            }
            if numbered {
                let hub = Arc::downgrade(inner);
                let (id, name) = (conn.id(), topic.name.clone());
                let asked = since.is_some();
                let pending = PendingJoin {
                    shard,
                    topic: name,
                    id,
                    asked,
                    on_joined,
                    settings,
                };
                backplane.locate(
                    &topic.name,
                    since,
                    Box::new(move |located| {
                        if let Some(hub) = hub.upgrade() {
                            hub.finish_join(pending, located);
                        }
                    }),
                );
            }
        }
        Ok(joined)
    }

    /// Take connection `id` out of `topic`; false when it was not a member.
    pub fn leave(&self, id: ConnId, topic: &str) -> bool {
        let topic = {
            let mut conns = lock(&self.inner.conns);
            let Some(entry) = conns.get_mut(&id) else {
                return false;
            };
            let Some(at) = entry.topics.iter().position(|t| &*t.name == topic) else {
                return false;
            };
            entry.topics.swap_remove(at)
        };
        self.inner.leave_topic(id, &topic);
        true
    }

    /// Publish `message` to every member of `topic`.
    pub fn publish(&self, topic: &str, message: impl Into<Message>) -> Published {
        let message = message.into();
        self.inner.publish(topic, None, move |_| message, true)
    }

    /// Publish `message` to every member of `topic` but `except` (its sender).
    pub fn publish_except(
        &self,
        topic: &str,
        message: impl Into<Message>,
        except: ConnId,
    ) -> Published {
        let message = message.into();
        self.inner
            .publish(topic, Some(except), move |_| message, true)
    }

    /// Stamp every publication with its position before it is framed: `render(topic,
    /// position, message)` gives what is sent (the chat example puts the offset in
    /// its JSON). It runs once per publication on each server (with a numbering
    /// backplane, where the position is known: on delivery), under the topic's
    /// lock: keep it short. Default: the message as published.
    pub fn set_renderer(
        &self,
        render: impl Fn(&str, &Position, Message) -> Message + Send + Sync + 'static,
    ) {
        *lock(&self.inner.renderer) = Some(Arc::new(render));
    }

    /// Publish the message `make` builds from the publication's position (to put
    /// its offset in it, for clients that recover), to every member of `topic`
    /// but `except`. `make` runs under the topic's lock: keep it short. With a
    /// numbering backplane the position is not known here: `make` gets the topic's
    /// local one, so use [`set_renderer`](Self::set_renderer) instead.
    pub fn publish_with(
        &self,
        topic: &str,
        except: Option<ConnId>,
        make: impl FnOnce(&Position) -> Message,
    ) -> Published {
        self.inner.publish(topic, except, make, true)
    }

    /// Send `message` to the members of `topic` (but `except`) like a publication,
    /// but unnumbered and not kept in the history (presence lists, typing
    /// indicators): offsets count only the publications.
    pub fn publish_transient(
        &self,
        topic: &str,
        message: impl Into<Message>,
        except: Option<ConnId>,
    ) -> usize {
        let Some(topic) = lock(&self.inner.topics).get(topic).cloned() else {
            return 0;
        };
        let state = topic.lock();
        let delivery = self.inner.delivery(message.into(), &state.settings, 0);
        let mut shards = 0;
        for shard in state.shards() {
            shards += 1;
            self.inner.send(
                shard,
                Cmd::Publish {
                    topic: topic.name.clone(),
                    delivery: delivery.clone(),
                    except,
                },
            );
        }
        shards
    }

    /// Deliver a publication that another server made (a [`Backplane`]'s that does
    /// not number them): to the local members only, not back to the backplane.
    pub fn deliver_remote(&self, topic: &str, message: Message) -> Published {
        self.inner
            .metrics
            .remote_delivered
            .fetch_add(1, Ordering::Relaxed);
        self.inner.publish(topic, None, move |_| message, false)
    }

    /// Deliver a publication numbered by the backplane at `position` (any
    /// server's, this one's included): rendered, framed once and sent to the local
    /// members (but `except`), in the order the backplane calls this for the
    /// topic. Returns how many threads it went to.
    pub fn deliver_numbered(
        &self,
        topic: &str,
        position: &Position,
        message: Message,
        except: Option<ConnId>,
    ) -> usize {
        self.inner
            .metrics
            .remote_delivered
            .fetch_add(1, Ordering::Relaxed);
        let Some(topic) = lock(&self.inner.topics).get(topic).cloned() else {
            return 0;
        };
        let state = topic.lock();
        let message = self.inner.render(&topic.name, position, message);
        let delivery = self
            .inner
            .delivery(message, &state.settings, position.offset);
        self.inner
            .metrics
            .publications
            .fetch_add(1, Ordering::Relaxed);
        let mut shards = 0;
        for shard in state.shards() {
            shards += 1;
            self.inner.send(
                shard,
                Cmd::Publish {
                    topic: topic.name.clone(),
                    delivery: delivery.clone(),
                    except,
                },
            );
        }
        shards
    }

    /// Publish `message` on this server only, numbered by this hub (its local
    /// epoch), not through the backplane: what a numbering backplane falls back to
    /// while it cannot reach its store (a client that recovers across that gap is
    /// told `recovered: false`).
    pub fn publish_local(
        &self,
        topic: &str,
        message: Message,
        except: Option<ConnId>,
    ) -> Published {
        self.inner.publish(topic, except, move |_| message, false)
    }

    /// Send `message` to connection `id` through its budget (false when it is not
    /// in the hub).
    pub fn send_to(&self, id: ConnId, message: impl Into<Message>) -> bool {
        let shard = match lock(&self.inner.conns).get(&id) {
            Some(entry) => entry.shard,
            None => return false,
        };
        let delivery = self
            .inner
            .delivery(message.into(), &self.topic_defaults(), 0);
        self.inner.send(shard, Cmd::Direct { id, delivery });
        true
    }

    /// Send `message` to every connection of the hub (but `except`).
    pub fn broadcast(&self, message: impl Into<Message>, except: Option<ConnId>) {
        let delivery = self
            .inner
            .delivery(message.into(), &self.topic_defaults(), 0);
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

    /// The members of `topic`, by connection id.
    pub fn members(&self, topic: &str) -> Vec<Member> {
        let Some(topic) = lock(&self.inner.topics).get(topic).cloned() else {
            return Vec::new();
        };
        let state = topic.lock();
        let mut members: Vec<Member> = state
            .members
            .iter()
            .map(|(id, m)| Member {
                id: *id,
                user: m.user.to_string(),
                meta: m.meta.as_deref().map(str::to_owned),
            })
            .collect();
        members.sort_by_key(|m| m.id);
        members
    }

    /// The users present in `topic` (distinct user keys), sorted.
    pub fn users(&self, topic: &str) -> Vec<String> {
        let Some(topic) = lock(&self.inner.topics).get(topic).cloned() else {
            return Vec::new();
        };
        let state = topic.lock();
        // Across servers when a backplane shares presence: what it said, and this
        // server's own users (present here whether or not that came back yet).
        let mut users: Vec<String> = state.users.keys().map(|u| u.to_string()).collect();
        if let Some(global) = &state.global_users {
            users.extend(
                global
                    .keys()
                    .filter(|u| !state.users.contains_key(*u))
                    .map(|u| u.to_string()),
            );
        }
        users.sort();
        users
    }

    /// A presence change across servers, from a backplane that shares presence:
    /// the topic's users are updated and the presence recipients told.
    pub fn deliver_presence(
        &self,
        topic: &str,
        user: &str,
        meta: Option<&str>,
        kind: PresenceKind,
    ) {
        let Some(t) = lock(&self.inner.topics).get(topic).cloned() else {
            return;
        };
        let mut state = t.lock();
        if state.members.is_empty() {
            return;
        }
        let global = state.global_users.get_or_insert_with(Default::default);
        let user: Arc<str> = user.into();
        let meta: Option<Arc<str>> = meta.map(Into::into);
        // Told once per change of the shared view.
        let changed = match kind {
            PresenceKind::Joined => global.insert(user.clone(), meta.clone()).is_none(),
            PresenceKind::Left => global.remove(&user).is_some(),
        };
        if changed && state.settings.presence {
            // Under the topic's lock: in order.
            self.inner.report_presence(topic, &user, &meta, kind);
        }
    }

    /// Every user present in `topic` across servers, from a backplane that shares
    /// presence (when this server starts holding the topic, and again after the
    /// backplane reconnects): the presence recipients are told who came and who
    /// went since what this server knew.
    pub fn set_presence(&self, topic: &str, users: Vec<(String, Option<String>)>) {
        let Some(t) = lock(&self.inner.topics).get(topic).cloned() else {
            return;
        };
        let mut state = t.lock();
        if state.members.is_empty() {
            // No longer held here: not kept up to date.
            return;
        }
        let now: std::collections::BTreeMap<Arc<str>, Option<Arc<str>>> = users
            .into_iter()
            .map(|(u, m)| (Arc::from(u), m.map(Arc::from)))
            .collect();
        // What the recipients were told so far (nothing before the first snapshot:
        // this server's own joins are told when the backplane says so).
        let before = state.global_users.take().unwrap_or_default();
        if state.settings.presence {
            for (user, meta) in &before {
                if !now.contains_key(user) {
                    self.inner
                        .report_presence(topic, user, meta, PresenceKind::Left);
                }
            }
            for (user, meta) in &now {
                if !before.contains_key(user) {
                    self.inner
                        .report_presence(topic, user, meta, PresenceKind::Joined);
                }
            }
        }
        state.global_users = Some(now);
    }

    /// How many connections are in `topic`.
    pub fn count(&self, topic: &str) -> usize {
        lock(&self.inner.topics)
            .get(topic)
            .map_or(0, |t| t.lock().members.len())
    }

    /// The topics that exist (with members, a history, or configured), sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.inner.topics)
            .keys()
            .map(|k| k.to_string())
            .collect();
        names.sort();
        names
    }

    /// The position of `topic`'s latest publication (`None`: no such topic).
    pub fn position(&self, topic: &str) -> Option<Position> {
        lock(&self.inner.topics)
            .get(topic)
            .map(|t| t.lock().position())
    }

    /// The hub's connections, by ready-state.
    pub fn connections(&self) -> ReadyStateCounts {
        let mut counts = ReadyStateCounts::default();
        for entry in lock(&self.inner.conns).values() {
            match entry.conn.ready_state() {
                ReadyState::Connecting => counts.connecting += 1,
                ReadyState::Open => counts.open += 1,
                ReadyState::Closing => counts.closing += 1,
                ReadyState::Closed => counts.closed += 1,
            }
        }
        counts
    }

    /// Frames prepared (encoded, compressed when configured) so far: one per
    /// publication, whatever the number of subscribers.
    pub fn encodes(&self) -> u64 {
        self.inner.metrics.encodes.load(Ordering::Relaxed)
    }

    /// Deliveries so far: publications written into subscribers' send buffers.
    pub fn deliveries(&self) -> u64 {
        self.inner.metrics.deliveries.load(Ordering::Relaxed)
    }

    /// Publications dropped for slow subscribers ([`SlowConsumer::Drop`]).
    pub fn dropped(&self) -> u64 {
        self.inner.metrics.dropped.load(Ordering::Relaxed)
    }

    /// Subscribers closed for being slow ([`SlowConsumer::Close`]).
    pub fn slow_closes(&self) -> u64 {
        self.inner.metrics.slow_closes.load(Ordering::Relaxed)
    }

    /// Deliveries compressed again for one connection (its permessage-deflate
    /// agreement could not take the frame compressed once).
    pub fn recompressions(&self) -> u64 {
        self.inner.metrics.recompressions.load(Ordering::Relaxed)
    }
}

impl HubInner {
    /// The shard of `conn`'s thread (made when it has none), with `conn` in it.
    fn register(self: &Arc<Self>, conn: &Conn) -> usize {
        let mut conns = lock(&self.conns);
        if let Some(entry) = conns.get(&conn.id()) {
            return entry.shard;
        }
        let shard = self.shard_for(conn);
        conns.insert(
            conn.id(),
            ConnEntry {
                conn: conn.clone(),
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
                shards.push(ShardHandle {
                    thread,
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
        if conn.run_on_thread(start).is_err() {
            // The connection is gone: the next connection of that thread starts
            // the shard.
            tracing::debug!(id = %conn.id(), "hub: shard not started, the connection is gone");
        }
        index
    }

    fn send(&self, shard: usize, cmd: Cmd) {
        if let Some(handle) = lock(&self.shards).get(shard) {
            let _ = handle.tx.send(cmd);
        }
    }

    fn topic(&self, name: &str) -> Arc<Topic> {
        let mut topics = lock(&self.topics);
        if let Some(t) = topics.get(name) {
            return t.clone();
        }
        let name: Arc<str> = name.into();
        let topic = Arc::new(Topic::new(
            name.clone(),
            TopicSettings::from(&self.settings),
            false,
        ));
        topics.insert(name, topic.clone());
        topic
    }

    fn delivery(&self, message: Message, settings: &TopicSettings, offset: u64) -> Arc<Delivery> {
        self.metrics.encodes.fetch_add(1, Ordering::Relaxed);
        Arc::new(Delivery {
            prepared: PreparedMessage::new(message, &self.deflate),
            policy: Policy {
                budget_bytes: self.settings.send_budget_bytes,
                budget_messages: self.settings.send_budget_messages.max(1),
                slow_consumer: settings.slow_consumer,
                close_code: settings.slow_close_code,
            },
            offset,
        })
    }

    /// The renderer's message for `position` (the message itself without one).
    fn render(&self, topic: &str, position: &Position, message: Message) -> Message {
        match lock(&self.renderer).clone() {
            Some(render) => render(topic, position, message),
            None => message,
        }
    }

    fn publish(
        &self,
        name: &str,
        except: Option<ConnId>,
        make: impl FnOnce(&Position) -> Message,
        to_backplane: bool,
    ) -> Published {
        let backplane = lock(&self.backplane).clone().filter(|_| to_backplane);
        if let Some(backplane) = backplane.as_ref().filter(|b| b.numbers()) {
            // Numbered on its way, and delivered here when it comes back.
            let position = self.topic_position(name);
            let message = make(&position);
            self.metrics
                .backplane_published
                .fetch_add(1, Ordering::Relaxed);
            backplane.publish(Publication {
                topic: name.to_owned(),
                message,
                except,
                history: self.topic_history(name),
            });
            return Published {
                position: None,
                shards: 0,
            };
        }
        let topic = lock(&self.topics).get(name).cloned();
        let Some(topic) = topic else {
            // No member, no history: nothing to deliver or keep, but the message
            // still goes to the other servers.
            let position = Position::start();
            let message = make(&position);
            self.to_backplane(backplane, name, message, except);
            return Published {
                position: Some(position),
                shards: 0,
            };
        };
        let mut state = topic.lock();
        state.last_offset += 1;
        let position = state.position();
        let message = make(&position);
        let rendered = self.render(&topic.name, &position, message.clone());
        let delivery = self.delivery(rendered, &state.settings, position.offset);
        self.metrics.publications.fetch_add(1, Ordering::Relaxed);
        state.remember(Instant::now(), &delivery);
        let mut shards = 0;
        // Sent under the topic's lock: every shard sees the topic's publications
        // (and its joins) in one order.
        for shard in state.shards() {
            shards += 1;
            self.send(
                shard,
                Cmd::Publish {
                    topic: topic.name.clone(),
                    delivery: delivery.clone(),
                    except,
                },
            );
        }
        drop(state);
        self.to_backplane(backplane, name, message, except);
        Published {
            position: Some(position),
            shards,
        }
    }

    /// How many publications `topic` keeps (the hub's default for a topic it does
    /// not hold).
    fn topic_history(&self, name: &str) -> usize {
        lock(&self.topics)
            .get(name)
            .map_or(self.settings.history_size, |t| {
                t.lock().settings.history_size
            })
    }

    /// The topic's local position (an empty epoch when there is no such topic).
    /// The users present on this server, per topic with presence (each user's
    /// metadata from one of its connections): what a backplane that shares
    /// presence announces again after Redis lost it.
    pub(crate) fn local_presence(&self) -> Vec<(String, Vec<UserMeta>)> {
        let topics: Vec<Arc<Topic>> = lock(&self.topics).values().cloned().collect();
        let mut out = Vec::new();
        for topic in topics {
            let state = topic.lock();
            if !state.settings.presence || state.users.is_empty() {
                continue;
            }
            let mut users: Vec<UserMeta> = Vec::with_capacity(state.users.len());
            for user in state.users.keys() {
                let meta = state
                    .members
                    .values()
                    .find(|m| m.user == *user)
                    .and_then(|m| m.meta.as_deref().map(str::to_owned));
                users.push((user.to_string(), meta));
            }
            out.push((topic.name.to_string(), users));
        }
        out
    }

    pub(crate) fn topic_position(&self, name: &str) -> Position {
        lock(&self.topics)
            .get(name)
            .map(|t| t.lock().position())
            .unwrap_or_else(Position::start)
    }

    fn to_backplane(
        &self,
        backplane: Option<Arc<dyn Backplane>>,
        topic: &str,
        message: Message,
        except: Option<ConnId>,
    ) {
        if let Some(backplane) = backplane {
            self.metrics
                .backplane_published
                .fetch_add(1, Ordering::Relaxed);
            backplane.publish(Publication {
                topic: topic.to_owned(),
                message,
                except,
                history: self.topic_history(topic),
            });
        }
    }

    /// A numbering backplane answered a join: the greeting, what was missed, and
    /// from then on what the shard held back for the connection.
    fn finish_join(&self, join: PendingJoin, located: Located) {
        let PendingJoin {
            shard,
            topic,
            id,
            asked,
            on_joined,
            settings,
        } = join;
        let (topic, settings) = (&topic, &settings);
        let recovered = asked.then_some(located.missed.is_some());
        let missed = located.missed.unwrap_or_default();
        let joined = Joined {
            position: located.position.clone(),
            recovered,
            replayed: missed.len(),
            already: false,
        };
        let greeting = on_joined
            .map(|f| f(&joined))
            .unwrap_or_default()
            .into_iter()
            .map(|m| self.delivery(m, settings, 0))
            .collect();
        let replay = missed
            .into_iter()
            .map(|(position, message)| {
                let message = self.render(topic, &position, message);
                self.delivery(message, settings, position.offset)
            })
            .collect();
        self.send(
            shard,
            Cmd::Replay {
                topic: topic.clone(),
                id,
                greeting,
                replay,
                after: located.position.offset,
            },
        );
    }

    /// Take `id` out of `topic` (its entry already updated).
    fn leave_topic(&self, id: ConnId, topic: &Arc<Topic>) {
        let mut state = topic.lock();
        let Some(member) = state.members.remove(&id) else {
            return;
        };
        state.remove_from_shard(member.shard);
        let gone = match state.users.get_mut(&member.user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                state.users.remove(&member.user);
                true
            }
        };
        if gone && state.settings.presence {
            self.presence(&topic.name, &member.user, &member.meta, PresenceKind::Left);
        }
        self.send(
            member.shard,
            Cmd::Unsubscribe {
                topic: topic.name.clone(),
                id,
            },
        );
        let last = state.members.is_empty();
        if last {
            state.generation = topic::next_generation();
        }
        let generation = state.generation;
        if last {
            // Not held here any more: what the backplane said goes stale. The
            // leaving user's own leave will not come back (this server stops
            // listening): it is told here.
            if let Some(global) = state.global_users.take() {
                if gone && state.settings.presence && global.contains_key(&member.user) {
                    self.report_presence(
                        &topic.name,
                        &member.user,
                        &member.meta,
                        PresenceKind::Left,
                    );
                }
            }
        }
        let idle = state.is_idle();
        drop(state);
        if last {
            if let Some(backplane) = lock(&self.backplane).clone() {
                backplane.unsubscribe(&topic.name, generation);
            }
        }
        if idle {
            let mut topics = lock(&self.topics);
            // Still idle under the map's lock (no join in between): forget it.
            if topics
                .get(&topic.name)
                .is_some_and(|t| Arc::ptr_eq(t, topic) && t.lock().is_idle())
            {
                topics.remove(&topic.name);
            }
        }
    }

    /// Connection `id` closed: it leaves every topic and the hub.
    fn connection_closed(&self, id: ConnId) {
        let Some(entry) = lock(&self.conns).remove(&id) else {
            return;
        };
        for topic in &entry.topics {
            self.leave_topic(id, topic);
        }
        self.send(entry.shard, Cmd::Unregister { id });
    }

    /// Tell the presence recipients (under the topic's lock: in order).
    fn presence(&self, topic: &str, user: &str, meta: &Option<Arc<str>>, kind: PresenceKind) {
        if let Some(backplane) = lock(&self.backplane)
            .clone()
            .filter(|b| b.shares_presence())
        {
            // Across servers: the backplane decides what is a first join or a last
            // leave, and it comes back through `deliver_presence`.
            backplane.presence_changed(topic, user, meta.as_deref(), kind);
            return;
        }
        self.report_presence(topic, user, meta, kind);
    }

    /// Tell the presence recipients.
    fn report_presence(
        &self,
        topic: &str,
        user: &str,
        meta: &Option<Arc<str>>,
        kind: PresenceKind,
    ) {
        let recipients = lock(&self.presence);
        for r in recipients.iter() {
            r.do_send(Presence {
                topic: topic.to_owned(),
                user: user.to_owned(),
                meta: meta.as_deref().map(str::to_owned),
                kind,
            });
        }
    }
}

impl crate::metrics::HubMetrics for HubInner {
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let labels = [("hub", self.name.as_str())];
        let m = &self.metrics;
        let (topics, subscriptions) = {
            let topics = lock(&self.topics);
            let subs: usize = topics.values().map(|t| t.lock().members.len()).sum();
            (topics.len(), subs)
        };
        let connections = lock(&self.conns).len();
        for (name, help, value) in [
            ("ws_hub_connections", "Connections in the hub", connections),
            ("ws_hub_topics", "Topics of the hub", topics),
            ("ws_hub_subscriptions", "Topic memberships", subscriptions),
        ] {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value as i64).encode(e.encode_family(&labels)?)?;
        }
        for (name, help, value) in [
            (
                "ws_hub_publications",
                "Publications to topics",
                &m.publications,
            ),
            (
                "ws_hub_deliveries",
                "Publications written into subscribers' send buffers",
                &m.deliveries,
            ),
            (
                "ws_hub_dropped",
                "Publications dropped for slow subscribers",
                &m.dropped,
            ),
            (
                "ws_hub_slow_closes",
                "Subscribers closed for being slow",
                &m.slow_closes,
            ),
            (
                "ws_hub_encodes",
                "Frames prepared (one per publication)",
                &m.encodes,
            ),
            (
                "ws_hub_recompressions",
                "Deliveries compressed again for one connection",
                &m.recompressions,
            ),
            (
                "ws_hub_backplane_published",
                "Publications handed to the backplane",
                &m.backplane_published,
            ),
            (
                "ws_hub_remote_delivered",
                "Publications from other servers delivered here",
                &m.remote_delivered,
            ),
        ] {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            prometheus_client::metrics::counter::ConstCounter::new(value.load(Ordering::Relaxed))
                .encode(e.encode_family(&labels)?)?;
        }
        let mut e = encoder.encode_descriptor(
            "ws_hub_fanout_seconds",
            "Time to write one publication into a thread's subscribers",
            None,
            m.fanout.metric_type(),
        )?;
        m.fanout.encode(e.encode_family(&labels)?)?;
        Ok(())
    }
}
