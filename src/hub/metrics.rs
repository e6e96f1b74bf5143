//! The hub's part of the metrics (`ws_hub_*{hub="NAME"}`).

use std::sync::atomic::Ordering;

use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
};

use super::{
    inner::{Hub, HubInner},
    sync::lock,
};

impl Hub {
    /// Frames prepared (encoded, compressed when configured) so far: one per
    /// publication, whatever the number of subscribers.
    pub fn encodes(&self) -> u64 {
        self.inner.metrics.encodes.load(Ordering::Relaxed)
    }

    /// Deliveries so far: publications written into subscribers' send buffers.
    pub fn deliveries(&self) -> u64 {
        self.inner.metrics.deliveries.load(Ordering::Relaxed)
    }

    /// Publications dropped for slow subscribers
    /// ([`SlowConsumer::Drop`](crate::SlowConsumer::Drop)).
    pub fn dropped(&self) -> u64 {
        self.inner.metrics.dropped.load(Ordering::Relaxed)
    }

    /// Publications a slow subscriber never got because a newer one replaced
    /// them ([`SlowConsumer::Latest`](crate::SlowConsumer::Latest)).
    pub fn conflated(&self) -> u64 {
        self.inner.metrics.conflated.load(Ordering::Relaxed)
    }

    /// Subscribers closed for being slow
    /// ([`SlowConsumer::Close`](crate::SlowConsumer::Close)).
    pub fn slow_closes(&self) -> u64 {
        self.inner.metrics.slow_closes.load(Ordering::Relaxed)
    }

    /// Deliveries compressed again for one connection (its permessage-deflate
    /// agreement could not take the frame compressed once).
    pub fn recompressions(&self) -> u64 {
        self.inner.metrics.recompressions.load(Ordering::Relaxed)
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
        let (connections, event_streams) = {
            let conns = lock(&self.conns);
            (conns.len(), conns.event_streams())
        };
        for (name, help, value) in [
            (
                "ws_hub_connections",
                "Connections in the hub (event streams included)",
                connections,
            ),
            (
                "ws_hub_event_streams",
                "Event streams (Server-Sent Events) in the hub",
                event_streams,
            ),
            ("ws_hub_topics", "Topics of the hub", topics),
            ("ws_hub_subscriptions", "Topic memberships", subscriptions),
            (
                "ws_hub_history_bytes",
                "Bytes of history kept, all topics together",
                self.histories.bytes.load(Ordering::Relaxed),
            ),
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
                "ws_hub_conflated",
                "Publications a slow subscriber never got: a newer one replaced them (slow_consumer = latest)",
                &m.conflated,
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
            (
                "ws_hub_unrouted",
                "Publications that found no member of their topic on this server",
                &m.unrouted,
            ),
            (
                "ws_hub_callback_panics",
                "Panics caught in the application's callbacks (renderer, on_joined, presence closures)",
                &m.callback_panics,
            ),
            (
                "ws_hub_presence_dropped",
                "Presence changes not given to the presence closures: their queue was full",
                &self.presence.dropped,
            ),
            (
                "ws_hub_history_evicted",
                "Publications evicted from a topic's history for the hub's bound on history bytes",
                &m.history_evicted,
            ),
            (
                "ws_hub_joins_refused",
                "Joins refused for a bound (topic name, user key, metadata, topics per connection, members per topic)",
                &m.joins_refused,
            ),
            (
                "ws_hub_publications_refused",
                "Publications not made: their topic's name can be no topic's",
                &m.publications_refused,
            ),
            (
                "ws_hub_queue_full",
                "Publications not queued for a worker thread whose queue was full (its subscribers got the slow-consumer policy)",
                &m.queue_full,
            ),
        ] {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value.load(Ordering::Relaxed))
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
