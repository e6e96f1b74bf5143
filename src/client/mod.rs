//! The client: `ws::Client::new("wss://host/path")?.connect(MyActor)` opens a
//! connection (TCP, or TLS with rustls), runs the opening handshake (RFC 6455 §4.1)
//! and serves the connection with the same actor layer as the server: the actor
//! receives [`Open`](crate::Open), [`Message`](crate::Message),
//! [`Error`](crate::Error) and [`Close`](crate::Close), and sends through the
//! [`Conn`] in `Open`. See [`Client`].
//!
//! Files: `connect.rs` (name resolution, TCP, TLS, the handshake), `session.rs`
//! (the connection inside the actor, reconnecting), `tls.rs` (rustls), `url.rs`
//! (`ws://` URLs, on the `url` crate), `error.rs`.

mod connect;
mod error;
mod session;
mod tls;
mod url;

use std::{rc::Rc, sync::Arc, time::Duration};

use actix::{Addr, AsyncContext, Context};

pub use error::{ClientError, Timeout};
/// The rustls this crate is built with (ring provider), for
/// [`Client::tls_config`].
pub use tokio_rustls::rustls;
pub use url::{UrlError, WsUrl};

use self::tls::RootCertificate;
use crate::{
    actor::{Close, Conn, Serve},
    proto::CloseCode,
    settings::{ReconnectPolicy, Settings},
};

/// A WebSocket client: a URL and options through chained setters (the same names as
/// [`Server`](crate::Server)'s) or a [`Settings`], then
/// [`connect`](Self::connect) with the actor that serves the connection.
///
/// The actor is the same kind as a server's: it receives [`Open`](crate::Open)
/// (with the [`Conn`] to send through), [`Message`](crate::Message), at most one
/// [`Error`](crate::Error) and exactly one [`Close`](crate::Close), in that order,
/// and it is stopped when the connection ends (with a [reconnect
/// policy](Self::reconnect): when the client gives up).
///
/// `wss://` uses rustls ([`crypto_provider`](crate::tls::crypto_provider): the application's default, else
/// ring), trusting the webpki-roots certificates
/// plus any given with [`root_certificate_pem`](Self::root_certificate_pem) or
/// [`root_certificate_der`](Self::root_certificate_der), or a whole
/// [`rustls::ClientConfig`] ([`tls_config`](Self::tls_config)).
///
/// A complete client: it sends one line, prints the echo and closes; `run`
/// returns once the server answered the close.
///
/// ```no_run
/// use websocket_driver as ws;
///
/// struct Hello;
///
/// impl ws::AsyncEndpoint for Hello {
///     async fn on_open(&mut self, conn: &ws::Conn) {
///         conn.send_text("hello");
///     }
///
///     async fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message) {
///         println!("echo: {msg:?}");
///         conn.close(ws::CloseCode::NORMAL, "bye");
///     }
/// }
///
/// #[actix_rt::main]
/// async fn main() -> Result<(), ws::ClientError> {
///     let close = ws::Client::new("ws://127.0.0.1:9001/chat")?
///         .protocols(["chat"])
///         .header("Authorization", "Bearer abc")
///         .max_length(1 << 20)
///         .run(ws::async_endpoint(Hello))
///         .await?;
///     println!("closed: {} {}", close.code.0, close.reason);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    url: WsUrl,
    settings: Settings,
    roots: Vec<RootCertificate>,
    tls_config: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// A client for `url` (`ws://` or `wss://`, see [`WsUrl::parse`]) with the
    /// default settings. A URL that cannot be connected to is
    /// [`ClientError::Url`]: one error type from `new` to [`run`](Self::run), so
    /// one `?` serves the chain.
    pub fn new(url: &str) -> Result<Client, ClientError> {
        let mut settings = Settings::default();
        settings.client.url = url.to_owned();
        Client::with_settings(settings)
    }

    /// A client with `settings`: its `client` section (the URL included), and the
    /// `protocol`, `connection` and `deflate` sections.
    pub fn with_settings(settings: Settings) -> Result<Client, ClientError> {
        Ok(Client {
            url: WsUrl::parse(&settings.client.url)?,
            settings,
            roots: Vec::new(),
            tls_config: None,
        })
    }

    /// The URL.
    pub fn url(&self) -> &WsUrl {
        &self.url
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Change the settings in place, for any option without a setter of its own
    /// (the URL stays the one the client was made with):
    ///
    /// ```
    /// use websocket_driver as ws;
    ///
    /// let client = ws::Client::new("ws://127.0.0.1:9001/")
    ///     .unwrap()
    ///     .deflate(ws::DeflateSettings::on())
    ///     .configure(|s| s.connection.max_events_per_poll = 8);
    /// assert!(client.settings().deflate.enabled);
    /// assert_eq!(client.settings().connection.max_events_per_poll, 8);
    /// ```
    pub fn configure(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(&mut self.settings);
        self
    }

    crate::settings::builder_setters!();

    /// See [`ClientSettings::protocols`](crate::settings::ClientSettings::protocols).
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(self, protocols: I) -> Self {
        self.configure(|s| s.client.protocols = protocols.into_iter().map(Into::into).collect())
    }

    /// Add a header to the request (see
    /// [`ClientSettings::headers`](crate::settings::ClientSettings::headers)). A
    /// name that is not a token, a value with a control character, or a header the
    /// handshake writes itself (`Host`, `Upgrade`, `Sec-WebSocket-*`, ...) makes
    /// [`connect`](Self::connect) fail with [`ClientError::Request`] before any
    /// I/O.
    pub fn header(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.configure(|s| {
            s.client.headers.insert(name.into(), value.into());
        })
    }

    /// See [`ClientSettings::origin`](crate::settings::ClientSettings::origin).
    pub fn origin(self, origin: impl Into<String>) -> Self {
        self.configure(|s| s.client.origin = Some(origin.into()))
    }

    /// See [`ClientSettings::connect_timeout`](crate::settings::ClientSettings::connect_timeout).
    pub fn connect_timeout(self, timeout: Duration) -> Self {
        self.configure(|s| s.client.connect_timeout = timeout)
    }

    /// Reconnect with `policy` when an open connection is lost (see
    /// [`ClientSettings::reconnect`](crate::settings::ClientSettings::reconnect)). Off by default.
    ///
    /// The actor stays the same: it receives each connection's `Open` ... `Close`
    /// in turn, with a new [`Conn`] in each `Open`, so its `Close` handler must not
    /// stop it. Reconnecting stops when the actor calls
    /// [`Conn::close`] (its own close is final), when it stops, after
    /// [`shutdown`](crate::shutdown), on an error that is not
    /// [transient](ClientError::is_transient), and after `max_attempts` failed
    /// attempts in a row; the client then stops the actor. The first connection
    /// ([`connect`](Self::connect)) is not retried: its error is returned.
    pub fn reconnect(self, policy: ReconnectPolicy) -> Self {
        self.configure(|s| s.client.reconnect = Some(policy))
    }

    /// Trust the root certificate `der` (DER-encoded) for `wss://`, besides the
    /// webpki-roots certificates. Checked when connecting
    /// ([`ClientError::RootCertificate`]). Ignored when a whole
    /// [`tls_config`](Self::tls_config) is given.
    pub fn root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.roots.push(RootCertificate::Der(der.into()));
        self
    }

    /// Trust every certificate in `pem` (PEM text) for `wss://`, besides the
    /// webpki-roots certificates. Checked when connecting
    /// ([`ClientError::RootCertificate`]). Ignored when a whole
    /// [`tls_config`](Self::tls_config) is given.
    pub fn root_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.roots.push(RootCertificate::Pem(pem.as_ref().to_vec()));
        self
    }

    /// Use `config` for `wss://` as it is (client certificates, other roots, a
    /// custom verifier). Its `alpn_protocols` should be empty or `http/1.1`.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Connect and run the opening handshake; once it succeeded, start `actor` to
    /// serve the connection and return its address. The actor receives
    /// [`Open`](crate::Open) first.
    ///
    /// Runs on the current actix system (`#[actix_rt::main]`,
    /// `#[actix_web::main]`, `#[actix_rt::test]`): the actor and the connection's
    /// tasks are spawned there. Nothing is started when it fails.
    ///
    /// # Panics
    ///
    /// Outside an actix system (as `Actor::start` does): there is nowhere to run
    /// the actor.
    pub async fn connect<S: Serve>(&self, serve: S) -> Result<Addr<S::Actor>, ClientError> {
        self.connect_with_conn(serve).await.map(|(addr, _)| addr)
    }

    /// [`connect`](Self::connect), and also return the connection's [`Conn`] (the
    /// same as the one in `Open`), to send from outside the actor.
    pub async fn connect_with_conn<S: Serve>(
        &self,
        serve: S,
    ) -> Result<(Addr<S::Actor>, Conn), ClientError> {
        self.start(serve, None).await
    }

    /// Connect, serve the connection with `serve` until it is over (with a
    /// [reconnect policy](Self::reconnect): until the client gives up, or the
    /// connection is closed by the application), and return how the last connection
    /// ended. The actor (or [`Endpoint`](crate::Endpoint)) closes the connection
    /// when it is done, with [`Conn::close`].
    ///
    /// ```no_run
    /// use websocket_driver as ws;
    ///
    /// struct Hello;
    ///
    /// impl ws::Endpoint for Hello {
    ///     fn on_open(&mut self, conn: &ws::Conn, _: &mut ws::EndpointContext<Self>) {
    ///         conn.send_text("hello");
    ///     }
    ///     fn on_message(&mut self, conn: &ws::Conn, msg: ws::Message, _: &mut ws::EndpointContext<Self>) {
    ///         println!("{msg:?}");
    ///         conn.close(ws::CloseCode::NORMAL, "done");
    ///     }
    /// }
    ///
    /// #[actix_rt::main]
    /// async fn main() -> Result<(), ws::ClientError> {
    ///     let close = ws::Client::new("ws://127.0.0.1:9001/")?.run(ws::endpoint(Hello)).await?;
    ///     println!("closed: {}", close.code.0);
    ///     Ok(())
    /// }
    /// ```
    pub async fn run<S: Serve>(&self, serve: S) -> Result<Close, ClientError> {
        let (done, ended) = tokio::sync::oneshot::channel();
        self.start(serve, Some(done)).await?;
        // Dropped without an answer only when the actor's system went away.
        Ok(ended.await.unwrap_or(Close {
            code: CloseCode::ABNORMAL,
            reason: String::new(),
            was_clean: false,
        }))
    }

    async fn start<S: Serve>(
        &self,
        serve: S,
        done: Option<tokio::sync::oneshot::Sender<Close>>,
    ) -> Result<(Addr<S::Actor>, Conn), ClientError> {
        let plan = Rc::new(connect::Plan::new(
            self.url.clone(),
            &self.settings,
            || self.tls_client_config(),
        )?);
        let established = connect::establish(&plan).await?;
        let (actor, control) = serve.into_parts();
        let mut ctx = Context::<S::Actor>::new();
        let conn = session::start(&mut ctx, &plan, established, control.clone());
        ctx.spawn(session::Session::new(plan, conn.clone(), control, done));
        Ok((ctx.run(actor), conn))
    }

    pub(crate) fn tls_client_config(&self) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        tls::client_config(self.tls_config.as_ref(), &self.roots)
    }
}
