//! A WebSocket server without actix-web: an actix-server acceptor, our own handshake
//! parse, and the same connection actor as the route ([`Server::listen`]).
//!
//! It serves WebSocket only (every path; anything else gets its refusal status), and
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

use crate::{
    actor::{
        self,
        socket::{self, ReadInput},
        WebSocketActor,
    },
    handshake::{self, HandshakeError},
    proto::{Connection, Role},
    web::Server,
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

/// Answer a refused handshake with its status and reason.
async fn refuse(socket: &mut OwnedWriteHalf, err: &HandshakeError) -> Option<Opened> {
    tracing::debug!(error = %err, "websocket handshake refused");
    let mut out = Vec::new();
    err.write_rejection(&mut out);
    let _ = socket.write_all(&out).await;
    None
}

/// A connection whose handshake succeeded: its socket halves, the open core, and
/// its span.
type Opened = (
    ReadInput<OwnedReadHalf>,
    OwnedWriteHalf,
    Connection,
    tracing::Span,
);

/// Serve one TCP connection: the handshake, then the connection's actor, with the
/// writer's bytes written to the socket.
///
/// The handshake runs in a future of its own, boxed: its state (the head buffer,
/// the timer, the parsed request) is freed once it is done, so the task that stays
/// for the connection's lifetime holds only the socket and the writer.
async fn serve_connection<A: WebSocketActor>(
    server: Rc<Server>,
    socket: TcpStream,
    actor: impl FnOnce() -> A,
) {
    let Some((input, write, core, span)) = Box::pin(handshake(server.clone(), socket)).await else {
        return;
    };
    let settings = &server.settings().connection;
    let (_addr, writer) = actor::spawn_input(actor(), core, input, settings, span);
    // Dropping the writer at the end stops the actor and drops its input; dropping
    // the write half shuts the socket's sending side: the server closes the TCP
    // connection first (RFC 6455 §7.1.1).
    WriteOut {
        socket: write,
        writer,
    }
    .await;
}

/// The opening handshake over `socket`: read and validate the request, answer it.
/// `None` when the handshake failed (a refusal was written, if it could be).
async fn handshake(server: Rc<Server>, socket: TcpStream) -> Option<Opened> {
    let _ = socket.set_nodelay(true);
    let peer = socket.peer_addr().ok();
    let settings = server.settings();
    let options = server.handshake_options();
    let (read, mut write) = socket.into_split();
    let mut input = ReadInput::new(read);
    let (head, rest) = match read_head(&mut input, settings.connection.handshake_timeout).await {
        Ok(read) => read,
        Err(Some(err)) => return refuse(&mut write, &err).await,
        Err(None) => return None,
    };
    let accept = match head.validate(&options) {
        Ok(accept) => accept,
        Err(err) => return refuse(&mut write, &err).await,
    };
    let mut response = Vec::new();
    accept.write_response(&options, &mut response);
    write.write_all(&response).await.ok()?;
    let span = tracing::debug_span!(
        "websocket",
        peer = ?peer,
        path = head.target.as_str(),
        protocol = accept.protocol.as_deref().unwrap_or(""),
    );
    let mut core = Connection::new(Role::Server, settings.protocol.clone());
    if let Some(deflate) = accept.deflate(&options) {
        core.set_extension(Box::new(deflate));
    }
    core.set_protocol(accept.protocol);
    core.open();
    input.set_first(rest);
    Some((input, write, core, span))
}

/// Writes the connection's output to the socket, straight from the core's buffers,
/// until the connection ends; the writer drives the actor as it goes.
struct WriteOut {
    socket: OwnedWriteHalf,
    writer: actor::Writer,
}

impl Future for WriteOut {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let WriteOut { socket, writer } = self.get_mut();
        writer.poll_write_to(cx, |cx, slices| match slices {
            // One piece (small frames only): `send`, cheaper in the kernel than
            // `writev` of one buffer.
            [one] => Pin::new(&mut *socket).poll_write(cx, one),
            _ => Pin::new(&mut *socket).poll_write_vectored(cx, slices),
        })
    }
}

impl Server {
    /// Serve WebSocket connections on `addr` without actix-web: each accepted
    /// connection runs the handshake with these settings and, if it succeeds, an
    /// actor made by `factory`, exactly as [`start`](Self::start) does on a route.
    /// A refused handshake gets its status (400, 403, 405, 426) and is closed.
    ///
    /// It uses `workers` threads (0: one per CPU) and returns the running
    /// `actix_server::Server`: await it, or stop it with its handle (call
    /// [`shutdown`](crate::shutdown) first to send Close 1001 to every peer).
    ///
    /// ```no_run
    /// # use actix::prelude::*;
    /// # use websocket_driver as ws;
    /// # #[derive(Default)] struct Echo;
    /// # impl Actor for Echo { type Context = Context<Self>; }
    /// # impl Handler<ws::Open> for Echo { type Result = (); fn handle(&mut self, _: ws::Open, _: &mut Context<Self>) {} }
    /// # impl Handler<ws::Message> for Echo { type Result = (); fn handle(&mut self, _: ws::Message, _: &mut Context<Self>) {} }
    /// # impl Handler<ws::Error> for Echo { type Result = (); fn handle(&mut self, _: ws::Error, _: &mut Context<Self>) {} }
    /// # impl Handler<ws::Close> for Echo { type Result = (); fn handle(&mut self, _: ws::Close, _: &mut Context<Self>) {} }
    /// #[actix_rt::main]
    /// async fn main() -> std::io::Result<()> {
    ///     ws::Server::new().listen("127.0.0.1:9001", 1, Echo::default)?.await
    /// }
    /// ```
    pub fn listen<A, F>(
        &self,
        addr: impl ToSocketAddrs,
        workers: usize,
        factory: F,
    ) -> io::Result<actix_server::Server>
    where
        A: WebSocketActor,
        F: Fn() -> A + Send + Clone + 'static,
    {
        let listener = std::net::TcpListener::bind(addr)?;
        self.listen_on(listener, workers, factory)
    }

    /// [`listen`](Self::listen) on a listener bound already (port 0 in tests, a
    /// socket handed over by systemd).
    pub fn listen_on<A, F>(
        &self,
        listener: std::net::TcpListener,
        workers: usize,
        factory: F,
    ) -> io::Result<actix_server::Server>
    where
        A: WebSocketActor,
        F: Fn() -> A + Send + Clone + 'static,
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
                    let fut = serve_connection(server.clone(), socket, factory.clone());
                    async move {
                        fut.await;
                        Ok::<(), io::Error>(())
                    }
                })
            })?
            .run();
        Ok(server)
    }
}
