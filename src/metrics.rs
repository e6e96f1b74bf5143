//! Metrics in the Prometheus text format, through the `prometheus-client` crate:
//! what the connections and every [`Hub`](crate::Hub) of the process count.
//!
//! [`encode_text`] returns the text any route can serve at `/metrics`;
//! [`collector`] plugs the same metrics into a `prometheus_client` registry of the
//! application's own.
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `ws_connections{state}` | gauge | open connections by ready-state (`connecting`, `open`, `closing`, `closed`) |
//! | `ws_messages_received_total`, `ws_received_bytes_total` | counter | whole messages and their payload bytes received |
//! | `ws_messages_sent_total`, `ws_sent_bytes_total` | counter | frames queued by the application or a hub, and bytes handed to the transport |
//! | `ws_closes_total{code}` | counter | connections closed, by close code |
//! | `ws_ping_rtt_seconds` | histogram | round-trip time of pings (keep-alive and `Conn::send_ping`) |
//! | `ws_handshakes_refused_total{reason}` | counter | opening handshakes a server refused: `origin` (not the server's own nor listed), `version` (not 13), `too_large` (head over its limits), `invalid` (any other bad request), `timeout` (incomplete within the handshake timeout), `tls` (the TLS handshake failed), `application` (the standalone factory's `Refuse`) |
//! | `ws_rate_limited_total` | counter | times a connection went over its inbound rate limit (`[connection.rate_limit]`): closed with 1008, or paused |
//! | `ws_hub_*{hub}` | | per hub: see [`Hub`](crate::Hub) |
//!
//! The message counters are kept per thread (an uncontended atomic each) and summed
//! when scraped, so counting costs the hot path no shared cache line.
//!
//! ```
//! let text = websocket_driver::metrics::encode_text();
//! assert!(text.contains("# TYPE ws_messages_received counter"));
//! ```

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, OnceLock, Weak,
    },
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{
        counter::ConstCounter,
        gauge::ConstGauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

use crate::proto::{CloseCode, ReadyState};

/// One thread's counters; only that thread adds to them.
#[derive(Debug, Default)]
pub(crate) struct ThreadStats {
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
}

impl ThreadStats {
    #[inline]
    pub fn message_received(&self, bytes: usize) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    #[inline]
    pub fn message_sent(&self) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn messages_sent(&self, n: usize) {
        self.messages_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    #[inline]
    pub fn bytes_sent(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every thread's counters (a thread's stay after it ends: its counts are kept).
fn threads() -> &'static Mutex<Vec<Arc<ThreadStats>>> {
    static THREADS: OnceLock<Mutex<Vec<Arc<ThreadStats>>>> = OnceLock::new();
    THREADS.get_or_init(Default::default)
}

thread_local! {
    static STATS: Arc<ThreadStats> = {
        let stats = Arc::new(ThreadStats::default());
        lock(threads()).push(stats.clone());
        stats
    };
}

/// Count with `f` on the calling thread's counters (a connection's state keeps no
/// reference to them: 8 bytes less on every connection). Nothing is counted once
/// the thread's storage is gone, as the thread ends.
#[inline]
pub(crate) fn count(f: impl FnOnce(&ThreadStats)) {
    let _ = STATS.try_with(|stats| f(stats));
}

fn closes() -> &'static Mutex<BTreeMap<u16, u64>> {
    static CLOSES: OnceLock<Mutex<BTreeMap<u16, u64>>> = OnceLock::new();
    CLOSES.get_or_init(Default::default)
}

/// A connection closed with `code`.
pub(crate) fn closed(code: CloseCode) {
    *lock(closes()).entry(code.0).or_default() += 1;
}

fn refusals() -> &'static Mutex<BTreeMap<&'static str, u64>> {
    static REFUSALS: OnceLock<Mutex<BTreeMap<&'static str, u64>>> = OnceLock::new();
    REFUSALS.get_or_init(Default::default)
}

/// A server refused an opening handshake, for `reason` (a label of
/// `ws_handshakes_refused_total`: see the module's table).
#[cfg(any(feature = "web", feature = "server"))]
pub(crate) fn handshake_refused(reason: &'static str) {
    *lock(refusals()).entry(reason).or_default() += 1;
}

/// A server refused an opening handshake with `err`.
#[cfg(any(feature = "web", feature = "server"))]
pub(crate) fn handshake_error(err: &crate::handshake::HandshakeError) {
    use crate::handshake::HandshakeError as E;
    handshake_refused(match err {
        E::OriginNotAllowed => "origin",
        E::MissingVersion | E::UnsupportedVersion => "version",
        E::HeadTooLarge | E::TooManyHeaders => "too_large",
        _ => "invalid",
    });
}

/// Times a connection went over its inbound rate limit.
static RATE_LIMITED: AtomicU64 = AtomicU64::new(0);

/// A connection went over its inbound rate limit (closed or paused).
pub(crate) fn rate_limited() {
    RATE_LIMITED.fetch_add(1, Ordering::Relaxed);
}

fn rtt_histogram() -> &'static Histogram {
    static RTT: OnceLock<Histogram> = OnceLock::new();
    // 100 µs to about 13 s.
    RTT.get_or_init(|| Histogram::new(exponential_buckets(0.0001, 2.0, 18)))
}

/// A ping's Pong came back after `rtt`.
pub(crate) fn ping_rtt(rtt: Duration) {
    rtt_histogram().observe(rtt.as_secs_f64());
}

/// What a hub adds to the metrics (implemented by the hub).
pub(crate) trait HubMetrics: Send + Sync {
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error>;
}

fn hubs() -> &'static Mutex<Vec<Weak<dyn HubMetrics>>> {
    static HUBS: OnceLock<Mutex<Vec<Weak<dyn HubMetrics>>>> = OnceLock::new();
    HUBS.get_or_init(Default::default)
}

/// What counts the open connections by ready-state (`[connecting, open, closing,
/// closed]`): set by the actor layer's registry of connections.
static CONNECTION_COUNTER: OnceLock<fn() -> [u64; 4]> = OnceLock::new();

/// Count the connections with `counter` (the actor layer's registry sets it once).
pub(crate) fn set_connection_counter(counter: fn() -> [u64; 4]) {
    let _ = CONNECTION_COUNTER.set(counter);
}

/// Report `hub`'s metrics with the others while it lives.
pub(crate) fn register_hub(hub: Weak<dyn HubMetrics>) {
    let mut hubs = lock(hubs());
    hubs.retain(|h| h.strong_count() > 0);
    hubs.push(hub);
}

/// The metrics of the connections and hubs of this process, for a
/// `prometheus_client` registry of the application's
/// (`registry.register_collector(websocket_driver::metrics::collector())`).
pub fn collector() -> Box<dyn Collector> {
    Box::new(WsCollector)
}

/// The metrics of the connections and hubs of this process, in the Prometheus text
/// exposition format (OpenMetrics text, as `prometheus_client` writes it; serve it
/// with `Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8`).
pub fn encode_text() -> String {
    let mut registry = Registry::default();
    registry.register_collector(collector());
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct WsCollector;

/// Encode one unlabelled counter.
pub(crate) fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    let e = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(e)
}

impl Collector for WsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let states = CONNECTION_COUNTER.get().map_or([0; 4], |count| count());
        {
            let mut family = encoder.encode_descriptor(
                "ws_connections",
                "Open connections by ready-state",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for state in ReadyState::ALL {
                let count = states[usize::from(state.as_u8())];
                let labels = [("state", state.name())];
                ConstGauge::new(count as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut sums = [0u64; 4];
        for t in lock(threads()).iter() {
            sums[0] += t.messages_in.load(Ordering::Relaxed);
            sums[1] += t.bytes_in.load(Ordering::Relaxed);
            sums[2] += t.messages_out.load(Ordering::Relaxed);
            sums[3] += t.bytes_out.load(Ordering::Relaxed);
        }
        counter(
            &mut encoder,
            "ws_messages_received",
            "Whole messages received",
            sums[0],
        )?;
        counter(
            &mut encoder,
            "ws_received_bytes",
            "Payload bytes of the messages received",
            sums[1],
        )?;
        counter(
            &mut encoder,
            "ws_messages_sent",
            "Frames queued by the application or a hub",
            sums[2],
        )?;
        counter(
            &mut encoder,
            "ws_sent_bytes",
            "Bytes handed to the transports",
            sums[3],
        )?;
        {
            let closes = lock(closes()).clone();
            let mut family = encoder.encode_descriptor(
                "ws_closes",
                "Connections closed, by close code",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (code, count) in closes {
                let labels = [("code", code.to_string())];
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let refusals = lock(refusals()).clone();
            let mut family = encoder.encode_descriptor(
                "ws_handshakes_refused",
                "Opening handshakes refused, by reason",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (reason, count) in refusals {
                let labels = [("reason", reason)];
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(
            &mut encoder,
            "ws_rate_limited",
            "Times a connection went over its inbound rate limit (closed or paused)",
            RATE_LIMITED.load(Ordering::Relaxed),
        )?;
        let rtt = rtt_histogram();
        let e = encoder.encode_descriptor(
            "ws_ping_rtt_seconds",
            "Round-trip time of pings",
            None,
            rtt.metric_type(),
        )?;
        rtt.encode(e)?;
        let hubs: Vec<_> = lock(hubs()).iter().filter_map(Weak::upgrade).collect();
        for hub in hubs {
            hub.encode(&mut encoder)?;
        }
        Ok(())
    }
}
