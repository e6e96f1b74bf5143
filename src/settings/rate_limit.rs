//! Per-connection inbound limits: [`RateLimit`] (the `[connection.rate_limit]`
//! table).

/// How many messages and bytes per second a connection takes from its peer (the
/// `[connection.rate_limit]` table; off unless set, see
/// [`ConnectionSettings::rate_limit`](crate::ConnectionSettings::rate_limit)).
///
/// Each limit is a token bucket: it holds up to its burst, refills at its rate,
/// and every message the peer sends (data, Ping or Pong, counted when complete)
/// takes one message token and its payload's length in byte tokens. A message
/// larger than the byte burst is taken when the bucket is full (and leaves it in
/// debt). A message that finds a bucket short goes over the limit, and
/// [`over`](Self::over) says what follows: the connection is closed with 1008, or
/// reading pauses until the buckets are back. Each time is counted
/// (`ws_rate_limited_total`).
///
/// ```
/// use websocket_driver::{OverLimit, RateLimit};
///
/// let limit = RateLimit::messages(20).bytes(64 * 1024).burst(40, 128 * 1024);
/// assert_eq!(limit.over, OverLimit::Close);
/// assert_eq!(RateLimit::messages(20).burst_messages, 0, "0: one second's worth");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct RateLimit {
    /// Messages per second; 0: no message limit. Default 100.
    pub messages_per_second: u32,
    /// Payload bytes per second; 0: no byte limit. Default 1 MiB.
    pub bytes_per_second: u64,
    /// Messages taken at once after a quiet spell (the bucket's size); 0: one
    /// second's worth (`messages_per_second`). Default 0.
    pub burst_messages: u32,
    /// Bytes taken at once after a quiet spell; 0: one second's worth
    /// (`bytes_per_second`). Default 0.
    pub burst_bytes: u64,
    /// What a message over the limit brings. Default [`OverLimit::Close`].
    pub over: OverLimit,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            messages_per_second: 100,
            bytes_per_second: 1 << 20,
            burst_messages: 0,
            burst_bytes: 0,
            over: OverLimit::Close,
        }
    }
}

impl RateLimit {
    /// A limit of `per_second` messages, with no byte limit.
    pub fn messages(per_second: u32) -> Self {
        RateLimit {
            messages_per_second: per_second,
            bytes_per_second: 0,
            ..RateLimit::default()
        }
    }

    /// Set [`bytes_per_second`](Self::bytes_per_second).
    pub fn bytes(mut self, per_second: u64) -> Self {
        self.bytes_per_second = per_second;
        self
    }

    /// Set [`burst_messages`](Self::burst_messages) and
    /// [`burst_bytes`](Self::burst_bytes).
    pub fn burst(mut self, messages: u32, bytes: u64) -> Self {
        self.burst_messages = messages;
        self.burst_bytes = bytes;
        self
    }

    /// Pause reading past the limit ([`OverLimit::Pause`]) instead of closing.
    pub fn pause(mut self) -> Self {
        self.over = OverLimit::Pause;
        self
    }

    /// Whether neither limit is set (0 messages and 0 bytes per second).
    pub fn is_off(&self) -> bool {
        self.messages_per_second == 0 && self.bytes_per_second == 0
    }
}

/// What a message over a connection's [`RateLimit`] brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum OverLimit {
    /// Fail the connection with 1008 (policy violation) and the reason `rate
    /// limit exceeded`; the message is not handed over, nor anything after it.
    Close,
    /// Hand the message over, then stop reading (the peer's TCP window fills and
    /// pushes back) until the buckets have refilled what it took.
    Pause,
}
