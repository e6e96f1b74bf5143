//! The server: [`Server`], one configured endpoint that serves through the
//! actix-web route ([`Server::start`], feature `web`) or on its own
//! ([`Server::listen`], feature `server`), and shuts its own connections down.

#[cfg(feature = "server")]
mod listen;
#[cfg(feature = "server")]
mod request;
#[cfg(feature = "server")]
mod tls;

use std::time::Duration;

#[cfg(feature = "server")]
pub use request::{Refuse, Request};
#[cfg(feature = "server")]
pub use tls::tls_server_config;
/// The rustls this crate is built with (ring provider), for
/// [`Server::tls_config`].
#[cfg(feature = "server")]
pub use tokio_rustls::rustls;

use crate::{
    actor::Registry,
    proto::{Message, PreparedMessage},
    settings::{DeflateSettings, Settings},
};

/// A configured WebSocket server endpoint: options through chained setters or a
/// [`Settings`], then [`start`](Self::start) in an actix-web route or
/// [`listen`](Self::listen) on its own.
///
/// A `Server` and its clones share one set of connections: [`shutdown`](Self::shutdown)
/// closes those, and only those, with 1001.
///
/// ```no_run
/// # use actix::prelude::*;
/// # use websocket_driver as ws;
/// # struct MyActor;
/// # impl ws::Endpoint for MyActor {}
/// async fn route(req: ws::Upgrade) -> impl actix_web::Responder {
///     ws::Server::new()
///         .max_length(1 << 20)
///         .protocols(["chat"])
///         .header("X-Served-By", "websocket-driver")
///         .origins(["https://example.com"])
///         .start(ws::endpoint(MyActor), &req)
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Server {
    settings: Settings,
    registry: Registry,
    /// The standalone server's TLS configuration, when given whole.
    #[cfg(feature = "server")]
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl Server {
    /// A server with the default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// A server with `settings` (the `server`, `protocol`, `connection` and
    /// `deflate` sections apply). Extra headers that cannot be sent are left out of
    /// every response; [`Settings::check`] reports them.
    pub fn with_settings(settings: Settings) -> Self {
        Server {
            settings,
            ..Server::default()
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The message limit (the seed's `max-length`), see
    /// [`ProtocolSettings::max_message_size`](crate::ProtocolSettings::max_message_size).
    #[doc(alias = "max_message_size")]
    pub fn max_length(mut self, bytes: usize) -> Self {
        self.settings.protocol = self.settings.protocol.max_message_size(bytes);
        self
    }

    /// See [`ProtocolSettings::max_frame_size`](crate::ProtocolSettings::max_frame_size).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.settings.protocol = self.settings.protocol.max_frame_size(bytes);
        self
    }

    /// See [`ProtocolSettings::max_fragments`](crate::ProtocolSettings::max_fragments).
    pub fn max_fragments(mut self, count: usize) -> Self {
        self.settings.protocol = self.settings.protocol.max_fragments(count);
        self
    }

    /// See [`ProtocolSettings::auto_pong`](crate::ProtocolSettings::auto_pong).
    pub fn auto_pong(mut self, on: bool) -> Self {
        self.settings.protocol = self.settings.protocol.auto_pong(on);
        self
    }

    /// See [`ServerSettings::protocols`](crate::ServerSettings::protocols).
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, protocols: I) -> Self {
        self.settings.server = self.settings.server.protocols(protocols);
        self
    }

    /// Add a header to the 101 response (see
    /// [`ServerSettings::headers`](crate::ServerSettings::headers)).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.server = self.settings.server.header(name, value);
        self
    }

    /// See [`ServerSettings::origins`](crate::ServerSettings::origins).
    pub fn origins<I: IntoIterator<Item = S>, S: Into<String>>(mut self, origins: I) -> Self {
        self.settings.server = self.settings.server.origins(origins);
        self
    }

    /// See [`ServerSettings::allow_any_origin`](crate::ServerSettings::allow_any_origin).
    pub fn allow_any_origin(mut self) -> Self {
        self.settings.server = self.settings.server.allow_any_origin();
        self
    }

    /// See [`ConnectionSettings::ping_interval`](crate::ConnectionSettings::ping_interval).
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.settings.connection.ping_interval = interval;
        self
    }

    /// See [`ConnectionSettings::idle_timeout`](crate::ConnectionSettings::idle_timeout).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.connection.idle_timeout = timeout;
        self
    }

    /// See [`ConnectionSettings::close_timeout`](crate::ConnectionSettings::close_timeout).
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connection.close_timeout = timeout;
        self
    }

    /// See [`ConnectionSettings::handshake_timeout`](crate::ConnectionSettings::handshake_timeout)
    /// (the standalone server's).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connection.handshake_timeout = timeout;
        self
    }

    /// See [`ConnectionSettings::max_send_buffer`](crate::ConnectionSettings::max_send_buffer).
    pub fn max_send_buffer(mut self, bytes: usize) -> Self {
        self.settings.connection.max_send_buffer = bytes;
        self
    }

    /// Limit the messages and bytes per second each connection takes from its
    /// peer; see [`ConnectionSettings::rate_limit`](crate::ConnectionSettings::rate_limit).
    ///
    /// ```
    /// use websocket_driver as ws;
    ///
    /// let server = ws::Server::new().rate_limit(ws::RateLimit::messages(20).bytes(64 * 1024));
    /// assert!(server.settings().connection.rate_limit.is_some());
    /// ```
    pub fn rate_limit(mut self, limit: crate::settings::RateLimit) -> Self {
        self.settings.connection.rate_limit = Some(limit);
        self
    }

    /// See [`ConnectionSettings::close_on_backpressure`](crate::ConnectionSettings::close_on_backpressure).
    pub fn close_on_backpressure(mut self, on: bool) -> Self {
        self.settings.connection.close_on_backpressure = on;
        self
    }

    /// Negotiate permessage-deflate (RFC 7692) as `deflate` says; see
    /// [`DeflateSettings`] for each choice and the memory it costs. Default: off.
    ///
    /// ```
    /// use websocket_driver as ws;
    ///
    /// let server = ws::Server::new().deflate(ws::DeflateSettings::on().server_no_context_takeover(true));
    /// assert!(server.settings().deflate.enabled);
    /// ```
    pub fn deflate(mut self, deflate: DeflateSettings) -> Self {
        self.settings.deflate = deflate;
        self
    }

    /// Prepare `message` once for sending to many connections with
    /// [`Conn::send_prepared`](crate::Conn::send_prepared), compressed as this
    /// server's permessage-deflate settings say (see [`PreparedMessage`]).
    /// Connections whose agreement has `server_no_context_takeover` (set
    /// [`DeflateSettings::server_no_context_takeover`] to get it on every
    /// connection) share the compressed frame; the others compress it themselves.
    pub fn prepare(&self, message: impl Into<Message>) -> PreparedMessage {
        PreparedMessage::new(message, &self.settings.deflate)
    }

    /// How many connections of this server (and its clones) are open.
    pub fn open_connections(&self) -> usize {
        self.registry.len()
    }

    /// Close this server's connections (those started through it or its clones,
    /// on the route or standalone) with 1001 (going away), and resolve once they
    /// are all closed, woken by the connections themselves, or once `drain` ran
    /// out (what is left is then cut off). Other servers' connections stay open.
    /// Call it before stopping actix's server (`ServerHandle::stop`).
    pub async fn shutdown(&self, drain: Duration) {
        self.registry.shutdown(drain).await
    }
}
