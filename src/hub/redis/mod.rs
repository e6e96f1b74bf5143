//! The Redis backplane: hubs on several servers act as one.
//!
//! - **Delivery**: a publication runs one Lua script on Redis that numbers it (an
//!   epoch per topic and an offset that goes up by one), keeps it in the topic's
//!   stream and publishes it on the topic's channel (`PUBLISH`, or `SPUBLISH` with
//!   sharded pub/sub), all at once: every server, this one included, receives the
//!   topic's publications in offset order through its one subscription
//!   connection, and delivers them with `Hub::deliver_numbered`, framed once per
//!   server. The envelope names the server that published (the origin), so that
//!   the sender's own connection is skipped there, and only there.
//! - **Subscriptions** follow the hub's decisions, each stamped with a
//!   generation: one state per topic (unsubscribed, subscribing, subscribed,
//!   unsubscribing), one command on its way per topic, stale decisions and
//!   answers told apart, failed commands tried again, and a periodic
//!   reconciliation with [`Hub::subscriptions`] that repairs any difference
//!   (counted). Messages for a topic no longer wanted are dropped (counted).
//! - **Recovery** (`locate`): once this server is subscribed to the topic, a
//!   script returns the topic's position and, for a `since`, every entry after it
//!   from the stream, or nothing when the stream no longer reaches back (never a
//!   partial recovery).
//! - **Gaps**: each topic's deliveries are followed by offset. A jump (the
//!   subscription fell behind) or a reconnection of the subscription has what went
//!   by unseen taken from the stream and delivered in its place, with what arrives
//!   meanwhile held back (`filled`; `lost` counts what the stream no longer had).
//! - **Presence** across servers: see the `presence` part; a stop takes this
//!   server's users out at once.
//! - **Faults**: a publication Redis does not take (unreachable, answering an
//!   error, more than `max_in_flight` queued or on their way, the backplane's task
//!   down) is delivered on this server only, numbered in the hub's own local
//!   epoch, and counted as dropped for the others; a client that recovers across
//!   such a gap is told `recovered: false`. The connections reconnect with
//!   back-off and the subscriptions are made again.
//! - **Supervision**: the backplane runs on a thread of its own (a tokio runtime),
//!   so that the actix workers never wait for Redis. If its task panics or ends,
//!   it is started again (counted in `restarts`, logged), subscribed again to what
//!   the hub wants and its presence announced again; meanwhile publications are
//!   delivered here and counted as dropped, and joins are answered from here.
//!   Code of the hub's that runs on it (a renderer, a join's answer) runs under
//!   `catch_unwind` (a panic is counted in `panics`).
//! - **Bounded state**: every key the backplane writes in Redis has a time to
//!   live (`topic_ttl` for a topic's numbering and history, `presence_keys_ttl`
//!   for presence, refreshed by live servers) or is removed when emptied; topic
//!   names are escaped into their cluster hash tag (a name with braces keeps its
//!   keys in one slot).
//!
//! [`RedisBackplane::stop`] ends it cleanly.

mod conns;
mod counters;
mod events;
mod keys;
mod ordering;
mod own;
mod presence;
mod publish;
mod reply;
mod scripts;
mod shared;
mod subscriptions;
mod supervisor;
mod task;
#[cfg(test)]
mod tests;

use std::{
    sync::{
        atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

pub use conns::RedisError;
pub use counters::BackplaneStats;
use fred::prelude::Config;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::{
    hub::{
        backplane::{Backplane, Publication},
        inner::Hub,
        types::{Position, PresenceKind},
    },
    settings::RedisSettings,
};
use counters::{add, Counters};
use events::Ask;
use shared::{lock, LocateDone, Pending, Shared, DOWN, STARTING, STOPPING, UP};
use supervisor::Supervisor;

/// The Redis backplane of a [`Hub`]: see the [module docs](self). Made with
/// [`RedisBackplane::start`], which plugs it into the hub; ended with
/// [`RedisBackplane::stop`].
pub struct RedisBackplane {
    settings: RedisSettings,
    origin: u64,
    asks: mpsc::UnboundedSender<Ask>,
    pubs: mpsc::UnboundedSender<Publication>,
    shared: Arc<Shared>,
    hub_name: String,
    finished: Mutex<Option<oneshot::Receiver<()>>>,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("url", &crate::settings::redact::Url(&self.settings.url))
            .field("origin", &self.origin)
            .field("prefix", &self.settings.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBackplane {
    /// Check `settings` ([`RedisSettings::check`]), connect to Redis
    /// (`settings.url`), plug the backplane into `hub`, and return it. It runs on
    /// a thread of its own; it reconnects, and restarts, by itself.
    ///
    /// ```no_run
    /// use websocket_driver as ws;
    /// use ws::hub::redis::RedisBackplane;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut settings = ws::Settings::default();
    /// settings.redis.url = "redis://127.0.0.1:6379".into();
    /// let hub = ws::Hub::with_settings(&settings);
    /// let backplane = RedisBackplane::start(&hub, settings.redis.clone()).await?;
    /// // Publications on `hub` now reach every server's subscribers, in one order.
    /// hub.publish("lobby", "hello");
    /// // At shutdown: what is queued goes out (for up to a second), this server's
    /// // users leave every topic at once.
    /// backplane.stop(std::time::Duration::from_secs(1)).await;
    /// # Ok(()) }
    /// ```
    pub async fn start(
        hub: &Hub,
        settings: RedisSettings,
    ) -> Result<Arc<RedisBackplane>, RedisError> {
        settings.check()?;
        let config =
            Config::from_url(&settings.url).map_err(|e| RedisError::Config(e.to_string()))?;
        let origin = rand::random::<u64>() | 1;
        let (asks, asks_rx) = mpsc::unbounded_channel();
        let (pubs, pubs_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            state: AtomicU8::new(STARTING),
            in_flight: AtomicUsize::new(0),
            awaiting: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
            own: Mutex::new(own::Own::default()),
            orphans: Mutex::new(Vec::new()),
            stop: Notify::new(),
            hub: hub.downgrade(),
        });
        let (ready_tx, ready) = oneshot::channel();
        let (finished_tx, finished) = oneshot::channel();
        let supervisor = Supervisor {
            config,
            settings: settings.clone(),
            origin,
            shared: shared.clone(),
            asks: asks_rx,
            pubs: pubs_rx,
            ready: Some(ready_tx),
        };
        std::thread::Builder::new()
            .name("ws-redis".into())
            .spawn(move || supervisor.run(finished_tx))
            .map_err(|e| RedisError::Config(e.to_string()))?;
        ready
            .await
            .map_err(|_| RedisError::Connect("the backplane's thread ended".into()))??;
        let backplane = Arc::new(RedisBackplane {
            settings,
            origin,
            asks,
            pubs,
            shared,
            hub_name: hub.name().to_owned(),
            finished: Mutex::new(Some(finished)),
        });
        hub.set_backplane(backplane.clone());
        // The same allocation as the hub's: reported while the hub holds it.
        let metrics: Arc<dyn crate::metrics::HubMetrics> = backplane.clone();
        crate::metrics::register_hub(Arc::downgrade(&metrics));
        Ok(backplane)
    }

    /// Stop the backplane: publications made from now on are delivered on this
    /// server only (and counted as dropped); those already queued are sent to
    /// Redis and answered for up to `drain` (those still on their way then are
    /// counted as abandoned); the joins waiting are answered; this server's
    /// subscriptions end and its users leave every topic's presence at once (the
    /// other servers are told now, not after `presence_ttl`); the connections
    /// close and the backplane's thread ends. Returns once it has (or after
    /// `drain` and a few seconds more, if Redis does not answer). Calling it again
    /// does nothing.
    pub async fn stop(&self, drain: Duration) {
        self.shared.set_state_from(&[STARTING, UP, DOWN], STOPPING);
        let _ = self.asks.send(Ask::Stop(drain));
        self.shared.stop.notify_one();
        let finished = lock(&self.finished).take();
        if let Some(finished) = finished {
            let limit = drain.saturating_add(Duration::from_secs(20));
            if tokio::time::timeout(limit, finished).await.is_err() {
                tracing::warn!("the redis backplane did not stop in time");
            }
        }
    }

    /// Everything counted so far.
    pub fn stats(&self) -> BackplaneStats {
        self.shared.counters.stats()
    }

    /// Publications Redis did not take, delivered on this server only.
    pub fn dropped(&self) -> u64 {
        self.stats().dropped
    }

    /// Publications received from Redis (this server's own included).
    pub fn received(&self) -> u64 {
        self.stats().received
    }

    /// Publications the subscription missed and that were taken from the
    /// topic's stream instead, in their place.
    pub fn filled(&self) -> u64 {
        self.stats().filled
    }

    /// Publications the subscription missed that the stream no longer had (a
    /// topic without history, or one trimmed past them).
    pub fn lost(&self) -> u64 {
        self.stats().lost
    }

    /// Reconnections to Redis so far.
    pub fn reconnects(&self) -> u64 {
        self.stats().reconnects
    }

    /// Whether the backplane's task is connected and serving (not starting,
    /// restarting or stopped).
    pub fn is_up(&self) -> bool {
        self.shared.state() == UP
    }

    /// Make the backplane's task panic (a test of its supervision).
    #[cfg(test)]
    fn crash(&self) {
        let _ = self.asks.send(Ask::Crash);
    }

    /// Deliver here only, counted as dropped for the others.
    fn drop_here(&self, publication: Publication, reason: &std::sync::atomic::AtomicU64) {
        add(&self.shared.counters.dropped, 1);
        add(reason, 1);
        if let Some(hub) = self.shared.hub.upgrade() {
            hub.publish_local(&publication.topic, publication.message, publication.except);
        }
    }
}

impl Backplane for RedisBackplane {
    fn publish(&self, publication: Publication) {
        let c = &self.shared.counters;
        if self.shared.state() != UP {
            return self.drop_here(publication, &c.dropped_while_down);
        }
        // Everything queued or on its way counts.
        let before = self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.settings.max_in_flight {
            self.shared.release(1);
            return self.drop_here(publication, &c.dropped_over_limit);
        }
        if let Err(mpsc::error::SendError(publication)) = self.pubs.send(publication) {
            self.shared.release(1);
            self.drop_here(publication, &c.dropped_while_down);
        }
    }

    fn subscribe(&self, topic: &str, generation: u64) {
        let _ = self.asks.send(Ask::Subscribe(topic.to_owned(), generation));
    }

    fn unsubscribe(&self, topic: &str, generation: u64) {
        let _ = self
            .asks
            .send(Ask::Unsubscribe(topic.to_owned(), generation));
    }

    fn numbers(&self) -> bool {
        true
    }

    fn locate(&self, topic: &str, since: Option<Position>, done: LocateDone) {
        if self.shared.state() != UP {
            // Nothing to wait for: answered from here.
            return self.shared.answer_here(topic, done);
        }
        let pending = Pending {
            topic: topic.to_owned(),
            done: Some(done),
            shared: self.shared.clone(),
        };
        if let Err(mpsc::error::SendError(Ask::Locate(pending, _))) =
            self.asks.send(Ask::Locate(pending, since))
        {
            pending.answer_here();
        }
    }

    fn shares_presence(&self) -> bool {
        true
    }

    fn presence_changed(&self, topic: &str, user: &str, meta: Option<&str>, kind: PresenceKind) {
        let _ = self.asks.send(Ask::Presence(
            topic.to_owned(),
            user.to_owned(),
            meta.map(str::to_owned),
            kind,
        ));
    }
}

impl crate::metrics::HubMetrics for RedisBackplane {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        self.shared.counters.encode(&self.hub_name, encoder)
    }
}
