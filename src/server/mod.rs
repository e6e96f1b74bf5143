//! The server: [`Server`], one configured endpoint that serves through the
//! actix-web route ([`Server::start`], feature `web`) or on its own
//! ([`Server::listen`], feature `server`), and shuts its own connections down.

#[cfg(feature = "server")]
mod listen;
#[cfg(feature = "server")]
mod request;
#[cfg(feature = "server")]
mod signals;
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
    settings::Settings,
};

/// A configured WebSocket server endpoint: options through chained setters (the
/// same as `ws::Client`'s), [`configure`](Self::configure) or a
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
    /// [`handle_signals`](Self::handle_signals)`(false)` was called.
    ignore_signals: bool,
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

    /// Change the settings in place, for any option without a setter of its own:
    ///
    /// ```
    /// use websocket_driver as ws;
    ///
    /// let server = ws::Server::new()
    ///     .max_length(1 << 20)
    ///     .configure(|s| s.connection.socket_send_buffer = Some(64 * 1024));
    /// assert_eq!(server.settings().connection.socket_send_buffer, Some(64 * 1024));
    /// assert_eq!(server.settings().protocol.max_message_size, 1 << 20);
    /// ```
    pub fn configure(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(&mut self.settings);
        self
    }

    crate::settings::builder_setters!();

    /// See [`ServerSettings::protocols`](crate::settings::ServerSettings::protocols).
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(self, protocols: I) -> Self {
        self.configure(|s| s.server.protocols = protocols.into_iter().map(Into::into).collect())
    }

    /// Add a header to the 101 response (see
    /// [`ServerSettings::headers`](crate::settings::ServerSettings::headers)).
    pub fn header(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.configure(|s| {
            s.server.headers.insert(name.into(), value.into());
        })
    }

    /// See [`ServerSettings::origins`](crate::settings::ServerSettings::origins).
    pub fn origins<I: IntoIterator<Item = S>, S: Into<String>>(self, origins: I) -> Self {
        self.configure(|s| s.server.origins = origins.into_iter().map(Into::into).collect())
    }

    /// Whether [`listen`](Self::listen) answers Ctrl-C (SIGINT) and SIGTERM (on by
    /// default): it sends Close 1001 to this server's connections, waits for them
    /// up to the close timeout ([`shutdown`](Self::shutdown)), then stops
    /// gracefully. Off: the application handles signals itself (actix-server's own
    /// handling stays off either way). The actix-web route is actix-web's to stop:
    /// call `shutdown` before its `ServerHandle::stop`.
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.ignore_signals = !on;
        self
    }

    /// See [`ServerSettings::allow_any_origin`](crate::settings::ServerSettings::allow_any_origin).
    pub fn allow_any_origin(self) -> Self {
        self.configure(|s| s.server.origins = vec![crate::handshake::ANY_ORIGIN.into()])
    }

    /// Limit the messages and bytes per second each connection takes from its
    /// peer; see [`ConnectionSettings::rate_limit`](crate::settings::ConnectionSettings::rate_limit).
    ///
    /// ```
    /// use websocket_driver as ws;
    ///
    /// let server = ws::Server::new().rate_limit(ws::RateLimit::messages(20).bytes(64 * 1024));
    /// assert!(server.settings().connection.rate_limit.is_some());
    /// ```
    pub fn rate_limit(self, limit: crate::settings::RateLimit) -> Self {
        self.configure(|s| s.connection.rate_limit = Some(limit))
    }

    /// Prepare `message` once for sending to many connections with
    /// [`Conn::send_prepared`](crate::Conn::send_prepared), compressed as this
    /// server's permessage-deflate settings say (see [`PreparedMessage`]).
    /// Connections whose agreement has `server_no_context_takeover` (set
    /// [`DeflateSettings::server_no_context_takeover`] to get it on every
    /// connection) share the compressed frame; the others compress it themselves.
    ///
    /// [`DeflateSettings::server_no_context_takeover`]: crate::settings::DeflateSettings::server_no_context_takeover
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
