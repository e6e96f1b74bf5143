//! Validating settings: [`Settings::check`], with a [`SettingsError`] that names
//! the key at fault and its bound.
//!
//! Every duration is at most [`MAX_DURATION`](super::MAX_DURATION), so that no deadline (`now +
//! timeout`), multiple (`timeout * 3`) or conversion to 32-bit milliseconds made
//! from a setting can overflow; sizes allocated up front or handed to the kernel
//! have bounds of their own; what the settings would write into a handshake
//! (extra headers, subprotocols, the client's `Origin`) follows the HTTP grammar.

use std::time::Duration;

use super::{
    ClientSettings, ConnectionSettings, DeflateSettings, HubSettings, ProtocolSettings,
    RedisSettings, ServerSettings, Settings, MAX_DURATION_MS,
};
use crate::{
    handshake::{
        headers::{
            check_header, check_offered_protocols, is_field_value, is_token,
            RESERVED_REQUEST_HEADERS, RESERVED_RESPONSE_HEADERS,
        },
        BuildError,
    },
    proto::CloseCode,
};

/// The largest `connection.socket_send_buffer` (`SO_SNDBUF`): 2^30 - 1 bytes. The
/// kernel takes a C `int` and doubles it for its bookkeeping.
pub const MAX_SOCKET_SEND_BUFFER: usize = (i32::MAX / 2) as usize;

/// The largest `redis.subscription_buffer`: 2^20 messages. Each of the Redis
/// client's event channels allocates this many slots up front.
pub const MAX_SUBSCRIPTION_BUFFER: usize = 1 << 20;

/// The smallest `redis.subscription_buffer`: 16 messages.
pub const MIN_SUBSCRIPTION_BUFFER: usize = 16;

/// The largest `redis.max_in_flight`: 2^24 publications.
pub const MAX_IN_FLIGHT: usize = 1 << 24;

/// A setting that cannot be used, from [`Settings::check`]. Keys are named as in
/// TOML (`section.key`), durations in milliseconds.
///
/// ```
/// use std::time::Duration;
/// use websocket_driver::settings::{Settings, SettingsError, MAX_DURATION_MS};
///
/// let mut settings = Settings::default();
/// settings.connection.close_timeout = Duration::from_millis(u64::MAX);
/// assert_eq!(
///     settings.check(),
///     Err(SettingsError::OutOfRange {
///         key: "connection.close_timeout_ms",
///         value: u64::MAX.into(),
///         min: 0,
///         max: MAX_DURATION_MS.into(),
///     })
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A number outside the range its key allows (a duration in milliseconds).
    #[error("{key} = {value} is out of range: it must be within {min}..={max}")]
    OutOfRange {
        /// The key, e.g. `connection.close_timeout_ms`.
        key: &'static str,
        /// The value given.
        value: u128,
        /// The smallest value allowed.
        min: u128,
        /// The largest value allowed.
        max: u128,
    },
    /// A close code an endpoint may not send (RFC 6455 §7.4.1, §7.4.2: 1005, 1006
    /// and 1015 are never sent, 0-999 and 1016-2999 are not for applications).
    #[error(
        "{key} = {code} is not a close code an endpoint may send (1000-1003, 1007-1014, 3000-4999)"
    )]
    InvalidCloseCode {
        /// The key, e.g. `hub.slow_close_code`.
        key: &'static str,
        /// The code given.
        code: u16,
    },
    /// A Redis key prefix with `{` or `}` in it: it would be the cluster hash tag
    /// of every key, all of them in one slot.
    #[error("{key} = {value:?} holds a brace: it would be the cluster hash tag of every key")]
    Brace {
        /// The key, `redis.prefix`.
        key: &'static str,
        /// The value given.
        value: String,
    },
    /// A problem in one namespace of `[hub.namespaces]` (its keys are named
    /// without the prefix, e.g. `slow_close_code`).
    #[error("hub.namespaces.{name}: {error}")]
    Namespace {
        /// The namespace's name.
        name: String,
        /// What is wrong in it.
        #[source]
        error: Box<SettingsError>,
    },
    /// A namespace's `topics` pattern that names no topic a hub can have: empty,
    /// longer than `hub.max_topic_bytes`, holding a brace, or a `*` anywhere but
    /// at its end; or one that two namespaces share.
    #[error("topics = {pattern:?}: {reason}")]
    Pattern {
        /// The pattern given.
        pattern: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A value the handshake cannot write (a header, subprotocol or origin).
    #[error("{key}: {error}")]
    Handshake {
        /// The key, e.g. `server.headers`.
        key: &'static str,
        /// What is wrong with it.
        #[source]
        error: BuildError,
    },
}

impl Settings {
    /// Check every section: durations within [`MAX_DURATION`](super::MAX_DURATION), sizes within their
    /// bounds ([`MAX_SOCKET_SEND_BUFFER`], [`MAX_SUBSCRIPTION_BUFFER`], at least one
    /// fragment and one event per poll), window bits, levels and close codes in
    /// their ranges, and what the settings would write into a handshake: the
    /// server's and the client's extra headers (names are tokens, values have no
    /// control character, none is one the handshake writes itself), their
    /// subprotocols (tokens; a client's each once) and the client's `Origin`.
    ///
    /// The first problem found is returned. A server leaves a bad extra header out
    /// of its responses and a client refuses to connect; this says so up front, for
    /// settings read from a file.
    ///
    /// ```
    /// use websocket_driver::{handshake::BuildError, settings::SettingsError, Settings};
    ///
    /// let mut settings = Settings::default();
    /// assert!(settings.check().is_ok());
    /// settings.server.headers.insert("X-Bad".into(), "a\r\nInjected: 1".into());
    /// assert_eq!(
    ///     settings.check(),
    ///     Err(SettingsError::Handshake {
    ///         key: "server.headers",
    ///         error: BuildError::InvalidHeaderValue("X-Bad".into()),
    ///     })
    /// );
    /// ```
    pub fn check(&self) -> Result<(), SettingsError> {
        protocol(&self.protocol)?;
        connection(&self.connection)?;
        deflate(&self.deflate)?;
        server(&self.server)?;
        client(&self.client)?;
        hub(&self.hub)?;
        self.redis.check()
    }
}

fn protocol(p: &ProtocolSettings) -> Result<(), SettingsError> {
    // The message and frame limits are any `usize`: a limit is compared, never
    // allocated.
    at_least("protocol.max_fragments", p.max_fragments, 1)
}

fn connection(c: &ConnectionSettings) -> Result<(), SettingsError> {
    duration_opt("connection.ping_interval_ms", c.ping_interval)?;
    duration_opt("connection.idle_timeout_ms", c.idle_timeout)?;
    duration("connection.close_timeout_ms", c.close_timeout)?;
    duration("connection.handshake_timeout_ms", c.handshake_timeout)?;
    at_least("connection.max_events_per_poll", c.max_events_per_poll, 1)?;
    if let Some(bytes) = c.socket_send_buffer {
        within(
            "connection.socket_send_buffer",
            bytes as u128,
            1,
            MAX_SOCKET_SEND_BUFFER as u128,
        )?;
    }
    Ok(())
}

fn deflate(d: &DeflateSettings) -> Result<(), SettingsError> {
    if let Some(bits) = d.server_max_window_bits {
        within("deflate.server_max_window_bits", bits.into(), 8, 15)?;
    }
    if let Some(bits) = d.client_max_window_bits {
        within("deflate.client_max_window_bits", bits.into(), 8, 15)?;
    }
    within("deflate.level", d.level.into(), 0, 9)?;
    within("deflate.mem_level", d.mem_level.into(), 1, 9)
}

fn server(s: &ServerSettings) -> Result<(), SettingsError> {
    for (name, value) in &s.headers {
        check_header(name, value, &RESERVED_RESPONSE_HEADERS)
            .map_err(handshake("server.headers"))?;
    }
    // A server's subprotocols are compared with the client's offer, so each must be
    // a token to ever match (RFC 6455 §4.2.2 /subprotocol/).
    for protocol in &s.protocols {
        if !is_token(protocol.as_bytes()) {
            return Err(handshake("server.protocols")(BuildError::InvalidProtocol(
                protocol.clone(),
            )));
        }
    }
    Ok(())
}

fn client(c: &ClientSettings) -> Result<(), SettingsError> {
    duration("client.connect_timeout_ms", c.connect_timeout)?;
    if let Some(policy) = &c.reconnect {
        duration("client.reconnect.initial_ms", policy.initial)?;
        duration("client.reconnect.max_ms", policy.max)?;
    }
    // The checks `ClientRequest::new` makes of the client section.
    check_offered_protocols(&c.protocols).map_err(handshake("client.protocols"))?;
    if let Some(origin) = &c.origin {
        if !is_field_value(origin.as_bytes()) {
            return Err(handshake("client.origin")(BuildError::InvalidHeaderValue(
                "Origin".into(),
            )));
        }
    }
    for (name, value) in &c.headers {
        check_header(name, value, &RESERVED_REQUEST_HEADERS)
            .map_err(handshake("client.headers"))?;
    }
    Ok(())
}

fn hub(h: &HubSettings) -> Result<(), SettingsError> {
    if !CloseCode(h.slow_close_code).is_allowed() {
        return Err(SettingsError::InvalidCloseCode {
            key: "hub.slow_close_code",
            code: h.slow_close_code,
        });
    }
    // A bound of 0 would refuse everything.
    for (key, value) in [
        ("hub.send_budget_bytes", h.send_budget_bytes),
        ("hub.send_budget_messages", h.send_budget_messages),
        ("hub.conflation_keys", h.conflation_keys),
        ("hub.max_topics_per_connection", h.max_topics_per_connection),
        ("hub.max_members_per_topic", h.max_members_per_topic),
        ("hub.max_topic_bytes", h.max_topic_bytes),
        ("hub.max_user_bytes", h.max_user_bytes),
        ("hub.max_queued_per_thread", h.max_queued_per_thread),
        ("hub.max_connections_per_user", h.max_connections_per_user),
    ] {
        within(key, value as u128, 1, usize::MAX as u128)?;
    }
    duration_opt("hub.history_ttl_ms", h.history_ttl)?;
    duration("hub.authorize_timeout_ms", h.authorize_timeout)?;
    let mut patterns = std::collections::HashSet::new();
    for (name, ns) in &h.namespaces {
        let pattern = ns.pattern(name);
        namespace(h, ns, &pattern, patterns.insert(pattern.clone())).map_err(|error| {
            SettingsError::Namespace {
                name: name.clone(),
                error: Box::new(error),
            }
        })?;
    }
    Ok(())
}

/// One namespace (`first`: no earlier namespace has its pattern).
fn namespace(
    h: &HubSettings,
    ns: &super::NamespaceSettings,
    pattern: &str,
    first: bool,
) -> Result<(), SettingsError> {
    let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
    let reason = if !first {
        Some("another namespace has this pattern")
    } else if pattern.is_empty() {
        Some("empty")
    } else if pattern.len() > h.max_topic_bytes {
        Some("longer than hub.max_topic_bytes")
    } else if prefix.contains('*') {
        Some("a `*` may only end it")
    } else if pattern.contains(['{', '}']) {
        Some("a topic's name holds no brace")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(SettingsError::Pattern {
            pattern: pattern.to_owned(),
            reason,
        });
    }
    if let Some(code) = ns.slow_close_code.filter(|c| !CloseCode(*c).is_allowed()) {
        return Err(SettingsError::InvalidCloseCode {
            key: "slow_close_code",
            code,
        });
    }
    for (key, value) in [
        ("send_budget_bytes", ns.send_budget_bytes),
        ("send_budget_messages", ns.send_budget_messages),
        ("conflation_keys", ns.conflation_keys),
        ("max_members", ns.max_members),
        ("max_message_bytes", ns.max_message_bytes),
    ] {
        if let Some(value) = value {
            within(key, value as u128, 1, usize::MAX as u128)?;
        }
    }
    duration_opt("history_ttl_ms", ns.history_ttl.flatten())
}

impl RedisSettings {
    /// Check the `[redis]` section alone (as [`Settings::check`] does):
    /// durations within their ranges (a command timeout of at least 1 ms, a
    /// presence TTL of at least 30 ms, presence keys living at least twice the
    /// presence TTL, a first reconnect wait no longer than the longest, a
    /// reconciliation every 10 ms at least), counts within theirs, no brace in
    /// the prefix. The backplane refuses to start otherwise.
    ///
    /// ```
    /// use std::time::Duration;
    /// use websocket_driver::{settings::SettingsError, RedisSettings};
    ///
    /// let mut redis = RedisSettings::default();
    /// assert_eq!(redis.check(), Ok(()));
    /// redis.prefix = "app{1}".into();
    /// assert_eq!(
    ///     redis.check(),
    ///     Err(SettingsError::Brace { key: "redis.prefix", value: "app{1}".into() })
    /// );
    /// redis.prefix = "app".into();
    /// redis.presence_keys_ttl = redis.presence_ttl;
    /// assert_eq!(
    ///     redis.check(),
    ///     Err(SettingsError::OutOfRange {
    ///         key: "redis.presence_keys_ttl_ms",
    ///         value: 15_000,
    ///         min: 30_000,
    ///         max: 4_294_967_295,
    ///     })
    /// );
    /// ```
    pub fn check(&self) -> Result<(), SettingsError> {
        redis(self)
    }
}

fn redis(r: &RedisSettings) -> Result<(), SettingsError> {
    // A brace in the prefix would make it the cluster hash tag of every key: one
    // slot for all.
    if r.prefix.contains(['{', '}']) {
        return Err(SettingsError::Brace {
            key: "redis.prefix",
            value: r.prefix.clone(),
        });
    }
    // 0 would drop every publication.
    within(
        "redis.max_in_flight",
        r.max_in_flight as u128,
        1,
        MAX_IN_FLIGHT as u128,
    )?;
    within(
        "redis.subscription_buffer",
        r.subscription_buffer as u128,
        MIN_SUBSCRIPTION_BUFFER as u128,
        MAX_SUBSCRIPTION_BUFFER as u128,
    )?;
    duration_opt("redis.topic_ttl_ms", r.topic_ttl)?;
    // Servers refresh their presence each third of it: a shorter TTL sweeps live
    // servers' users.
    duration_within("redis.presence_ttl_ms", r.presence_ttl, 30)?;
    // Presence keys outlive a sweep of the server that wrote them.
    duration_within(
        "redis.presence_keys_ttl_ms",
        r.presence_keys_ttl,
        r.presence_ttl.as_millis().saturating_mul(2),
    )?;
    // 0 is no timeout at all for the Redis client.
    duration_within("redis.command_timeout_ms", r.command_timeout, 1)?;
    duration_within("redis.reconnect_max_ms", r.reconnect_max, 1)?;
    within(
        "redis.reconnect_initial_ms",
        r.reconnect_initial.as_millis(),
        1,
        r.reconnect_max.as_millis(),
    )?;
    duration_within("redis.reconcile_interval_ms", r.reconcile_interval, 10)
}

fn handshake(key: &'static str) -> impl Fn(BuildError) -> SettingsError {
    move |error| SettingsError::Handshake { key, error }
}

fn within(key: &'static str, value: u128, min: u128, max: u128) -> Result<(), SettingsError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(SettingsError::OutOfRange {
            key,
            value,
            min,
            max,
        })
    }
}

fn at_least(key: &'static str, value: usize, min: u128) -> Result<(), SettingsError> {
    within(key, value as u128, min, usize::MAX as u128)
}

/// A duration is checked in whole milliseconds, the unit it is configured in.
fn duration(key: &'static str, value: Duration) -> Result<(), SettingsError> {
    within(key, value.as_millis(), 0, MAX_DURATION_MS.into())
}

/// A duration of at least `min_ms`, at most [`MAX_DURATION_MS`].
fn duration_within(key: &'static str, value: Duration, min_ms: u128) -> Result<(), SettingsError> {
    within(key, value.as_millis(), min_ms, MAX_DURATION_MS.into())
}

fn duration_opt(key: &'static str, value: Option<Duration>) -> Result<(), SettingsError> {
    value.map_or(Ok(()), |value| duration(key, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{ReconnectPolicy, MAX_DURATION};

    fn refused(change: impl FnOnce(&mut Settings)) -> String {
        let mut settings = Settings::default();
        change(&mut settings);
        settings.check().expect_err("refused").to_string()
    }

    type Change = fn(&mut Settings);

    const TOO_LONG: Duration = Duration::from_millis(MAX_DURATION_MS + 1);

    #[test]
    fn defaults_and_bounds_pass() {
        assert_eq!(Settings::default().check(), Ok(()));
        let mut settings = Settings::default();
        settings.connection.close_timeout = MAX_DURATION;
        settings.connection.ping_interval = Some(MAX_DURATION);
        settings.connection.socket_send_buffer = Some(MAX_SOCKET_SEND_BUFFER);
        settings.redis.subscription_buffer = MAX_SUBSCRIPTION_BUFFER;
        settings.redis.subscription_buffer = MIN_SUBSCRIPTION_BUFFER;
        settings.redis.max_in_flight = MAX_IN_FLIGHT;
        settings.redis.presence_ttl = Duration::from_millis(30);
        settings.redis.presence_keys_ttl = Duration::from_millis(60);
        settings.redis.command_timeout = Duration::from_millis(1);
        settings.redis.reconnect_initial = Duration::from_millis(1);
        settings.redis.reconnect_max = Duration::from_millis(1);
        settings.redis.reconcile_interval = Duration::from_millis(10);
        settings.deflate = DeflateSettings::on()
            .server_max_window_bits(8)
            .client_max_window_bits(15)
            .level(9)
            .mem_level(1);
        settings.hub.slow_close_code = 4000;
        assert_eq!(settings.check(), Ok(()));
    }

    #[test]
    fn every_duration_over_the_maximum_is_refused_by_its_key() {
        let cases: [(&str, Change); 16] = [
            ("connection.ping_interval_ms", |s| {
                s.connection.ping_interval = Some(TOO_LONG)
            }),
            ("connection.idle_timeout_ms", |s| {
                s.connection.idle_timeout = Some(TOO_LONG)
            }),
            ("connection.close_timeout_ms", |s| {
                s.connection.close_timeout = TOO_LONG
            }),
            ("connection.handshake_timeout_ms", |s| {
                s.connection.handshake_timeout = TOO_LONG
            }),
            ("client.connect_timeout_ms", |s| {
                s.client.connect_timeout = TOO_LONG
            }),
            ("client.reconnect.initial_ms", |s| {
                s.client.reconnect = Some(ReconnectPolicy {
                    initial: TOO_LONG,
                    ..ReconnectPolicy::default()
                })
            }),
            ("client.reconnect.max_ms", |s| {
                s.client.reconnect = Some(ReconnectPolicy {
                    max: Duration::MAX,
                    ..ReconnectPolicy::default()
                })
            }),
            ("hub.history_ttl_ms", |s| s.hub.history_ttl = Some(TOO_LONG)),
            ("redis.topic_ttl_ms", |s| s.redis.topic_ttl = Some(TOO_LONG)),
            ("redis.presence_ttl_ms", |s| s.redis.presence_ttl = TOO_LONG),
            ("redis.command_timeout_ms", |s| {
                s.redis.command_timeout = TOO_LONG
            }),
            ("redis.presence_keys_ttl_ms", |s| {
                s.redis.presence_keys_ttl = TOO_LONG
            }),
            ("redis.reconnect_initial_ms", |s| {
                s.redis.reconnect_max = MAX_DURATION;
                s.redis.reconnect_initial = TOO_LONG
            }),
            ("redis.reconnect_max_ms", |s| {
                s.redis.reconnect_max = TOO_LONG
            }),
            ("redis.reconcile_interval_ms", |s| {
                s.redis.reconcile_interval = TOO_LONG
            }),
            ("connection.close_timeout_ms", |s| {
                s.connection.close_timeout = Duration::MAX
            }),
        ];
        for (key, change) in cases {
            let message = refused(change);
            assert!(
                message.starts_with(&format!("{key} = ")),
                "{key}: {message}"
            );
            assert!(message.ends_with("..=4294967295"), "{key}: {message}");
        }
    }

    #[test]
    fn sizes_codes_and_levels_out_of_range_are_refused_with_their_bound() {
        let cases: [(Change, &str); 16] = [
            (
                |s| s.protocol.max_fragments = 0,
                "protocol.max_fragments = 0 is out of range: it must be within 1..=18446744073709551615",
            ),
            (
                |s| s.connection.max_events_per_poll = 0,
                "connection.max_events_per_poll = 0 is out of range: it must be within 1..=18446744073709551615",
            ),
            (
                |s| s.connection.socket_send_buffer = Some(usize::MAX),
                "connection.socket_send_buffer = 18446744073709551615 is out of range: it must be within 1..=1073741823",
            ),
            (
                |s| s.redis.subscription_buffer = usize::MAX,
                "redis.subscription_buffer = 18446744073709551615 is out of range: it must be within 16..=1048576",
            ),
            (
                |s| s.redis.max_in_flight = 0,
                "redis.max_in_flight = 0 is out of range: it must be within 1..=16777216",
            ),
            (
                |s| s.redis.presence_ttl = Duration::ZERO,
                "redis.presence_ttl_ms = 0 is out of range: it must be within 30..=4294967295",
            ),
            (
                |s| s.redis.presence_keys_ttl = Duration::from_millis(29_999),
                "redis.presence_keys_ttl_ms = 29999 is out of range: it must be within 30000..=4294967295",
            ),
            (
                |s| s.redis.command_timeout = Duration::ZERO,
                "redis.command_timeout_ms = 0 is out of range: it must be within 1..=4294967295",
            ),
            (
                |s| s.redis.reconnect_initial = Duration::from_millis(5001),
                "redis.reconnect_initial_ms = 5001 is out of range: it must be within 1..=5000",
            ),
            (
                |s| s.redis.reconcile_interval = Duration::from_millis(9),
                "redis.reconcile_interval_ms = 9 is out of range: it must be within 10..=4294967295",
            ),
            (
                |s| s.redis.prefix = "{app}".into(),
                "redis.prefix = \"{app}\" holds a brace: it would be the cluster hash tag of every key",
            ),
            (
                |s| s.deflate.server_max_window_bits = Some(16),
                "deflate.server_max_window_bits = 16 is out of range: it must be within 8..=15",
            ),
            (
                |s| s.deflate.client_max_window_bits = Some(7),
                "deflate.client_max_window_bits = 7 is out of range: it must be within 8..=15",
            ),
            (
                |s| s.deflate.level = 10,
                "deflate.level = 10 is out of range: it must be within 0..=9",
            ),
            (
                |s| s.deflate.mem_level = 0,
                "deflate.mem_level = 0 is out of range: it must be within 1..=9",
            ),
            (
                |s| s.hub.slow_close_code = 1005,
                "hub.slow_close_code = 1005 is not a close code an endpoint may send \
                 (1000-1003, 1007-1014, 3000-4999)",
            ),
        ];
        for (change, expected) in cases {
            assert_eq!(refused(change), expected);
        }
    }

    #[test]
    fn a_namespace_is_refused_with_its_name_and_key() {
        use crate::settings::NamespaceSettings;
        let with = |name: &str, ns: NamespaceSettings| {
            refused(|s| {
                s.hub
                    .namespaces
                    .insert("ok".into(), NamespaceSettings::default());
                s.hub.namespaces.insert(name.into(), ns);
            })
        };
        let ns = |f: fn(&mut NamespaceSettings)| {
            let mut ns = NamespaceSettings::default();
            f(&mut ns);
            ns
        };
        assert_eq!(
            with("a", ns(|n| n.slow_close_code = Some(1006))),
            "hub.namespaces.a: slow_close_code = 1006 is not a close code an endpoint may send \
             (1000-1003, 1007-1014, 3000-4999)"
        );
        assert_eq!(
            with("a", ns(|n| n.max_members = Some(0))),
            "hub.namespaces.a: max_members = 0 is out of range: it must be within 1..=18446744073709551615"
        );
        assert_eq!(
            with("a", ns(|n| n.history_ttl = Some(Some(TOO_LONG)))),
            format!(
                "hub.namespaces.a: history_ttl_ms = {} is out of range: it must be within 0..=4294967295",
                TOO_LONG.as_millis()
            )
        );
        for (pattern, reason) in [
            ("", "empty"),
            ("a*b*", "a `*` may only end it"),
            ("a{b}:*", "a topic's name holds no brace"),
            ("ok:*", "another namespace has this pattern"),
        ] {
            assert_eq!(
                with("z", ns_topics(pattern)),
                format!("hub.namespaces.z: topics = {pattern:?}: {reason}")
            );
        }
        let mut settings = Settings::default();
        settings.hub.namespaces.insert("all".into(), ns_topics("*"));
        settings
            .hub
            .namespaces
            .insert("lobby".into(), ns_topics("lobby"));
        assert_eq!(settings.check(), Ok(()));
    }

    fn ns_topics(pattern: &str) -> crate::settings::NamespaceSettings {
        crate::settings::NamespaceSettings {
            topics: Some(pattern.into()),
            ..Default::default()
        }
    }

    /// `[hub.namespaces.NAME]` as TOML: keys left out stay `None` (the hub's).
    #[cfg(feature = "serde")]
    #[test]
    fn namespaces_are_read_from_toml() {
        let text = "[hub.namespaces.prices]\ntopics = \"price:*\"\ncache = true\n\
                    history_ttl_ms = 0\nslow_consumer = \"drop\"\n\
                    [hub.namespaces.chat]\nhistory_ttl_ms = 1000\n";
        let settings: Settings = toml::from_str(text).unwrap();
        let prices = &settings.hub.namespaces["prices"];
        assert_eq!(prices.pattern("prices"), "price:*");
        assert_eq!(prices.cache, Some(true));
        assert_eq!(prices.history_ttl, Some(None));
        assert_eq!(
            prices.slow_consumer,
            Some(crate::settings::SlowConsumer::Drop)
        );
        assert_eq!(prices.history_size, None);
        let chat = &settings.hub.namespaces["chat"];
        assert_eq!(chat.pattern("chat"), "chat:*");
        assert_eq!(chat.history_ttl, Some(Some(Duration::from_secs(1))));
        assert_eq!(settings.check(), Ok(()));
        assert!(toml::from_str::<Settings>("[hub.namespaces.x]\ncolour = 1\n").is_err());
    }

    #[test]
    fn handshake_values_are_refused_under_their_key() {
        assert_eq!(
            refused(|s| s.server.protocols = vec!["a b".into()]),
            "server.protocols: invalid subprotocol \"a b\""
        );
        assert_eq!(
            refused(|s| s.client.protocols = vec!["chat".into(), "chat".into()]),
            "client.protocols: duplicate subprotocol \"chat\""
        );
        assert_eq!(
            refused(|s| s.client.origin = Some("a\nb".into())),
            "client.origin: invalid value for header \"Origin\""
        );
        assert_eq!(
            refused(|s| {
                s.client.headers.insert("Host".into(), "x".into());
            }),
            "client.headers: header \"Host\" is written by the handshake itself"
        );
        assert_eq!(
            refused(|s| {
                s.server.headers.insert("X Bad".into(), "1".into());
            }),
            "server.headers: invalid header name \"X Bad\""
        );
    }

    /// TOML durations over the maximum are refused when read (naming the key), so
    /// `u64::MAX` never reaches a deadline.
    #[cfg(feature = "serde")]
    #[test]
    fn toml_durations_over_the_maximum_are_refused_when_read() {
        for key in [
            "[connection]\nclose_timeout_ms",
            "[connection]\nping_interval_ms",
            "[connection]\nidle_timeout_ms",
            "[connection]\nhandshake_timeout_ms",
            "[client]\nconnect_timeout_ms",
            "[client.reconnect]\nmax_ms",
            "[hub]\nhistory_ttl_ms",
            "[hub]\nauthorize_timeout_ms",
            "[redis]\ncommand_timeout_ms",
            "[redis]\npresence_ttl_ms",
            "[redis]\ntopic_ttl_ms",
            "[redis]\npresence_keys_ttl_ms",
            "[redis]\nreconnect_max_ms",
            "[redis]\nreconcile_interval_ms",
        ] {
            let text = format!("{key} = {}", u64::MAX);
            let err = toml::from_str::<Settings>(&text).expect_err(key);
            let message = err.to_string();
            let name = key.rsplit('\n').next().unwrap();
            assert!(message.contains(name), "{key}: {message}");
            assert!(
                message
                    .contains("18446744073709551615 ms is longer than the maximum, 4294967295 ms"),
                "{key}: {message}"
            );
            let at_bound = format!("{key} = {MAX_DURATION_MS}");
            let settings: Settings = toml::from_str(&at_bound).expect(key);
            if key.ends_with("presence_ttl_ms") {
                // Read, then refused for what it asks of the presence keys' TTL.
                let err = settings.check().expect_err(key).to_string();
                assert!(err.starts_with("redis.presence_keys_ttl_ms = "), "{err}");
            } else {
                assert_eq!(settings.check(), Ok(()), "{key}");
            }
        }
    }
}
