//! Connecting to Redis: the task's three connections, made with the settings'
//! reconnect policy and command timeout.

use std::time::Duration;

use fred::{clients::SubscriberClient, prelude::*};

use crate::settings::{RedisSettings, SettingsError};

/// Why the backplane did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// A setting out of its range ([`RedisSettings::check`]).
    #[error("invalid redis settings: {0}")]
    Settings(#[from] SettingsError),
    /// The URL is not usable, or the backplane's thread could not start.
    #[error("invalid redis settings: {0}")]
    Config(String),
    /// Redis could not be reached at start.
    #[error("cannot connect to redis: {0}")]
    Connect(String),
}

/// The task's three connections.
pub(super) struct Conns {
    /// Reads, heartbeats, sweeps, fills and locates (with the command timeout).
    pub control: Client,
    /// Publications and presence announcements, in order.
    pub writer: Client,
    pub subscriber: SubscriberClient,
}

pub(super) async fn connect(config: &Config, s: &RedisSettings) -> Result<Conns, RedisError> {
    let config_err = |e: fred::error::Error| RedisError::Config(e.to_string());
    let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1);
    let policy =
        ReconnectPolicy::new_exponential(0, ms(s.reconnect_initial), ms(s.reconnect_max), 2);
    let perf = |timeout: Duration, capacity: usize| PerformanceConfig {
        default_command_timeout: timeout,
        broadcast_channel_capacity: capacity,
        ..PerformanceConfig::default()
    };
    let mut builder = Builder::from_config(config.clone());
    builder.set_policy(policy);
    // The subscription's messages are read as fast as they come: its channel
    // only rides out a burst (a lag is filled from the streams). Its slots are
    // allocated up front in each of the client's event channels.
    let buffer = s.subscription_buffer.max(16);
    builder.with_performance_config(|p| *p = perf(s.command_timeout, buffer));
    let subscriber = builder.build_subscriber_client().map_err(config_err)?;
    builder.with_performance_config(|p| *p = perf(s.command_timeout, 16));
    let control = builder.build().map_err(config_err)?;
    // The writer fails what was written on a connection that closed (never
    // written again: it may have been carried out).
    builder.with_performance_config(|p| *p = perf(s.command_timeout, 16));
    builder.with_connection_config(|c| c.max_command_attempts = 1);
    let writer = builder.build().map_err(config_err)?;
    let started = async {
        control.init().await?;
        writer.init().await?;
        subscriber.init().await?;
        Ok::<(), fred::error::Error>(())
    };
    let limit = s
        .command_timeout
        .max(Duration::from_secs(1))
        .saturating_mul(3);
    match tokio::time::timeout(limit, started).await {
        Ok(Ok(())) => Ok(Conns {
            control,
            writer,
            subscriber,
        }),
        Ok(Err(e)) => Err(RedisError::Connect(e.to_string())),
        Err(_) => Err(RedisError::Connect("timed out".into())),
    }
}
