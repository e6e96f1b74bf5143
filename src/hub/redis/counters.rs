//! The backplane's counters: read with [`RedisBackplane::stats`](super::RedisBackplane::stats)
//! and served as Prometheus metrics (`ws_backplane_*`, labelled with the hub's
//! name).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
};

/// What the backplane counted so far ([`RedisBackplane::stats`](super::RedisBackplane::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackplaneStats {
    /// Publications Redis took (counted when it answered).
    pub published: u64,
    /// Publications received from Redis (this server's own included).
    pub received: u64,
    /// Publications Redis did not take, delivered on this server only (all
    /// reasons: those below, Redis answering an error, their connection closed
    /// before the answer came, made while the connection was being made again
    /// and not written within `command_timeout`, and not answered within it
    /// with the connection seen out). Redis may carry one out all the same
    /// (its answer lost with its connection, or, held unwritten by the client,
    /// written once the connection is back): then it reaches the others
    /// through Redis and is delivered once here (see `duplicates_avoided`).
    pub dropped: u64,
    /// Of `dropped`: over `max_in_flight` (everything queued or on its way).
    pub dropped_over_limit: u64,
    /// Of `dropped`: made while the backplane's task was down (restarting or
    /// stopped).
    pub dropped_while_down: u64,
    /// Publications Redis did not answer (its connection closed first) but had
    /// carried out: they came back through Redis and were delivered once, not
    /// again on this server in their place; or, delivered here first, their
    /// copy from Redis was not delivered.
    pub duplicates_avoided: u64,
    /// Publications on their way to Redis when the backplane's task restarted or
    /// stopped: whether Redis took them is unknown (not delivered here). The
    /// only publications whose fate is not known: while the task runs, each one
    /// is counted in `published` or in `dropped` once its answer came.
    pub abandoned: u64,
    /// Publications Redis did not answer within `command_timeout` on a live
    /// connection (Redis slow, or the connection's queue behind), counted when
    /// the time passed: each is still awaited and counted in `published` or
    /// `dropped` once answered (never given up on: a command the client gives
    /// up on may or may not have been written).
    pub slow: u64,
    /// Publications the subscription missed and that were taken from the
    /// topic's stream instead, in their place.
    pub filled: u64,
    /// Publications the subscription missed that the stream no longer had (a
    /// topic without history, or one trimmed past them).
    pub lost: u64,
    /// Times a topic's numbering started again in Redis (its keys expired, or
    /// Redis lost them): what came between is unknown.
    pub resets: u64,
    /// Reconnections to Redis.
    pub reconnects: u64,
    /// Restarts of the backplane's task (after a panic or an unexpected end).
    pub restarts: u64,
    /// Panics of code run on the backplane's task for the hub (a renderer, a
    /// join's answer), caught.
    pub panics: u64,
    /// Subscribe and unsubscribe decisions older than one already applied.
    pub stale_asks: u64,
    /// Answers to a subscription command that was not the one on its way.
    pub stale_confirmations: u64,
    /// Subscription commands that failed (each tried again after a back-off).
    pub subscription_failures: u64,
    /// Differences between the hub's topics and the subscriptions, repaired by
    /// the periodic reconciliation.
    pub reconciled: u64,
    /// Messages for topics this server does not want (any more), dropped.
    pub unwanted: u64,
    /// Messages from Redis that could not be read, dropped.
    pub malformed: u64,
    /// Presence changes (a user joining or leaving a topic here) that could not
    /// be written in Redis after 20 tries with back-off: the others learn of them
    /// only when the keys' time to live (`presence_keys_ttl`) ends.
    pub presence_unannounced: u64,
    /// Topics subscribed now.
    pub subscriptions: u64,
}

/// The counters, shared by the backplane's handle and its task.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub published: AtomicU64,
    pub received: AtomicU64,
    pub dropped: AtomicU64,
    pub dropped_over_limit: AtomicU64,
    pub dropped_while_down: AtomicU64,
    pub duplicates_avoided: AtomicU64,
    pub abandoned: AtomicU64,
    pub slow: AtomicU64,
    pub filled: AtomicU64,
    pub lost: AtomicU64,
    pub resets: AtomicU64,
    pub reconnects: AtomicU64,
    pub restarts: AtomicU64,
    pub panics: AtomicU64,
    pub stale_asks: AtomicU64,
    pub stale_confirmations: AtomicU64,
    pub subscription_failures: AtomicU64,
    pub reconciled: AtomicU64,
    pub unwanted: AtomicU64,
    pub malformed: AtomicU64,
    pub presence_unannounced: AtomicU64,
    pub subscriptions: AtomicU64,
}

/// `counter += n`.
pub(super) fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Counters {
    pub fn stats(&self) -> BackplaneStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BackplaneStats {
            published: r(&self.published),
            received: r(&self.received),
            dropped: r(&self.dropped),
            dropped_over_limit: r(&self.dropped_over_limit),
            dropped_while_down: r(&self.dropped_while_down),
            duplicates_avoided: r(&self.duplicates_avoided),
            abandoned: r(&self.abandoned),
            slow: r(&self.slow),
            filled: r(&self.filled),
            lost: r(&self.lost),
            resets: r(&self.resets),
            reconnects: r(&self.reconnects),
            restarts: r(&self.restarts),
            panics: r(&self.panics),
            stale_asks: r(&self.stale_asks),
            stale_confirmations: r(&self.stale_confirmations),
            subscription_failures: r(&self.subscription_failures),
            reconciled: r(&self.reconciled),
            unwanted: r(&self.unwanted),
            malformed: r(&self.malformed),
            presence_unannounced: r(&self.presence_unannounced),
            subscriptions: r(&self.subscriptions),
        }
    }

    /// The Prometheus families, labelled `hub="NAME"`.
    pub fn encode(
        &self,
        hub: &str,
        encoder: &mut DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let labels = [("hub", hub)];
        let s = self.stats();
        for (name, help, value) in [
            ("ws_backplane_published", "Publications Redis took", s.published),
            ("ws_backplane_received", "Publications received from Redis", s.received),
            (
                "ws_backplane_dropped",
                "Publications Redis did not take (an error, the connection closed or out, too many queued, or the backplane down), delivered on this server only",
                s.dropped,
            ),
            (
                "ws_backplane_dropped_over_limit",
                "Publications dropped because max_in_flight were queued or on their way",
                s.dropped_over_limit,
            ),
            (
                "ws_backplane_dropped_while_down",
                "Publications dropped while the backplane's task was down",
                s.dropped_while_down,
            ),
            (
                "ws_backplane_duplicates_avoided",
                "Publications of this server's Redis carried out but did not answer, delivered once",
                s.duplicates_avoided,
            ),
            (
                "ws_backplane_abandoned",
                "Publications on their way to Redis when the backplane's task restarted or stopped: whether Redis took them is unknown",
                s.abandoned,
            ),
            (
                "ws_backplane_slow",
                "Publications Redis did not answer within command_timeout on a live connection, still awaited",
                s.slow,
            ),
            (
                "ws_backplane_filled",
                "Publications the subscription missed, taken from the topic's stream",
                s.filled,
            ),
            (
                "ws_backplane_lost",
                "Publications the subscription missed that the stream no longer had",
                s.lost,
            ),
            (
                "ws_backplane_resets",
                "Times a topic's numbering started again in Redis",
                s.resets,
            ),
            ("ws_backplane_reconnects", "Reconnections to Redis", s.reconnects),
            (
                "ws_backplane_restarts",
                "Restarts of the backplane's task after a panic or an unexpected end",
                s.restarts,
            ),
            (
                "ws_backplane_panics",
                "Panics of hub code run on the backplane's task (a renderer, a join's answer), caught",
                s.panics,
            ),
            (
                "ws_backplane_stale_asks",
                "Subscribe and unsubscribe decisions older than one already applied, ignored",
                s.stale_asks,
            ),
            (
                "ws_backplane_stale_confirmations",
                "Answers to a subscription command that was not the one on its way",
                s.stale_confirmations,
            ),
            (
                "ws_backplane_subscription_failures",
                "Subscription commands that failed, each tried again after a back-off",
                s.subscription_failures,
            ),
            (
                "ws_backplane_reconciled",
                "Differences between the hub's topics and the subscriptions, repaired",
                s.reconciled,
            ),
            (
                "ws_backplane_unwanted",
                "Messages for topics this server does not want, dropped",
                s.unwanted,
            ),
            (
                "ws_backplane_malformed",
                "Messages from Redis that could not be read, dropped",
                s.malformed,
            ),
            (
                "ws_backplane_presence_unannounced",
                "Presence changes that could not be written in Redis after every try, left to the keys' time to live",
                s.presence_unannounced,
            ),
        ] {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(e.encode_family(&labels)?)?;
        }
        let mut e = encoder.encode_descriptor(
            "ws_backplane_subscriptions",
            "Topics this server is subscribed to in Redis",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(s.subscriptions).unwrap_or(i64::MAX))
            .encode(e.encode_family(&labels)?)?;
        Ok(())
    }
}
