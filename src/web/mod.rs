//! The actix-web route: `ws::start(MyActor, &req)`.

mod input;
mod socket;

use std::{
    any::Any,
    borrow::Cow,
    cell::RefCell,
    future::Ready,
    sync::atomic::{AtomicBool, Ordering},
};

use actix_web::{
    dev, dev::Extensions, http::StatusCode, web, FromRequest, HttpRequest, HttpResponse,
};

use self::{input::StreamInput, socket::SocketCut};
use crate::{
    actor::{self, Serve},
    handshake::{self, HandshakeError},
    proto::Role,
    server::Server,
};

/// Register each connection's socket with the WebSocket routes it serves: pass it
/// to actix-web's [`HttpServer::on_connect`](actix_web::HttpServer::on_connect).
///
/// ```no_run
/// # use websocket_driver as ws;
/// # struct Echo;
/// # impl ws::Endpoint for Echo {}
/// # async fn route(req: ws::Upgrade) -> actix_web::HttpResponse {
/// #     ws::start(ws::endpoint(Echo), &req)
/// # }
/// use actix_web::{web, App, HttpServer};
///
/// # async fn run() -> std::io::Result<()> {
/// HttpServer::new(|| App::new().route("/ws", web::get().to(route)))
///     .on_connect(ws::on_connect)
///     .bind("127.0.0.1:8080")?
///     .run()
///     .await
/// # }
/// ```
///
/// Without it a route connection still works, but its end depends on actix-http,
/// which owns the socket (found in actix-http 3.20's `h1/dispatcher.rs`; the
/// README's Design section has the details):
///
/// - after the closing handshake (or a failure) the TCP connection stays open for
///   up to [`client_disconnect_timeout`](actix_web::HttpServer::client_disconnect_timeout)
///   (1 s by default), though RFC 6455 §5.5.1 says the server "MUST close the
///   underlying TCP connection immediately";
/// - a peer that never reads keeps its socket and the buffers actix-http holds for
///   it until it reads or goes away: the connection's close timeout ends the
///   WebSocket, but not the socket.
///
/// With it, the connection shuts the socket's read side down once its output has
/// ended (actix-http then writes what it holds and closes at once), and resets the
/// socket when the close times out. Setting `client_disconnect_timeout` to zero
/// fixes the first point only. The route logs one warning (`tracing`) the first
/// time it serves a connection without this registration.
///
/// It records plain TCP connections (`actix_web::rt::net::TcpStream`) on Unix,
/// and with the `web-rustls` feature (on by default) the TCP socket inside
/// actix-web's rustls stream (`bind_rustls_0_23`, `listen_rustls_0_23`): the read
/// side's shutdown and the reset act on that socket, under TLS. A connection over
/// openssl (`bind_openssl`) or a Unix socket is not recorded, and behaves as
/// without it. Other HTTP connections are untouched (a small value in their
/// connection data). To do more in `on_connect`, call this from your own function.
pub fn on_connect(conn: &dyn Any, data: &mut Extensions) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            data.insert(RouteSocket(tcp.as_raw_fd()));
            return;
        }
        #[cfg(feature = "web-rustls")]
        if let Some(tls) = conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<
            actix_web::rt::net::TcpStream,
        >>() {
            data.insert(RouteSocket((**tls).get_ref().0.as_raw_fd()));
        }
    }
    #[cfg(not(unix))]
    let _ = (conn, data);
}

/// What [`on_connect`] records in a connection's data: the socket's descriptor.
#[derive(Debug, Clone, Copy)]
struct RouteSocket(#[cfg(unix)] std::os::fd::RawFd);

/// Whether the route warned of a connection without [`on_connect`].
static WARNED_NO_SOCKET: AtomicBool = AtomicBool::new(false);

/// The socket of the connection `req` came on, when [`on_connect`] recorded it (and
/// it is that connection's: same peer). Warns once when it did not.
fn route_socket(req: &HttpRequest, close_timeout: std::time::Duration) -> Option<SocketCut> {
    #[cfg(unix)]
    let found = req
        .conn_data::<RouteSocket>()
        .and_then(|s| SocketCut::new(s.0, req.peer_addr(), close_timeout));
    #[cfg(not(unix))]
    let found = {
        let _ = close_timeout;
        None
    };
    if found.is_none() && !WARNED_NO_SOCKET.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "websocket route: HttpServer::on_connect(ws::on_connect) is not set (or the \
             connection is neither plain TCP nor rustls over TCP): after a close, actix-web keeps each TCP \
             connection open up to client_disconnect_timeout (1 s by default), and a \
             peer that never reads keeps its socket; see ws::on_connect"
        );
    }
    found
}

/// The extractor of a WebSocket route: the upgrade request and its body stream,
/// which [`start`] takes over.
///
/// actix-web hands the body only to an extractor (`HttpRequest::take_payload` gives
/// nothing), so the route takes `ws::Upgrade` instead of `HttpRequest`; the request
/// is still there ([`http`](Self::http)) for authentication and routing:
///
/// ```no_run
/// # use websocket_driver as ws;
/// # struct MyActor;
/// # impl ws::Endpoint for MyActor {}
/// async fn route(req: ws::Upgrade) -> impl actix_web::Responder {
///     ws::start(ws::endpoint(MyActor), &req)
/// }
/// ```
pub struct Upgrade {
    http: HttpRequest,
    payload: RefCell<Option<dev::Payload>>,
}

impl std::fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrade")
            .field("http", &self.http)
            .field("payload_taken", &self.payload.borrow().is_none())
            .finish()
    }
}

impl Upgrade {
    /// The HTTP request.
    pub fn http(&self) -> &HttpRequest {
        &self.http
    }

    /// The first value of query parameter `name`, decoded as
    /// `application/x-www-form-urlencoded` (`%20` and `+` are spaces), as the
    /// standalone server's [`Request::query_param`](crate::Request::query_param)
    /// does.
    ///
    /// ```
    /// # use websocket_driver as ws;
    /// # use actix_web::FromRequest;
    /// # actix_rt::System::new().block_on(async {
    /// let req = actix_web::test::TestRequest::get().uri("/chat?name=ada%20l&room=1").to_http_request();
    /// let upgrade = ws::Upgrade::extract(&req).await.unwrap();
    /// assert_eq!(upgrade.query_param("name").as_deref(), Some("ada l"));
    /// assert_eq!(upgrade.query_param("missing"), None);
    /// # });
    /// ```
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        url::form_urlencoded::parse(self.http.query_string().as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

impl FromRequest for Upgrade {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        std::future::ready(Ok(Upgrade {
            http: req.clone(),
            payload: RefCell::new(Some(payload.take())),
        }))
    }
}

/// What [`start`](fn@start) and [`Server::start`] take as the request: the route's
/// [`Upgrade`] (by reference or by value). actix-web-actors' three arguments
/// (`&req, stream`) go to [`start_with`] instead, which the compiler's message
/// says when they are passed to `start`.
#[diagnostic::on_unimplemented(
    message = "`ws::start` takes the route's `&ws::Upgrade`, not `{Self}`",
    label = "the request, as the route's `req: ws::Upgrade` extractor",
    note = "with actix-web-actors' `(actor, &req, stream)`, where `req: HttpRequest` and `stream: web::Payload`, call `ws::start_with(actor, &req, stream)`; or take `req: ws::Upgrade` in the route and call `ws::start(actor, &req)`"
)]
pub trait UpgradeRequest: sealed::Sealed {
    /// The request.
    fn upgrade(&self) -> &Upgrade;
}

impl UpgradeRequest for &Upgrade {
    fn upgrade(&self) -> &Upgrade {
        self
    }
}

impl UpgradeRequest for Upgrade {
    fn upgrade(&self) -> &Upgrade {
        self
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for &super::Upgrade {}
    impl Sealed for super::Upgrade {}
}

/// Serve the WebSocket handshake in `req` with `serve` (an actor with the four
/// handlers, [`ws::endpoint`](crate::endpoint)`(..)`, [`ws::forward`](crate::forward)`(..)`),
/// with the default [`Server`] settings. A refused handshake answers 400, 403, 405
/// or 426 with a short reason and starts no actor.
///
/// The actor is the connection's: it runs in the connection's task (the response
/// body drives it), receives [`Open`](crate::Open) first and [`Close`](crate::Close)
/// last, and is stopped when the connection ends, if it has not stopped itself.
///
/// The two-argument form only: actix-web-actors' `ws::start(actor, &req, stream)`
/// is [`start_with`], and the compiler says so:
///
/// ```compile_fail,E0277
/// # use websocket_driver as ws;
/// # struct Echo;
/// # impl ws::Endpoint for Echo {}
/// async fn route(req: actix_web::HttpRequest, stream: actix_web::web::Payload) -> actix_web::HttpResponse {
///     ws::start(ws::endpoint(Echo), &req, stream) // error: use ws::start_with
/// }
/// ```
pub fn start<S: Serve, R: UpgradeRequest>(serve: S, req: R) -> HttpResponse {
    default_server().start(serve, req)
}

/// The server `start` and `start_with` serve with: the defaults, one per process
/// (so its connections share one registry).
fn default_server() -> &'static Server {
    static DEFAULT: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(Server::default)
}

/// The three-argument form, for code migrating from `actix-web-actors`
/// (`ws::start(actor, &req, stream)`): the same as [`start`], with the request and
/// the `web::Payload` extracted separately.
pub fn start_with<S: Serve>(serve: S, req: &HttpRequest, payload: web::Payload) -> HttpResponse {
    default_server().start_with(serve, req, payload)
}

impl Server {
    /// Serve the handshake in `req` with `serve`; see [`start`](fn@start).
    pub fn start<S: Serve, R: UpgradeRequest>(&self, serve: S, req: R) -> HttpResponse {
        let req = req.upgrade();
        match req.payload.borrow_mut().take() {
            Some(payload) => self.serve(serve, &req.http, payload),
            None => {
                HttpResponse::InternalServerError().body("websocket request body already taken\n")
            }
        }
    }

    /// Serve the handshake with a separately extracted payload; see [`start_with`].
    pub fn start_with<S: Serve>(
        &self,
        serve: S,
        req: &HttpRequest,
        payload: web::Payload,
    ) -> HttpResponse {
        self.serve(serve, req, payload.into_inner())
    }

    fn serve<S: Serve>(&self, serve: S, req: &HttpRequest, payload: dev::Payload) -> HttpResponse {
        let headers: Vec<(&str, &[u8])> = req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        let head = handshake::RequestParts {
            method: req.method().as_str(),
            version: http_version(req.version()),
            headers: &headers,
        };
        let settings = self.settings();
        let accept = match handshake::validate_request(&head, settings) {
            Ok(accept) => accept,
            Err(err) => return refuse(&err),
        };
        let span = tracing::debug_span!(
            "websocket",
            peer = ?req.peer_addr(),
            path = req.path(),
            protocol = accept.protocol.as_deref().unwrap_or(""),
        );
        let core = actor::open_core(
            Role::Server,
            &settings.protocol,
            accept.protocol.clone(),
            accept.deflate(settings),
        );
        // actix-http's own request payload is fed only by the dispatcher that polls
        // the connection's task; another stream (a middleware's) may be fed from
        // anywhere.
        let fed_by_dispatcher = matches!(payload, dev::Payload::H1 { .. });
        let mut task = actor::spawn(
            serve,
            core,
            StreamInput::new(payload, fed_by_dispatcher),
            &settings.connection,
            self.registry().clone(),
            span,
        );
        if let Some(socket) = route_socket(req, settings.connection.close_timeout) {
            task.set_transport(Box::new(socket));
        }
        // actix-http stops polling the body while the peer does not read: the actor
        // (its timers, its Close) must not stop with it.
        if let Some(stalled) = actor::Stalled::new(&mut task) {
            actix_rt::spawn(stalled);
        }
        let mut response = HttpResponse::build(StatusCode::SWITCHING_PROTOCOLS);
        response.upgrade("websocket");
        for (name, value) in accept.response_headers(settings) {
            if !name.eq_ignore_ascii_case("upgrade") && !name.eq_ignore_ascii_case("connection") {
                response.append_header((name, value));
            }
        }
        response.streaming(task)
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
    crate::metrics::handshake_error(err);
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = HttpResponse::build(status);
    for (name, value) in err.response_headers() {
        response.insert_header((name, value));
    }
    response
        .content_type("text/plain; charset=utf-8")
        .body(format!("{}\n", err.reason()))
}
