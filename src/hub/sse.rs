//! Server-Sent Events: a topic streamed over plain HTTP as `text/event-stream`
//! (the WHATWG HTML standard, "Server-sent events"), with resume. No client
//! library: a browser's `EventSource` reconnects by itself and sends the id of
//! the last event it received (`Last-Event-ID`), and the stream goes on with
//! exactly what it missed, from the topic's history.
//!
//! An event stream is a member of the hub like a connection (the same join,
//! recovery, bounds, slow-consumer policy and metrics), out of presence unless it
//! names its user (see [`Events::subscribe`]), whose deliveries go to a
//! bounded queue that the HTTP response body drains, instead of a WebSocket's send
//! buffer. Its subscribers live on shards of their own, one per worker thread
//! that serves event streams: the WebSocket fan-out does not change.
//!
//! What a stream sends:
//! - each publication: `id: EPOCH:OFFSET`, `event: message`, and its text as
//!   `data:` lines (one per line of the text: a line break in a message ends a
//!   `data:` line, and the browser joins them again with `\n`). Unnumbered
//!   deliveries (transient publications, broadcasts) come without an `id:`;
//! - at the start of a stream that does not resume, an `id:` alone (the topic's
//!   position: no event is dispatched, but a browser resumes from there);
//! - `event: reset` (its `id:` and `data:` the topic's position now) when a
//!   resume cannot be served: the history no longer reaches back to it, or the
//!   topic's epoch changed. Nothing is replayed then: the client reloads its
//!   state, and the stream goes on from that position;
//! - `: ping` comments every [`Events::heartbeat`] without an event (15 s by
//!   default), so that proxies do not close an idle stream.

use std::{
    convert::Infallible,
    io::Write as _,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, Weak,
    },
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{http::header, HttpRequest, HttpResponse};
use atomic_waker::AtomicWaker;
use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::mpsc;

use super::{
    delivery::Delivery,
    inner::{Hub, HubInner},
    queue::{Cmd, Queue, ShardHandle},
    shard::Shard,
    subscribers::{Outcome, Sink},
    sync::lock,
    types::{JoinError, JoinOptions, Joined, Position},
};
use crate::{
    actor::{ConnId, ThreadKey},
    settings::SlowConsumer,
};

/// The default interval of heartbeat comments (`: ping`).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// The default bound on the event streams open at once through one [`Events`].
pub const DEFAULT_MAX_STREAMS: usize = 10_000;

/// The longest `Last-Event-ID` (or `since`) taken, in bytes.
const MAX_EVENT_ID: usize = 256;

/// Serves a hub's topics as event streams; a `Clone + Send` handle whose clones
/// share the bound on open streams.
///
/// ```no_run
/// use actix_web::{web, App, HttpRequest, HttpServer};
/// use websocket_driver as ws;
///
/// # async fn main_() -> std::io::Result<()> {
/// let hub = ws::Hub::new();
/// let events = ws::hub::Events::new(&hub);
/// HttpServer::new(move || {
///     let events = events.clone();
///     App::new().route(
///         "/topics/{topic}/events",
///         web::get().to(move |req: HttpRequest, topic: web::Path<String>| {
///             let events = events.clone();
///             async move { events.respond(&req, &topic) }
///         }),
///     )
/// })
/// .bind("127.0.0.1:8080")?
/// .run()
/// .await
/// # }
/// ```
#[derive(Clone)]
pub struct Events {
    hub: Hub,
    heartbeat: Duration,
    max_streams: usize,
    open: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("hub", &self.hub.name())
            .field("heartbeat", &self.heartbeat)
            .field("max_streams", &self.max_streams)
            .field("open", &self.open_streams())
            .finish()
    }
}

/// Why an event stream was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// [`Events::max_streams`] streams are open already.
    #[error("{limit} event streams open already")]
    Full {
        /// The bound.
        limit: usize,
    },
    /// The hub refused the join (a bound, the topic's name).
    #[error(transparent)]
    Join(#[from] JoinError),
    /// A `Last-Event-ID` or `since` that is not `EPOCH:OFFSET`.
    #[error("malformed event id (EPOCH:OFFSET expected)")]
    BadEventId,
    /// Called outside an actix worker thread (an actix system's thread or an
    /// actix-web worker, in a task it runs): a stream needs its timers and its
    /// shard's task there.
    #[error("event streams are opened on an actix worker thread")]
    NoRuntime,
}

impl Events {
    /// Event streams of `hub`'s topics, with the defaults ([`DEFAULT_HEARTBEAT`],
    /// [`DEFAULT_MAX_STREAMS`]).
    pub fn new(hub: &Hub) -> Events {
        Events {
            hub: hub.clone(),
            heartbeat: DEFAULT_HEARTBEAT,
            max_streams: DEFAULT_MAX_STREAMS,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Send a `: ping` comment after this long without anything sent
    /// ([`DEFAULT_HEARTBEAT`]); `Duration::ZERO` sends none.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// Open at most this many streams at once ([`DEFAULT_MAX_STREAMS`]); past
    /// it, [`StreamError::Full`] (503 from [`respond`](Self::respond)).
    pub fn max_streams(mut self, streams: usize) -> Self {
        self.max_streams = streams;
        self
    }

    /// The streams open now.
    pub fn open_streams(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Answer an HTTP request with the event stream of `topic`, resuming from
    /// its `Last-Event-ID` header, or else its `since` query parameter (both
    /// `EPOCH:OFFSET`, the `id:` of an event this server sent). `200` with
    /// `Content-Type: text/event-stream`, `Cache-Control: no-cache` and
    /// `X-Accel-Buffering: no` (no buffering in a proxy); `400` for a malformed
    /// `Last-Event-ID` or `since` (a browser only sends back an id it was sent),
    /// or a topic name the hub refuses; `503` past a bound (streams, members of
    /// the topic, connections of the user). Call it on an actix-web worker
    /// thread (in a handler).
    pub fn respond(&self, req: &HttpRequest, topic: &str) -> HttpResponse {
        self.respond_with(req, topic, JoinOptions::default())
    }

    /// [`respond`](Self::respond) with join options (a user, metadata; the
    /// request's position replaces `since`; what `on_joined` returns is sent
    /// as unnumbered events first).
    pub fn respond_with(
        &self,
        req: &HttpRequest,
        topic: &str,
        mut options: JoinOptions,
    ) -> HttpResponse {
        let stream = resume_position(req)
            .map(|since| {
                if since.is_some() {
                    options.since = since;
                }
                options
            })
            .and_then(|options| self.subscribe(topic, options));
        match stream {
            Ok(stream) => HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, "text/event-stream"))
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .insert_header(("X-Accel-Buffering", "no"))
                .streaming(stream),
            Err(e) => {
                let mut response = match &e {
                    StreamError::BadEventId
                    | StreamError::Join(
                        JoinError::InvalidTopic
                        | JoinError::TopicTooLong { .. }
                        | JoinError::UserTooLong { .. }
                        | JoinError::MetaTooLong { .. },
                    ) => HttpResponse::BadRequest(),
                    StreamError::NoRuntime => HttpResponse::InternalServerError(),
                    _ => HttpResponse::ServiceUnavailable(),
                };
                response
                    .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
                    .body(e.to_string())
            }
        }
    }

    /// Open the event stream of `topic` (the body of a response): a member of the
    /// topic from now until the stream is dropped, recovering from
    /// [`JoinOptions::since`]. Call it on an actix worker thread (in a task of an
    /// actix system or an actix-web worker): elsewhere it is refused with
    /// [`StreamError::NoRuntime`].
    ///
    /// A stream without [`JoinOptions::user`] is a reader, not a participant: it
    /// joins [`hidden`](JoinOptions::hidden) (no presence event, not in
    /// [`Hub::members`], still counted against the topic's member bound). A
    /// stream that names its user joins as its options say (visible by default:
    /// one more connection of that user).
    pub fn subscribe(
        &self,
        topic: &str,
        mut options: JoinOptions,
    ) -> Result<EventStream, StreamError> {
        // The heartbeat's timer and the shard's task need both.
        if actix_rt::Arbiter::try_current().is_none()
            || tokio::runtime::Handle::try_current().is_err()
        {
            return Err(StreamError::NoRuntime);
        }
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max_streams {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(StreamError::Full {
                limit: self.max_streams,
            });
        }
        let open = OpenGuard(self.open.clone());
        if options.user.is_none() {
            options.hidden = true;
        }
        let inner = &self.hub.inner;
        let sink = SseSink::default();
        let user = options
            .user
            .as_deref()
            .filter(|u| u.len() <= inner.settings.max_user_bytes)
            .map(Arc::from);
        let (id, shard) = inner.register_events(sink.clone(), user)?;
        let stream = EventStream {
            sink: sink.clone(),
            hub: Arc::downgrade(inner),
            id,
            heartbeat: (!self.heartbeat.is_zero()).then(|| {
                let mut tick = tokio::time::interval_at(
                    tokio::time::Instant::now() + self.heartbeat,
                    self.heartbeat,
                );
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick
            }),
            _open: open,
        };
        let asked = options.since.is_some();
        let theirs = options.on_joined.take();
        let options = options.on_joined(move |joined: &Joined| {
            // Before anything the topic delivers after the join.
            sink.started(joined, asked);
            theirs.map(|f| f(joined)).unwrap_or_default()
        });
        // A refused join: the stream's drop takes it out of the hub.
        inner.join(id, shard, topic, options)?;
        Ok(stream)
    }
}

/// Counts an open stream until dropped.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The position a request resumes from: its `Last-Event-ID` header (what a
/// browser sends when it reconnects), or else its `since` query parameter; an
/// empty header is none.
pub fn resume_position(req: &HttpRequest) -> Result<Option<Position>, StreamError> {
    if let Some(value) = req.headers().get("last-event-id") {
        let value = value.to_str().map_err(|_| StreamError::BadEventId)?;
        if !value.is_empty() {
            return parse_event_id(value).map(Some);
        }
    }
    for (key, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if key == "since" {
            return parse_event_id(&value).map(Some);
        }
    }
    Ok(None)
}

/// An event's id, `EPOCH:OFFSET` (the epoch is everything before the last
/// colon: at most 256 bytes in all, no control character, a decimal offset).
pub fn parse_event_id(id: &str) -> Result<Position, StreamError> {
    if id.len() > MAX_EVENT_ID || id.chars().any(char::is_control) {
        return Err(StreamError::BadEventId);
    }
    let (epoch, offset) = id.rsplit_once(':').ok_or(StreamError::BadEventId)?;
    if epoch.is_empty() || offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StreamError::BadEventId);
    }
    let offset = offset.parse().map_err(|_| StreamError::BadEventId)?;
    Ok(Position {
        epoch: epoch.to_owned(),
        offset,
    })
}

/// The body of an event stream ([`Events::subscribe`]): the topic's events as
/// they come, heartbeats between them; it ends when the slow-consumer policy
/// closes it (after what was queued before). Dropping it takes the subscriber out
/// of the hub.
pub struct EventStream {
    sink: SseSink,
    hub: Weak<HubInner>,
    id: ConnId,
    heartbeat: Option<tokio::time::Interval>,
    _open: OpenGuard,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").field("id", &self.id).finish()
    }
}

impl EventStream {
    /// The subscriber's id in the hub (as a connection's: `Hub::send_to`,
    /// `Hub::leave` take it).
    pub fn id(&self) -> ConnId {
        self.id
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.sink.0.state().gone = true;
        if let Some(hub) = self.hub.upgrade() {
            hub.connection_closed(self.id);
        }
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.sink.0.waker.register(cx.waker());
        let (out, ended) = this.sink.take();
        if !out.is_empty() {
            if let Some(tick) = &mut this.heartbeat {
                tick.reset();
            }
            return Poll::Ready(Some(Ok(out.into())));
        }
        if ended {
            return Poll::Ready(None);
        }
        if let Some(tick) = &mut this.heartbeat {
            if tick.poll_tick(cx).is_ready() {
                return Poll::Ready(Some(Ok(Bytes::from_static(b": ping\n\n"))));
            }
        }
        Poll::Pending
    }
}

/// An event stream's queue, as the shard sees it.
#[derive(Clone, Default)]
pub(super) struct SseSink(Arc<SinkShared>);

#[derive(Default)]
struct SinkShared {
    state: Mutex<SinkState>,
    waker: AtomicWaker,
}

impl SinkShared {
    fn state(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct SinkState {
    /// What waits to be written, formatted.
    out: Vec<u8>,
    /// The deliveries in `out` (within the message budget).
    queued: usize,
    /// Closed by the slow-consumer policy: nothing more is taken.
    ended: bool,
    /// The body is gone.
    gone: bool,
}

impl SseSink {
    /// The join's answer, before any delivery: where a stream that does not
    /// resume starts, or a reset for a resume that cannot be served.
    fn started(&self, joined: &Joined, asked: bool) {
        let p = &joined.position;
        {
            let mut state = self.0.state();
            match joined.recovered {
                Some(true) => return,
                // Not known yet (a numbering backplane answers later) or not asked.
                None if asked => return,
                Some(false) => {
                    let _ = write!(
                        state.out,
                        "event: reset\nid: {e}:{o}\ndata: {e}:{o}\n\n",
                        e = p.epoch,
                        o = p.offset
                    );
                }
                None => {
                    let _ = write!(state.out, "id: {}:{}\n\n", p.epoch, p.offset);
                }
            }
        }
        self.0.waker.wake();
    }

    /// Everything queued, and whether the stream ended.
    fn take(&self) -> (Vec<u8>, bool) {
        let mut state = self.0.state();
        state.queued = 0;
        (std::mem::take(&mut state.out), state.ended)
    }
}

impl Sink for SseSink {
    fn deliver(&self, delivery: &Delivery) -> (Outcome, bool) {
        let policy = &delivery.policy;
        {
            let mut state = self.0.state();
            if state.gone || state.ended {
                return (Outcome::Gone, false);
            }
            if state.queued >= policy.budget_messages || state.out.len() >= policy.budget_bytes {
                drop(state);
                if policy.slow_consumer == SlowConsumer::Latest {
                    // Kept by the subscriber, written when the reader took what
                    // is queued (the shard tries again every `LATEST_RETRY`).
                    return (Outcome::Conflated, false);
                }
                return self.over_budget(delivery);
            }
            formatted(delivery, |event| state.out.extend_from_slice(event));
            state.queued += 1;
        }
        self.0.waker.wake();
        (Outcome::Delivered, false)
    }

    fn over_budget(&self, delivery: &Delivery) -> (Outcome, bool) {
        match delivery.policy.slow_consumer {
            // A conflating stream over its budget keeps the publication (see
            // `deliver`); one lost to a full queue is dropped.
            SlowConsumer::Drop | SlowConsumer::Latest => (Outcome::Dropped, false),
            _ => {
                self.0.state().ended = true;
                self.0.waker.wake();
                (Outcome::Closed, false)
            }
        }
    }
}

/// The event of the delivery a shard fans out, formatted once for all its
/// streams: kept only while the shard handles one command ([`Formatting`]), which
/// holds every delivery it hands out, so that an address names one delivery
/// meanwhile.
#[derive(Default)]
struct Formatted {
    on: bool,
    last: Option<(usize, Vec<u8>)>,
}

thread_local! {
    static FORMATTED: std::cell::RefCell<Formatted> = std::cell::RefCell::default();
}

/// Formatting shared by the streams of one command, until dropped.
struct Formatting;

impl Formatting {
    fn start() -> Formatting {
        FORMATTED.with(|f| f.borrow_mut().on = true);
        Formatting
    }
}

impl Drop for Formatting {
    fn drop(&mut self) {
        FORMATTED.with(|f| *f.borrow_mut() = Formatted::default());
    }
}

/// `delivery` as an event, given to `f`: formatted once per command of the shard
/// (every time outside one).
fn formatted(delivery: &Delivery, f: impl FnOnce(&[u8])) {
    FORMATTED.with(|cell| {
        let mut cache = cell.borrow_mut();
        if !cache.on {
            let mut event = Vec::new();
            write_event(&mut event, delivery);
            return f(&event);
        }
        let key = delivery as *const Delivery as usize;
        match &cache.last {
            Some((k, event)) if *k == key => f(event),
            _ => {
                let mut event = Vec::new();
                write_event(&mut event, delivery);
                f(&event);
                cache.last = Some((key, event));
            }
        }
    })
}

/// One delivery as an event: its id when it is numbered, `event: message`, and a
/// `data:` line per line of its text (CR LF, LF and CR end a line, as in the
/// event stream itself). A binary payload is sent as UTF-8, invalid sequences
/// replaced.
fn write_event(out: &mut Vec<u8>, delivery: &Delivery) {
    if let (Some(epoch), offset @ 1..) = (&delivery.epoch, delivery.offset) {
        let _ = writeln!(out, "id: {epoch}:{offset}");
    }
    out.extend_from_slice(b"event: message\n");
    let payload = delivery.prepared.payload();
    let text = match simdutf8::basic::from_utf8(payload) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(payload),
    };
    let mut rest = text.as_bytes();
    loop {
        let end = rest.iter().position(|b| *b == b'\n' || *b == b'\r');
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&rest[..end.unwrap_or(rest.len())]);
        out.push(b'\n');
        match end {
            None => break,
            Some(at) => {
                let skip = if rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[at + skip..];
            }
        }
    }
    out.push(b'\n');
}

/// The keys of the event streams' shards: apart from every thread's.
const SSE_KEYS: u64 = 1 << 62;

/// This thread's event-stream shards, one per hub: the hub, the shard's index,
/// and the channel that hands it new subscribers.
type Local = Vec<(
    Weak<HubInner>,
    usize,
    mpsc::UnboundedSender<(ConnId, SseSink)>,
)>;

thread_local! {
    static SHARDS: std::cell::RefCell<Local> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Hub {
    /// The event streams open in the hub (members of its topics through
    /// [`Events`]); [`Hub::connections`] counts WebSocket connections only. The
    /// gauge `ws_hub_event_streams` says the same, and `ws_hub_connections`
    /// counts both.
    pub fn event_streams(&self) -> usize {
        lock(&self.inner.conns).event_streams()
    }
}

impl HubInner {
    /// A new event-stream subscriber: an id, in the hub's table of connections
    /// (as `user`), on this thread's event-stream shard (started when it has
    /// none).
    fn register_events(
        self: &Arc<Self>,
        sink: SseSink,
        user: Option<Arc<str>>,
    ) -> Result<(ConnId, usize), JoinError> {
        let id = ConnId::next();
        let (shard, attach) = self.events_shard();
        let limit = self.settings.max_connections_per_user;
        lock(&self.conns)
            .insert(id, None, shard, user, limit)
            .map_err(|full| JoinError::TooManyConnections { limit: full.limit })?;
        // Before the join's subscription reaches the shard (it takes new
        // subscribers before each command).
        let _ = attach.send((id, sink));
        Ok((id, shard))
    }

    /// This thread's event-stream shard of this hub (started now when it has
    /// none, or when its task ended with its runtime).
    fn events_shard(self: &Arc<Self>) -> (usize, mpsc::UnboundedSender<(ConnId, SseSink)>) {
        SHARDS.with(|local| {
            let mut local = local.borrow_mut();
            local.retain(|(hub, _, tx)| hub.strong_count() > 0 && !tx.is_closed());
            let me = Arc::downgrade(self);
            if let Some((_, shard, tx)) = local.iter().find(|(hub, _, _)| hub.ptr_eq(&me)) {
                return (*shard, tx.clone());
            }
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let thread = ThreadKey::new(SSE_KEYS + NEXT.fetch_add(1, Ordering::Relaxed));
            let handle = ShardHandle::new(thread);
            let rx = lock(&handle.rx).take();
            let queue = handle.queue.clone();
            let shard = {
                let mut shards = lock(&self.shards);
                shards.push(handle);
                shards.len() - 1
            };
            let (tx, attach) = mpsc::unbounded_channel();
            if let Some(rx) = rx {
                self.start_sweeping();
                actix_rt::spawn(run(me.clone(), rx, attach, queue));
            }
            local.push((me, shard, tx.clone()));
            (shard, tx)
        })
    }
}

/// An event-stream shard: the hub's commands as a connection's shard takes them,
/// and its new subscribers, each before the commands that follow it; what a
/// conflating policy kept is tried again as a connection's shard does
/// ([`super::shard::next`]).
async fn run(
    hub: Weak<HubInner>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    mut attach: mpsc::UnboundedReceiver<(ConnId, SseSink)>,
    queue: Arc<Queue>,
) {
    let mut shard = Shard::<SseSink>::new(hub, queue);
    let mut take = |shard: &mut Shard<SseSink>, cmd: Cmd| {
        while let Ok((id, sink)) = attach.try_recv() {
            shard.conns.insert(id, sink);
        }
        let _formatting = Formatting::start();
        shard.handle(cmd);
    };
    let mut retry_at = None;
    loop {
        let cmd = match super::shard::next(&mut rx, shard.has_latest(), &mut retry_at).await {
            super::shard::Next::Cmd(cmd) => cmd,
            super::shard::Next::Retry => {
                let _formatting = Formatting::start();
                shard.retry_latest();
                continue;
            }
            super::shard::Next::Closed => break,
        };
        take(&mut shard, cmd);
        while let Ok(cmd) = rx.try_recv() {
            take(&mut shard, cmd);
        }
        let _formatting = Formatting::start();
        shard.settle_missed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{hub::delivery::Policy, proto::PreparedMessage, settings::DeflateSettings};

    fn d(text: &str, offset: u64, policy: SlowConsumer) -> Delivery {
        Delivery {
            prepared: PreparedMessage::new(text.to_owned(), &DeflateSettings::default()),
            policy: Policy {
                budget_bytes: 1 << 20,
                budget_messages: 2,
                slow_consumer: policy,
                close_code: 1008,
                conflation_keys: 64,
            },
            offset,
            epoch: (offset > 0).then(|| "e".into()),
            key: None,
        }
    }

    fn text(sink: &SseSink) -> String {
        String::from_utf8(sink.take().0).unwrap()
    }

    #[test]
    fn an_event_has_its_id_and_a_data_line_per_line_of_text() {
        let sink = SseSink::default();
        sink.deliver(&d("a\nb\r\nc\rd", 7, SlowConsumer::Drop));
        sink.deliver(&d("", 0, SlowConsumer::Drop));
        assert_eq!(
            text(&sink),
            "id: e:7\nevent: message\ndata: a\ndata: b\ndata: c\ndata: d\n\n\
             event: message\ndata: \n\n"
        );
    }

    #[test]
    fn past_the_budget_drop_drops_and_close_ends_after_what_was_queued() {
        let sink = SseSink::default();
        let outcomes: Vec<Outcome> = (1..=3)
            .map(|n| sink.deliver(&d("x", n, SlowConsumer::Drop)).0)
            .collect();
        assert_eq!(
            outcomes,
            [Outcome::Delivered, Outcome::Delivered, Outcome::Dropped]
        );
        assert_eq!(text(&sink).matches("event: message").count(), 2);
        // Taken: room again.
        assert_eq!(
            sink.deliver(&d("x", 4, SlowConsumer::Close)).0,
            Outcome::Delivered
        );
        sink.deliver(&d("x", 5, SlowConsumer::Close));
        assert_eq!(
            sink.deliver(&d("x", 6, SlowConsumer::Close)).0,
            Outcome::Closed
        );
        assert_eq!(
            sink.deliver(&d("x", 7, SlowConsumer::Close)).0,
            Outcome::Gone
        );
        let (out, ended) = sink.take();
        assert!(ended);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id: e:4\nevent: message\ndata: x\n\nid: e:5\nevent: message\ndata: x\n\n"
        );
    }

    #[test]
    fn past_the_budget_latest_keeps_nothing_queued_and_lets_the_subscriber_keep_it() {
        let sink = SseSink::default();
        for n in 1..=2 {
            sink.deliver(&d("x", n, SlowConsumer::Latest));
        }
        assert_eq!(
            sink.deliver(&d("x", 3, SlowConsumer::Latest)),
            (Outcome::Conflated, false)
        );
        // Lost to a full queue: dropped, the stream stays.
        assert_eq!(
            sink.over_budget(&d("x", 4, SlowConsumer::Latest)),
            (Outcome::Dropped, false)
        );
        let (out, ended) = sink.take();
        assert!(!ended);
        assert_eq!(
            String::from_utf8(out)
                .unwrap()
                .matches("event: message")
                .count(),
            2
        );
        assert_eq!(
            sink.deliver(&d("x", 3, SlowConsumer::Latest)),
            (Outcome::Delivered, false)
        );
    }

    #[test]
    fn event_ids_parse_epoch_and_offset_and_nothing_else() {
        assert_eq!(
            parse_event_id("0123abcd:42"),
            Ok(Position {
                epoch: "0123abcd".into(),
                offset: 42
            })
        );
        assert_eq!(parse_event_id("a:b:7").map(|p| p.epoch), Ok("a:b".into()));
        for bad in [
            "",
            "7",
            ":7",
            "e:",
            "e:+7",
            "e:-1",
            "e:7 ",
            "e\n:7",
            "e:99999999999999999999",
        ] {
            assert_eq!(parse_event_id(bad), Err(StreamError::BadEventId), "{bad:?}");
        }
    }
}
