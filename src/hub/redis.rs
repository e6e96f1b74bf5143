//! The Redis backplane: hubs on several servers act as one.
//!
//! - **Delivery**: a publication runs one Lua script on Redis that numbers it (an
//!   epoch per topic and an offset that goes up by one), keeps it in the topic's
//!   stream (`XADD ... MAXLEN ~`, with the offset as the entry's id `0-OFFSET`) and
//!   publishes it on the topic's channel (`PUBLISH`, or `SPUBLISH` with sharded
//!   pub/sub), all at once: every server, this one included, receives the topic's
//!   publications in offset order through its one subscription connection, and
//!   delivers them with `Hub::deliver_numbered`, framed once per server. The
//!   envelope names the server that published (the origin), so that the sender's
//!   own connection is skipped there, and only there.
//! - **Subscriptions** follow the topics this server holds, batched (one
//!   `SUBSCRIBE` for every topic that got its first subscriber meanwhile).
//! - **Recovery** (`locate`): once this server is subscribed to the topic, a second
//!   script returns the topic's position and, for a `since`, every entry after it
//!   from the stream, or nothing when the stream no longer reaches back (never a
//!   partial recovery).
//! - **Gaps**: each topic's deliveries are followed by offset. A jump (the
//!   subscription fell behind) or a reconnection of the subscription has what went
//!   by unseen taken from the stream, delivered in its place, with what arrives
//!   meanwhile held back: a publication Redis took is not lost while its stream
//!   still has it (`ws_backplane_filled`; `ws_backplane_lost` counts the rest).
//! - **Presence** across servers: a user's first join and last leave on each
//!   server are counted per topic in Redis (one script, so that two servers never
//!   both announce); only the first server in and the last out publish the change,
//!   numbered, on the topic's channel. A server starting to hold a topic reads who
//!   is there first (changes that cross that read are ordered by their number).
//!   Every server refreshes its entry in a sorted set each `presence_ttl / 3`; the
//!   members of one that stopped (crashed) for `presence_ttl` are taken out by the
//!   others, and a server Redis forgot (restarted, or taken for dead) announces its
//!   members again. A clean stop takes its members out at once.
//! - **Faults**: a publication Redis does not take (unreachable, too slow, more than
//!   `max_in_flight` on the way) is delivered on this server only, numbered in the
//!   hub's own local epoch, and counted as dropped for the others; the clients fred
//!   keeps reconnect with back-off and resubscribe. A client that recovers across
//!   such a gap is told `recovered: false`.
//!
//! It runs on a thread of its own (a tokio runtime), so the actix workers never
//! wait for Redis.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use bytes::Bytes;
use fred::{clients::SubscriberClient, prelude::*, types::scripts::Script};
use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
};
use tokio::sync::{mpsc, oneshot};

use super::{Backplane, Hub, Located, Position, PresenceKind, Publication, WeakHub};
use crate::{
    actor::ConnId,
    hub_wire::{decode_message as decode, encode_message as encode},
    proto::Message,
    settings::RedisSettings,
};

/// Numbers a publication, keeps it and publishes it (see the module docs).
/// KEYS: epoch, offset, stream. ARGV: channel, fresh epoch, history size, origin,
/// except, kind, payload, sharded, ttl in ms.
const PUBLISH: &str = r#"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local offset = redis.call('INCR', KEYS[2])
local keep = tonumber(ARGV[3])
if keep > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', keep, '0-' .. offset, 'k', ARGV[6], 'p', ARGV[7], 'o', ARGV[4], 'x', ARGV[5])
end
local ttl = tonumber(ARGV[9])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  if keep > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
end
local envelope = 'v1\n' .. ARGV[4] .. '\n' .. ARGV[5] .. '\n' .. epoch .. '\n' .. offset .. '\n' .. ARGV[6] .. '\n' .. ARGV[7]
if ARGV[8] == '1' then
  redis.call('SPUBLISH', ARGV[1], envelope)
else
  redis.call('PUBLISH', ARGV[1], envelope)
end
return offset
"#;

/// Where a topic stands, and what came after `since`. KEYS: epoch, offset,
/// stream. ARGV: fresh epoch, since's epoch, since's offset, "1" when asked.
/// Returns {epoch, last offset, recovered (0/1), entries}.
const LOCATE: &str = r#"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[4] ~= '1' then return {epoch, last, 0, {}} end
local since = tonumber(ARGV[3])
if ARGV[2] ~= epoch or since == nil or since > last then return {epoch, last, 0, {}} end
if since == last then return {epoch, last, 1, {}} end
local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
if #first == 0 then return {epoch, last, 0, {}} end
local oldest = tonumber(string.match(first[1][1], '^0%-(%d+)$'))
if oldest == nil or oldest > since + 1 then return {epoch, last, 0, {}} end
return {epoch, last, 1, redis.call('XRANGE', KEYS[3], '0-' .. (since + 1), '0-' .. last)}
"#;

/// The presence scripts' common part. KEYS: this server's users in the topic (a
/// set), every server's count per user (a hash), each user's metadata (a hash),
/// the topic's presence version. ARGV[1] channel, ARGV[2] "1" for sharded pub/sub.
/// A change is published as `p1\nVERSION\nJ|L\nLEN\nUSER` then, for a join, "1"
/// and the metadata or "0". The version starts from Redis's clock in
/// microseconds, so that it keeps going up when the key is gone and back.
const PRESENCE_LIB: &str = r#"
local function announce(kind, user, meta)
  if redis.call('EXISTS', KEYS[4]) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', KEYS[4], string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2])))
  end
  local v = redis.call('INCR', KEYS[4])
  local env = 'p1\n' .. string.format('%d', v) .. '\n' .. kind .. '\n' .. string.len(user) .. '\n' .. user .. meta
  if ARGV[2] == '1' then redis.call('SPUBLISH', ARGV[1], env) else redis.call('PUBLISH', ARGV[1], env) end
end
local function leave(user)
  local n = redis.call('HINCRBY', KEYS[2], user, -1)
  if n <= 0 then
    redis.call('HDEL', KEYS[2], user)
    redis.call('HDEL', KEYS[3], user)
    announce('L', user, '')
  end
end
"#;

/// A user's first connection on this server joined. ARGV[3] user, ARGV[4] "1"
/// with metadata, ARGV[5] the metadata.
const PRESENCE_JOIN: &str = r#"
if redis.call('SADD', KEYS[1], ARGV[3]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
if n == 1 then
  if ARGV[4] == '1' then redis.call('HSET', KEYS[3], ARGV[3], ARGV[5]) end
  announce('J', ARGV[3], ARGV[4] .. ARGV[5])
end
return 1
"#;

/// A user's last connection on this server left. ARGV[3] user.
const PRESENCE_LEAVE: &str = r#"
if redis.call('SREM', KEYS[1], ARGV[3]) == 0 then return 0 end
leave(ARGV[3])
return 1
"#;

/// Every user of a server (a dead one, or this one at shutdown) leaves.
const PRESENCE_SWEEP: &str = r#"
local users = redis.call('SMEMBERS', KEYS[1])
for _, user in ipairs(users) do leave(user) end
redis.call('DEL', KEYS[1])
return #users
"#;

/// Who is present, and the version that says so; and where the topic's
/// publications stand (the subscription's starting point). KEYS as the others',
/// then the topic's epoch and offset. Returns {version, {user, has metadata,
/// metadata, ...}, epoch, offset}.
const PRESENCE_SNAPSHOT: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[4], string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2])))
end
local version = redis.call('GET', KEYS[4])
local out = {}
for _, user in ipairs(redis.call('HKEYS', KEYS[2])) do
  local meta = redis.call('HGET', KEYS[3], user)
  table.insert(out, user)
  if meta then table.insert(out, '1'); table.insert(out, meta) else table.insert(out, '0'); table.insert(out, '') end
end
return {version, out, redis.call('GET', KEYS[5]) or '', tonumber(redis.call('GET', KEYS[6]) or '0')}
"#;

/// This server is alive; which servers are not (no refresh for ARGV[2] ms).
/// KEYS[1] the servers' sorted set. ARGV[1] this server. Returns {1 when this
/// server was not listed (new, or swept as dead, or Redis lost it), dead}.
const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local new = redis.call('ZADD', KEYS[1], now, ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return {new, dead}
"#;

/// What this server missed of a topic's publications since it last delivered one
/// (a gap in what the subscription brought, or its reconnection). KEYS as
/// LOCATE's. ARGV: the last delivered epoch and offset. Returns {epoch, last
/// offset, oldest entry offset kept (0: none), entries after the last delivered,
/// or, in another epoch, all of it that is kept}.
const FILL: &str = r#"
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'', 0, 0, {}} end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local since = 0
if ARGV[1] == epoch then since = tonumber(ARGV[2]) end
if since >= last then return {epoch, last, 0, {}} end
local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
if #first == 0 then return {epoch, last, 0, {}} end
local oldest = tonumber(string.match(first[1][1], '^0%-(%d+)$'))
local from = since + 1
if oldest > from then from = oldest end
return {epoch, last, oldest, redis.call('XRANGE', KEYS[3], '0-' .. from, '0-' .. last)}
"#;

/// What a locate answers into.
type LocateDone = Box<dyn FnOnce(Located) + Send>;

/// What the hub asks of the backplane's thread.
enum Ask {
    Publish(Publication),
    Subscribe(String),
    Unsubscribe(String),
    Locate(String, Option<Position>, LocateDone),
    Presence(String, String, Option<String>, PresenceKind),
}

/// What the backplane's own tasks report to its loop.
enum Event {
    /// A topic's subscription is confirmed (or failed).
    Subscribed(String, Result<(), ()>),
    /// A topic's presence as Redis has it: version and users.
    Snapshot(String, u64, Option<Snapshot>),
    /// What a topic's fill found: (epoch, entries, publications lost).
    Filled(String, u64, Option<Fill>),
    /// The subscription reconnected or fell behind: something may be missed.
    Missed,
    /// Redis does not know this server (restarted, or swept it as dead): its
    /// presence is announced again and every topic's presence read again.
    Forgotten,
}

/// The backplane's counters.
#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
    filled: AtomicU64,
    lost: AtomicU64,
    subscriptions: AtomicU64,
    in_flight: AtomicUsize,
}

/// The Redis backplane of a [`Hub`]: see the [module docs](self). Made with
/// [`RedisBackplane::start`], which plugs it into the hub.
pub struct RedisBackplane {
    settings: RedisSettings,
    origin: u64,
    asks: mpsc::UnboundedSender<Ask>,
    counters: Arc<Counters>,
    hub_name: String,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("url", &crate::settings::redact::Url(&self.settings.url))
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why the backplane did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL or the settings are not usable.
    #[error("invalid redis settings: {0}")]
    Config(String),
    /// Redis could not be reached at start.
    #[error("cannot connect to redis: {0}")]
    Connect(String),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RedisBackplane {
    /// Connect to Redis (`settings.url`), plug the backplane into `hub`, and
    /// return it. It runs on a thread of its own; it reconnects by itself.
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
    /// println!("{} dropped so far", backplane.dropped());
    /// # Ok(()) }
    /// ```
    pub async fn start(
        hub: &Hub,
        settings: RedisSettings,
    ) -> Result<Arc<RedisBackplane>, RedisError> {
        let config =
            Config::from_url(&settings.url).map_err(|e| RedisError::Config(e.to_string()))?;
        let origin = rand::random::<u64>() | 1;
        let (asks, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let backplane = Arc::new(RedisBackplane {
            settings: settings.clone(),
            origin,
            asks,
            counters: counters.clone(),
            hub_name: hub.name().to_owned(),
        });
        let (ready_tx, ready) = oneshot::channel();
        let weak = hub.downgrade();
        std::thread::Builder::new()
            .name("ws-redis".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(RedisError::Config(e.to_string())));
                        return;
                    }
                };
                runtime.block_on(run(config, settings, origin, weak, counters, rx, ready_tx));
            })
            .map_err(|e| RedisError::Config(e.to_string()))?;
        ready
            .await
            .map_err(|_| RedisError::Connect("the backplane's thread ended".into()))??;
        hub.set_backplane(backplane.clone());
        // The same allocation as the hub's: reported while the hub holds it.
        let metrics: Arc<dyn crate::metrics::HubMetrics> = backplane.clone();
        crate::metrics::register_hub(Arc::downgrade(&metrics));
        Ok(backplane)
    }

    /// Publications Redis did not take, delivered on this server only.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Publications received from Redis (this server's own included).
    pub fn received(&self) -> u64 {
        self.counters.received.load(Ordering::Relaxed)
    }

    /// Publications the subscription missed (a reconnection, a lag) and that
    /// were taken from the topic's stream instead, in their place.
    pub fn filled(&self) -> u64 {
        self.counters.filled.load(Ordering::Relaxed)
    }

    /// Publications the subscription missed that the stream no longer had (a
    /// topic without history, or one trimmed past them).
    pub fn lost(&self) -> u64 {
        self.counters.lost.load(Ordering::Relaxed)
    }

    /// Reconnections to Redis so far.
    pub fn reconnects(&self) -> u64 {
        self.counters.reconnects.load(Ordering::Relaxed)
    }
}

impl Backplane for RedisBackplane {
    fn publish(&self, publication: Publication) {
        let in_flight = self.counters.in_flight.fetch_add(1, Ordering::AcqRel);
        if in_flight >= self.settings.max_in_flight {
            self.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
            // Never queued without bound: delivered here only (and counted so).
            let _ = self.asks.send(Ask::Publish(Publication {
                history: usize::MAX,
                ..publication
            }));
            return;
        }
        let _ = self.asks.send(Ask::Publish(publication));
    }

    fn subscribe(&self, topic: &str, _generation: u64) {
        let _ = self.asks.send(Ask::Subscribe(topic.to_owned()));
    }

    fn unsubscribe(&self, topic: &str, _generation: u64) {
        let _ = self.asks.send(Ask::Unsubscribe(topic.to_owned()));
    }

    fn numbers(&self) -> bool {
        true
    }

    fn locate(&self, topic: &str, since: Option<Position>, done: LocateDone) {
        let _ = self.asks.send(Ask::Locate(topic.to_owned(), since, done));
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

/// The keys and the channel of a topic; the braces make them one cluster slot.
struct Keys {
    epoch: String,
    offset: String,
    stream: String,
    channel: String,
}

fn keys(prefix: &str, topic: &str) -> Keys {
    Keys {
        epoch: format!("{prefix}:{{{topic}}}:epoch"),
        offset: format!("{prefix}:{{{topic}}}:offset"),
        stream: format!("{prefix}:{{{topic}}}:history"),
        channel: format!("{prefix}:{{{topic}}}"),
    }
}

/// The topic a channel is for.
fn topic_of<'a>(prefix: &str, channel: &'a str) -> Option<&'a str> {
    channel
        .strip_prefix(prefix)?
        .strip_prefix(":{")?
        .strip_suffix('}')
}

fn fresh_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A numbered publication: from the channel, or from the stream.
struct Envelope {
    origin: u64,
    except: Option<ConnId>,
    position: Position,
    message: Message,
}

/// An envelope from the channel (`crate::hub_wire` parses it).
fn parse_envelope(raw: &Bytes) -> Option<Envelope> {
    let e = crate::hub_wire::parse_envelope_bytes(raw)?;
    Some(Envelope {
        origin: e.origin,
        except: (e.except != 0).then(|| ConnId::from_raw(e.except)),
        position: Position {
            epoch: e.epoch,
            offset: e.offset,
        },
        message: e.message,
    })
}

/// What a fill found.
struct Fill {
    entries: Vec<Envelope>,
    lost: u64,
}

/// `{epoch, last, oldest kept, entries}` from the fill script, for a fill after
/// `since_epoch:since_offset`.
fn parse_fill(value: Value, since_epoch: &str, since_offset: u64) -> Option<Fill> {
    let Value::Array(parts) = value else {
        return None;
    };
    let epoch = String::from_utf8(value_bytes(parts.first()?)?.to_vec()).ok()?;
    let last = value_u64(parts.get(1)?)?;
    let mut entries = Vec::new();
    if let Some(Value::Array(raw)) = parts.get(3) {
        for entry in raw {
            let (offset, fields) = stream_entry(entry)?;
            let field = |name: &[u8]| {
                fields
                    .iter()
                    .find(|(n, _)| &n[..] == name)
                    .map(|(_, v)| v.clone())
            };
            let message = decode(&field(b"k")?, field(b"p")?)?;
            let number = |v: Option<Bytes>| -> u64 {
                v.and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
                    .unwrap_or(0)
            };
            let except = number(field(b"x"));
            entries.push(Envelope {
                origin: number(field(b"o")),
                except: (except != 0).then(|| ConnId::from_raw(except)),
                position: Position {
                    epoch: epoch.clone(),
                    offset,
                },
                message,
            });
        }
    }
    // What should have been there, against what was.
    let from = if epoch == since_epoch {
        since_offset
    } else {
        0
    };
    let lost = last
        .saturating_sub(from)
        .saturating_sub(entries.len() as u64);
    Some(Fill { entries, lost })
}

/// A stream entry `0-OFFSET` and its fields.
fn stream_entry(entry: &Value) -> Option<(u64, Vec<(Bytes, Bytes)>)> {
    let Value::Array(entry) = entry else {
        return None;
    };
    let id = String::from_utf8(value_bytes(entry.first()?)?.to_vec()).ok()?;
    let offset: u64 = id.strip_prefix("0-")?.parse().ok()?;
    let Value::Array(raw) = entry.get(1)? else {
        return None;
    };
    let fields = raw
        .chunks(2)
        .filter_map(|pair| Some((value_bytes(pair.first()?)?, value_bytes(pair.get(1)?)?)))
        .collect();
    Some((offset, fields))
}

/// The backplane's thread: connect, then serve the hub's asks and Redis's messages.
async fn run(
    config: Config,
    settings: RedisSettings,
    origin: u64,
    hub: WeakHub,
    counters: Arc<Counters>,
    mut asks: mpsc::UnboundedReceiver<Ask>,
    ready: oneshot::Sender<Result<(), RedisError>>,
) {
    let policy = ReconnectPolicy::new_exponential(
        0,
        settings.reconnect_initial.as_millis().max(1) as u32,
        settings.reconnect_max.as_millis().max(1) as u32,
        2,
    );
    // The subscription's messages are read as fast as they come: the channel only
    // rides out a burst, and a lag is filled from the stream. Its slots are
    // allocated up front, in each of the client's event channels: 65,536 of them
    // held 78 MiB on an idle server.
    let perf = PerformanceConfig {
        default_command_timeout: settings.command_timeout,
        broadcast_channel_capacity: settings.subscription_buffer.max(16),
        ..PerformanceConfig::default()
    };
    let mut built = Builder::from_config(config);
    built
        .set_policy(policy)
        .with_performance_config(|p| *p = perf.clone());
    let client = match built.build() {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(RedisError::Config(e.to_string())));
            return;
        }
    };
    let subscriber = match built.build_subscriber_client() {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(RedisError::Config(e.to_string())));
            return;
        }
    };
    let started = async {
        client.init().await?;
        subscriber.init().await?;
        Ok::<(), fred::error::Error>(())
    };
    match tokio::time::timeout(
        settings.command_timeout.max(Duration::from_secs(1)) * 3,
        started,
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = ready.send(Err(RedisError::Connect(e.to_string())));
            return;
        }
        Err(_) => {
            let _ = ready.send(Err(RedisError::Connect("timed out".into())));
            return;
        }
    }
    let _ = ready.send(Ok(()));
    let _resubscriber = subscriber.manage_subscriptions();
    let locate = Script::from_lua(LOCATE);
    // The publications' answers, taken in publication order: one that Redis did
    // not take is delivered here, in its place.
    let (answers, mut answers_rx) =
        mpsc::unbounded_channel::<(Publication, oneshot::Receiver<Result<(), String>>)>();
    {
        let (hub, counters) = (hub.clone(), counters.clone());
        tokio::spawn(async move {
            while let Some((publication, answer)) = answers_rx.recv().await {
                let result = answer.await.unwrap_or_else(|_| Err("dropped".into()));
                counters.in_flight.fetch_sub(1, Ordering::AcqRel);
                match result {
                    Ok(()) => {
                        counters.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => {
                        tracing::debug!(%err, "redis did not take a publication: delivered here only");
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        local_fallback(&hub, publication);
                    }
                }
            }
        });
    }

    // Messages from the subscription: delivered in order, on this task.
    let mut messages = subscriber.message_rx();
    let mut reconnects = client.reconnect_rx();
    let mut resubscribed = subscriber.reconnect_rx();
    let prefix = settings.prefix.clone();
    let ttl_ms = settings.topic_ttl.map_or(0, |t| t.as_millis() as u64);
    let sharded = settings.sharded;
    let ctx = Ctx {
        client: client.clone(),
        prefix: prefix.clone(),
        sharded,
        origin,
    };
    // Topics subscribed (confirmed), and the locates waiting for a subscription
    // and the topic's presence.
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut waiting: HashMap<String, Vec<(Option<Position>, LocateDone)>> = HashMap::new();
    let mut to_subscribe: HashSet<String> = HashSet::new();
    let mut to_unsubscribe: HashSet<String> = HashSet::new();
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let pending_subscriptions = Arc::new(Mutex::new(HashSet::<String>::new()));
    // Presence: the version each topic's users are known at, and the changes
    // that came while its snapshot was on the way.
    let mut presence_at: HashMap<String, u64> = HashMap::new();
    // (Each snapshot is numbered: an answer for a subscription since ended is
    // not taken for the next one's.)
    let mut snapshotting: HashMap<String, (u64, Vec<PresenceChange>)> = HashMap::new();
    let mut snapshots = 0u64;
    let mut heartbeat =
        tokio::time::interval((settings.presence_ttl / 3).max(Duration::from_millis(10)));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first_heartbeat = true;
    // Publications: where each topic's delivery stands, and the topics being
    // filled from their stream (with what came meanwhile).
    let mut delivered: HashMap<String, Position> = HashMap::new();
    let mut baseline: HashMap<String, Position> = HashMap::new();
    let mut filling: HashMap<String, (u64, Vec<Envelope>)> = HashMap::new();
    let mut fills = 0u64;

    loop {
        tokio::select! {
            biased;
            message = messages.recv() => match message {
                Ok(message) => {
                    let Some(topic) = topic_of(&prefix, &message.channel) else { continue };
                    let Some(raw) = value_bytes(&message.value) else { continue };
                    if raw.starts_with(b"p1\n") {
                        let Some(change) = parse_presence(&raw) else {
                            tracing::warn!(channel = %message.channel, "unreadable presence on the backplane");
                            continue;
                        };
                        if let Some((_, buffered)) = snapshotting.get_mut(topic) {
                            buffered.push(change);
                        } else if let Some(at) = presence_at.get_mut(topic) {
                            if change.version > *at {
                                *at = change.version;
                                apply_presence(&hub, topic, &change);
                            }
                        }
                        continue;
                    }
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    let Some(envelope) = parse_envelope(&raw) else {
                        tracing::warn!(channel = %message.channel, "unreadable envelope on the backplane");
                        continue;
                    };
                    if let Some((_, buffered)) = filling.get_mut(topic) {
                        buffered.push(envelope);
                        continue;
                    }
                    let gap = match delivered.get(topic) {
                        Some(at) => at.epoch == envelope.position.epoch
                            && envelope.position.offset > at.offset + 1,
                        None => false,
                    };
                    if gap {
                        // Some went by unseen (a lag, a reconnection): taken from
                        // the stream first, in order; the rest waits for them.
                        fills += 1;
                        let since = delivered.get(topic).cloned();
                        filling.insert(topic.to_owned(), (fills, vec![envelope]));
                        ctx.fill(topic, since, fills, &events_tx);
                        continue;
                    }
                    deliver_in_order(&hub, &mut delivered, topic, origin, envelope);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "redis backplane fell behind its subscription: filling from the streams");
                    let _ = events_tx.send(Event::Missed);
                }
                Err(_) => break,
            },
            ask = asks.recv() => {
                let Some(ask) = ask else { break };
                match ask {
                    Ask::Publish(publication) => {
                        if publication.history == usize::MAX {
                            // Over the in-flight bound: here only, in its place.
                            let (tx, rx) = oneshot::channel();
                            let _ = tx.send(Err("too many in flight".into()));
                            counters.in_flight.fetch_add(1, Ordering::AcqRel);
                            let _ = answers.send((publication, rx));
                            continue;
                        }
                        let k = keys(&prefix, &publication.topic);
                        let (kind, payload) = encode(&publication.message);
                        let except = publication.except.map_or(0, |id| id.get());
                        let args: Vec<Value> = vec![
                            k.channel.into(),
                            fresh_epoch().into(),
                            (publication.history as i64).into(),
                            origin.to_string().into(),
                            except.to_string().into(),
                            kind.into(),
                            Value::Bytes(payload),
                            if sharded { "1" } else { "0" }.into(),
                            (ttl_ms as i64).into(),
                        ];
                        // EVAL, not EVALSHA: a script missing from Redis's cache
                        // (after a restart) would make EVALSHA fail and retry
                        // later, out of the topic's order. The command is queued
                        // on the connection now, in order; its answer is awaited
                        // apart, and answers are taken in the same order.
                        let (client, keys) = (client.clone(), vec![k.epoch, k.offset, k.stream]);
                        let (tx, rx) = oneshot::channel();
                        tokio::spawn(async move {
                            let result: Result<i64, _> = client.eval(PUBLISH, keys, args).await;
                            let _ = tx.send(result.map(drop).map_err(|e| e.to_string()));
                        });
                        let _ = answers.send((publication, rx));
                    }
                    Ask::Subscribe(topic) => {
                        if to_unsubscribe.remove(&topic) && !snapshotting.contains_key(&topic) {
                            // Left and joined again before the unsubscribe went
                            // out: still subscribed, but the hub forgot who is
                            // present. Read again.
                            snapshots += 1;
                            snapshotting.insert(topic.clone(), (snapshots, Vec::new()));
                            ctx.snapshot(&topic, snapshots, &events_tx);
                        }
                        if !subscribed.contains(&topic) {
                            to_subscribe.insert(topic);
                        }
                    }
                    Ask::Unsubscribe(topic) => {
                        to_subscribe.remove(&topic);
                        presence_at.remove(&topic);
                        snapshotting.remove(&topic);
                        delivered.remove(&topic);
                        baseline.remove(&topic);
                        filling.remove(&topic);
                        if subscribed.contains(&topic) {
                            to_unsubscribe.insert(topic);
                        }
                    }
                    Ask::Locate(topic, since, done) => {
                        if subscribed.contains(&topic) && !snapshotting.contains_key(&topic) {
                            spawn_locate(&client, &locate, &prefix, &topic, since, done);
                        } else {
                            waiting.entry(topic).or_default().push((since, done));
                        }
                    }
                    Ask::Presence(topic, user, meta, kind) => {
                        ctx.announce(&topic, &user, meta.as_deref(), kind);
                    }
                }
                // Batched: every ask queued now is taken before one SUBSCRIBE.
                if asks.is_empty() {
                    flush(
                        &subscriber,
                        &prefix,
                        sharded,
                        &mut to_subscribe,
                        &mut to_unsubscribe,
                        &mut subscribed,
                        &pending_subscriptions,
                        &events_tx,
                        &counters,
                    );
                }
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                match event {
                    Event::Subscribed(topic, Ok(())) => {
                        lock(&pending_subscriptions).remove(&topic);
                        subscribed.insert(topic.clone());
                        counters.subscriptions.store(subscribed.len() as u64, Ordering::Relaxed);
                        // Who is present, before the joins are answered.
                        snapshots += 1;
                        snapshotting.insert(topic.clone(), (snapshots, Vec::new()));
                        ctx.snapshot(&topic, snapshots, &events_tx);
                    }
                    Event::Subscribed(topic, Err(())) => {
                        lock(&pending_subscriptions).remove(&topic);
                        // Not subscribed (Redis gone): answer from here; the topic
                        // is subscribed when fred resubscribes.
                        for (_, done) in waiting.remove(&topic).unwrap_or_default() {
                            done(local_position(&hub, &topic));
                        }
                        to_subscribe.insert(topic);
                    }
                    Event::Snapshot(topic, number, answer) => {
                        if snapshotting.get(&topic).is_none_or(|(n, _)| *n != number) {
                            continue;
                        }
                        let Some((_, buffered)) = snapshotting.remove(&topic) else { continue };
                        match answer {
                            Some(Snapshot { version, users, position }) => {
                                if let Some(h) = hub.upgrade() {
                                    h.set_presence(&topic, users);
                                }
                                // Where delivery starts from, for a fill after a
                                // reconnection before any publication came (not
                                // a mark of what was delivered: those published
                                // before it may still be on the way).
                                baseline.insert(topic.clone(), position);
                                let mut at = version;
                                for change in buffered {
                                    if change.version > at {
                                        at = change.version;
                                        apply_presence(&hub, &topic, &change);
                                    }
                                }
                                presence_at.insert(topic.clone(), at);
                            }
                            None => {
                                // Unknown: this server's own users are shown until
                                // a snapshot succeeds (after a reconnect).
                                presence_at.remove(&topic);
                            }
                        }
                        for (since, done) in waiting.remove(&topic).unwrap_or_default() {
                            spawn_locate(&client, &locate, &prefix, &topic, since, done);
                        }
                    }
                    Event::Filled(topic, number, fill) => {
                        if filling.get(&topic).is_none_or(|(n, _)| *n != number) {
                            continue;
                        }
                        let Some((_, buffered)) = filling.remove(&topic) else { continue };
                        match fill {
                            Some(fill) => {
                                counters.filled.fetch_add(fill.entries.len() as u64, Ordering::Relaxed);
                                counters.lost.fetch_add(fill.lost, Ordering::Relaxed);
                                if fill.lost > 0 {
                                    tracing::warn!(%topic, lost = fill.lost, "publications missed and no longer in the stream");
                                }
                                for envelope in fill.entries {
                                    deliver_in_order(&hub, &mut delivered, &topic, origin, envelope);
                                }
                            }
                            None => tracing::debug!(%topic, "redis fill failed: delivered as they come"),
                        }
                        for envelope in buffered {
                            deliver_in_order(&hub, &mut delivered, &topic, origin, envelope);
                        }
                    }
                    Event::Missed => {
                        // Publications and presence changes may have gone by
                        // unseen (the subscription was down, or fell behind): what
                        // was missed is taken from the streams, presence read again.
                        for topic in &subscribed {
                            let Some(at) = delivered.get(topic).or_else(|| baseline.get(topic)) else {
                                continue;
                            };
                            if !filling.contains_key(topic) {
                                fills += 1;
                                filling.insert(topic.clone(), (fills, Vec::new()));
                                ctx.fill(topic, Some(at.clone()), fills, &events_tx);
                            }
                        }
                        let _ = events_tx.send(Event::Forgotten);
                    }
                    Event::Forgotten => {
                        // Announced again (idempotent), then read again: what
                        // changed while Redis did not know this server is told.
                        if let Some(h) = hub.upgrade() {
                            for (topic, users) in h.local_presence() {
                                for (user, meta) in users {
                                    ctx.announce(&topic, &user, meta.as_deref(), PresenceKind::Joined);
                                }
                            }
                        }
                        for topic in &subscribed {
                            if !snapshotting.contains_key(topic) {
                                snapshots += 1;
                                snapshotting.insert(topic.clone(), (snapshots, Vec::new()));
                                ctx.snapshot(topic, snapshots, &events_tx);
                            }
                        }
                    }
                }
            }
            _ = heartbeat.tick() => {
                let first = std::mem::take(&mut first_heartbeat);
                ctx.heartbeat(settings.presence_ttl, first, &events_tx);
            }
            Ok(_) = reconnects.recv() => {
                counters.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::info!("redis backplane reconnected");
                // fred resubscribes what it knows; topics that failed to subscribe
                // while it was gone are tried again now.
                flush(
                    &subscriber,
                    &prefix,
                    sharded,
                    &mut to_subscribe,
                    &mut to_unsubscribe,
                    &mut subscribed,
                    &pending_subscriptions,
                    &events_tx,
                    &counters,
                );
                let _ = events_tx.send(Event::Forgotten);
            }
            Ok(_) = resubscribed.recv() => {
                // Subscribed again to every topic (fred does it too; Redis takes
                // a second SUBSCRIBE as a no-op) and only then filled: what is
                // published after the fill's read is certain to come by the
                // subscription.
                let channels: Vec<String> = subscribed.iter().map(|t| keys(&prefix, t).channel).collect();
                let (subscriber, events_tx) = (subscriber.clone(), events_tx.clone());
                tokio::spawn(async move {
                    let result = if channels.is_empty() {
                        Ok(())
                    } else if sharded {
                        subscriber.ssubscribe(channels).await
                    } else {
                        subscriber.subscribe(channels).await
                    };
                    if let Err(err) = result {
                        tracing::debug!(%err, "redis resubscribe failed");
                    }
                    let _ = events_tx.send(Event::Missed);
                });
            }
        }
    }
    // A clean stop: this server's users leave at once (not after presence_ttl).
    let _ = tokio::time::timeout(settings.command_timeout, ctx.sweep(origin)).await;
    let _ = client.quit().await;
    let _ = subscriber.quit().await;
}

/// What the presence work needs.
struct Ctx {
    client: Client,
    prefix: String,
    sharded: bool,
    origin: u64,
}

/// The presence keys of a topic for one server (see [`PRESENCE_LIB`]).
fn presence_keys(prefix: &str, topic: &str, origin: u64) -> Vec<String> {
    vec![
        format!("{prefix}:{{{topic}}}:pusers:{origin}"),
        format!("{prefix}:{{{topic}}}:pcount"),
        format!("{prefix}:{{{topic}}}:pmeta"),
        format!("{prefix}:{{{topic}}}:pversion"),
    ]
}

impl Ctx {
    fn servers_key(&self) -> String {
        format!("{}:servers", self.prefix)
    }

    fn topics_key(&self, origin: u64) -> String {
        format!("{}:server:{origin}:topics", self.prefix)
    }

    fn base_args(&self, topic: &str) -> Vec<Value> {
        vec![
            keys(&self.prefix, topic).channel.into(),
            if self.sharded { "1" } else { "0" }.into(),
        ]
    }

    /// This server's first join or last leave of `user` in `topic`, queued on the
    /// connection now (in order with the publications).
    fn announce(&self, topic: &str, user: &str, meta: Option<&str>, kind: PresenceKind) {
        let keys = presence_keys(&self.prefix, topic, self.origin);
        let mut args = self.base_args(topic);
        args.push(user.to_owned().into());
        let client = self.client.clone();
        match kind {
            PresenceKind::Joined => {
                args.push(if meta.is_some() { "1" } else { "0" }.into());
                args.push(meta.unwrap_or("").to_owned().into());
                // Listed first, so that a crash after the join is swept.
                let (set, topic) = (self.topics_key(self.origin), topic.to_owned());
                let script = format!("{PRESENCE_LIB}{PRESENCE_JOIN}");
                tokio::spawn(async move {
                    // Both queued at once (polled in this order), not one after
                    // the other's answer: the join keeps its place among the
                    // commands that follow it.
                    let (listed, joined): (Result<i64, _>, Result<i64, _>) =
                        tokio::join!(client.sadd(set, topic), client.eval(script, keys, args));
                    if let Err(err) = listed.map(drop).and(joined.map(drop)) {
                        tracing::debug!(%err, "redis presence join failed (announced again on reconnect)");
                    }
                });
            }
            PresenceKind::Left => {
                tokio::spawn(async move {
                    let script = format!("{PRESENCE_LIB}{PRESENCE_LEAVE}");
                    let left: Result<i64, _> = client.eval(script, keys, args).await;
                    if let Err(err) = left {
                        tracing::debug!(%err, "redis presence leave failed");
                    }
                });
            }
        }
    }

    /// Read who is present in `topic`; the answer comes back as an event.
    fn snapshot(&self, topic: &str, number: u64, events: &mpsc::UnboundedSender<Event>) {
        let mut keys = presence_keys(&self.prefix, topic, self.origin);
        let k = self::keys(&self.prefix, topic);
        keys.extend([k.epoch, k.offset]);
        let (client, events, topic) = (self.client.clone(), events.clone(), topic.to_owned());
        tokio::spawn(async move {
            let answer: Result<Value, _> = client
                .eval(PRESENCE_SNAPSHOT, keys, Vec::<Value>::new())
                .await;
            let parsed = match answer {
                Ok(value) => parse_snapshot(value),
                Err(err) => {
                    tracing::debug!(%err, "redis presence snapshot failed");
                    None
                }
            };
            let _ = events.send(Event::Snapshot(topic, number, parsed));
        });
    }

    /// Take what this server missed of `topic` after `since` from its stream; the
    /// answer comes back as an event.
    fn fill(
        &self,
        topic: &str,
        since: Option<Position>,
        number: u64,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        let k = keys(&self.prefix, topic);
        let (epoch, offset) = since.map_or((String::new(), 0), |p| (p.epoch, p.offset));
        let args: Vec<Value> = vec![epoch.clone().into(), (offset as i64).into()];
        let (client, events, topic) = (self.client.clone(), events.clone(), topic.to_owned());
        tokio::spawn(async move {
            let answer: Result<Value, _> = client
                .eval(FILL, vec![k.epoch, k.offset, k.stream], args)
                .await;
            let fill = match answer {
                Ok(value) => parse_fill(value, &epoch, offset),
                Err(err) => {
                    tracing::debug!(%err, "redis fill failed");
                    None
                }
            };
            let _ = events.send(Event::Filled(topic, number, fill));
        });
    }

    /// Say this server is alive; sweep the servers that are not.
    fn heartbeat(&self, ttl: Duration, first: bool, events: &mpsc::UnboundedSender<Event>) {
        let ctx = Ctx {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            sharded: self.sharded,
            origin: self.origin,
        };
        let events = events.clone();
        tokio::spawn(async move {
            let args: Vec<Value> = vec![
                ctx.origin.to_string().into(),
                (ttl.as_millis() as i64).into(),
            ];
            let answer: Result<Value, _> = ctx
                .client
                .eval(HEARTBEAT, vec![ctx.servers_key()], args)
                .await;
            let Ok(Value::Array(parts)) = answer else {
                return;
            };
            if !first && parts.first().and_then(value_u64) == Some(1) {
                tracing::info!("redis did not know this server: its presence is announced again");
                let _ = events.send(Event::Forgotten);
            }
            let dead: Vec<u64> = match parts.get(1) {
                Some(Value::Array(dead)) => dead.iter().filter_map(value_u64).collect(),
                _ => Vec::new(),
            };
            for origin in dead.into_iter().filter(|o| *o != ctx.origin) {
                tracing::info!(
                    server = origin,
                    "a server stopped refreshing: its members leave"
                );
                ctx.sweep(origin).await;
            }
        });
    }

    /// Every user of server `origin` leaves every topic; the server is forgotten.
    async fn sweep(&self, origin: u64) {
        let set = self.topics_key(origin);
        let topics: Vec<String> = match self.client.smembers(&set).await {
            Ok(t) => t,
            Err(err) => {
                tracing::debug!(%err, "redis presence sweep failed");
                return;
            }
        };
        let script = format!("{PRESENCE_LIB}{PRESENCE_SWEEP}");
        for topic in topics {
            let keys = presence_keys(&self.prefix, &topic, origin);
            let swept: Result<i64, _> = self
                .client
                .eval(&script, keys, self.base_args(&topic))
                .await;
            if let Err(err) = swept {
                tracing::debug!(%err, "redis presence sweep failed");
                return;
            }
        }
        let _: Result<i64, _> = self.client.del(&set).await;
        let _: Result<i64, _> = self
            .client
            .zrem(self.servers_key(), origin.to_string())
            .await;
    }
}

/// A presence change from the channel.
struct PresenceChange {
    version: u64,
    kind: PresenceKind,
    user: String,
    meta: Option<String>,
}

/// A presence change from the channel (`crate::hub_wire` parses it).
fn parse_presence(raw: &[u8]) -> Option<PresenceChange> {
    let c = crate::hub_wire::parse_presence(raw)?;
    Some(PresenceChange {
        version: c.version,
        kind: if c.joined {
            PresenceKind::Joined
        } else {
            PresenceKind::Left
        },
        user: c.user,
        meta: c.meta,
    })
}

fn apply_presence(hub: &WeakHub, topic: &str, change: &PresenceChange) {
    if let Some(h) = hub.upgrade() {
        h.deliver_presence(topic, &change.user, change.meta.as_deref(), change.kind);
    }
}

/// A topic's presence, and where its publications stood.
struct Snapshot {
    version: u64,
    users: Vec<(String, Option<String>)>,
    position: Position,
}

/// `{version, {user, has metadata, metadata, ...}, epoch, offset}` from the
/// snapshot script.
fn parse_snapshot(value: Value) -> Option<Snapshot> {
    let Value::Array(parts) = value else {
        return None;
    };
    let version = value_u64(parts.first()?)?;
    let mut users = Vec::new();
    if let Some(Value::Array(flat)) = parts.get(1) {
        for triple in flat.chunks(3) {
            let user = String::from_utf8(value_bytes(triple.first()?)?.to_vec()).ok()?;
            let has = value_bytes(triple.get(1)?)?;
            let meta = if &has[..] == b"1" {
                Some(String::from_utf8(value_bytes(triple.get(2)?)?.to_vec()).ok()?)
            } else {
                None
            };
            users.push((user, meta));
        }
    }
    let epoch = String::from_utf8(value_bytes(parts.get(2)?)?.to_vec()).ok()?;
    let offset = value_u64(parts.get(3)?)?;
    Some(Snapshot {
        version,
        users,
        position: Position { epoch, offset },
    })
}

/// Send the batched subscribe and unsubscribe commands.
#[allow(clippy::too_many_arguments)]
fn flush(
    subscriber: &SubscriberClient,
    prefix: &str,
    sharded: bool,
    to_subscribe: &mut HashSet<String>,
    to_unsubscribe: &mut HashSet<String>,
    subscribed: &mut HashSet<String>,
    pending: &Arc<Mutex<HashSet<String>>>,
    done: &mpsc::UnboundedSender<Event>,
    counters: &Counters,
) {
    if !to_subscribe.is_empty() {
        let topics: Vec<String> = to_subscribe
            .drain()
            .filter(|t| lock(pending).insert(t.clone()))
            .collect();
        if !topics.is_empty() {
            let channels: Vec<String> = topics.iter().map(|t| keys(prefix, t).channel).collect();
            let (subscriber, done) = (subscriber.clone(), done.clone());
            tokio::spawn(async move {
                let result = if sharded {
                    subscriber.ssubscribe(channels).await
                } else {
                    subscriber.subscribe(channels).await
                };
                let ok = result.map_err(|err| {
                    tracing::debug!(%err, "redis subscribe failed");
                });
                for topic in topics {
                    let _ = done.send(Event::Subscribed(topic, ok.map(|_| ())));
                }
            });
        }
    }
    if !to_unsubscribe.is_empty() {
        let topics: Vec<String> = to_unsubscribe.drain().collect();
        for topic in &topics {
            subscribed.remove(topic);
        }
        counters
            .subscriptions
            .store(subscribed.len() as u64, Ordering::Relaxed);
        let channels: Vec<String> = topics.iter().map(|t| keys(prefix, t).channel).collect();
        let subscriber = subscriber.clone();
        tokio::spawn(async move {
            let _ = if sharded {
                subscriber.sunsubscribe(channels).await
            } else {
                subscriber.unsubscribe(channels).await
            };
        });
    }
}

/// A topic's position as this server's hub knows it (Redis unreachable).
fn local_position(hub: &WeakHub, topic: &str) -> Located {
    let position = hub
        .upgrade()
        .and_then(|h| h.position(topic))
        .unwrap_or_else(Position::start);
    Located::new(position, None)
}

fn local_fallback(hub: &WeakHub, publication: Publication) {
    if let Some(hub) = hub.upgrade() {
        hub.publish_local(&publication.topic, publication.message, publication.except);
    }
}

fn spawn_locate(
    client: &Client,
    script: &Script,
    prefix: &str,
    topic: &str,
    since: Option<Position>,
    done: LocateDone,
) {
    let k = keys(prefix, topic);
    let (epoch, offset, asked) = match &since {
        Some(p) => (p.epoch.clone(), p.offset.to_string(), "1"),
        None => (String::new(), "0".into(), "0"),
    };
    let args: Vec<Value> = vec![
        fresh_epoch().into(),
        epoch.into(),
        offset.into(),
        asked.into(),
    ];
    let (client, script) = (client.clone(), script.clone());
    tokio::spawn(async move {
        let answer: Result<Value, _> = script
            .evalsha_with_reload(&client, vec![k.epoch, k.offset, k.stream], args)
            .await;
        let located = match answer {
            Ok(value) => parse_located(value).unwrap_or_else(|| {
                tracing::warn!("unexpected answer from the locate script");
                Located::new(
                    Position {
                        epoch: String::new(),
                        offset: 0,
                    },
                    None,
                )
            }),
            Err(err) => {
                tracing::debug!(%err, "redis locate failed: not recovered");
                Located::new(
                    Position {
                        epoch: String::new(),
                        offset: 0,
                    },
                    None,
                )
            }
        };
        done(located);
    });
}

fn value_bytes(v: &Value) -> Option<Bytes> {
    match v {
        Value::Bytes(b) => Some(b.clone()),
        Value::String(s) => Some(Bytes::copy_from_slice(s.as_bytes())),
        Value::Integer(i) => Some(Bytes::from(i.to_string())),
        _ => None,
    }
}

fn value_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => u64::try_from(*i).ok(),
        other => std::str::from_utf8(&value_bytes(other)?).ok()?.parse().ok(),
    }
}

/// `{epoch, last, recovered, entries}` from the locate script.
fn parse_located(value: Value) -> Option<Located> {
    let Value::Array(parts) = value else {
        return None;
    };
    let epoch = String::from_utf8(value_bytes(parts.first()?)?.to_vec()).ok()?;
    let last = value_u64(parts.get(1)?)?;
    let recovered = value_u64(parts.get(2)?)? == 1;
    let position = Position {
        epoch: epoch.clone(),
        offset: last,
    };
    if !recovered {
        return Some(Located::new(position, None));
    }
    let mut missed = Vec::new();
    if let Some(Value::Array(entries)) = parts.get(3) {
        for entry in entries {
            let (offset, fields) = stream_entry(entry)?;
            let field = |name: &[u8]| {
                fields
                    .iter()
                    .find(|(n, _)| &n[..] == name)
                    .map(|(_, v)| v.clone())
            };
            missed.push((
                Position {
                    epoch: epoch.clone(),
                    offset,
                },
                decode(&field(b"k")?, field(b"p")?)?,
            ));
        }
    }
    Some(Located::new(position, Some(missed)))
}

/// A numbered publication to the hub, once, in the topic's order: one at or
/// before what was delivered (the channel's copy of a filled one) is skipped.
fn deliver_in_order(
    hub: &WeakHub,
    delivered: &mut HashMap<String, Position>,
    topic: &str,
    origin: u64,
    envelope: Envelope,
) {
    if let Some(at) = delivered.get(topic) {
        if at.epoch == envelope.position.epoch && envelope.position.offset <= at.offset {
            return;
        }
    }
    delivered.insert(topic.to_owned(), envelope.position.clone());
    let Some(hub) = hub.upgrade() else {
        return;
    };
    // The sender is skipped on the server it is on.
    let except = envelope.except.filter(|_| envelope.origin == origin);
    hub.deliver_numbered(topic, &envelope.position, envelope.message, except);
}

impl crate::metrics::HubMetrics for RedisBackplane {
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let labels = [("hub", self.hub_name.as_str())];
        let c = &self.counters;
        for (name, help, value) in [
            (
                "ws_backplane_published",
                "Publications Redis took",
                &c.published,
            ),
            (
                "ws_backplane_received",
                "Publications received from Redis",
                &c.received,
            ),
            (
                "ws_backplane_dropped",
                "Publications Redis did not take (unreachable, slow, or too many in flight), delivered on this server only",
                &c.dropped,
            ),
            (
                "ws_backplane_filled",
                "Publications the subscription missed, taken from the topic's stream",
                &c.filled,
            ),
            (
                "ws_backplane_lost",
                "Publications the subscription missed that the stream no longer had",
                &c.lost,
            ),
            (
                "ws_backplane_reconnects",
                "Reconnections to Redis",
                &c.reconnects,
            ),
        ] {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value.load(Ordering::Relaxed)).encode(e.encode_family(&labels)?)?;
        }
        let mut e = encoder.encode_descriptor(
            "ws_backplane_subscriptions",
            "Topics this server is subscribed to in Redis",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(c.subscriptions.load(Ordering::Relaxed) as i64)
            .encode(e.encode_family(&labels)?)?;
        Ok(())
    }
}
