//! Where and how a client connects: [`ClientSettings`] (the `[client]` section) and
//! its [`ReconnectPolicy`] (the `[client.reconnect]` table).

use std::{collections::BTreeMap, time::Duration};

/// Where and how a client connects (the `[client]` section).
///
/// ```
/// use std::time::Duration;
/// use websocket_driver::ClientSettings;
///
/// let client = ClientSettings::default()
///     .url("wss://example.com/feed")
///     .protocols(["feed.v2"])
///     .header("Authorization", "Bearer abc");
/// assert_eq!(client.connect_timeout, Duration::from_secs(10));
/// ```
#[derive(Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct ClientSettings {
    /// The `ws://` or `wss://` URL to connect to. Default: empty (refused by the
    /// client).
    pub url: String,
    /// Subprotocols to offer in `Sec-WebSocket-Protocol`, in order of preference
    /// (RFC 6455 §4.1 item 10); the server picks one or none. Default: none.
    pub protocols: Vec<String>,
    /// The `Origin` header to send (RFC 6455 §4.1 item 8). Default: none.
    pub origin: Option<String>,
    /// Extra request headers (cookies, authorization). Default: none.
    pub headers: BTreeMap<String, String>,
    /// How long name resolution and the TCP connection may take together.
    /// Default 10 s.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "connect_timeout_ms", with = "super::millis")
    )]
    pub connect_timeout: Duration,
    /// Reconnect when the connection is lost; `None` (no `[client.reconnect]`
    /// table): never. Default `None`.
    pub reconnect: Option<ReconnectPolicy>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            url: String::new(),
            protocols: Vec::new(),
            origin: None,
            headers: BTreeMap::new(),
            connect_timeout: Duration::from_secs(10),
            reconnect: None,
        }
    }
}

/// Credentials shown as `***`: the URL's (a query parameter such as `token`) and
/// the values of headers that carry one (`Authorization`, `Cookie`, ...).
impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ClientSettings {
            url,
            protocols,
            origin,
            headers,
            connect_timeout,
            reconnect,
        } = self;
        let headers: BTreeMap<&str, &str> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), super::redact::header_value(name, value)))
            .collect();
        f.debug_struct("ClientSettings")
            .field("url", &super::redact::Url(url))
            .field("protocols", protocols)
            .field("origin", origin)
            .field("headers", &headers)
            .field("connect_timeout", connect_timeout)
            .field("reconnect", reconnect)
            .finish()
    }
}

impl ClientSettings {
    /// Set [`url`](Self::url).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Set [`protocols`](Self::protocols).
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, protocols: I) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Set [`origin`](Self::origin).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Add one of the [`headers`](Self::headers).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// When and how often a client reconnects after its connection is lost (the
/// `[client.reconnect]` table).
///
/// The *n*-th attempt in a row waits `min(max, initial × factorⁿ⁻¹)`, less a random
/// part of up to `jitter` of it (so that many clients cut off together do not come
/// back together), then connects; a connection that opens resets the count.
///
/// ```
/// use std::time::Duration;
/// use websocket_driver::ReconnectPolicy;
///
/// let policy = ReconnectPolicy {
///     initial: Duration::from_millis(100),
///     max: Duration::from_secs(1),
///     factor: 2.0,
///     jitter: 0.0,
///     max_attempts: Some(10),
/// };
/// let delays: Vec<u128> = (1..=6).map(|n| policy.delay(n).as_millis()).collect();
/// assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct ReconnectPolicy {
    /// The wait before the first attempt. Default 500 ms.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "initial_ms", with = "super::millis")
    )]
    pub initial: Duration,
    /// The longest wait. Default 30 s.
    #[cfg_attr(feature = "serde", serde(rename = "max_ms", with = "super::millis"))]
    pub max: Duration,
    /// How much each wait grows over the one before (taken as at least 1).
    /// Default 2.
    pub factor: f64,
    /// The part of each wait taken off at random, from 0 (none) to 1 (the wait is
    /// anywhere from zero to its full length). Default 0.5.
    pub jitter: f64,
    /// How many attempts in a row may fail before the client gives up (and stops
    /// the actor); `None` (0 in TOML): never give up. Default `None`.
    #[cfg_attr(feature = "serde", serde(with = "attempts"))]
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.5,
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// The wait before attempt `attempt` (counted from 1), without jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = if self.factor.is_finite() {
            self.factor.max(1.0)
        } else {
            1.0
        };
        let exponent = attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let secs = self.initial.as_secs_f64() * factor.powi(exponent);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The wait before attempt `attempt`, with its random part taken off: within
    /// `[delay × (1 - jitter), delay]`.
    pub fn jittered_delay(&self, attempt: u32) -> Duration {
        let delay = self.delay(attempt);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        delay.mul_f64(1.0 - jitter * rand::random::<f64>())
    }

    /// Whether attempt `attempt` (counted from 1) may be made.
    pub fn allows(&self, attempt: u32) -> bool {
        self.max_attempts.is_none_or(|max| attempt <= max)
    }
}

#[cfg(feature = "serde")]
mod attempts {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let n = u32::deserialize(d)?;
        Ok((n != 0).then_some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_factor_up_to_max() {
        let policy = ReconnectPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
            factor: 3.0,
            jitter: 0.0,
            max_attempts: None,
        };
        let delays: Vec<u128> = (1..=5).map(|n| policy.delay(n).as_millis()).collect();
        assert_eq!(delays, [10, 30, 90, 100, 100]);
        assert_eq!(policy.delay(u32::MAX), Duration::from_millis(100));
        assert_eq!(policy.jittered_delay(2), Duration::from_millis(30));
        let flat = ReconnectPolicy {
            factor: 0.5,
            ..policy.clone()
        };
        assert_eq!(
            flat.delay(4),
            Duration::from_millis(10),
            "factor below 1 is 1"
        );
        let nan = ReconnectPolicy {
            factor: f64::NAN,
            jitter: f64::NAN,
            ..policy
        };
        assert_eq!(nan.jittered_delay(3), Duration::from_millis(10));
    }

    #[test]
    fn jitter_stays_within_its_share_of_the_delay() {
        let policy = ReconnectPolicy {
            initial: Duration::from_millis(1000),
            max: Duration::from_secs(10),
            factor: 2.0,
            jitter: 0.25,
            max_attempts: None,
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = policy.jittered_delay(2);
            assert!(
                d >= Duration::from_millis(1500) && d <= Duration::from_millis(2000),
                "{d:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 100, "the delays vary: {} distinct", seen.len());
    }

    #[test]
    fn max_attempts_bounds_the_attempts() {
        let policy = ReconnectPolicy {
            max_attempts: Some(3),
            ..ReconnectPolicy::default()
        };
        assert_eq!(
            (1..=5).map(|n| policy.allows(n)).collect::<Vec<_>>(),
            [true, true, true, false, false]
        );
        assert!(ReconnectPolicy::default().allows(u32::MAX));
    }
}
