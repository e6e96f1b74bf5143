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
    task::{ready, Context, Poll},
    time::Duration,
};

use actix_rt::net::TcpStream;
use bytes::{Bytes, BytesMut};
use tokio::{
    io::AsyncWrite,
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
};
use tokio_util::io::poll_read_buf;

use crate::{
    actor::{self, WebSocketActor},
    handshake::{self, HandshakeError},
    proto::{Connection, Role},
    web::Server,
};

/// Read buffer first reserved when the socket is readable: enough for a burst of
/// small frames.
const READ_CHUNK_MIN: usize = 4 * 1024;

/// The most the read reservation grows to while reads keep filling it: one 64 KiB
/// frame with its header in one read. The slack past 64 KiB matters: a frame of a
/// power-of-two size plus its header would otherwise fill the buffer just short of
/// its end, and the buffer would have to grow (a copy of all of it) for the last
/// few bytes.
const READ_CHUNK_MAX: usize = 64 * 1024 + 64;

/// The socket as the connection's input: read straight into the driver's buffer,
/// only when the socket is readable, so an idle connection holds no read buffer.
///
/// It reads with `AsyncRead::poll_read`, which notes a short read as the end of
/// what the socket holds: the next poll waits for readiness instead of trying a
/// read that would block (one system call fewer per message). The reservation
/// starts small and doubles each time a read fills it, so a connection of small
/// messages keeps a small buffer and one of large messages reads them whole.
struct SocketInput {
    socket: OwnedReadHalf,
    /// Bytes that came after the handshake's head, in the same read.
    first: Option<Bytes>,
    /// The current read reservation.
    chunk: usize,
}

impl actor::Input for SocketInput {
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        if let Some(first) = self.first.take() {
            buf.extend_from_slice(&first);
            return Poll::Ready(Ok(first.len()));
        }
        let had_buffer = buf.capacity() > 0;
        if !had_buffer {
            // Idle: take a buffer only once there is something to read.
            ready!(self.socket.as_ref().poll_read_ready(cx))?;
        }
        if buf.capacity() - buf.len() < self.chunk / 4 {
            buf.reserve(self.chunk);
        }
        let spare = buf.capacity() - buf.len();
        let read = poll_read_buf(Pin::new(&mut self.socket), cx, buf);
        if matches!(read, Poll::Ready(Ok(n)) if n == spare) {
            self.chunk = (self.chunk * 2).min(READ_CHUNK_MAX);
        }
        if read.is_pending() && !had_buffer && buf.is_empty() {
            // Readiness was stale and nothing came: an idle connection keeps no
            // buffer.
            *buf = BytesMut::new();
        }
        read
    }
}

async fn write_all(socket: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read the request head (bounded in size by [`handshake::MAX_HEAD_SIZE`] and in
/// time by `timeout`); returns it and the bytes that followed it.
async fn read_head(
    socket: &TcpStream,
    timeout: Duration,
) -> Result<(handshake::RequestHead, Bytes), Option<HandshakeError>> {
    let read = async {
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            socket.readable().await.map_err(|_| None)?;
            match socket.try_read_buf(&mut buf) {
                Ok(0) => return Err(None),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return Err(None),
            }
            if let Some((head, used)) = handshake::parse_request(&buf).map_err(Some)? {
                let rest = buf.split_off(used).freeze();
                return Ok((head, rest));
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => {
            tracing::debug!("websocket handshake timed out");
            Err(None)
        }
    }
}

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
    let Some((socket, core, rest, span)) = Box::pin(handshake(server.clone(), socket)).await else {
        return;
    };
    let (read, write) = socket.into_split();
    let input = SocketInput {
        socket: read,
        first: (!rest.is_empty()).then_some(rest),
        chunk: READ_CHUNK_MIN,
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
/// Returns the open core, the bytes that followed the request, and the
/// connection's span; `None` when the handshake failed (a refusal was written).
async fn handshake(
    server: Rc<Server>,
    socket: TcpStream,
) -> Option<(TcpStream, Connection, Bytes, tracing::Span)> {
    let _ = socket.set_nodelay(true);
    let peer = socket.peer_addr().ok();
    let settings = server.settings();
    let options = server.handshake_options();
    let refuse = |err: HandshakeError| {
        tracing::debug!(error = %err, "websocket handshake refused");
        let mut out = Vec::new();
        err.write_rejection(&mut out);
        out
    };
    let (head, rest) = match read_head(&socket, settings.connection.handshake_timeout).await {
        Ok(read) => read,
        Err(Some(err)) => {
            let _ = write_all(&socket, &refuse(err)).await;
            return None;
        }
        Err(None) => return None,
    };
    let accept = match head.validate(&options) {
        Ok(accept) => accept,
        Err(err) => {
            let _ = write_all(&socket, &refuse(err)).await;
            return None;
        }
    };
    let mut response = Vec::new();
    accept.write_response(&options, &mut response);
    write_all(&socket, &response).await.ok()?;
    let span = tracing::debug_span!(
        "websocket",
        peer = ?peer,
        path = head.target.as_str(),
        protocol = accept.protocol.as_deref().unwrap_or(""),
    );
    let mut core = Connection::new(Role::Server, settings.protocol.clone());
    core.set_protocol(accept.protocol);
    core.open();
    Some((socket, core, rest, span))
}

/// Writes the connection's output to the socket, straight from the core's buffer,
/// until the connection ends; the writer drives the actor as it goes.
struct WriteOut {
    socket: OwnedWriteHalf,
    writer: actor::Writer,
}

impl Future for WriteOut {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let WriteOut { socket, writer } = self.get_mut();
        writer.poll_write_to(cx, |cx, slices| {
            Pin::new(&mut *socket).poll_write_vectored(cx, slices)
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
