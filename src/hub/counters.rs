//! The counters a hub keeps (its metrics, `ws_hub_*`, are encoded in `metrics`).

use std::sync::{atomic::AtomicU64, Arc};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// The counters a hub keeps.
#[derive(Debug)]
pub(super) struct HubCounters {
    pub(super) publications: AtomicU64,
    pub(super) deliveries: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) conflated: AtomicU64,
    pub(super) slow_closes: AtomicU64,
    pub(super) encodes: AtomicU64,
    pub(super) recompressions: AtomicU64,
    pub(super) backplane_published: AtomicU64,
    pub(super) remote_delivered: AtomicU64,
    pub(super) unrouted: AtomicU64,
    /// Shared with the presence thread.
    pub(super) callback_panics: Arc<AtomicU64>,
    pub(super) history_evicted: AtomicU64,
    pub(super) joins_refused: AtomicU64,
    pub(super) publications_refused: AtomicU64,
    pub(super) queue_full: AtomicU64,
    pub(super) fanout: Histogram,
}

impl HubCounters {
    pub(super) fn new() -> HubCounters {
        HubCounters {
            publications: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            conflated: AtomicU64::new(0),
            slow_closes: AtomicU64::new(0),
            encodes: AtomicU64::new(0),
            recompressions: AtomicU64::new(0),
            backplane_published: AtomicU64::new(0),
            remote_delivered: AtomicU64::new(0),
            unrouted: AtomicU64::new(0),
            callback_panics: Arc::default(),
            history_evicted: AtomicU64::new(0),
            joins_refused: AtomicU64::new(0),
            publications_refused: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            // 1 µs to about 1 s.
            fanout: Histogram::new(exponential_buckets(0.000_001, 4.0, 11)),
        }
    }
}
