//! The hub's state ([`HubInner`], behind the [`Hub`] handle) and the operations
//! every part of the hub builds on: a command queued for a shard, a publication
//! framed, an application's callback guarded, a live topic fetched and an idle
//! one forgotten, a presence change told. The types of its fields come from the
//! modules below it; the files that make the hub's operations (joining, leaving,
//! publishing, ...) build on this one.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
};

use super::{
    access::Authorizer,
    backplane::Backplane,
    conns::Conns,
    counters::HubCounters,
    delivery::{Delivery, Policy},
    history::Histories,
    listeners::Listeners,
    namespaces::Namespaces,
    queue::{Cmd, ShardHandle},
    sched,
    sync::lock,
    topic::{Life, Topic, TopicState},
    types::{JoinError, Position, Presence, PresenceKind, Renderer, TopicSettings},
};
use crate::{
    actor::ConnId,
    proto::{Message, PreparedMessage},
    settings::{DeflateSettings, HubSettings, Settings},
};

/// Whether [`HubInner::with_live_topic`] makes an absent topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Make {
    /// Never (`None`).
    No,
    /// Always (a join).
    Yes,
    /// When its namespace keeps publications (a history, or a cache): a
    /// publication to it is kept with no member. A topic of no namespace is
    /// not made.
    IfKept,
}

/// A hub's state, shared by its handles, its shards and its backplane's task.
pub(super) struct HubInner {
    pub(super) name: String,
    pub(super) settings: HubSettings,
    pub(super) deflate: DeflateSettings,
    pub(super) topics: Mutex<HashMap<Arc<str>, Arc<Topic>>>,
    pub(super) shards: Mutex<Vec<ShardHandle>>,
    pub(super) conns: Mutex<Conns>,
    pub(super) presence: Listeners,
    pub(super) backplane: Mutex<Option<Arc<dyn Backplane>>>,
    pub(super) renderer: Mutex<Option<Arc<Renderer>>>,
    /// Topic policies by name, read when a topic is made.
    pub(super) namespaces: Mutex<Namespaces>,
    /// Who may join, publish, see presence (`None`: everyone).
    pub(super) authorizer: Mutex<Option<Arc<dyn Authorizer>>>,
    pub(super) histories: Histories,
    pub(super) metrics: HubCounters,
}

/// The connection manager: topics, presence, publish-once fan-out, slow-consumer
/// policies, history and recovery, metrics. A `Clone + Send` handle; several hubs
/// may live in one process.
///
/// - **Connections**: a connection is known to the hub from its first use
///   ([`register`](Self::register) with its user, or a join) until it closes,
///   member of a topic or not: reached by id ([`send_to`](Self::send_to)), by
///   user ([`send_to_user`](Self::send_to_user), [`connections_of`](Self::connections_of)),
///   or all together ([`broadcast`](Self::broadcast)).
/// - **Join and leave** topics ([`join`](Self::join), [`join_with`](Self::join_with):
///   a user key for presence, metadata, a position to recover from;
///   [`leave`](Self::leave)); a connection leaves everything when it closes.
/// - **Publish** to a topic ([`publish`](Self::publish), [`publish_except`](Self::publish_except)
///   the sender, [`publish_with`](Self::publish_with) to put the publication's
///   position in the message). A publication is framed (and, with
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
///   for topics with presence on, each with the connection that joined or left,
///   to an actor ([`on_presence`](Self::on_presence)) or a closure
///   ([`on_presence_fn`](Self::on_presence_fn)).
/// - **History and recovery**: a topic with a history ([`configure`](Self::configure))
///   keeps its latest publications; a connection that comes back with the
///   [`Position`] of the last one it received gets exactly what it missed, in
///   order, before any later publication, or is told it was not recovered.
/// - **Cache topics** ([`TopicSettings::cache`]): each joiner gets the newest
///   publication right after its answer.
/// - **Namespaces** ([`set_namespace`](Self::set_namespace), `[hub.namespaces]`):
///   a topic policy per name pattern (the exact name, else the longest prefix),
///   resolved when a topic is made.
/// - **Authorization** ([`set_authorizer`](Self::set_authorizer)): joins,
///   client publications ([`publish_from`](Self::publish_from)) and presence
///   ([`members_for`](Self::members_for)) allowed or denied with a reason, at
///   once or by a future ([`join_async`](Self::join_async)).
/// - **Bounds** on every table and queue ([`HubSettings`]): topics per connection,
///   members per topic, connections per user, the lengths of topic names, user
///   keys and metadata (a join past one is refused with its [`JoinError`]),
///   history bytes per topic and in all (the oldest evicted first), publications
///   queued per thread (past it the subscribers that miss one get the
///   slow-consumer policy). A sweep
///   every second drops expired history and forgets topics left with nothing.
/// - **Metrics** in [`crate::metrics`] (`ws_hub_*{hub="NAME"}`), every
///   publication that reaches no member here counted (`ws_hub_unrouted_total`).
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
    pub(super) inner: Arc<HubInner>,
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
            conns: Mutex::new(Conns::default()),
            presence: Listeners::default(),
            backplane: Mutex::new(None),
            renderer: Mutex::new(None),
            namespaces: Mutex::new(Namespaces::from_settings(&settings.hub)),
            authorizer: Mutex::new(None),
            histories: Histories::default(),
            metrics: HubCounters::new(),
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
}

impl HubInner {
    /// Queue `cmd` on `shard`: a publication only within the shard's bound
    /// (past it, noted as missed and counted in `ws_hub_queue_full_total`).
    pub(super) fn send(&self, shard: usize, cmd: Cmd) {
        let shards = lock(&self.shards);
        let Some(handle) = shards.get(shard) else {
            return;
        };
        if !handle.send(cmd, self.settings.max_queued_per_thread) {
            self.metrics.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `message` framed once for `settings`' policy, numbered `offset` in `epoch`
    /// (0 and `None`: unnumbered).
    pub(super) fn delivery(
        &self,
        message: Message,
        settings: &TopicSettings,
        offset: u64,
        epoch: Option<Arc<str>>,
    ) -> Arc<Delivery> {
        self.metrics.encodes.fetch_add(1, Ordering::Relaxed);
        Arc::new(Delivery {
            prepared: PreparedMessage::new(message, &self.deflate),
            policy: Policy {
                budget_bytes: settings.send_budget_bytes,
                budget_messages: settings.send_budget_messages.max(1),
                slow_consumer: settings.slow_consumer,
                close_code: settings.slow_close_code,
                conflation_keys: settings.conflation_keys.max(1),
            },
            offset,
            epoch,
            key: None,
        })
    }

    /// The renderer's message for `position` (the message itself without one);
    /// `None` when the renderer panicked (counted and logged).
    pub(super) fn render(
        &self,
        topic: &str,
        position: &Position,
        message: Message,
    ) -> Option<Message> {
        match lock(&self.renderer).clone() {
            Some(render) => self.guarded("renderer", topic, || render(topic, position, message)),
            None => Some(message),
        }
    }

    /// Run an application's callback (`what`, for `topic`); a panic in it is
    /// caught, counted (`ws_hub_callback_panics_total`) and logged: it never
    /// unwinds through the hub, or the thread of the backplane that called it.
    pub(super) fn guarded<T>(&self, what: &str, topic: &str, f: impl FnOnce() -> T) -> Option<T> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(value) => Some(value),
            Err(_) => {
                self.metrics.callback_panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!(hub = %self.name, %topic, "the {what} panicked");
                None
            }
        }
    }

    /// Count a publication that found no member here; returns 0 (shards).
    pub(super) fn unrouted(&self) -> usize {
        self.metrics.unrouted.fetch_add(1, Ordering::Relaxed);
        0
    }

    /// Whether `name` can be a topic's (see [`Hub::check_topic`]).
    pub(super) fn check_topic(&self, name: &str) -> Result<(), JoinError> {
        if name.len() > self.settings.max_topic_bytes {
            return Err(JoinError::TopicTooLong {
                limit: self.settings.max_topic_bytes,
            });
        }
        // A Redis cluster places a key by the part of its name between braces (its
        // hash tag): a brace in a topic's name would split the topic's keys across
        // nodes, and an empty name makes an empty tag.
        if name.is_empty() || name.bytes().any(|b| b == b'{' || b == b'}') {
            return Err(JoinError::InvalidTopic);
        }
        Ok(())
    }

    /// The settings a new topic `name` gets: its namespace's, or the hub's
    /// defaults.
    pub(super) fn settings_for(&self, name: &str) -> TopicSettings {
        lock(&self.namespaces).resolve(name).map_or_else(
            || TopicSettings::from(&self.settings),
            |ns| ns.settings.clone(),
        )
    }

    /// The namespace of topic `name`, if any.
    pub(super) fn namespace_of(&self, name: &str) -> Option<Arc<str>> {
        lock(&self.namespaces)
            .resolve(name)
            .map(|ns| ns.name.clone())
    }

    /// Run `f` on the live topic `name` under its lock, made when absent as
    /// `make` says (`None`: no such topic). A topic met after its removal is
    /// fetched again: `f` never sees a removed topic.
    pub(super) fn with_live_topic<R>(
        &self,
        name: &str,
        make: Make,
        f: impl FnOnce(&Arc<Topic>, &mut TopicState) -> R,
    ) -> Option<R> {
        loop {
            let topic = {
                let mut topics = lock(&self.topics);
                match topics.get(name) {
                    Some(t) => t.clone(),
                    None if make != Make::No => {
                        let settings = match make {
                            Make::IfKept => lock(&self.namespaces)
                                .resolve(name)
                                .map(|ns| ns.settings.clone())
                                .filter(|s| s.kept() > 0)?,
                            _ => self.settings_for(name),
                        };
                        let name: Arc<str> = name.into();
                        let topic = Arc::new(Topic::new(name.clone(), settings, false));
                        topics.insert(name, topic.clone());
                        topic
                    }
                    None => return None,
                }
            };
            sched::point("topic fetched");
            let mut state = topic.lock();
            if state.life == Life::Removed {
                continue;
            }
            return Some(f(&topic, &mut state));
        }
    }

    /// Forget `topic` if it is idle (no member, nothing kept, not configured):
    /// under the table's lock, then the topic's.
    pub(super) fn remove_if_idle(&self, topic: &Arc<Topic>) {
        sched::point("removing");
        let mut topics = lock(&self.topics);
        let mut state = topic.lock();
        if !state.is_idle() {
            return;
        }
        if topics
            .get(&topic.name)
            .is_some_and(|t| Arc::ptr_eq(t, topic))
        {
            topics.remove(&topic.name);
        }
        state.life = Life::Removed;
    }

    /// A presence change of this server's (under the topic's lock: in order):
    /// told to the listeners, or, when a backplane shares presence, to it (it
    /// decides what is a first join or a last leave across servers, and that
    /// comes back through `Hub::deliver_presence`).
    pub(super) fn presence(
        &self,
        topic: &str,
        user: &str,
        meta: &Option<Arc<str>>,
        kind: PresenceKind,
        conn: ConnId,
    ) {
        if let Some(backplane) = lock(&self.backplane)
            .clone()
            .filter(|b| b.shares_presence())
        {
            backplane.presence_changed(topic, user, meta.as_deref(), kind);
            return;
        }
        self.report_presence(topic, user, meta, kind, Some(conn));
    }

    /// Tell the presence listeners (under the topic's lock: in order).
    pub(super) fn report_presence(
        &self,
        topic: &str,
        user: &str,
        meta: &Option<Arc<str>>,
        kind: PresenceKind,
        conn: Option<ConnId>,
    ) {
        if !self.presence.any() {
            return;
        }
        let presence = Presence {
            topic: topic.to_owned(),
            user: user.to_owned(),
            meta: meta.as_deref().map(str::to_owned),
            kind,
            conn,
        };
        self.presence.tell(presence, &self.name);
    }
}
