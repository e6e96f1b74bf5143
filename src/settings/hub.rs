//! The `[hub]` section: [`HubSettings`], its [`SlowConsumer`] policy and its
//! namespaces ([`NamespaceSettings`]).

use std::{collections::BTreeMap, time::Duration};

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
    /// Conflate: keep, for that connection and topic, only the newest
    /// publication it could not take, and write it once the connection has
    /// room (checked every 10 ms); each one a newer replaced is counted
    /// (`ws_hub_conflated_total`). A slow reader of a fast feed gets the
    /// current value, never a backlog: an increasing subsequence of the
    /// publications, ending with the last. A publication lost to a full thread
    /// queue (`max_queued_per_thread`) is counted as dropped.
    Latest,
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
    /// Under [`SlowConsumer::Latest`], the values a subscriber keeps at most, one
    /// per conflation key (`Hub::publish_keyed`: the instrument of a price); past
    /// it, the oldest value kept is dropped for the new key's (counted in
    /// `ws_hub_dropped_total`). Default 64.
    pub conflation_keys: usize,
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
    /// How long an asynchronous authorization (`Hub::set_authorizer`) may take
    /// before the join or publication is refused as timed out. Default 5 s.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "authorize_timeout_ms", with = "super::millis")
    )]
    pub authorize_timeout: Duration,
    /// Topic policies by name (`[hub.namespaces.NAME]`): each applies to the
    /// topics its [`topics`](NamespaceSettings::topics) pattern names, and
    /// overrides the defaults above for them. Default: none.
    pub namespaces: BTreeMap<String, NamespaceSettings>,
}

/// One namespace of topics (`[hub.namespaces.NAME]`): a pattern and what its
/// topics do differently from the hub's defaults (a key left out keeps the
/// `[hub]` value). A topic takes the namespace whose pattern names it exactly,
/// else the one with the longest prefix that starts its name, else none; its
/// policy is decided when the topic is made (a topic configured with
/// `Hub::configure` keeps its own).
///
/// ```toml
/// [hub.namespaces.prices]
/// topics = "price:*"    # the default is "NAME:*"
/// cache = true          # a joiner gets the newest publication at once
/// client_publish = false
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct NamespaceSettings {
    /// The topics: an exact name, or a prefix followed by `*` (`chat:*`).
    /// Default `NAME:*`, NAME being the namespace's name.
    pub topics: Option<String>,
    /// Publications kept per topic for recovery.
    pub history_size: Option<usize>,
    /// How long a publication is kept (0 in TOML: until pushed out by size).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "history_ttl_ms", with = "ttl_override")
    )]
    pub history_ttl: Option<Option<Duration>>,
    /// Bytes of history kept per topic.
    pub history_bytes: Option<usize>,
    /// Report first joins and last leaves.
    pub presence: Option<bool>,
    /// Whether a join with a position recovers what was missed (off: it is
    /// answered `recovered: false`, nothing replayed). Default on.
    pub recovery: Option<bool>,
    /// Send each joiner the topic's newest publication at once (a history of at
    /// least one is kept). Default off.
    pub cache: Option<bool>,
    /// What to do with a subscriber over its budget.
    pub slow_consumer: Option<SlowConsumer>,
    /// Values a conflating subscriber keeps at most, one per key.
    pub conflation_keys: Option<usize>,
    /// The close code of [`SlowConsumer::Close`].
    pub slow_close_code: Option<u16>,
    /// Bytes a subscriber may have queued.
    pub send_budget_bytes: Option<usize>,
    /// Publications a subscriber may have queued.
    pub send_budget_messages: Option<usize>,
    /// Members a topic may have on this server.
    pub max_members: Option<usize>,
    /// The largest message a client may publish (`Hub::publish_from`), in bytes.
    /// Default: no bound beyond the connection's own.
    pub max_message_bytes: Option<usize>,
    /// Whether clients may publish (`Hub::publish_from`). Default `true`.
    pub client_publish: Option<bool>,
}

impl NamespaceSettings {
    /// The pattern of namespace `name`: [`topics`](Self::topics), or `name:*`.
    pub fn pattern(&self, name: &str) -> String {
        self.topics.clone().unwrap_or_else(|| format!("{name}:*"))
    }
}

/// A TTL that may be left out (keep the hub's), 0 (none) or a duration.
#[cfg(feature = "serde")]
mod ttl_override {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Milliseconds (0: none); `Settings::check` refuses one past `MAX_DURATION`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<Duration>>, D::Error> {
        let ms = u64::deserialize(d)?;
        Ok(Some((ms != 0).then(|| Duration::from_millis(ms))))
    }
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            send_budget_bytes: 1 << 20,
            send_budget_messages: 1000,
            slow_consumer: SlowConsumer::Close,
            conflation_keys: 64,
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
            authorize_timeout: Duration::from_secs(5),
            namespaces: BTreeMap::new(),
        }
    }
}
