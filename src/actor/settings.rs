//! Options of a connection's actor layer: timers, send buffer, shutdown.

use std::time::Duration;

/// Options of the actor layer (the guard's timers and the send buffer).
///
/// Deserializes from TOML (the `[connection]` table of `config/default.toml`);
/// durations are given in milliseconds, 0 turning a timer off where that is allowed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ConnectionSettings {
    /// Send a Ping when nothing has arrived for this long (keep-alive); `None` (0 in
    /// TOML) never pings. Default 20 s (as python-websockets).
    #[serde(rename = "ping_interval_ms", with = "millis_opt")]
    pub ping_interval: Option<Duration>,
    /// Fail the connection with 1001 when nothing (not even a Pong) has arrived for
    /// this long; `None` (0) never. Default 60 s.
    #[serde(rename = "idle_timeout_ms", with = "millis_opt")]
    pub idle_timeout: Option<Duration>,
    /// How long to wait for the peer's Close (or its closing of the transport) once
    /// the closing handshake started, before closing the transport. Default 5 s.
    #[serde(rename = "close_timeout_ms", with = "millis")]
    pub close_timeout: Duration,
    /// How long the opening handshake may take on paths that read it themselves (the
    /// client; on the actix-web route, actix-web's `client_request_timeout` applies).
    /// Default 10 s.
    #[serde(rename = "handshake_timeout_ms", with = "millis")]
    pub handshake_timeout: Duration,
    /// High-water mark of the send buffer, in bytes: a send made while at least this
    /// much waits to be written fails with [`Error::Backpressure`](crate::Error::Backpressure).
    /// One message is always accepted below the mark, however large. Default 1 MiB.
    pub max_send_buffer: usize,
    /// Fail the connection with 1008 on back-pressure instead of returning the error
    /// to the sender. Default `false`.
    pub close_on_backpressure: bool,
    /// How many events are handled in a row before the connection yields to the rest
    /// of its actor's work (its mailbox, its timers). Default 32.
    pub max_events_per_poll: usize,
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
        }
    }
}

pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod millis_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let ms = u64::deserialize(d)?;
        Ok((ms != 0).then(|| Duration::from_millis(ms)))
    }
}
