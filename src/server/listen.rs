//! A WebSocket server without actix-web: an actix-server acceptor, our own handshake
//! parse, and the same connection actor as the route ([`Server::listen`]).
//!
//! It serves WebSocket only (every path; the factory decides what to accept), and
//! holds less per connection than the actix-web route: no HTTP dispatcher stays
//! behind the upgraded connection, and an idle connection keeps no read buffer.

use std::{
    future::Future,
    io,
    net::ToSocketAddrs,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
    time::Duration,
};

use actix_rt::net::TcpStream;
use bytes::BytesMut;
use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
};

use super::{Refuse, Request, Server};
use crate::{
    actor::{
        self,
        socket::{self, ReadInput},
        End, Serve,
    },
    handshake::{self, HandshakeError},
    proto::{Connection, Role},
};

/// Read the request head (bounded in size by [`handshake::MAX_HEAD_SIZE`] and in
/// time by `timeout`); returns it and the bytes that followed it.
async fn read_head(
    input: &mut ReadInput<OwnedReadHalf>,
    timeout: Duration,
) -> Result<(handshake::RequestHead, BytesMut), Option<HandshakeError>> {
    match tokio::time::timeout(timeout, socket::read_head(input, handshake::parse_request)).await {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(socket::HeadError::Parse(err))) => Err(Some(err)),
        Ok(Err(socket::HeadError::Io(err))) => {
            tracing::debug!(%err, "websocket handshake read failed");
            Err(None)
        }
        Ok(Err(socket::HeadError::Closed)) => Err(None),
        Err(_) => {
            tracing::debug!("websocket handshake timed out");
            Err(None)
        }
    }
}

/// A connection whose handshake succeeded: its socket halves, the open core, what
/// serves it, and its span.
type Opened<S> = (
    ReadInput<OwnedReadHalf>,
    OwnedWriteHalf,
    Connection,
    S,
    tracing::Span,
);

/// Serve one TCP connection: the handshake, then the connection's actor, with the
/// connection's output written to the socket.
///
/// The handshake runs in a future of its own, boxed: its state (the head buffer,
/// the timer, the parsed request) is freed once it is done, so the task that stays
/// for the connection's lifetime holds only the socket and the connection's task.
///
/// It is the service's future itself (its `Ok` means nothing more than "done"):
/// an `async` block around it would hold it twice, as a captured value and as the
/// value it awaits, and the task lives as long as the connection (384 bytes more
/// per idle connection, measured with `-Zprint-type-sizes`).
async fn serve_connection<S, F>(server: Rc<Server>, socket: TcpStream, factory: F) -> io::Result<()>
where
    S: Serve,
    F: Fn(&Request) -> Result<S, Refuse>,
{
    let Some((input, write, core, serve, span)) =
        Box::pin(handshake(server.clone(), socket, factory)).await
    else {
        return Ok(());
    };
    let settings = &server.settings().connection;
    let registry = server.registry().clone();
    let (_addr, task) = actor::spawn(serve, core, input, settings, registry, span);
    // Dropping the task at the end stops the actor and drops its input; dropping
    // the write half shuts the socket's sending side: the server closes the TCP
    // connection first (RFC 6455 §7.1.1).
    WriteOut {
        socket: write,
        task,
        stuck: false,
    }
    .await;
    Ok(())
}

/// Write a refusal and give up the connection.
async fn refuse(socket: &mut OwnedWriteHalf, bytes: Vec<u8>) {
    let _ = socket.write_all(&bytes).await;
    let _ = socket.shutdown().await;
}

/// The opening handshake over `socket`: read and validate the request, ask the
/// factory, answer. `None` when the handshake failed or was refused (the refusal
/// was written, if it could be).
async fn handshake<S, F>(server: Rc<Server>, socket: TcpStream, factory: F) -> Option<Opened<S>>
where
    S: Serve,
    F: Fn(&Request) -> Result<S, Refuse>,
{
    let _ = socket.set_nodelay(true);
    if let Some(size) = server.settings().connection.socket_send_buffer {
        if let Err(err) = socket2::SockRef::from(&socket).set_send_buffer_size(size) {
            tracing::debug!(%err, "SO_SNDBUF not set");
        }
    }
    let peer = socket.peer_addr().ok();
    let local = socket.local_addr().ok();
    let settings = server.settings();
    let (read, mut write) = socket.into_split();
    let mut input = ReadInput::new(read);
    let (head, rest) = match read_head(&mut input, settings.connection.handshake_timeout).await {
        Ok(read) => read,
        Err(Some(err)) => {
            tracing::debug!(error = %err, "websocket handshake refused");
            let mut out = Vec::new();
            err.write_rejection(&mut out);
            refuse(&mut write, out).await;
            return None;
        }
        Err(None) => return None,
    };
    let accept = match head.validate(settings) {
        Ok(accept) => accept,
        Err(err) => {
            tracing::debug!(error = %err, "websocket handshake refused");
            let mut out = Vec::new();
            err.write_rejection(&mut out);
            refuse(&mut write, out).await;
            return None;
        }
    };
    let request = Request::new(head, peer, local);
    let serve = match factory(&request) {
        Ok(serve) => serve,
        Err(refusal) => {
            tracing::debug!(
                status = refusal.status(),
                reason = refusal.reason(),
                "websocket handshake refused by the factory"
            );
            let mut out = Vec::new();
            refusal.write(&mut out);
            refuse(&mut write, out).await;
            return None;
        }
    };
    let mut response = Vec::new();
    accept.write_response(settings, &mut response);
    write.write_all(&response).await.ok()?;
    let span = tracing::debug_span!(
        "websocket",
        peer = ?peer,
        path = request.path(),
        protocol = accept.protocol.as_deref().unwrap_or(""),
    );
    let deflate = accept.deflate(settings);
    let core = actor::open_core(Role::Server, &settings.protocol, accept.protocol, deflate);
    input.set_first(rest);
    Some((input, write, core, serve, span))
}

/// Writes the connection's output to the socket, straight from the core's buffers,
/// until the connection ends; the connection's task drives the actor as it goes.
struct WriteOut {
    socket: OwnedWriteHalf,
    task: actor::ConnTask,
    /// The last write found the socket's buffer full (the peer is not reading).
    stuck: bool,
}

impl Future for WriteOut {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let WriteOut {
            socket,
            task,
            stuck,
        } = self.get_mut();
        let done = task.poll_write_to(cx, |cx, slices| {
            let written = match slices {
                // One piece (small frames only): `send`, cheaper in the kernel than
                // `writev` of one buffer.
                [one] => Pin::new(&mut *socket).poll_write(cx, one),
                _ => Pin::new(&mut *socket).poll_write_vectored(cx, slices),
            };
            *stuck = written.is_pending();
            written
        });
        let reset = match task.end_asked() {
            Some(End::Reset) => true,
            Some(End::AfterOutput) => *stuck,
            None => false,
        };
        if done.is_ready() && reset {
            // The connection was ended (the closing handshake timed out, RFC 6455
            // §7.1.1 lets us close the transport then; the connection failed and
            // its actor stopped; a shutdown's drain ran out) while the peer was
            // not reading what we sent: reset it, so that the kernel drops what it
            // still holds for the peer (up to its send buffer, 4 MiB) at once and
            // frees the socket, instead of keeping both for a peer that may never
            // read.
            if let Err(err) =
                socket2::SockRef::from(socket.as_ref()).set_linger(Some(Duration::ZERO))
            {
                tracing::debug!(%err, "SO_LINGER 0 not set");
            }
        }
        done
    }
}

impl Server {
    /// Serve WebSocket connections on `addr` without actix-web. Each accepted
    /// connection runs the opening handshake with these settings (a bad one gets its
    /// status: 400, 403, 405, 426), then `factory` sees the [`Request`] (path, query,
    /// headers, cookies, addresses) and either returns what serves the connection
    /// (an actor, [`ws::endpoint`](crate::endpoint)`(..)`, [`ws::forward`](crate::forward)`(..)`)
    /// or a [`Refuse`] with the status and reason to answer; nothing starts for a
    /// refused connection.
    ///
    /// It uses `workers` threads (0: one per CPU) and returns the running
    /// `actix_server::Server`: await it, or stop it with its handle (call
    /// [`shutdown`](Self::shutdown) first to send Close 1001 to every peer). On
    /// Ctrl-C or SIGTERM it does that itself: Close 1001 to every connection, a
    /// drain of up to the close timeout, then a graceful stop
    /// ([`handle_signals`](Self::handle_signals)`(false)` to handle them yourself).
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
        let server = self.clone();
        let mut builder = actix_server::Server::build().disable_signals();
        if workers > 0 {
            builder = builder.workers(workers);
        }
        let server = builder
            .listen("websocket", listener, move || {
                let server = Rc::new(server.clone());
                let factory = factory.clone();
                actix_service::fn_service(move |socket: TcpStream| {
                    serve_connection(server.clone(), socket, factory.clone())
                })
            })?
            .run();
        if !self.ignore_signals {
            super::signals::drain_on_signals(self, &server)?;
        }
        Ok(server)
    }
}
