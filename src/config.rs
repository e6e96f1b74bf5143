//! Limits and behaviour of the protocol core.

/// The default message limit: `0x3ffffff` bytes (64 MiB - 1), the seed's `max-length`.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 0x3ff_ffff;

/// The default cap on fragments per message: 131,072 (as Node's `ws`), enough for a
/// 4 MiB message in 64-byte fragments twice over.
pub const DEFAULT_MAX_FRAGMENTS: usize = 131_072;

/// Limits and behaviour of a [`Connection`](crate::proto::Connection).
///
/// ```
/// use websocket_driver::Config;
///
/// let config = Config::default().max_message_size(1 << 20).max_fragments(1024);
/// assert_eq!(config.max_frame_size, 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct Config {
    /// The largest message accepted, in bytes, counted after any decompression.
    /// A frame that would push a message past it fails the connection with 1009
    /// before its payload is buffered. Default [`DEFAULT_MAX_MESSAGE_SIZE`]
    /// (`0x3ffffff`, the seed's `max-length`).
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
    pub auto_pong: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_frame_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
            auto_pong: true,
        }
    }
}

impl Config {
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

/// The default window of each direction when permessage-deflate is on: 2^12 = 4 KiB
/// (as python-websockets' server), small enough to keep a compressing connection
/// affordable and large enough for the repeated keys of JSON messages.
pub const DEFAULT_DEFLATE_WINDOW_BITS: u8 = 12;

/// permessage-deflate (RFC 7692): whether to negotiate it, and how to compress.
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
/// 9))` does not apply): 161 KiB at 12/5, 371 KiB at 15/8. An inflater holds 46.4 KiB
/// whatever the window (zlib-rs keeps a 32 KiB window). Both are allocated on the
/// first compressed message, not at the handshake; with no context takeover for a
/// direction, that direction's state is freed after every message, so an idle
/// connection holds none of it. See the README's settings table.
///
/// ```
/// use websocket_driver::DeflateConfig;
///
/// let config = DeflateConfig::on().server_no_context_takeover(true).level(1);
/// assert_eq!(config.offer(), "permessage-deflate; server_no_context_takeover; \
///     server_max_window_bits=12; client_max_window_bits=12");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct DeflateConfig {
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
    /// clamped). A server uses the smaller of this and the client's request, and
    /// declines an offer asking for 8: zlib cannot compress with a 256-byte window.
    /// A client requests it when under 15. Default [`DEFAULT_DEFLATE_WINDOW_BITS`].
    pub server_max_window_bits: u8,
    /// The largest LZ77 window the client compresses with, 8-15 for a server (it
    /// asks a client that offered `client_max_window_bits` for this value), 9-15
    /// for a client (it offers it, and fails a server that answers with 8). Values
    /// outside are clamped. Default [`DEFAULT_DEFLATE_WINDOW_BITS`].
    pub client_max_window_bits: u8,
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

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: false,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: DEFAULT_DEFLATE_WINDOW_BITS,
            client_max_window_bits: DEFAULT_DEFLATE_WINDOW_BITS,
            level: 1,
            mem_level: 5,
            threshold: 0,
        }
    }
}

impl DeflateConfig {
    /// The defaults with [`enabled`](Self::enabled) set.
    pub fn on() -> Self {
        DeflateConfig {
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

    /// Set [`server_max_window_bits`](Self::server_max_window_bits).
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits;
        self
    }

    /// Set [`client_max_window_bits`](Self::client_max_window_bits).
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = bits;
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
