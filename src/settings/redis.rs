//! The `[redis]` section: [`RedisSettings`] (checked by
//! [`RedisSettings::check`], with the other sections' checks).

use std::time::Duration;

use super::redact;

/// The hub's Redis backplane (the `[redis]` section; feature `redis`): publications
/// through Redis pub/sub, numbered and kept in Redis Streams, presence in Redis
/// hashes, so that hubs on several servers act as one. [`check`](Self::check)
/// says whether the values are in range (the backplane refuses to start
/// otherwise); every duration is at most [`MAX_DURATION`](super::MAX_DURATION).
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct RedisSettings {
    /// `redis://host:port/db` (or `redis-cluster://host:port?node=host:port` for a
    /// cluster), with `user:password@` before the host when Redis asks for them
    /// (shown as `***` in `Debug` output and logs). Default: empty, no backplane.
    pub url: String,
    /// The prefix of every key and channel; no `{` or `}` (a brace would make
    /// the prefix the cluster hash tag of every key: one slot for all). Default
    /// `"ws"`.
    pub prefix: String,
    /// Use sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7): in a cluster, a
    /// topic's messages stay on its shard instead of going to every node.
    /// Default `false`.
    pub sharded: bool,
    /// How long a topic's state (epoch, offsets, history) stays in Redis after its
    /// last publication; `None` (0 in TOML) forever. Default 24 hours.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "topic_ttl_ms", with = "super::millis_opt")
    )]
    pub topic_ttl: Option<Duration>,
    /// Publications queued or on their way to Redis at most (everything not yet
    /// answered counts); past it (Redis slow or gone) they are delivered on this
    /// server only and counted as dropped. 1 to 16,777,216. Default 10,000.
    pub max_in_flight: usize,
    /// Messages of the subscription waiting to be read at most (each of the Redis
    /// client's event channels holds this many slots, allocated up front); past it
    /// the subscription lags, and what it missed is taken from the topic's stream
    /// in its place (`ws_backplane_filled`). Also the most publications of a topic
    /// held back while what it missed is read from its stream. 16 to 1,048,576.
    /// Default 4,096.
    pub subscription_buffer: usize,
    /// How long a server's presence entries live without its refresh: a crashed
    /// server's members disappear within this. At least 30 ms. Default 15 s.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "presence_ttl_ms", with = "super::millis")
    )]
    pub presence_ttl: Duration,
    /// How long any presence key (and the list of servers) lives in Redis without
    /// a write or a refresh: live servers give theirs their time again before a
    /// quarter of it has gone, so that what no server is left to sweep goes too.
    /// At least twice `presence_ttl`. Default 1 hour.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "presence_keys_ttl_ms", with = "super::millis")
    )]
    pub presence_keys_ttl: Duration,
    /// A command that takes longer fails. Publications are the exception on a
    /// live connection: one not answered by then is counted
    /// (`ws_backplane_slow`) and still awaited (the client cannot tell whether
    /// it wrote one it gives up on), bounded by `max_in_flight`; past it with
    /// the connection seen out, it is also delivered on this server in its
    /// place (`ws_backplane_dropped`). One made while the connection is being
    /// made again waits for it this long, then is delivered on this server
    /// only. At least 1 ms.
    /// Default 2 s.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "command_timeout_ms", with = "super::millis")
    )]
    pub command_timeout: Duration,
    /// The first wait before reconnecting, doubled up to `reconnect_max`; also
    /// the first wait before a failed subscription is tried again and before the
    /// backplane's task is started again after a crash. 1 ms to `reconnect_max`.
    /// Default 100 ms.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "reconnect_initial_ms", with = "super::millis")
    )]
    pub reconnect_initial: Duration,
    /// The longest wait between reconnect attempts (and between tries of a failed
    /// subscription, and restarts). At least 1 ms. Default 5 s.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "reconnect_max_ms", with = "super::millis")
    )]
    pub reconnect_max: Duration,
    /// How often the subscriptions are compared with the topics the hub holds
    /// members of (a difference seen twice in a row is repaired, and counted in
    /// `ws_backplane_reconciled`). At least 10 ms. Default 10 s.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "reconcile_interval_ms", with = "super::millis")
    )]
    pub reconcile_interval: Duration,
}

/// The URL's password shown as `***` (`redis://user:***@host:6379`).
impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let RedisSettings {
            url,
            prefix,
            sharded,
            topic_ttl,
            max_in_flight,
            subscription_buffer,
            presence_ttl,
            presence_keys_ttl,
            command_timeout,
            reconnect_initial,
            reconnect_max,
            reconcile_interval,
        } = self;
        f.debug_struct("RedisSettings")
            .field("url", &redact::Url(url))
            .field("prefix", prefix)
            .field("sharded", sharded)
            .field("topic_ttl", topic_ttl)
            .field("max_in_flight", max_in_flight)
            .field("subscription_buffer", subscription_buffer)
            .field("presence_ttl", presence_ttl)
            .field("presence_keys_ttl", presence_keys_ttl)
            .field("command_timeout", command_timeout)
            .field("reconnect_initial", reconnect_initial)
            .field("reconnect_max", reconnect_max)
            .field("reconcile_interval", reconcile_interval)
            .finish()
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: String::new(),
            prefix: "ws".into(),
            sharded: false,
            topic_ttl: Some(Duration::from_secs(24 * 3600)),
            max_in_flight: 10_000,
            subscription_buffer: 4096,
            presence_ttl: Duration::from_secs(15),
            presence_keys_ttl: Duration::from_secs(3600),
            command_timeout: Duration::from_secs(2),
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            reconcile_interval: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RedisSettings;

    /// Every field is in `Debug` (the password masked), new ones included.
    #[test]
    fn debug_shows_every_field_and_no_password() {
        let settings = RedisSettings {
            url: "redis://app:hunter2@127.0.0.1:6379/0".into(),
            ..RedisSettings::default()
        };
        let text = format!("{settings:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            text,
            "RedisSettings { url: \"redis://app:***@127.0.0.1:6379/0\", prefix: \"ws\", \
             sharded: false, topic_ttl: Some(86400s), max_in_flight: 10000, \
             subscription_buffer: 4096, presence_ttl: 15s, presence_keys_ttl: 3600s, \
             command_timeout: 2s, reconnect_initial: 100ms, reconnect_max: 5s, \
             reconcile_interval: 10s }"
        );
    }
}
