//! The `[hub]` section: [`HubSettings`] and its [`SlowConsumer`] policy.

use std::time::Duration;

/// What a connection that cannot keep up is done with (a hub topic's policy,
/// [`HubSettings::slow_consumer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum SlowConsumer {
    /// Skip the publication for that connection and count it
    /// (`ws_hub_dropped_total`); the connection stays open.
    Drop,
    /// Close the connection with [`HubSettings::slow_close_code`] (1008 by
    /// default) and count it (`ws_hub_slow_closes_total`).
    Close,
}

/// The connection manager's defaults (the `[hub]` section): what a connection may
/// have queued before the slow-consumer policy applies, each topic's history, and
/// the bounds of the hub's tables and queues. A topic can override its history and
/// policy when it is configured (`Hub::configure`).
///
/// Every table and queue of a hub is bounded: a join past a bound is refused with
/// a typed error (`ws::JoinError`), a publication past one is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct HubSettings {
    /// Bytes a connection may have queued and unwritten when a publication is
    /// delivered to it; past it the topic's [`slow_consumer`](Self::slow_consumer)
    /// policy applies. Default 1 MiB (Centrifugo's per-connection queue; uWebSockets
    /// uses 64 KiB).
    pub send_budget_bytes: usize,
    /// Publications a connection may have queued and unwritten. Default 1,000 (as
    /// Sockudo).
    pub send_budget_messages: usize,
    /// What to do with a connection over its budget. Default [`SlowConsumer::Close`].
    pub slow_consumer: SlowConsumer,
    /// The close code for [`SlowConsumer::Close`]. Default 1008 (policy violation).
    pub slow_close_code: u16,
    /// Publications kept per topic for recovery; 0 keeps none. Default 0 (no
    /// history unless a topic asks for it).
    pub history_size: usize,
    /// How long a publication stays in a topic's history; `None` (0 in TOML) keeps
    /// it until a size bound pushes it out. Expired publications are dropped, and
    /// a topic left with no member and nothing kept is forgotten, by a sweep every
    /// second. At most [`MAX_DURATION`](super::MAX_DURATION). Default 5 minutes.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "history_ttl_ms", with = "super::millis_opt")
    )]
    pub history_ttl: Option<Duration>,
    /// Bytes of history a topic keeps at most (its frames as prepared: the
    /// payload, its frame, and the compressed frame when there is one); the oldest
    /// publications make room for a new one, and one larger than this empties
    /// the history. Default 1 MiB.
    pub history_bytes: usize,
    /// Bytes of history the hub keeps at most, all topics together: past it the
    /// oldest publications of any topic are evicted first
    /// (`ws_hub_history_evicted_total`; a recovery that needed them is told
    /// `recovered: false`). Default 64 MiB.
    pub max_history_bytes: usize,
    /// Report join and leave events to a topic's members. Default `false`.
    pub presence: bool,
    /// Topics one connection may be a member of at once; a join past it is
    /// refused (`JoinError::TooManyTopics`). Default 128 (as Centrifugo's
    /// `client_channel_limit`).
    pub max_topics_per_connection: usize,
    /// Members a topic may have on this server; a join past it is refused
    /// (`JoinError::TopicFull`). Default 100,000.
    pub max_members_per_topic: usize,
    /// The longest topic name, in bytes (`JoinError::TopicTooLong`). Default 255
    /// (as Centrifugo's `channel_max_length`). Names are also refused when empty
    /// or when they hold `{` or `}` (`JoinError::InvalidTopic`):
    /// a Redis cluster places a topic's keys by the part of their name between
    /// braces, so a brace in a name would split a topic across nodes.
    pub max_topic_bytes: usize,
    /// The longest user key, in bytes (`JoinError::UserTooLong`). Default 255.
    pub max_user_bytes: usize,
    /// The longest member metadata, in bytes (`JoinError::MetaTooLong`). Default
    /// 4,096.
    pub max_meta_bytes: usize,
    /// Publications waiting for one worker thread's shard at most; past it a
    /// publication is not queued for that thread (`ws_hub_queue_full_total`) and
    /// the thread's subscribers of its topic get the topic's slow-consumer policy
    /// (closed, or the publication counted as dropped for each). Default 16,384.
    /// The same bound holds the presence changes waiting for the closures of
    /// `Hub::on_presence_fn` (past it a change is not told to them, counted in
    /// `ws_hub_presence_dropped_total`).
    pub max_queued_per_thread: usize,
    /// Connections one user may have in the hub at once (`Hub::register`, or a
    /// join that names the user of a connection the hub did not know by name);
    /// past it the connection is refused (`JoinError::TooManyConnections`). A
    /// connection without a user is its own (its id). Default 100.
    pub max_connections_per_user: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            send_budget_bytes: 1 << 20,
            send_budget_messages: 1000,
            slow_consumer: SlowConsumer::Close,
            slow_close_code: 1008,
            history_size: 0,
            history_ttl: Some(Duration::from_secs(300)),
            history_bytes: 1 << 20,
            max_history_bytes: 64 << 20,
            presence: false,
            max_topics_per_connection: 128,
            max_members_per_topic: 100_000,
            max_topic_bytes: 255,
            max_user_bytes: 255,
            max_meta_bytes: 4096,
            max_queued_per_thread: 16_384,
            max_connections_per_user: 100,
        }
    }
}
