//! A WebSocket server without actix-web: an actix-server acceptor, TLS when
//! configured, our own handshake parse, the application's admission (at once or
//! asynchronously), and the same connection actor as the route
//! ([`Server::listen`], [`Server::listen_async`]).
//!
//! It serves WebSocket only (every path; the factory decides what to accept), and
//! holds less per connection than the actix-web route: no HTTP dispatcher stays
//! behind the upgraded connection, and an idle connection keeps no read buffer.

use std::{
    future::Future,
    io,
    marker::PhantomData,
    net::{SocketAddr, ToSocketAddrs},
    pin::Pin,
    rc::Rc,
    task::{ready, Context, Poll},
    time::Duration,
};

use actix_rt::net::TcpStream;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
    time::{timeout_at, Instant},
};

use super::{
    tls::{self, TlsRead, TlsWrite},
    Refuse, Request, Server,
};
use crate::{
    actor::{
        self,
        socket::{self, ReadInput},
        End, Serve,
    },
    handshake::{self, HandshakeError},
    proto::{Connection, Role},
};

/// How a standalone connection's bytes travel: plain TCP, or TLS over it.
trait Transport: 'static {
    /// What the driver reads.
    type Read: AsyncRead + Unpin + 'static;
    /// What the connection's task writes to.
    type Write: AsyncWrite + Unpin + 'static;
    /// Set up the transport over an accepted socket (the TLS handshake); `None`
    /// when that failed (logged and counted).
    fn open(&self, socket: TcpStream) -> impl Future<Output = Option<(Self::Read, Self::Write)>>;

    /// Make the socket's close a reset (`SO_LINGER` 0).
    fn set_linger_zero(write: &Self::Write) -> io::Result<()>;

    /// The output is over and `write` is about to be dropped (a reset when
    /// `reset`): end the transport in order if that takes more than dropping it
    /// (TLS's `close_notify`; plain TCP's write half shuts down when dropped).
    fn end(write: &Self::Write, reset: bool);
}

/// Plain TCP: the socket's owned halves (no lock between them).
#[derive(Clone, Copy)]
struct Plain;

impl Transport for Plain {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;

    async fn open(&self, socket: TcpStream) -> Option<(OwnedReadHalf, OwnedWriteHalf)> {
        Some(socket.into_split())
    }

    fn set_linger_zero(write: &OwnedWriteHalf) -> io::Result<()> {
        socket2::SockRef::from(write.as_ref()).set_linger(Some(Duration::ZERO))
    }

    fn end(_: &OwnedWriteHalf, _: bool) {}
}

/// TLS (rustls) over TCP.
#[derive(Clone)]
struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    /// How long the end of a connection (its `close_notify`) may take.
    close_timeout: Duration,
}

impl Transport for Tls {
    type Read = TlsRead;
    type Write = TlsWrite;

    async fn open(&self, socket: TcpStream) -> Option<(TlsRead, TlsWrite)> {
        match self.acceptor.accept(socket).await {
            Ok(stream) => Some(tls::split(stream, self.close_timeout)),
            Err(err) => {
                tracing::debug!(%err, "websocket tls handshake failed");
                crate::metrics::handshake_refused("tls");
                None
            }
        }
    }

    fn set_linger_zero(write: &TlsWrite) -> io::Result<()> {
        write.set_linger_zero()
    }

    fn end(write: &TlsWrite, reset: bool) {
        if !reset {
            // `close_notify`, then the TCP FIN; bounded, as the peer may have
            // stopped reading just now. A task of its own, made only then: its
            // timer would otherwise take room in every connection's future.
            actix_rt::spawn(shut_down(write.clone(), write.close_timeout()));
        }
    }
}

/// A connection whose handshake succeeded: its input, its write half, the open
/// core, what serves it, and its span.
type Opened<T, S> = (
    ReadInput<<T as Transport>::Read>,
    <T as Transport>::Write,
    Connection,
    S,
    tracing::Span,
);

/// Serve one TCP connection: the transport (TLS), the handshake, then the
/// connection's actor, with the connection's output written to the socket.
///
/// The handshake runs in a future of its own, boxed here at once: its state (the
/// TLS handshake's, the head buffer, the timer, the parsed request, the admission)
/// is freed once it is done, so the task that stays for the connection's lifetime
/// holds only the transport and the connection's task. Boxed before the
/// connection's future is made, rather than inside it, so that the socket and the
/// factory are not kept in that future for its whole life (as an `async fn`'s
/// arguments are).
///
/// It is the service's future itself (its `Ok` means nothing more than "done"):
/// actix-server's task around it holds it twice, as a captured value and as the
/// value it awaits, and the task lives as long as the connection: every 64 bytes
/// here are 128 more per idle connection (tokio rounds a task's size to 128
/// bytes). So it is a [`Serving`] written out, not an `async fn` (whose
/// arguments would stay in it for the connection's life): while the connection
/// runs it holds the socket's write half and the connection's task (48 bytes), and
/// the task takes 256 bytes.
fn serve_connection<T, S, F, Fut>(
    server: Rc<Server>,
    transport: T,
    socket: TcpStream,
    factory: F,
) -> impl Future<Output = io::Result<()>>
where
    T: Transport,
    S: Serve,
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Result<S, Refuse>>,
{
    let opened = Box::pin(handshake(server.clone(), transport, socket, factory));
    Serving::<T, S, _>::Opening {
        server,
        opened,
        serve: PhantomData,
    }
}

/// A connection's future: its handshake (`opened`), then, once that succeeded, its
/// actor, with its output written to the socket until it ends.
enum Serving<T: Transport, S, H> {
    Opening {
        server: Rc<Server>,
        opened: Pin<Box<H>>,
        serve: PhantomData<fn() -> S>,
    },
    Running(WriteOut<T>),
    Done,
}

impl<T, S, H> Future for Serving<T, S, H>
where
    T: Transport,
    S: Serve,
    H: Future<Output = Option<Opened<T, S>>>,
{
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this {
                Serving::Opening { server, opened, .. } => {
                    let Some((input, write, core, serve, span)) = ready!(opened.as_mut().poll(cx))
                    else {
                        *this = Serving::Done;
                        return Poll::Ready(Ok(()));
                    };
                    let settings = &server.settings().connection;
                    let registry = server.registry().clone();
                    let task = actor::spawn(serve, core, input, settings, registry, span);
                    *this = Serving::Running(WriteOut {
                        socket: write,
                        task,
                    });
                }
                Serving::Running(out) => {
                    ready!(Pin::new(out).poll(cx));
                    // Dropping the task stops the actor and drops its input;
                    // dropping the write half shuts the socket's sending side: the
                    // server closes the TCP connection first (RFC 6455 §7.1.1).
                    *this = Serving::Done;
                    return Poll::Ready(Ok(()));
                }
                Serving::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// End `socket` in order within `timeout`.
async fn shut_down<W: AsyncWrite + Unpin>(mut socket: W, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, socket.shutdown()).await;
}

/// Write a refusal and give up the connection.
async fn refuse<W: AsyncWrite + Unpin>(socket: &mut W, bytes: Vec<u8>) {
    let _ = socket.write_all(&bytes).await;
    let _ = socket.shutdown().await;
}

/// Why a handshake did not complete in time: counted, logged, and answered when
/// the request was read already.
fn timed_out(stage: &'static str) {
    tracing::debug!(stage, "websocket handshake timed out");
    crate::metrics::handshake_refused("timeout");
}

/// The opening handshake over `socket`, all of it within the handshake timeout:
/// the transport (TLS), reading and validating the request, asking the factory,
/// answering. `None` when the handshake failed or was refused (the refusal was
/// written, if it could be).
async fn handshake<T, S, F, Fut>(
    server: Rc<Server>,
    transport: T,
    socket: TcpStream,
    factory: F,
) -> Option<Opened<T, S>>
where
    T: Transport,
    S: Serve,
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Result<S, Refuse>>,
{
    let settings = server.settings();
    let deadline = Instant::now() + settings.connection.handshake_timeout;
    let _ = socket.set_nodelay(true);
    if let Some(size) = settings.connection.socket_send_buffer {
        if let Err(err) = socket2::SockRef::from(&socket).set_send_buffer_size(size) {
            tracing::debug!(%err, "SO_SNDBUF not set");
        }
    }
    let peer = socket.peer_addr().ok();
    let local = socket.local_addr().ok();
    let Ok(opened) = timeout_at(deadline, transport.open(socket)).await else {
        timed_out("tls");
        return None;
    };
    let (read, mut write) = opened?;
    let mut input = ReadInput::new(read);
    let read = timeout_at(
        deadline,
        socket::read_head(&mut input, handshake::parse_request),
    );
    let (head, rest) = match read.await {
        Ok(Ok(read)) => read,
        Ok(Err(socket::HeadError::Parse(err))) => {
            refuse_with(&err, &mut write).await;
            return None;
        }
        Ok(Err(socket::HeadError::Io(err))) => {
            tracing::debug!(%err, "websocket handshake read failed");
            return None;
        }
        Ok(Err(socket::HeadError::Closed)) => return None,
        Err(_) => {
            timed_out("request");
            return None;
        }
    };
    let accept = match head.validate(settings) {
        Ok(accept) => accept,
        Err(err) => {
            refuse_with(&err, &mut write).await;
            return None;
        }
    };
    let request = Request::new(head, peer, local);
    let span = span(&request, accept.protocol.as_deref(), peer);
    let serve = match timeout_at(deadline, factory(request)).await {
        Ok(Ok(serve)) => serve,
        Ok(Err(refusal)) => {
            tracing::debug!(
                status = refusal.status(),
                reason = refusal.reason(),
                "websocket handshake refused by the factory"
            );
            crate::metrics::handshake_refused("application");
            let mut out = Vec::new();
            refusal.write(&mut out);
            refuse(&mut write, out).await;
            return None;
        }
        Err(_) => {
            // The admission took the rest of the handshake's time.
            timed_out("admission");
            let mut out = Vec::new();
            Refuse::new(503, "admission timed out").write(&mut out);
            refuse(&mut write, out).await;
            return None;
        }
    };
    let mut response = Vec::new();
    accept.write_response(settings, &mut response);
    write.write_all(&response).await.ok()?;
    let deflate = accept.deflate(settings);
    let core = actor::open_core(Role::Server, &settings.protocol, accept.protocol, deflate);
    input.set_first(rest);
    Some((input, write, core, serve, span))
}

/// The connection's span.
fn span(request: &Request, protocol: Option<&str>, peer: Option<SocketAddr>) -> tracing::Span {
    tracing::debug_span!(
        "websocket",
        peer = ?peer,
        path = request.path(),
        protocol = protocol.unwrap_or(""),
    )
}

/// Refuse a handshake that broke RFC 6455 or the origin policy: counted, logged,
/// answered with its status.
async fn refuse_with<W: AsyncWrite + Unpin>(err: &HandshakeError, write: &mut W) {
    tracing::debug!(error = %err, "websocket handshake refused");
    crate::metrics::handshake_error(err);
    let mut out = Vec::new();
    err.write_rejection(&mut out);
    refuse(write, out).await;
}

/// Writes the connection's output to the socket, straight from the core's buffers,
/// until the connection ends; the connection's task drives the actor as it goes.
struct WriteOut<T: Transport> {
    socket: T::Write,
    task: actor::ConnTask,
}

impl<T: Transport> Future for WriteOut<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let WriteOut { socket, task } = self.get_mut();
        // Whether a write in this poll found the socket's buffer full (the peer is
        // not reading). The task ends in the poll that writes the last of the
        // output: output left over when it ends was tried in that poll.
        let mut stuck = false;
        let done = task.poll_write_to(cx, |cx, slices| {
            let written = match slices {
                // One piece (small frames only): `send`, cheaper in the kernel than
                // `writev` of one buffer.
                [one] => Pin::new(&mut *socket).poll_write(cx, one),
                _ => Pin::new(&mut *socket).poll_write_vectored(cx, slices),
            };
            stuck = written.is_pending();
            written
        });
        if done.is_pending() {
            return Poll::Pending;
        }
        let reset = match task.end_asked() {
            Some(End::Reset) => true,
            Some(End::AfterOutput) => stuck,
            None => false,
        };
        if reset {
            // The connection was ended (the closing handshake timed out, RFC 6455
            // §7.1.1 lets us close the transport then; the connection failed and
            // its actor stopped; a shutdown's drain ran out) while the peer was
            // not reading what we sent: reset it, so that the kernel drops what it
            // still holds for the peer (up to its send buffer, 4 MiB) at once and
            // frees the socket, instead of keeping both for a peer that may never
            // read. Under TLS too: the reset is the TCP socket's, inside the TLS
            // stream.
            if let Err(err) = T::set_linger_zero(socket) {
                tracing::debug!(%err, "SO_LINGER 0 not set");
            }
        }
        T::end(socket, reset);
        Poll::Ready(())
    }
}

impl Server {
    /// Serve WebSocket connections on `addr` without actix-web. Each accepted
    /// connection runs the TLS handshake when the server has a certificate
    /// ([`tls`](Self::tls), [`tls_config`](Self::tls_config), `[server.tls]`),
    /// then the opening handshake with these settings (a bad one gets its status:
    /// 400, 403, 405, 426, 431), then `factory` sees the [`Request`] (path, query,
    /// headers, cookies, addresses) and either returns what serves the connection
    /// (an actor, [`ws::endpoint`](crate::endpoint)`(..)`, [`ws::forward`](crate::forward)`(..)`)
    /// or a [`Refuse`] with the status, headers and body to answer; nothing starts
    /// for a refused connection. All of it within the handshake timeout
    /// ([`handshake_timeout`](Self::handshake_timeout)). To decide
    /// asynchronously (a database, a token service), see
    /// [`listen_async`](Self::listen_async).
    ///
    /// It uses `workers` threads (0: one per CPU) and returns the running
    /// `actix_server::Server`: await it, or stop it with its handle (call
    /// [`shutdown`](Self::shutdown) first to send Close 1001 to every peer). On
    /// Ctrl-C or SIGTERM it does that itself: Close 1001 to every connection, a
    /// drain of up to the close timeout, then a graceful stop
    /// ([`handle_signals`](Self::handle_signals)`(false)` to handle them yourself).
    /// It fails at once when `addr` cannot be bound or the TLS files cannot be read.
    ///
    /// ```no_run
    /// # use websocket_driver as ws;
    /// # struct Echo;
    /// # impl ws::Endpoint for Echo {}
    /// #[actix_rt::main]
    /// async fn main() -> std::io::Result<()> {
    ///     ws::Server::new()
    ///         .listen("127.0.0.1:9001", 1, |req| match req.query_param("token").as_deref() {
    ///             Some("secret") => Ok(ws::endpoint(Echo)),
    ///             _ => Err(ws::Refuse::new(401, "bad token")),
    ///         })?
    ///         .await
    /// }
    /// ```
    pub fn listen<S, F>(
        &self,
        addr: impl ToSocketAddrs,
        workers: usize,
        factory: F,
    ) -> io::Result<actix_server::Server>
    where
        S: Serve,
        F: Fn(&Request) -> Result<S, Refuse> + Send + Clone + 'static,
    {
        let listener = std::net::TcpListener::bind(addr)?;
        self.listen_on(listener, workers, factory)
    }

    /// [`listen`](Self::listen) on a listener bound already (port 0 in tests, a
    /// socket handed over by systemd).
    pub fn listen_on<S, F>(
        &self,
        listener: std::net::TcpListener,
        workers: usize,
        factory: F,
    ) -> io::Result<actix_server::Server>
    where
        S: Serve,
        F: Fn(&Request) -> Result<S, Refuse> + Send + Clone + 'static,
    {
        self.listen_on_async(listener, workers, move |req: Request| {
            std::future::ready(factory(&req))
        })
    }

    /// [`listen`](Self::listen), with a factory that decides asynchronously: it
    /// takes the [`Request`] and returns a future of what serves the connection
    /// or of a [`Refuse`] (a bearer token checked with a token service, a session
    /// looked up in a database). The future runs on the connection's worker
    /// thread, within what is left of the handshake timeout; past it the peer gets
    /// `503 admission timed out` (counted as `ws_handshakes_refused_total{reason="timeout"}`).
    ///
    /// ```no_run
    /// # use websocket_driver as ws;
    /// # struct Chat { user: String }
    /// # impl ws::Endpoint for Chat {}
    /// # async fn user_of(token: &str) -> Option<String> { Some(token.into()) }
    /// #[actix_rt::main]
    /// async fn main() -> std::io::Result<()> {
    ///     ws::Server::new()
    ///         .listen_async("127.0.0.1:9001", 1, |req: ws::Request| async move {
    ///             let token = req.bearer_token().ok_or_else(|| {
    ///                 ws::Refuse::new(401, "missing token").header("WWW-Authenticate", "Bearer")
    ///             })?;
    ///             match user_of(&token).await {
    ///                 Some(user) => Ok(ws::endpoint(Chat { user })),
    ///                 None => Err(ws::Refuse::new(403, "unknown token")),
    ///             }
    ///         })?
    ///         .await
    /// }
    /// ```
    pub fn listen_async<S, F, Fut>(
        &self,
        addr: impl ToSocketAddrs,
        workers: usize,
        factory: F,
    ) -> io::Result<actix_server::Server>
    where
        S: Serve,
        F: Fn(Request) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = Result<S, Refuse>> + 'static,
    {
        let listener = std::net::TcpListener::bind(addr)?;
        self.listen_on_async(listener, workers, factory)
    }

    /// [`listen_async`](Self::listen_async) on a listener bound already.
    pub fn listen_on_async<S, F, Fut>(
        &self,
        listener: std::net::TcpListener,
        workers: usize,
        factory: F,
    ) -> io::Result<actix_server::Server>
    where
        S: Serve,
        F: Fn(Request) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = Result<S, Refuse>> + 'static,
    {
        match self.tls_acceptor()? {
            Some(acceptor) => {
                let tls = Tls {
                    acceptor,
                    close_timeout: self.settings().connection.close_timeout,
                };
                self.serve_on(listener, workers, tls, factory)
            }
            None => self.serve_on(listener, workers, Plain, factory),
        }
    }

    fn serve_on<T, S, F, Fut>(
        &self,
        listener: std::net::TcpListener,
        workers: usize,
        transport: T,
        factory: F,
    ) -> io::Result<actix_server::Server>
    where
        T: Transport + Clone + Send,
        S: Serve,
        F: Fn(Request) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = Result<S, Refuse>> + 'static,
    {
        let server = self.clone();
        let mut builder = actix_server::Server::build().disable_signals();
        if workers > 0 {
            builder = builder.workers(workers);
        }
        let server = builder
            .listen("websocket", listener, move || {
                let server = Rc::new(server.clone());
                let transport = transport.clone();
                let factory = factory.clone();
                actix_service::fn_service(move |socket: TcpStream| {
                    serve_connection(server.clone(), transport.clone(), socket, factory.clone())
                })
            })?
            .run();
        if !self.ignore_signals {
            super::signals::drain_on_signals(self, &server)?;
        }
        Ok(server)
    }

    /// The TLS acceptor, when the server has a certificate.
    fn tls_acceptor(&self) -> io::Result<Option<tokio_rustls::TlsAcceptor>> {
        let config = match (&self.tls, &self.settings().server.tls) {
            (Some(config), _) => config.clone(),
            (None, Some(files)) => tls::server_config(files)?,
            (None, None) => return Ok(None),
        };
        Ok(Some(tokio_rustls::TlsAcceptor::from(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's future holds no more than the socket's write half and the
    /// connection's task: actix-server's task holds that future twice, and tokio
    /// rounds the task to 128 bytes (see `serve_connection`).
    #[test]
    fn a_connection_future_holds_its_write_half_and_its_task() {
        type Handshake = std::future::Pending<Option<Opened<Plain, Echo>>>;
        let writing = std::mem::size_of::<WriteOut<Plain>>();
        assert!(writing <= 48, "{writing}");
        assert_eq!(
            std::mem::size_of::<Serving<Plain, Echo, Handshake>>(),
            writing
        );
    }

    struct Echo;
    impl crate::Endpoint for Echo {}
}
