//! Every option of the crate, in one tree: [`Settings`].
//!
//! One `Settings` value (or one TOML file) configures the actix-web route, the
//! standalone server, the client and the hub; each part reads the sections it needs:
//!
//! | section | type | read by |
//! |---|---|---|
//! | `[protocol]` | [`ProtocolSettings`] | the protocol core, both roles: limits, auto-pong |
//! | `[connection]` | [`ConnectionSettings`] | the actor layer, both roles: timers, send buffer, inbound rate limit |
//! | `[deflate]` | [`DeflateSettings`] | the handshake and the core, both roles: permessage-deflate |
//! | `[server]` | [`ServerSettings`] | the route and the standalone server: subprotocols, origins, headers; the standalone server's TLS |
//! | `[client]` | [`ClientSettings`] | the client: URL, subprotocols, headers, connect timeout, reconnect |
//! | `[hub]` | [`HubSettings`] | `ws::Hub`: send budgets, history, presence |
//! | `[redis]` | [`RedisSettings`] | the hub's Redis backplane (feature `redis`) |
//!
//! `config/default.toml` lists every option with its default and meaning (the
//! client's in `config/client.toml`). Durations are given in milliseconds (keys
//! ending in `_ms`), 0 turning a timer off where that is allowed. The builders
//! (`ws::Server`, `ws::Client`) set the same fields with methods of the same names.
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! let settings: websocket_driver::Settings = toml::from_str(r#"
//!     [protocol]
//!     max_message_size = 1048576
//!     [server]
//!     protocols = ["chat"]
//!     [connection]
//!     ping_interval_ms = 0
//!     [client]
//!     url = "ws://127.0.0.1:9001/"
//! "#).unwrap();
//! assert_eq!(settings.protocol.max_message_size, 1 << 20);
//! assert_eq!(settings.server.protocols, ["chat"]);
//! assert_eq!(settings.connection.ping_interval, None);
//! assert_eq!(settings.client.url, "ws://127.0.0.1:9001/");
//! # }
//! ```
//!
//! [`Settings::check`] validates a whole tree (every duration at most
//! [`MAX_DURATION`], sizes and codes in range, headers the handshake can write);
//! durations over [`MAX_DURATION`] in TOML are refused when read. What the
//! `[deflate]` section negotiates is here too:
//! [`DeflateSettings::accept_offer`] (a server's answer),
//! [`DeflateSettings::offer`] and [`DeflateSettings::accept_response`] (a client's
//! offer and its check of the answer). The module is plain data and what it
//! decides, and builds without actix or tokio.

#[cfg(any(feature = "web", feature = "server", feature = "client"))]
mod builder;
mod check;
mod client;
mod deflate;
mod hub;

use std::{collections::BTreeMap, time::Duration};

mod rate_limit;
pub(crate) mod redact;
mod redis;
mod tls;

#[cfg(any(feature = "web", feature = "server", feature = "client"))]
pub(crate) use builder::builder_setters;
pub use check::{
    SettingsError, MAX_IN_FLIGHT, MAX_SOCKET_SEND_BUFFER, MAX_SUBSCRIPTION_BUFFER,
    MIN_SUBSCRIPTION_BUFFER,
};
pub use client::{ClientSettings, ReconnectPolicy};
pub use hub::{HubSettings, NamespaceSettings, SlowConsumer};
pub use rate_limit::{OverLimit, RateLimit};
pub use redis::RedisSettings;
pub use tls::TlsSettings;

/// The longest duration a setting may hold: 2^32 - 1 ms (about 49.7 days). The
/// longest default is a day (`redis.topic_ttl_ms`); the bound keeps every deadline
/// and multiple computed from a setting within range. TOML durations over it are
/// refused when read.
pub const MAX_DURATION: Duration = Duration::from_millis(MAX_DURATION_MS);

/// [`MAX_DURATION`] in milliseconds, the unit of the TOML keys.
pub const MAX_DURATION_MS: u64 = u32::MAX as u64;

/// The default message limit: `0x3ffffff` bytes (64 MiB - 1), websocket-driver's (Common Lisp) `max-length`.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 0x3ff_ffff;

/// The default cap on fragments per message: 131,072 (as Node's `ws`), enough for a
/// 4 MiB message in 64-byte fragments twice over.
pub const DEFAULT_MAX_FRAGMENTS: usize = 131_072;

/// The window a server uses for each direction when permessage-deflate is on and
/// the window is not configured: 2^12 = 4 KiB (as python-websockets' server), small
/// enough to keep a compressing connection affordable and large enough for the
/// repeated keys of JSON messages. A client constrains no window unless configured.
pub const DEFAULT_DEFLATE_WINDOW_BITS: u8 = 12;

/// Every option, by section; see the [module documentation](self).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct Settings {
    /// Limits and behaviour of the protocol core (both roles).
    pub protocol: ProtocolSettings,
    /// Timers and the send buffer of each connection (both roles).
    pub connection: ConnectionSettings,
    /// permessage-deflate (RFC 7692), both roles: off by default.
    pub deflate: DeflateSettings,
    /// What a server accepts and adds in the opening handshake.
    pub server: ServerSettings,
    /// Where and how a client connects.
    pub client: ClientSettings,
    /// The connection manager (`ws::Hub`).
    pub hub: HubSettings,
    /// The hub's Redis backplane (feature `redis`): several servers as one.
    pub redis: RedisSettings,
}

impl Settings {
    /// The defaults (the same as [`Settings::default`]).
    pub fn new() -> Self {
        Self::default()
    }
}

/// Limits and behaviour of a [`Connection`](crate::proto::Connection), the protocol
/// core (the `[protocol]` section).
///
/// ```
/// use websocket_driver::ProtocolSettings;
///
/// let protocol = ProtocolSettings::default().max_message_size(1 << 20).max_fragments(1024);
/// assert_eq!(protocol.max_frame_size, 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct ProtocolSettings {
    /// The largest message accepted, in bytes, counted after any decompression.
    /// A frame that would push a message past it fails the connection with 1009
    /// before its payload is buffered. Default [`DEFAULT_MAX_MESSAGE_SIZE`]
    /// (`0x3ffffff`, websocket-driver's (Common Lisp) `max-length`).
    #[doc(alias = "max_length")]
    pub max_message_size: usize,
    /// The largest frame payload accepted, in bytes; checked on the header, before the
    /// payload is buffered (1009). Default: the same as `max_message_size`, and
    /// setting `max_message_size` lowers it to match when it was larger.
    pub max_frame_size: usize,
    /// The most frames one message may be made of (1009 past it). Guards against a
    /// flood of empty fragments. Default [`DEFAULT_MAX_FRAGMENTS`].
    pub max_fragments: usize,
    /// Answer each Ping with a Pong automatically (RFC 6455 §5.5.2). Default `true`.
    /// When off, the application answers (`Conn::send_pong`); an actor that does not
    /// take pings (see `ws::WithControl`) has them answered by the actor layer, so a
    /// Ping is never left unanswered.
    pub auto_pong: bool,
}

impl Default for ProtocolSettings {
    fn default() -> Self {
        ProtocolSettings {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_frame_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
            auto_pong: true,
        }
    }
}

impl ProtocolSettings {
    /// Set [`max_message_size`](Self::max_message_size); lowers `max_frame_size` to
    /// it when that was larger.
    #[doc(alias = "max_length")]
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self.max_frame_size = self.max_frame_size.min(bytes);
        self
    }

    /// Set [`max_frame_size`](Self::max_frame_size).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Set [`max_fragments`](Self::max_fragments).
    pub fn max_fragments(mut self, count: usize) -> Self {
        self.max_fragments = count;
        self
    }

    /// Set [`auto_pong`](Self::auto_pong).
    pub fn auto_pong(mut self, on: bool) -> Self {
        self.auto_pong = on;
        self
    }
}

/// Timers and the send buffer of a connection (the `[connection]` section), read by
/// the actor layer; the core keeps no clock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct ConnectionSettings {
    /// Send a Ping when nothing has arrived for this long (keep-alive); `None` (0 in
    /// TOML) never pings. Default 20 s (as python-websockets). Reads note activity
    /// without reading the clock, so the ping comes between one and two intervals
    /// after the last frame, never sooner.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "ping_interval_ms", with = "millis_opt")
    )]
    pub ping_interval: Option<Duration>,
    /// Fail the connection with 1001 when nothing (not even a Pong) has arrived for
    /// this long; `None` (0) never. Default 60 s. Never sooner, and at most twice
    /// this long after the last frame (see `ping_interval`).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "idle_timeout_ms", with = "millis_opt")
    )]
    pub idle_timeout: Option<Duration>,
    /// How long to wait for the peer's Close (or its closing of the transport) once
    /// the closing handshake started, before closing the transport. Default 5 s.
    #[cfg_attr(feature = "serde", serde(rename = "close_timeout_ms", with = "millis"))]
    pub close_timeout: Duration,
    /// How long the opening handshake may take where the crate reads it itself: the
    /// standalone server (request head) and the client (TLS and the response head).
    /// On the actix-web route, actix-web's `client_request_timeout` applies.
    /// Default 10 s.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "handshake_timeout_ms", with = "millis")
    )]
    pub handshake_timeout: Duration,
    /// High-water mark of the send buffer, in bytes: a send made while at least this
    /// much waits to be written is refused with `SendError::Backpressure`. One
    /// message is always accepted below the mark, however large. Default 1 MiB.
    pub max_send_buffer: usize,
    /// Fail the connection with 1008 on back-pressure instead of only refusing the
    /// send. Default `false`.
    pub close_on_backpressure: bool,
    /// How many events are handled in a row before the connection yields to the rest
    /// of its actor's work (its mailbox, its timers). Default 32.
    pub max_events_per_poll: usize,
    /// The kernel's send buffer of each standalone server connection, in bytes
    /// (`SO_SNDBUF`; Linux doubles it for its bookkeeping); `None` (0 in TOML)
    /// leaves it to the kernel, which grows it up to 4 MiB for a peer that reads
    /// slowly. A small buffer bounds the kernel memory a slow peer can hold and
    /// makes back-pressure (and a hub's slow-consumer policy) apply sooner.
    /// Default `None`.
    #[cfg_attr(feature = "serde", serde(with = "bytes_opt"))]
    pub socket_send_buffer: Option<usize>,
    /// Messages and bytes per second taken from the peer, with a burst, and what
    /// going over brings (close with 1008, or pause reading); see [`RateLimit`].
    /// `None` (no `[connection.rate_limit]` table): no limit, the peer is bounded
    /// by the message size limits and by how fast the actor handles what it
    /// sends. Default `None`: what a peer may send depends on the application
    /// (a chat's few messages a second, a game's sixty updates, a file upload's
    /// megabytes), so the library does not guess; a server open to the public
    /// should set one.
    pub rate_limit: Option<RateLimit>,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            ping_interval: Some(Duration::from_secs(20)),
            idle_timeout: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            max_send_buffer: 1 << 20,
            close_on_backpressure: false,
            max_events_per_poll: 32,
            socket_send_buffer: None,
            rate_limit: None,
        }
    }
}

/// permessage-deflate (RFC 7692): whether to negotiate it, and how to compress (the
/// `[deflate]` section).
///
/// One configuration serves both roles. Each field names the direction it governs:
/// `server_*` is what the server compresses (and the client inflates), `client_*`
/// what the client compresses. A server answers an offer with these choices (see
/// [`accept_offer`](Self::accept_offer)); a client makes its offer from them
/// ([`offer`](Self::offer)) and checks the answer
/// ([`accept_response`](Self::accept_response)).
///
/// Memory held by a connection that compresses (the backend is zlib-rs, measured
/// with `cargo test --test deflate_memory -- --nocapture`): a compressor holds
/// `4 << window_bits` + `7 << (mem_level + 6)` + 128 KiB (zlib-rs's hash table has a
/// fixed 64 Ki entries, so C zlib's `(1 << (window_bits + 2)) + (1 << (mem_level +
/// 9))` does not apply): 161 KiB at 12/5, 273 KiB at 15/5, 371 KiB at 15/8. An inflater holds 46.4 KiB
/// whatever the window (zlib-rs keeps a 32 KiB window). Both are allocated on the
/// first compressed message, not at the handshake; with no context takeover for a
/// direction, that direction's state is freed after every message, so an idle
/// connection holds none of it. See the README's settings table.
///
/// ```
/// use websocket_driver::DeflateSettings;
///
/// let deflate = DeflateSettings::on().server_no_context_takeover(true).level(1);
/// assert_eq!(deflate.offer(), "permessage-deflate; server_no_context_takeover; \
///     client_max_window_bits");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct DeflateSettings {
    /// Negotiate permessage-deflate at all. Default `false`: compression costs CPU
    /// and memory per connection, and mixing secrets with attacker-chosen text in
    /// one compressed context leaks them (CRIME/BREACH); turn it on where bandwidth
    /// matters more.
    pub enabled: bool,
    /// The server resets its compression context after every message
    /// (`server_no_context_takeover`, RFC 7692 §7.1.1.1). A server says so in every
    /// answer; a client asks for it. Lower ratio, no compressor kept between
    /// messages, and lets a server send one [`PreparedMessage`](crate::proto::PreparedMessage)
    /// to many connections. A server always honours a client that asks for it.
    /// Default `false`.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after every message
    /// (`client_no_context_takeover`, RFC 7692 §7.1.1.2). A server asks for it in
    /// every answer (and then frees its inflater between messages); a client offers
    /// it. Default `false`.
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server compresses with, as a power of two
    /// (`server_max_window_bits`, RFC 7692 §7.1.2.1), 9-15 (values outside are
    /// clamped). A server compresses with the smaller of this (`None`:
    /// [`DEFAULT_DEFLATE_WINDOW_BITS`]) and the client's request, and declines an
    /// offer asking for 8: zlib cannot compress with a 256-byte window. A client
    /// requests it when set under 15 (and fails an answer with a larger one);
    /// `None` requests nothing, as browsers do: the server may use up to 15, which
    /// costs the client nothing more (zlib-rs inflates with a 32 KiB window
    /// whatever was agreed). Default `None`.
    pub server_max_window_bits: Option<u8>,
    /// The largest LZ77 window the client compresses with. A server asks a client
    /// that offered `client_max_window_bits` for this value, 8-15 (`None`:
    /// [`DEFAULT_DEFLATE_WINDOW_BITS`]). A client offers it, 9-15: `Some(bits)`
    /// under 15 offers `client_max_window_bits=bits` and fails an answer with a
    /// larger value (RFC 7692 §7.1.2.2) or with 8; `None` (or 15) offers
    /// `client_max_window_bits` without a value, as browsers do, and compresses
    /// with what the server answers (15 when it answers nothing). The window is
    /// what the client's compressor costs (see the memory figures above): with the
    /// default `mem_level` 5 it holds 273 KiB at 15 bits, 161 KiB at 12 (measured,
    /// `cargo test --test deflate_memory -- --nocapture`); so a client that keeps
    /// many compressing connections may set 12. Values outside are clamped.
    /// Default `None`.
    pub client_max_window_bits: Option<u8>,
    /// zlib compression level, 0 (store) to 9 (best); clamped. Default 1: on 1 KiB
    /// JSON messages it sends 27% of the bytes (level 6: 19%) at a quarter of level
    /// 6's CPU time (`cargo bench --bench deflate`).
    pub level: u8,
    /// zlib memory level, 1-9 (clamped): the size of the compressor's symbol buffer,
    /// `7 << (mem_level + 6)` bytes. Default 5.
    pub mem_level: u8,
    /// Messages shorter than this many bytes are sent uncompressed (RSV1 clear),
    /// which costs no compressor at all. Default 0: every message is compressed.
    pub threshold: usize,
}

impl Default for DeflateSettings {
    fn default() -> Self {
        DeflateSettings {
            enabled: false,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: 1,
            mem_level: 5,
            threshold: 0,
        }
    }
}

impl DeflateSettings {
    /// The defaults with [`enabled`](Self::enabled) set.
    pub fn on() -> Self {
        DeflateSettings {
            enabled: true,
            ..Self::default()
        }
    }

    /// Set [`enabled`](Self::enabled).
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Set [`server_no_context_takeover`](Self::server_no_context_takeover).
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }

    /// Set [`client_no_context_takeover`](Self::client_no_context_takeover).
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }

    /// Set [`server_max_window_bits`](Self::server_max_window_bits): a number of
    /// bits, or `None`.
    pub fn server_max_window_bits(mut self, bits: impl Into<Option<u8>>) -> Self {
        self.server_max_window_bits = bits.into();
        self
    }

    /// Set [`client_max_window_bits`](Self::client_max_window_bits): a number of
    /// bits, or `None`.
    pub fn client_max_window_bits(mut self, bits: impl Into<Option<u8>>) -> Self {
        self.client_max_window_bits = bits.into();
        self
    }

    /// Set [`level`](Self::level).
    pub fn level(mut self, level: u8) -> Self {
        self.level = level;
        self
    }

    /// Set [`mem_level`](Self::mem_level).
    pub fn mem_level(mut self, mem_level: u8) -> Self {
        self.mem_level = mem_level;
        self
    }

    /// Set [`threshold`](Self::threshold).
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }
}

/// What a server accepts and adds in the opening handshake (the `[server]`
/// section; websocket-driver's (Common Lisp) `accept-protocols` and `additional-headers`).
///
/// ```
/// use websocket_driver::ServerSettings;
///
/// let server = ServerSettings::default()
///     .protocols(["chat.v2", "chat"])
///     .origins(["https://example.com"])
///     .header("X-Served-By", "ws-1");
/// assert_eq!(server.protocols, ["chat.v2", "chat"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct ServerSettings {
    /// Subprotocols the server speaks, in its order of preference (websocket-driver's (Common Lisp)
    /// `accept-protocols`): the chosen one is the first of these that the client
    /// offered, compared exactly; when none was offered, none is chosen and the
    /// handshake still succeeds. A string that is not a token can never be offered,
    /// so never matches. Default: none.
    pub protocols: Vec<String>,
    /// Origins allowed to connect besides the server's own. A handshake with an
    /// `Origin` header (a browser's) is refused with `403` unless the origin's host
    /// and port are the request's `Host` (a default port, 80 or 443, written or
    /// not) or it is listed here: `"*"` (any origin), an exact origin as RFC 6454
    /// §6.2 serializes it (`https://app.example.com`, `http://localhost:3000`), or
    /// every subdomain of a domain (`https://*.example.com`); scheme, host and port
    /// compared ASCII case-insensitively. A handshake without `Origin` (not a
    /// browser) is accepted. Default: empty, the server's own origin only (see
    /// `handshake::origin_allowed`).
    pub origins: Vec<String>,
    /// Extra headers of every `101` response (websocket-driver's (Common Lisp) `additional-headers`). A
    /// name that is not a token, a value with a control character, or a header the
    /// handshake writes itself (`Upgrade`, `Connection`, `Sec-WebSocket-*`,
    /// `Content-Length`, `Transfer-Encoding`) is left out of the response (and
    /// reported by `Settings::check`). Default: none.
    pub headers: BTreeMap<String, String>,
    /// The standalone server's certificate and key: `wss://` when set (the
    /// `[server.tls]` table; see [`TlsSettings`]). The route ignores it. Default
    /// `None`: plain `ws://`.
    pub tls: Option<TlsSettings>,
}

impl ServerSettings {
    /// Set [`protocols`](Self::protocols).
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, protocols: I) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Set [`origins`](Self::origins).
    pub fn origins<I: IntoIterator<Item = S>, S: Into<String>>(mut self, origins: I) -> Self {
        self.origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Allow any origin ([`origins`](Self::origins) `["*"]`): for a server that
    /// authenticates each connection without the browser's ambient credentials
    /// (cookies, HTTP authentication), or that serves public data only.
    pub fn allow_any_origin(mut self) -> Self {
        self.origins = vec!["*".into()];
        self
    }

    /// Add one of the [`headers`](Self::headers).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Set [`tls`](Self::tls).
    pub fn tls(mut self, tls: TlsSettings) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// Durations in TOML: whole milliseconds, at most [`MAX_DURATION_MS`] (refused
/// when read, naming the bound).
#[cfg(feature = "serde")]
mod millis {
    use std::time::Duration;

    use serde::{de::Error, Deserialize, Deserializer};

    use super::MAX_DURATION_MS;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = u64::deserialize(d)?;
        if ms > MAX_DURATION_MS {
            return Err(D::Error::custom(format_args!(
                "{ms} ms is longer than the maximum, {MAX_DURATION_MS} ms (about 49 days)"
            )));
        }
        Ok(Duration::from_millis(ms))
    }
}

/// Durations that 0 turns off.
#[cfg(feature = "serde")]
mod millis_opt {
    use std::time::Duration;

    use serde::Deserializer;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let duration = super::millis::deserialize(d)?;
        Ok((!duration.is_zero()).then_some(duration))
    }
}

#[cfg(feature = "serde")]
mod bytes_opt {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        let n = usize::deserialize(d)?;
        Ok((n != 0).then_some(n))
    }
}
