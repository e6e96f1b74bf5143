//! The client: `ws::Client::new("wss://host/path")?.connect(MyActor)` opens a
//! connection (TCP, or TLS with rustls), runs the opening handshake (RFC 6455 §4.1)
//! and serves the connection with the same actor layer as the server: the actor
//! receives [`Open`](crate::Open), [`Message`](crate::Message),
//! [`Error`](crate::Error) and [`Close`](crate::Close), and sends through the
//! [`Conn`] in `Open`. See [`Client`].

mod connect;
mod error;
mod session;
mod url;

use std::{collections::BTreeMap, rc::Rc, sync::Arc, time::Duration};

use actix::{Addr, AsyncContext, Context};

pub use error::ClientError;
/// The rustls this crate is built with (ring provider), for
/// [`Client::tls_config`].
pub use tokio_rustls::rustls;
pub use url::{UrlError, WsUrl};

use crate::{
    actor::{settings::millis, ConnectionSettings, WebSocketActor},
    Config, Conn, DeflateConfig,
};

/// Options of the client's opening handshake (the `[handshake]` table of
/// `config/client.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientHandshakeSettings {
    /// Subprotocols to offer in `Sec-WebSocket-Protocol`, in order of preference
    /// (RFC 6455 §4.1 item 10); the server picks one or none
    /// ([`Conn::protocol`]). Default: none.
    pub protocols: Vec<String>,
    /// The `Origin` header to send (RFC 6455 §4.1 item 8). Default: none.
    pub origin: Option<String>,
    /// Extra request headers (cookies, authorization). Default: none.
    pub headers: BTreeMap<String, String>,
}

/// When and how often a client reconnects after its connection is lost.
///
/// The *n*-th attempt in a row waits `min(max, initial × factorⁿ⁻¹)`, less a random
/// part of up to `jitter` of it (so that many clients cut off together do not come
/// back together), then connects; a connection that opens resets the count.
///
/// ```
/// use std::time::Duration;
/// use websocket_driver::client::ReconnectPolicy;
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
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectPolicy {
    /// The wait before the first attempt. Default 500 ms.
    #[serde(rename = "initial_ms", with = "millis")]
    pub initial: Duration,
    /// The longest wait. Default 30 s.
    #[serde(rename = "max_ms", with = "millis")]
    pub max: Duration,
    /// How much each wait grows over the one before (taken as at least 1).
    /// Default 2.
    pub factor: f64,
    /// The part of each wait taken off at random, from 0 (none) to 1 (the wait is
    /// anywhere from zero to its full length). Default 0.5.
    pub jitter: f64,
    /// How many attempts in a row may fail before the client gives up (and stops
    /// the actor); `None` (0 in TOML): never give up. Default `None`.
    #[serde(with = "attempts")]
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
        self.max_attempts.map_or(true, |max| attempt <= max)
    }
}

mod attempts {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let n = u32::deserialize(d)?;
        Ok((n != 0).then_some(n))
    }
}

/// Every option of a client: the URL, the protocol core's limits, the handshake, the
/// connection's timers and buffers, the timeouts of connecting and reconnection.
/// Deserializes from TOML (see `config/client.toml`, which lists every option).
///
/// ```
/// let settings: websocket_driver::ClientSettings = toml::from_str(r#"
///     url = "wss://example.com/feed"
///     connect_timeout_ms = 3000
///     [handshake]
///     protocols = ["v2.feed"]
///     [connection]
///     ping_interval_ms = 15000
///     [reconnect]
///     initial_ms = 250
/// "#).unwrap();
/// assert_eq!(settings.handshake.protocols, ["v2.feed"]);
/// assert_eq!(settings.reconnect.as_ref().map(|r| r.initial.as_millis()), Some(250));
/// let client = websocket_driver::Client::with_settings(settings).unwrap();
/// assert_eq!(client.url().host(), "example.com");
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientSettings {
    /// The `ws://` or `wss://` URL to connect to. Default: empty (refused by
    /// [`Client::with_settings`]).
    pub url: String,
    /// How long name resolution and the TCP connection may take together.
    /// Default 10 s.
    #[serde(rename = "connect_timeout_ms", with = "millis")]
    pub connect_timeout: Duration,
    /// The protocol core's limits.
    pub protocol: Config,
    /// The opening handshake.
    pub handshake: ClientHandshakeSettings,
    /// Timers, send buffer; `handshake_timeout` bounds the TLS handshake and the
    /// opening handshake together.
    pub connection: ConnectionSettings,
    /// Reconnect when the connection is lost; `None` (no `[reconnect]` table): never.
    /// Default `None`.
    pub reconnect: Option<ReconnectPolicy>,
    /// permessage-deflate (RFC 7692): offered when `enabled`. Default off.
    pub deflate: DeflateConfig,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            url: String::new(),
            connect_timeout: Duration::from_secs(10),
            protocol: Config::default(),
            handshake: ClientHandshakeSettings::default(),
            connection: ConnectionSettings::default(),
            reconnect: None,
            deflate: DeflateConfig::default(),
        }
    }
}

/// A root certificate to trust besides webpki-roots.
#[derive(Debug, Clone)]
enum RootCertificate {
    Der(Vec<u8>),
    Pem(Vec<u8>),
}

/// A WebSocket client: a URL and options through chained setters (the same names as
/// [`Server`](crate::Server)'s) or a [`ClientSettings`], then
/// [`connect`](Self::connect) with the actor that serves the connection.
///
/// The actor is the same kind as a server's: it receives [`Open`](crate::Open)
/// (with the [`Conn`] to send through), [`Message`](crate::Message), at most one
/// [`Error`](crate::Error) and exactly one [`Close`](crate::Close), in that order,
/// and it is stopped when the connection ends (with a [reconnect
/// policy](Self::reconnect): when the client gives up).
///
/// `wss://` uses rustls (ring provider), trusting the webpki-roots certificates
/// plus any given with [`root_certificate_pem`](Self::root_certificate_pem) or
/// [`root_certificate_der`](Self::root_certificate_der), or a whole
/// [`rustls::ClientConfig`] ([`tls_config`](Self::tls_config)).
///
/// A complete client: it sends one line, prints the echo and closes.
///
/// ```no_run
/// use actix::prelude::*;
/// use websocket_driver as ws;
///
/// struct Hello;
///
/// impl Actor for Hello {
///     type Context = Context<Self>;
/// }
///
/// impl Handler<ws::Open> for Hello {
///     type Result = ();
///     fn handle(&mut self, open: ws::Open, _: &mut Context<Self>) {
///         let _ = open.conn.send_text("hello");
///     }
/// }
///
/// impl Handler<ws::Message> for Hello {
///     type Result = ();
///     fn handle(&mut self, msg: ws::Message, _: &mut Context<Self>) {
///         println!("echo: {msg:?}");
///     }
/// }
///
/// impl Handler<ws::Error> for Hello {
///     type Result = ();
///     fn handle(&mut self, err: ws::Error, _: &mut Context<Self>) {
///         eprintln!("connection failed: {err}");
///     }
/// }
///
/// impl Handler<ws::Close> for Hello {
///     type Result = ();
///     fn handle(&mut self, close: ws::Close, _: &mut Context<Self>) {
///         eprintln!("closed: {} {}", close.code.0, close.reason);
///         System::current().stop();
///     }
/// }
///
/// #[actix_rt::main]
/// async fn main() -> Result<(), ws::ClientError> {
///     let (_addr, conn) = ws::Client::new("ws://127.0.0.1:9001/chat")?
///         .protocols(["chat"])
///         .header("Authorization", "Bearer abc")
///         .max_length(1 << 20)
///         .connect_with_conn(Hello)
///         .await?;
///     println!("connected, subprotocol {:?}", conn.protocol());
///     actix_rt::time::sleep(std::time::Duration::from_secs(1)).await;
///     let _ = conn.close(ws::CloseCode::NORMAL, "bye");
///     actix_rt::time::sleep(std::time::Duration::from_secs(1)).await;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    url: WsUrl,
    settings: ClientSettings,
    roots: Vec<RootCertificate>,
    tls_config: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// A client for `url` (`ws://` or `wss://`, see [`WsUrl::parse`]) with the
    /// default settings.
    pub fn new(url: &str) -> Result<Client, UrlError> {
        Client::with_settings(ClientSettings {
            url: url.to_owned(),
            ..ClientSettings::default()
        })
    }

    /// A client with `settings` (its URL included).
    pub fn with_settings(settings: ClientSettings) -> Result<Client, UrlError> {
        Ok(Client {
            url: WsUrl::parse(&settings.url)?,
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
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The message limit (the seed's `max-length`), see
    /// [`Config::max_message_size`].
    #[doc(alias = "max_message_size")]
    pub fn max_length(mut self, bytes: usize) -> Self {
        self.settings.protocol = self.settings.protocol.max_message_size(bytes);
        self
    }

    /// See [`Config::max_frame_size`].
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.settings.protocol = self.settings.protocol.max_frame_size(bytes);
        self
    }

    /// See [`Config::max_fragments`].
    pub fn max_fragments(mut self, count: usize) -> Self {
        self.settings.protocol = self.settings.protocol.max_fragments(count);
        self
    }

    /// See [`ClientHandshakeSettings::protocols`].
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, protocols: I) -> Self {
        self.settings.handshake.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Add a header to the request (see [`ClientHandshakeSettings::headers`]). A
    /// name that is not a token, a value with a control character, or a header the
    /// handshake writes itself (`Host`, `Upgrade`, `Sec-WebSocket-*`, ...) makes
    /// [`connect`](Self::connect) fail with [`ClientError::Request`] before any
    /// I/O.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings
            .handshake
            .headers
            .insert(name.into(), value.into());
        self
    }

    /// See [`ClientHandshakeSettings::origin`].
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.settings.handshake.origin = Some(origin.into());
        self
    }

    /// See [`ConnectionSettings::ping_interval`].
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.settings.connection.ping_interval = interval;
        self
    }

    /// See [`ConnectionSettings::idle_timeout`].
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.settings.connection.idle_timeout = timeout;
        self
    }

    /// See [`ConnectionSettings::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connection.close_timeout = timeout;
        self
    }

    /// See [`ConnectionSettings::max_send_buffer`].
    pub fn max_send_buffer(mut self, bytes: usize) -> Self {
        self.settings.connection.max_send_buffer = bytes;
        self
    }

    /// See [`ConnectionSettings::close_on_backpressure`].
    pub fn close_on_backpressure(mut self, on: bool) -> Self {
        self.settings.connection.close_on_backpressure = on;
        self
    }

    /// Offer permessage-deflate (RFC 7692) as `config` says: its `server_*`
    /// options are what we ask of the server, its `client_*` ones what we compress
    /// with. A server answer we did not offer, or cannot accept, fails the
    /// connection with [`ClientError::Handshake`].
    ///
    /// ```
    /// use websocket_driver as ws;
    ///
    /// let client = ws::Client::new("ws://127.0.0.1:9001/")
    ///     .unwrap()
    ///     .deflate(ws::DeflateConfig::on());
    /// assert!(client.settings().deflate.enabled);
    /// ```
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.settings.deflate = config;
        self
    }

    /// See [`ClientSettings::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// How long the TLS handshake and the opening handshake may take together
    /// ([`ConnectionSettings::handshake_timeout`]).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connection.handshake_timeout = timeout;
        self
    }

    /// Reconnect with `policy` when an open connection is lost (see
    /// [`ClientSettings::reconnect`]). Off by default.
    ///
    /// The actor stays the same: it receives each connection's `Open` ... `Close`
    /// in turn, with a new [`Conn`] in each `Open`, so its `Close` handler must not
    /// stop it. Reconnecting stops when the actor calls
    /// [`Conn::close`] (its own close is final), when it stops, after
    /// [`shutdown`](crate::shutdown), on an error that is not
    /// [transient](ClientError::is_transient), and after `max_attempts` failed
    /// attempts in a row; the client then stops the actor. The first connection
    /// ([`connect`](Self::connect)) is not retried: its error is returned.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.settings.reconnect = Some(policy);
        self
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
    pub async fn connect<A: WebSocketActor>(&self, actor: A) -> Result<Addr<A>, ClientError> {
        self.connect_with_conn(actor).await.map(|(addr, _)| addr)
    }

    /// [`connect`](Self::connect), and also return the connection's [`Conn`] (the
    /// same as the one in `Open`), to send from outside the actor.
    pub async fn connect_with_conn<A: WebSocketActor>(
        &self,
        actor: A,
    ) -> Result<(Addr<A>, Conn), ClientError> {
        let plan = Rc::new(connect::Plan::new(self)?);
        let established = connect::establish(&plan).await?;
        let mut ctx = Context::<A>::new();
        let shared = session::start(&mut ctx, &plan, established);
        let conn = Conn::new(shared.clone());
        ctx.spawn(session::Session::new(plan, shared));
        Ok((ctx.run(actor), conn))
    }

    fn tls_client_config(&self) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        if let Some(config) = &self.tls_config {
            return Ok(config.clone());
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for root in &self.roots {
            let ders = match root {
                RootCertificate::Der(der) => {
                    vec![rustls::pki_types::CertificateDer::from(der.clone())]
                }
                RootCertificate::Pem(pem) => {
                    use rustls::pki_types::{pem::PemObject, CertificateDer};
                    let certs = CertificateDer::pem_slice_iter(pem)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| ClientError::RootCertificate(e.to_string()))?;
                    if certs.is_empty() {
                        return Err(ClientError::RootCertificate(
                            "no certificate in the pem text".into(),
                        ));
                    }
                    certs
                }
            };
            for der in ders {
                roots
                    .add(der)
                    .map_err(|e| ClientError::RootCertificate(e.to_string()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ClientError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // The opening handshake is an HTTP/1.1 upgrade (RFC 6455 §4.1 item 2).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
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
