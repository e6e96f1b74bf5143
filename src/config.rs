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
