//! The actix-web route: `ws::start(MyActor, &req)`.

use std::{cell::RefCell, collections::BTreeMap, future::Ready, time::Duration};

use actix_web::{dev, http::StatusCode, web, FromRequest, HttpRequest, HttpResponse};

use crate::{
    actor::{self, ConnectionSettings, WebSocketActor},
    handshake::{self, HandshakeError, ServerOptions},
    proto::{Connection, Message, PreparedMessage, Role},
    Config, DeflateConfig,
};

/// An extractor for a WebSocket route: the request and its body stream, which
/// [`start`] takes over.
///
/// actix-web hands the body only to an extractor (`HttpRequest::take_payload` gives
/// nothing), so the route takes `ws::Request` instead of `HttpRequest`:
///
/// ```no_run
/// # use actix::prelude::*;
/// # use websocket_driver as ws;
/// # struct MyActor;
/// # impl Actor for MyActor { type Context = Context<Self>; }
/// # impl Handler<ws::Open> for MyActor { type Result = (); fn handle(&mut self, _: ws::Open, _: &mut Context<Self>) {} }
/// # impl Handler<ws::Message> for MyActor { type Result = (); fn handle(&mut self, _: ws::Message, _: &mut Context<Self>) {} }
/// # impl Handler<ws::Error> for MyActor { type Result = (); fn handle(&mut self, _: ws::Error, _: &mut Context<Self>) {} }
/// # impl Handler<ws::Close> for MyActor { type Result = (); fn handle(&mut self, _: ws::Close, _: &mut Context<Self>) {} }
/// async fn route(req: ws::Request) -> impl actix_web::Responder {
///     ws::start(MyActor, &req)
/// }
/// ```
pub struct Request {
    http: HttpRequest,
    payload: RefCell<Option<dev::Payload>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("http", &self.http)
            .field("payload_taken", &self.payload.borrow().is_none())
            .finish()
    }
}

impl Request {
    /// The HTTP request.
    pub fn http(&self) -> &HttpRequest {
        &self.http
    }
}

impl FromRequest for Request {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        std::future::ready(Ok(Request {
            http: req.clone(),
            payload: RefCell::new(Some(payload.take())),
        }))
    }
}

/// Serve the WebSocket handshake in `req` with `actor`, with the default [`Server`]
/// settings. A refused handshake answers 400, 403 or 426 with a short reason and
/// starts no actor.
///
/// The actor is the connection's: it runs in the connection's task (the response
/// body drives it), receives [`Open`](crate::Open) first and [`Close`](crate::Close)
/// last, and is stopped when the connection ends, if it has not stopped itself.
/// Other actors can still reach it through its address, from its `started` or
/// `Open` handler.
pub fn start<A: WebSocketActor>(actor: A, req: &Request) -> HttpResponse {
    Server::default().start(actor, req)
}

/// The three-argument form, for code migrating from `actix-web-actors`
/// (`ws::start(actor, &req, stream)`): the same as [`start`], with the request and
/// the `web::Payload` extracted separately.
///
/// Migration from `actix-web-actors`: replace `WebsocketContext` and
/// `StreamHandler<Result<ws::Message, ProtocolError>>` with handlers of
/// [`Open`](crate::Open) (keep its [`Conn`](crate::Conn) to send),
/// [`Message`] (whole messages; no continuation frames, no ping
/// handling: pongs are automatic), [`Error`](crate::Error) and
/// [`Close`](crate::Close); `ctx.text(..)` becomes `conn.send_text(..)`.
pub fn start_with<A: WebSocketActor>(
    actor: A,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    Server::default().start_with(actor, req, payload)
}

/// Options of the opening handshake (the `[handshake]` table of
/// `config/default.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HandshakeSettings {
    /// Subprotocols the server accepts, in its order of preference (the seed's
    /// `accept-protocols`): the first of them that the client offered is chosen.
    /// Default: none.
    pub protocols: Vec<String>,
    /// Origins allowed to connect; others get 403. Default: empty, any origin.
    pub origins: Vec<String>,
    /// Extra headers of the 101 response (the seed's `additional-headers`).
    /// Default: none.
    pub headers: BTreeMap<String, String>,
}

/// Every option of a WebSocket server: the protocol core's limits, the handshake,
/// the connection's timers and buffers. Deserializes from TOML (see
/// `config/default.toml`).
///
/// ```
/// let settings: websocket_driver::web::Settings = toml::from_str(r#"
///     [protocol]
///     max_message_size = 1048576
///     [handshake]
///     protocols = ["chat"]
///     [connection]
///     ping_interval_ms = 0
/// "#).unwrap();
/// assert_eq!(settings.protocol.max_message_size, 1 << 20);
/// assert_eq!(settings.connection.ping_interval, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// The protocol core's limits.
    pub protocol: Config,
    /// The opening handshake.
    pub handshake: HandshakeSettings,
    /// Timers, send buffer.
    pub connection: ConnectionSettings,
    /// permessage-deflate (RFC 7692): off by default.
    pub deflate: DeflateConfig,
}

/// A configured WebSocket server endpoint: options through chained setters or a
/// [`Settings`], then [`start`](Self::start) in the route.
///
/// ```no_run
/// # use actix::prelude::*;
/// # use websocket_driver as ws;
/// # #[derive(Default)] struct MyActor;
/// # impl Actor for MyActor { type Context = Context<Self>; }
/// # impl Handler<ws::Open> for MyActor { type Result = (); fn handle(&mut self, _: ws::Open, _: &mut Context<Self>) {} }
/// # impl Handler<ws::Message> for MyActor { type Result = (); fn handle(&mut self, _: ws::Message, _: &mut Context<Self>) {} }
/// # impl Handler<ws::Error> for MyActor { type Result = (); fn handle(&mut self, _: ws::Error, _: &mut Context<Self>) {} }
/// # impl Handler<ws::Close> for MyActor { type Result = (); fn handle(&mut self, _: ws::Close, _: &mut Context<Self>) {} }
/// async fn route(req: ws::Request) -> impl actix_web::Responder {
///     ws::Server::new()
///         .max_length(1 << 20)
///         .protocols(["chat"])
///         .header("X-Served-By", "websocket-driver")
///         .origins(["https://example.com"])
///         .start(MyActor::default(), &req)
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Server {
    settings: Settings,
}

impl Server {
    /// A server with the default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// A server with `settings`.
    pub fn with_settings(settings: Settings) -> Self {
        Server { settings }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
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

    /// See [`HandshakeSettings::protocols`].
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, protocols: I) -> Self {
        self.settings.handshake.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Add a header to the 101 response (see [`HandshakeSettings::headers`]).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings
            .handshake
            .headers
            .insert(name.into(), value.into());
        self
    }

    /// See [`HandshakeSettings::origins`].
    pub fn origins<I: IntoIterator<Item = S>, S: Into<String>>(mut self, origins: I) -> Self {
        self.settings.handshake.origins = origins.into_iter().map(Into::into).collect();
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

    /// Negotiate permessage-deflate (RFC 7692) as `config` says; see
    /// [`DeflateConfig`] for each choice and the memory it costs. Default: off.
    ///
    /// ```
    /// use websocket_driver as ws;
    ///
    /// let server = ws::Server::new().deflate(ws::DeflateConfig::on().server_no_context_takeover(true));
    /// assert!(server.settings().deflate.enabled);
    /// ```
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.settings.deflate = config;
        self
    }

    /// Prepare `message` once for sending to many connections with
    /// [`Conn::send_prepared`](crate::Conn::send_prepared), compressed as this server's
    /// permessage-deflate settings say (see [`PreparedMessage`]). Connections whose
    /// agreement has `server_no_context_takeover` (set
    /// [`DeflateConfig::server_no_context_takeover`] to get it on every connection)
    /// share the compressed frame; the others compress it themselves.
    pub fn prepare(&self, message: impl Into<Message>) -> PreparedMessage {
        PreparedMessage::new(message, &self.settings.deflate)
    }

    /// See [`ConnectionSettings::close_on_backpressure`].
    pub fn close_on_backpressure(mut self, on: bool) -> Self {
        self.settings.connection.close_on_backpressure = on;
        self
    }

    /// Serve the handshake in `req` with `actor`; see [`start`](fn@start).
    pub fn start<A: WebSocketActor>(&self, actor: A, req: &Request) -> HttpResponse {
        match req.payload.borrow_mut().take() {
            Some(payload) => self.serve(actor, &req.http, payload),
            None => {
                HttpResponse::InternalServerError().body("websocket request body already taken\n")
            }
        }
    }

    /// Serve the handshake with a separately extracted payload; see [`start_with`].
    pub fn start_with<A: WebSocketActor>(
        &self,
        actor: A,
        req: &HttpRequest,
        payload: web::Payload,
    ) -> HttpResponse {
        self.serve(actor, req, payload.into_inner())
    }

    pub(crate) fn handshake_options(&self) -> ServerOptions {
        let h = &self.settings.handshake;
        let mut options = ServerOptions::default().protocols(h.protocols.iter().cloned());
        if !h.origins.is_empty() {
            options = options.origins(h.origins.iter().cloned());
        }
        for (name, value) in &h.headers {
            options = options.header(name.clone(), value.clone());
        }
        options.deflate(self.settings.deflate.clone())
    }

    fn serve<A: WebSocketActor>(
        &self,
        actor: A,
        req: &HttpRequest,
        payload: dev::Payload,
    ) -> HttpResponse {
        let headers: Vec<(&str, &[u8])> = req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        let head = handshake::Request {
            method: req.method().as_str(),
            version: http_version(req.version()),
            headers: &headers,
        };
        let options = self.handshake_options();
        let accept = match handshake::validate_request(&head, &options) {
            Ok(accept) => accept,
            Err(err) => return refuse(&err),
        };
        let span = tracing::debug_span!(
            "websocket",
            peer = ?req.peer_addr(),
            path = req.path(),
            protocol = accept.protocol.as_deref().unwrap_or(""),
        );
        let mut core = Connection::new(Role::Server, self.settings.protocol.clone());
        core.set_protocol(accept.protocol.clone());
        if let Some(deflate) = accept.deflate(&options) {
            core.set_extension(Box::new(deflate));
        }
        core.open();
        let (_addr, writer) = actor::spawn(actor, core, payload, &self.settings.connection, span);
        // actix-http stops polling the body while the peer does not read: the actor
        // (its timers, its Close) must not stop with it.
        if let Some(stalled) = actor::Stalled::new(&writer) {
            actix_rt::spawn(stalled);
        }
        let mut response = HttpResponse::build(StatusCode::SWITCHING_PROTOCOLS);
        response.upgrade("websocket");
        for (name, value) in accept.response_headers(&options) {
            if !name.eq_ignore_ascii_case("upgrade") && !name.eq_ignore_ascii_case("connection") {
                response.append_header((name, value));
            }
        }
        response.streaming(writer)
    }
}

fn http_version(version: actix_web::http::Version) -> handshake::HttpVersion {
    use actix_web::http::Version;
    match version {
        Version::HTTP_09 => handshake::HttpVersion::Http09,
        Version::HTTP_10 => handshake::HttpVersion::Http10,
        Version::HTTP_11 => handshake::HttpVersion::Http11,
        Version::HTTP_2 => handshake::HttpVersion::Http2,
        _ => handshake::HttpVersion::Http3,
    }
}

/// The HTTP answer to a refused handshake: its status, its headers (426 carries
/// `Sec-WebSocket-Version: 13`) and a one-line plain-text reason.
fn refuse(err: &HandshakeError) -> HttpResponse {
    tracing::debug!(error = %err, "websocket handshake refused");
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = HttpResponse::build(status);
    for (name, value) in err.response_headers() {
        response.insert_header((name, value));
    }
    response
        .content_type("text/plain; charset=utf-8")
        .body(format!("{}\n", err.reason()))
}
