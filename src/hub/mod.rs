//! The connection manager: [`Hub`], topics with presence, publish-once fan-out on
//! each connection's own thread, slow-consumer policies, history and recovery,
//! metrics, and the seam for a cross-server backplane ([`Backplane`]).

mod backplane;
mod dispatch;
mod history;
mod membership;
mod metrics;
mod presence;
mod publish;
#[cfg(feature = "redis")]
pub mod redis;
mod sched;
mod shard;
mod subscribers;
#[cfg(test)]
mod tests;
mod topic;
mod types;

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
};

use actix::Recipient;

pub(crate) use self::publish::Delivery;
pub use self::{
    backplane::{Backplane, Located, Publication, WeakHub},
    types::{
        JoinError, JoinOptions, Joined, Member, OnJoined, Position, Presence, PresenceKind,
        Published, ReadyStateCounts, Renderer, TopicSettings, UserMeta,
    },
};
use self::{
    dispatch::{ConnEntry, ShardHandle},
    history::Histories,
    metrics::HubCounters,
    topic::{Life, Topic},
};
use crate::{
    actor::ConnId,
    proto::ReadyState,
    settings::{DeflateSettings, HubSettings, Settings},
};

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
    histories: Histories,
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
/// - **Bounds** on every table and queue ([`HubSettings`]): topics per connection,
///   members per topic, the lengths of topic names, user keys and metadata (a
///   join past one is refused with its [`JoinError`]), history bytes per topic
///   and in all (the oldest evicted first), publications queued per thread (past
///   it the subscribers that miss one get the slow-consumer policy). A sweep
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
    inner: Arc<HubInner>,
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

    /// Plug in a cross-server backplane; see [`Backplane`].
    pub fn set_backplane(&self, backplane: Arc<dyn Backplane>) {
        *lock(&self.inner.backplane) = Some(backplane.clone());
        // Topics with members already: the backplane learns them now, each under
        // the topic's lock (a join or leave that runs meanwhile tells it the next
        // decision, after this one).
        let topics: Vec<Arc<Topic>> = lock(&self.inner.topics).values().cloned().collect();
        for topic in topics {
            let state = topic.lock();
            if state.life == Life::Removed || state.members.is_empty() {
                continue;
            }
            backplane.subscribe(&topic.name, state.generation);
            if backplane.shares_presence() && state.settings.presence {
                for (user, meta) in state.user_metas() {
                    backplane.presence_changed(
                        &topic.name,
                        &user,
                        meta.as_deref(),
                        PresenceKind::Joined,
                    );
                }
            }
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
